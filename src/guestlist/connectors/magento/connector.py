"""The Magento / Adobe Commerce connector: pull only (Open Source has no webhooks)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from guestlist.canonical import CanonicalEvent
from guestlist.connectors._http.client import VendorClient
from guestlist.connectors._http.paginate import search_criteria_params
from guestlist.connectors.base import Capability, Connector, ConnectorError, Page
from guestlist.connectors.magento import mapping
from guestlist.connectors.magento.client import SLUG, STREAMS, build_client, pull_stream
from guestlist.connectors.magento.settings import MagentoSettings
from guestlist.connectors.registry import register
from guestlist.inbox.store import InboxEnvelope


@register
class MagentoConnector(Connector):
    slug = SLUG
    title = "Magento / Adobe Commerce"
    # No WEBHOOK: POST /hooks/magento/{id} answers 404 no_webhooks.
    capabilities = frozenset({Capability.PULL})
    settings_model = MagentoSettings
    streams = ("customers", "orders")

    def parse(self, envelope: InboxEnvelope) -> list[CanonicalEvent]:
        return mapping.parse(envelope)

    def client(self, settings: Any, *, connection_id: int | None = None) -> VendorClient:
        return build_client(settings, connection_id=connection_id)

    def pull(
        self, client: VendorClient, settings: Any, stream: str, checkpoint: str | None
    ) -> Iterator[Page]:
        if stream not in STREAMS:
            raise ConnectorError(f"magento has no stream {stream!r}")
        page_size = settings.page_size if isinstance(settings, MagentoSettings) else 100
        return pull_stream(client, stream, checkpoint, page_size=page_size)

    def check(self, client: VendorClient, settings: Any) -> str:
        params = search_criteria_params([], page_size=1, current_page=1)
        answer = client.get(STREAMS["customers"].path, params=params).json()
        total = answer.get("total_count") if isinstance(answer, dict) else None
        if not isinstance(total, int):
            raise ConnectorError("customers/search answered without total_count")
        store = settings.store_code if isinstance(settings, MagentoSettings) else "?"
        return f"signed in to store view {store!r}: {total} customers"
