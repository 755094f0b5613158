"""The Facebook Lead Ads connector: the hub.challenge handshake, signed leadgen
webhooks, and the job that reads each lead from the Graph API."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import structlog
from sqlalchemy import Connection

from guestlist.canonical import CanonicalEvent
from guestlist.connectors._http.client import VendorClient
from guestlist.connectors._signing import signatures_match
from guestlist.connectors.base import (
    Capability,
    Connector,
    ConnectorError,
    Delivery,
    Page,
    Reply,
    WebhookRejected,
    WebhookRequest,
    bad_body,
    bad_signature,
    missing_header,
    no_secret,
)
from guestlist.connectors.facebook_lead_ads import client as api
from guestlist.connectors.facebook_lead_ads.jobs import enqueue_fetches
from guestlist.connectors.facebook_lead_ads.mapping import SLUG, WEBHOOK_TOPIC, parse_envelope
from guestlist.connectors.facebook_lead_ads.settings import FacebookLeadAdsSettings
from guestlist.connectors.facebook_lead_ads.signature import SIGNATURE_HEADER, is_valid
from guestlist.connectors.registry import register
from guestlist.inbox.store import InboxEnvelope

log = structlog.get_logger(__name__)

MAX_KEY = 200  # the inbox's idempotency key column



def leadgen_changes(body: bytes) -> list[dict[str, Any]]:
    """The `leadgen` change values of a delivery, checked; raises WebhookRejected."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise bad_body("body", "the body is not JSON") from None
    if not isinstance(payload, dict):
        raise bad_body("body", "the body is not a JSON object")
    if payload.get("object") != "page":
        raise bad_body("object", f"object is {payload.get('object')!r}, expected 'page'")
    entries = payload.get("entry")
    if not isinstance(entries, list) or not entries:
        raise bad_body("entry", "entry is required")
    leads: list[dict[str, Any]] = []
    for i, entry in enumerate(entries):
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            raise bad_body(f"entry[{i}].changes", "changes is required")
        for j, change in enumerate(changes):
            if not isinstance(change, dict) or change.get("field") != WEBHOOK_TOPIC:
                continue  # a field we did not subscribe to: nothing to read
            value = change.get("value")
            where = f"entry[{i}].changes[{j}].value"
            if not isinstance(value, dict):
                raise bad_body(where, "value is required")
            for name in ("leadgen_id", "page_id", "form_id"):
                if not isinstance(value.get(name), str | int) or value.get(name) in ("", 0):
                    raise bad_body(f"{where}.{name}", f"{name} is required")
            leads.append(value)
    if not leads:
        raise bad_body("entry[].changes[].field", "the delivery holds no leadgen change")
    return leads


def delivery_id(leads: list[dict[str, Any]]) -> str:
    ids = ",".join(sorted({str(v["leadgen_id"]) for v in leads}))
    key = f"leadgen:{ids}"
    if len(key) > MAX_KEY:
        key = "leadgen-sha256:" + hashlib.sha256(ids.encode()).hexdigest()
    return key


@register
class FacebookLeadAdsConnector(Connector):
    slug = SLUG
    title = "Facebook Lead Ads"
    capabilities = frozenset({Capability.WEBHOOK, Capability.PULL})
    settings_model = FacebookLeadAdsSettings
    streams = ("leads",)

    def handshake(self, settings: Any, request: WebhookRequest) -> Reply:
        assert isinstance(settings, FacebookLeadAdsSettings)
        query = parse_qs(urlsplit(request.url).query, keep_blank_values=True)

        def one(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        if one("hub.mode") != "subscribe":
            raise WebhookRejected(
                400, "invalid_handshake", "hub.mode must be subscribe", field="hub.mode"
            )
        challenge = one("hub.challenge")
        if not challenge:
            raise WebhookRejected(
                400, "invalid_handshake", "hub.challenge is required", field="hub.challenge"
            )
        if settings.verify_token is None:
            raise WebhookRejected(
                403, "verify_token_not_set",
                "this connection has no verify_token; set the one typed at Meta",
                field="verify_token",
            )
        if not signatures_match(settings.verify_token.get_secret_value(), one("hub.verify_token")):
            raise WebhookRejected(
                403, "invalid_verify_token",
                "hub.verify_token does not match the connection's verify_token",
                field="hub.verify_token",
            )
        return Reply(challenge.encode(), "text/plain")

    def verify_webhook(self, settings: Any, request: WebhookRequest) -> Delivery:
        assert isinstance(settings, FacebookLeadAdsSettings)
        given = request.header(SIGNATURE_HEADER)
        if not given:
            raise missing_header(SIGNATURE_HEADER)
        if settings.webhook_secret is None:
            raise no_secret()
        # The raw bytes as received: Meta signs its escaped-unicode serialisation.
        if not is_valid(settings.webhook_secret.get_secret_value(), request.body, given):
            raise bad_signature(SIGNATURE_HEADER)
        leads = leadgen_changes(request.body)
        ident = delivery_id(leads)
        if settings.page_id:
            for value in leads:
                if str(value["page_id"]) != settings.page_id:
                    raise WebhookRejected(
                        403, "wrong_page",
                        f"a lead of Page {value['page_id']}, not this connection's "
                        f"page_id {settings.page_id}",
                        field="entry[].changes[].value.page_id",
                        delivery_id=ident,
                    )
        return Delivery(topic=WEBHOOK_TOPIC, delivery_id=ident)

    def reply(
        self,
        conn: Connection,
        settings: Any,
        request: WebhookRequest,
        delivery: Delivery,
        source_id: int,
    ) -> Reply | None:
        # In the delivery's transaction: a stored delivery always has its fetch jobs.
        # A redelivery enqueues nothing while the first jobs are live; after they are
        # done the lead is read again and stored once (its envelope key is the lead id).
        added = enqueue_fetches(conn, source_id, leadgen_changes(request.body))
        log.info("facebook leads to fetch", delivery_id=delivery.delivery_id, jobs=added)
        return None

    def parse(self, envelope: InboxEnvelope) -> list[CanonicalEvent]:
        return parse_envelope(envelope)

    def client(self, settings: Any, *, connection_id: int | None = None) -> VendorClient:
        assert isinstance(settings, FacebookLeadAdsSettings)
        return api.make_client(settings, connection_id=connection_id)

    def pull(
        self, client: VendorClient, settings: Any, stream: str, checkpoint: str | None
    ) -> Iterator[Page]:
        assert isinstance(settings, FacebookLeadAdsSettings)
        if stream != "leads":
            raise ConnectorError(f"Facebook Lead Ads has no stream {stream!r}")
        return api.lead_pages(client, settings, checkpoint)

    def check(self, client: VendorClient, settings: Any) -> str:
        assert isinstance(settings, FacebookLeadAdsSettings)
        return api.check(client, settings)
