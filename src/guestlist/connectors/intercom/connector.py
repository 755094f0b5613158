"""The Intercom connector: signed notifications (contacts, tags, chat messages) and
the contacts stream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from guestlist.canonical import CanonicalEvent
from guestlist.connectors._http.client import VendorClient
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
    checked_topic,
    json_object,
    missing_header,
    no_secret,
    required_str,
)
from guestlist.connectors.intercom import client as api
from guestlist.connectors.intercom.mapping import (
    SLUG,
    TAG_TOPICS,
    TOPICS,
    parse_envelope,
)
from guestlist.connectors.intercom.settings import IntercomSettings
from guestlist.connectors.intercom.signature import SIGNATURE_HEADER, is_valid
from guestlist.connectors.registry import register
from guestlist.inbox.store import InboxEnvelope


@register
class IntercomConnector(Connector):
    slug = SLUG
    title = "Intercom"
    capabilities = frozenset({Capability.WEBHOOK, Capability.PULL})
    settings_model = IntercomSettings
    streams = ("contacts",)

    def handshake(self, settings: Any, request: WebhookRequest) -> Reply:
        # Intercom checks that the URL answers (a HEAD) when the webhook is saved.
        return Reply(b"", "text/plain", 200)

    def verify_webhook(self, settings: Any, request: WebhookRequest) -> Delivery:
        assert isinstance(settings, IntercomSettings)
        given = request.header(SIGNATURE_HEADER)
        if not given:
            raise missing_header(SIGNATURE_HEADER)
        if settings.webhook_secret is None:
            raise no_secret()
        if not is_valid(settings.webhook_secret.get_secret_value(), request.body, given):
            raise bad_signature(SIGNATURE_HEADER)
        body = json_object(request.body)
        notification = required_str(body, "id", "id (the notification id) is required")
        topic = required_str(body, "topic", "topic is required", notification)
        checked_topic(topic, "topic", notification)
        if topic not in TOPICS:
            raise WebhookRejected(
                400, "unsupported_topic",
                f"guestlist does not take Intercom {topic!r} notifications "
                f"(it takes {', '.join(sorted(TOPICS))}); remove it from the subscription",
                field="topic", delivery_id=notification,
            )
        if topic != "ping":
            data = body.get("data")
            item = data.get("item") if isinstance(data, dict) else None
            if not isinstance(item, dict):
                raise bad_body("data.item", "data.item is required", notification)
            if topic in TAG_TOPICS:
                contact = item.get("contact")
                if not isinstance(contact, dict) or not contact.get("id"):
                    raise bad_body("data.item.contact.id", "the tagged contact is required",
                                    notification)
                if not isinstance(item.get("tag"), dict) or not item["tag"].get("name"):
                    raise bad_body("data.item.tag.name", "the tag is required", notification)
            elif not item.get("id"):
                raise bad_body("data.item.id", "data.item.id is required", notification)
            if topic == "conversation.user.created" and not isinstance(item.get("source"), dict):
                raise bad_body("data.item.source", "the conversation's source is required",
                                notification)
        return Delivery(topic=topic, delivery_id=notification)

    def parse(self, envelope: InboxEnvelope) -> list[CanonicalEvent]:
        return parse_envelope(envelope)

    def client(self, settings: Any, *, connection_id: int | None = None) -> VendorClient:
        assert isinstance(settings, IntercomSettings)
        return api.make_client(settings, connection_id=connection_id)

    def pull(
        self, client: VendorClient, settings: Any, stream: str, checkpoint: str | None
    ) -> Iterator[Page]:
        if stream == "contacts":
            return api.contact_pages(client, checkpoint)
        raise ConnectorError(f"Intercom has no stream {stream!r}")

    def check(self, client: VendorClient, settings: Any) -> str:
        return api.check(client)
