"""The Drift connector: chat events by webhook (verification token), and a contacts
client (lookups and write-back; no pulled stream, Drift cannot list contacts)."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import structlog
from sqlalchemy import Connection

from guestlist.canonical import CanonicalEvent
from guestlist.connectors._http.client import VendorClient
from guestlist.connectors.base import (
    Capability,
    Connector,
    Delivery,
    Reply,
    WebhookRejected,
    WebhookRequest,
    bad_body,
    checked_topic,
    no_secret,
    required_str,
)
from guestlist.connectors.drift import client as api
from guestlist.connectors.drift.jobs import enqueue_lookup
from guestlist.connectors.drift.mapping import (
    CONTACT_TOPICS,
    MESSAGE_TOPIC,
    SLUG,
    TOPICS,
    contact_of,
    message_of,
    parse_envelope,
)
from guestlist.connectors.drift.settings import DriftSettings
from guestlist.connectors.drift.token import TOKEN_HEADER, token_ok
from guestlist.connectors.registry import register
from guestlist.inbox.store import InboxEnvelope

log = structlog.get_logger(__name__)



def _present(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | str) and str(value) != ""


def _delivery_id(topic: str, data: dict[str, Any], body: bytes) -> str:
    """Drift sends no delivery id: the message's, the contact's, or the body's hash."""
    if topic == MESSAGE_TOPIC:
        return f"message:{message_of(data).get('id')}"
    if topic in CONTACT_TOPICS:
        contact = contact_of(data)
        raw = contact.get("attributes")
        attrs: dict[str, Any] = raw if isinstance(raw, dict) else {}
        return f"{topic}:{contact.get('id')}:{attrs.get('email', '')}:" + str(
            contact.get("updatedAt") or "")
    if topic == "new_conversation" and _present(data.get("id")):
        return f"conversation:{data['id']}"
    return f"{topic}:{hashlib.sha256(body).hexdigest()[:32]}"


@register
class DriftConnector(Connector):
    slug = SLUG
    title = "Drift"
    capabilities = frozenset({Capability.WEBHOOK})
    settings_model = DriftSettings

    def verify_webhook(self, settings: Any, request: WebhookRequest) -> Delivery:
        assert isinstance(settings, DriftSettings)
        if settings.webhook_secret is None:
            raise no_secret()
        expected = settings.webhook_secret.get_secret_value()
        header = request.header(TOKEN_HEADER)
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            body = None
        body_token = body.get("token") if isinstance(body, dict) else None
        if not token_ok(expected, body_token, header):
            raise WebhookRejected(
                401, "invalid_token",
                "the verification token (body `token` / X-Verification-Token) is missing "
                "or does not match", field="token")
        if not isinstance(body, dict):
            raise bad_body("body", "the body is not a JSON object")
        org = body.get("orgId")
        if settings.org_id is not None and org != settings.org_id:
            raise WebhookRejected(403, "wrong_account",
                                  f"an event for Drift organization {org!r}, not this one",
                                  field="orgId")
        topic = checked_topic(required_str(body, "type", "type is required"), "type")
        if topic not in TOPICS:
            raise WebhookRejected(
                400, "unsupported_topic",
                f"guestlist does not take Drift {topic!r} events; unsubscribe it",
                field="type")
        data = body.get("data")
        if not isinstance(data, dict):
            raise bad_body("data", "data is required")
        if topic in CONTACT_TOPICS:
            contact = contact_of(data)
            if not _present(contact.get("id")):
                raise bad_body("data.id", "the contact's id is required")
            attrs = contact.get("attributes")
            if topic == "contact_identified" and not (
                    isinstance(attrs, dict) and attrs.get("email")):
                raise bad_body("data.attributes.email", "an identified contact has an email")
        if topic == MESSAGE_TOPIC:
            message = message_of(data)
            if not _present(message.get("id")):
                raise bad_body("data.id", "the message id is required")
            author = message.get("author")
            if not isinstance(author, dict) or not _present(author.get("id")):
                raise bad_body("data.author.id", "the message's author is required")
            created = message.get("createdAt")
            if isinstance(created, bool) or not isinstance(created, int | float):
                raise bad_body("data.createdAt", "createdAt (epoch ms) is required")
        # Drift's body is not signed: its token is the secret, so it is not stored.
        return Delivery(
            topic=topic,
            delivery_id=_delivery_id(topic, data, request.body),
            stored_body=orjson.dumps({**body, "token": "[redacted]"}),
        )

    def reply(
        self,
        conn: Connection,
        settings: Any,
        request: WebhookRequest,
        delivery: Delivery,
        source_id: int,
    ) -> Reply | None:
        # In the delivery's transaction: a stored visitor message without the contact's
        # email gets a lookup job for its author (`lookup_contacts`).
        assert isinstance(settings, DriftSettings)
        if not settings.lookup_contacts or delivery.topic != MESSAGE_TOPIC:
            return None
        data = orjson.loads(request.body).get("data")
        message = message_of(data)
        author = message.get("author")
        if not isinstance(author, dict) or author.get("type") != "contact" or author.get(
                "bot") is True:
            return None
        contact = data.get("contact") if isinstance(data, dict) else None
        attrs = contact.get("attributes") if isinstance(contact, dict) else None
        if isinstance(attrs, dict) and attrs.get("email"):
            return None  # the payload already links the message to the email
        added = enqueue_lookup(conn, source_id, str(author["id"]))
        log.info("drift contact to look up", delivery_id=delivery.delivery_id, added=added)
        return None

    def parse(self, envelope: InboxEnvelope) -> list[CanonicalEvent]:
        return parse_envelope(envelope)

    def client(self, settings: Any, *, connection_id: int | None = None) -> VendorClient:
        assert isinstance(settings, DriftSettings)
        return api.make_client(settings, connection_id=connection_id)

    def check(self, client: VendorClient, settings: Any) -> str:
        return api.check(client)
