"""The WooCommerce connector's declaration: webhooks in, customers and orders pulled."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from guestlist.canonical import CanonicalEvent
from guestlist.connectors._http.client import VendorClient
from guestlist.connectors.base import Capability, Connector, Delivery, Page, WebhookRequest
from guestlist.connectors.registry import register
from guestlist.connectors.woocommerce import client as api
from guestlist.connectors.woocommerce.mapping import parse_envelope
from guestlist.connectors.woocommerce.settings import WooCommerceSettings
from guestlist.connectors.woocommerce.signature import verify_delivery
from guestlist.inbox.store import InboxEnvelope


@register
class WooCommerce(Connector):
    slug: ClassVar[str] = "woocommerce"
    title = "WooCommerce"
    capabilities = frozenset({Capability.WEBHOOK, Capability.PULL})
    settings_model = WooCommerceSettings
    streams = api.STREAMS
    # The secret is typed into WooCommerce's webhook form: we choose it.
    generates_webhook_secret = True

    def verify_webhook(self, settings: Any, request: WebhookRequest) -> Delivery:
        return verify_delivery(settings, request)

    def parse(self, envelope: InboxEnvelope) -> list[CanonicalEvent]:
        return parse_envelope(envelope)

    def client(self, settings: Any, *, connection_id: int | None = None) -> VendorClient:
        return api.make_client(settings, connection_id=connection_id)

    def pull(
        self, client: VendorClient, settings: Any, stream: str, checkpoint: str | None
    ) -> Iterator[Page]:
        return api.pull_stream(client, settings, stream, checkpoint)

    def check(self, client: VendorClient, settings: Any) -> str:
        return api.check(client, settings)
