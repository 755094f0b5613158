"""The Typeform connector: signed `form_response` webhooks and the Responses API pull."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import structlog

from guestlist.canonical import CanonicalEvent
from guestlist.connectors._http.client import VendorClient
from guestlist.connectors._signing.hmac import hmac_base64, signatures_match
from guestlist.connectors.base import (
    Capability,
    Connector,
    ConnectorError,
    Delivery,
    Page,
    WebhookRejected,
    WebhookRequest,
    bad_body,
    bad_signature,
    json_object,
    missing_header,
    no_secret,
)
from guestlist.connectors.registry import register
from guestlist.connectors.typeform import client as api
from guestlist.connectors.typeform.mapping import MAPPING_HEADER, TOPIC, parse_envelope
from guestlist.connectors.typeform.settings import TypeformSettings
from guestlist.inbox.store import InboxEnvelope

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "Typeform-Signature"


def signature(secret: str, body: bytes) -> str:
    """`sha256=` + base64(HMAC-SHA256(secret, raw body)), as Typeform sends it."""
    return "sha256=" + hmac_base64(secret, body)



@register
class TypeformConnector(Connector):
    slug = "typeform"
    title = "Typeform"
    capabilities = frozenset({Capability.WEBHOOK, Capability.PULL})
    settings_model = TypeformSettings
    streams = ("responses",)
    generates_webhook_secret = True  # pasted as the webhook's secret at Typeform

    def verify_webhook(self, settings: Any, request: WebhookRequest) -> Delivery:
        assert isinstance(settings, TypeformSettings)
        if settings.webhook_secret is None:
            raise no_secret()
        given = request.header(SIGNATURE_HEADER)
        if not given:
            raise missing_header(SIGNATURE_HEADER)
        expected = signature(settings.webhook_secret.get_secret_value(), request.body)
        if not signatures_match(expected, given):
            raise bad_signature(SIGNATURE_HEADER)
        body = json_object(request.body)
        event_id = body.get("event_id")
        if not isinstance(event_id, str) or not event_id or len(event_id) > 150:
            raise bad_body("event_id", "event_id is required")
        event_type = body.get("event_type")
        if event_type != TOPIC:
            raise WebhookRejected(
                400,
                "unsupported_topic",
                f"guestlist takes submitted responses only (event_type {TOPIC!r}), not "
                f"{str(event_type)[:60]!r}; turn partial responses off on the webhook",
                field="event_type",
                delivery_id=event_id,
            )
        response = body.get("form_response")
        if not isinstance(response, dict):
            raise bad_body("form_response", "form_response is required", event_id)
        for name in ("form_id", "token", "submitted_at"):
            if not isinstance(response.get(name), str) or not response[name]:
                raise bad_body(f"form_response.{name}", f"form_response.{name} is required",
                                event_id)
        if not isinstance(response.get("answers", []), list):
            raise bad_body("form_response.answers", "form_response.answers must be a list",
                            event_id)
        definition = response.get("definition")
        if not isinstance(definition, dict) or not isinstance(definition.get("fields"), list):
            raise bad_body("form_response.definition.fields",
                            "form_response.definition.fields is required", event_id)
        form_id = response["form_id"]
        if settings.forms and form_id not in settings.forms:
            raise WebhookRejected(
                400,
                "unknown_form",
                f"form {form_id[:64]!r} is not in this connection's forms; add it (with its "
                "field mapping) or remove the webhook from that form",
                field="form_response.form_id",
                delivery_id=event_id,
            )
        log.info("typeform response", event_id=event_id, form_id=form_id)
        # The form's mapping as it is now, kept with the stored delivery for `parse`
        # (a redelivery keeps the first one's).
        mapping = settings.forms.get(form_id)
        context = {} if mapping is None else {
            MAPPING_HEADER: orjson.dumps(mapping.model_dump(mode="json")).decode()}
        return Delivery(topic=TOPIC, delivery_id=event_id, context=context)

    def parse(self, envelope: InboxEnvelope) -> list[CanonicalEvent]:
        return parse_envelope(envelope)

    def client(self, settings: Any, *, connection_id: int | None = None) -> VendorClient:
        assert isinstance(settings, TypeformSettings)
        return api.make_client(settings, connection_id=connection_id)

    def pull(
        self, client: VendorClient, settings: Any, stream: str, checkpoint: str | None
    ) -> Iterator[Page]:
        assert isinstance(settings, TypeformSettings)
        if stream != "responses":
            raise ConnectorError(f"Typeform has no stream {stream!r}")
        return api.response_pages(client, settings, checkpoint)

    def check(self, client: VendorClient, settings: Any) -> str:
        assert isinstance(settings, TypeformSettings)
        return api.check(client, settings)
