"""The Shopify connector: webhooks (customers and orders) and pulls (REST Admin API)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import orjson

from guestlist.canonical import CanonicalEvent
from guestlist.connectors._http.client import VendorClient
from guestlist.connectors.base import (
    Capability,
    Connector,
    Delivery,
    Page,
    WebhookRejected,
    WebhookRequest,
    bad_signature,
    checked_topic,
    missing_header,
    no_secret,
)
from guestlist.connectors.registry import register
from guestlist.connectors.shopify import client as api
from guestlist.connectors.shopify.mapping import BY_TOPIC, parse_envelope
from guestlist.connectors.shopify.settings import ShopifySettings
from guestlist.connectors.shopify.signature import SIGNATURE_HEADER, signature_valid
from guestlist.inbox.store import InboxEnvelope

TOPIC_HEADER = "X-Shopify-Topic"
SHOP_HEADER = "X-Shopify-Shop-Domain"
EVENT_ID_HEADER = "X-Shopify-Event-Id"  # the documented de-duplication key
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"  # one per delivery attempt's subscription

# What a body must hold for its topic's mapping.
REQUIRED_FIELDS = {
    "customers/create": ("id",),
    "customers/update": ("id",),
    "orders/create": ("id", "financial_status", "currency", "total_price"),
    "orders/paid": ("id", "financial_status", "currency", "total_price"),
}


@register
class ShopifyConnector(Connector):
    slug: ClassVar[str] = "shopify"
    title: ClassVar[str] = "Shopify"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.WEBHOOK, Capability.PULL}
    )
    settings_model: ClassVar[type[ShopifySettings]] = ShopifySettings
    streams: ClassVar[tuple[str, ...]] = ("customers", "orders")

    def verify_webhook(self, settings: ShopifySettings, request: WebhookRequest) -> Delivery:
        delivery_id = request.header(EVENT_ID_HEADER) or request.header(WEBHOOK_ID_HEADER)
        try:
            return self._verify(settings, request, delivery_id)
        except WebhookRejected as exc:
            exc.delivery_id = exc.delivery_id or delivery_id  # for the connection's log
            raise

    def _verify(
        self, settings: ShopifySettings, request: WebhookRequest, delivery_id: str | None
    ) -> Delivery:
        if settings.webhook_secret is None:
            raise no_secret()
        given = request.header(SIGNATURE_HEADER)
        if not given:
            raise missing_header(SIGNATURE_HEADER)
        secret = settings.webhook_secret.get_secret_value()
        if not signature_valid(secret, request.body, given):
            raise bad_signature(SIGNATURE_HEADER)
        # Not covered by the HMAC: a body signed for another shop of the same app
        # must not land on this connection.
        shop = request.header(SHOP_HEADER)
        if not shop:
            raise missing_header(SHOP_HEADER)
        if shop.strip().lower() != settings.shop_domain:
            raise WebhookRejected(
                403,
                "wrong_shop",
                f"this connection is for {settings.shop_domain}, not {shop[:100]}",
                field=SHOP_HEADER,
                delivery_id=delivery_id,
            )
        raw_topic = request.header(TOPIC_HEADER)
        if not raw_topic:
            raise missing_header(TOPIC_HEADER)
        topic = checked_topic(raw_topic.strip(), TOPIC_HEADER)
        if topic not in BY_TOPIC:
            raise WebhookRejected(
                400,
                "unsupported_topic",
                f"topic {topic!r} is not received here (topics: {', '.join(BY_TOPIC)}); "
                "remove that subscription",
                field=TOPIC_HEADER,
                delivery_id=delivery_id,
            )
        if not delivery_id:
            raise missing_header(WEBHOOK_ID_HEADER)
        _check_body(topic, request.body, delivery_id)
        return Delivery(topic=topic, delivery_id=delivery_id)

    def parse(self, envelope: InboxEnvelope) -> list[CanonicalEvent]:
        return parse_envelope(envelope)

    def client(
        self, settings: ShopifySettings, *, connection_id: int | None = None
    ) -> VendorClient:
        return api.make_client(settings, connection_id=connection_id)

    def pull(
        self, client: VendorClient, settings: ShopifySettings, stream: str, checkpoint: str | None
    ) -> Iterator[Page]:
        return api.pull_stream(client, settings, stream, checkpoint)

    def check(self, client: VendorClient, settings: ShopifySettings) -> str:
        return api.shop_summary(client, settings)


def _check_body(topic: str, body: bytes, delivery_id: str) -> None:
    try:
        record: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise WebhookRejected(
            400, "invalid_body", "the body is not JSON", field="body", delivery_id=delivery_id
        ) from None
    if not isinstance(record, dict):
        raise WebhookRejected(
            400, "invalid_body", "the body is not a JSON object", field="body",
            delivery_id=delivery_id,
        )
    for name in REQUIRED_FIELDS[topic]:
        if record.get(name) in (None, ""):
            raise WebhookRejected(
                400, "invalid_body", f"{topic} body without {name!r}", field=f"body.{name}",
                delivery_id=delivery_id,
            )
