"""The Square connector: customer webhooks, the customers stream, groups as tags."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import structlog

from guestlist.canonical import CanonicalEvent
from guestlist.connectors._http.client import VendorClient
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
    checked_topic,
    json_object,
    missing_header,
    no_secret,
    required_str,
)
from guestlist.connectors.registry import register
from guestlist.connectors.square import client as api
from guestlist.connectors.square.mapping import TOPICS, parse_envelope
from guestlist.connectors.square.settings import SquareSettings
from guestlist.connectors.square.signature import SIGNATURE_HEADER, is_valid
from guestlist.inbox.store import InboxEnvelope

log = structlog.get_logger(__name__)



@register
class SquareConnector(Connector):
    slug = "square"
    title = "Square"
    capabilities = frozenset({Capability.WEBHOOK, Capability.PULL})
    settings_model = SquareSettings
    streams = ("customers", "orders")

    def verify_webhook(self, settings: Any, request: WebhookRequest) -> Delivery:
        assert isinstance(settings, SquareSettings)
        given = request.header(SIGNATURE_HEADER)
        if not given:
            raise missing_header(SIGNATURE_HEADER)
        if settings.webhook_secret is None:
            raise no_secret()
        url = settings.notification_url or request.url
        if not is_valid(settings.webhook_secret.get_secret_value(), url, request.body, given):
            raise bad_signature(SIGNATURE_HEADER)
        body = json_object(request.body)
        event_id = required_str(body, "event_id", "event_id is required")
        topic = required_str(body, "type", "type is required", event_id)
        checked_topic(topic, "type", event_id)
        if topic not in TOPICS:
            raise WebhookRejected(
                400,
                "unsupported_topic",
                f"guestlist does not take Square {topic!r} notifications "
                f"(it takes {', '.join(TOPICS)}); remove it from the subscription",
                field="type",
                delivery_id=event_id,
            )
        if topic != "webhooks.test_notification":
            data = body.get("data")
            if not isinstance(data, dict) or not isinstance(data.get("id"), str):
                raise bad_body("data.id", "data.id is required", event_id)
            obj = data.get("object")
            customer = obj.get("customer") if isinstance(obj, dict) else None
            if topic != "customer.deleted" and not isinstance(customer, dict):
                raise bad_body(
                    "data.object.customer", "data.object.customer is required", event_id
                )
        if not isinstance(body.get("created_at"), str):
            raise bad_body("created_at", "created_at is required", event_id)
        log.info(
            "square notification",
            event_id=event_id,
            topic=topic,
            retry_number=request.header("square-retry-number"),
            retry_reason=request.header("square-retry-reason"),
        )
        return Delivery(topic=topic, delivery_id=event_id)

    def parse(self, envelope: InboxEnvelope) -> list[CanonicalEvent]:
        return parse_envelope(envelope)

    def client(self, settings: Any, *, connection_id: int | None = None) -> VendorClient:
        assert isinstance(settings, SquareSettings)
        return api.make_client(settings, connection_id=connection_id)

    def pull(
        self, client: VendorClient, settings: Any, stream: str, checkpoint: str | None
    ) -> Iterator[Page]:
        if stream == "customers":
            return api.customer_pages(client, checkpoint)
        if stream == "orders":
            return api.order_pages(client, checkpoint)
        raise ConnectorError(f"Square has no stream {stream!r}")

    def check(self, client: VendorClient, settings: Any) -> str:
        return api.check(client)
