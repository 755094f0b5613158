"""The Google Sheets connector: a sheet range imported as profiles (pull only)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from guestlist.canonical import CanonicalEvent
from guestlist.connectors._http.client import VendorClient
from guestlist.connectors.base import Capability, Connector, ConnectorError, Page
from guestlist.connectors.google_sheets import client as api
from guestlist.connectors.google_sheets.mapping import parse_envelope
from guestlist.connectors.google_sheets.settings import GoogleSheetsSettings
from guestlist.connectors.registry import register
from guestlist.inbox.store import InboxEnvelope


@register
class GoogleSheetsConnector(Connector):
    slug = "google_sheets"
    title = "Google Sheets"
    capabilities = frozenset({Capability.PULL})  # Sheets sends no webhooks
    settings_model = GoogleSheetsSettings
    streams = ("rows",)

    def parse(self, envelope: InboxEnvelope) -> list[CanonicalEvent]:
        return parse_envelope(envelope)

    def client(self, settings: Any, *, connection_id: int | None = None) -> VendorClient:
        assert isinstance(settings, GoogleSheetsSettings)
        return api.make_client(settings, connection_id=connection_id)

    def pull(
        self, client: VendorClient, settings: Any, stream: str, checkpoint: str | None
    ) -> Iterator[Page]:
        assert isinstance(settings, GoogleSheetsSettings)
        if stream != "rows":
            raise ConnectorError(f"Google Sheets has no stream {stream!r}")
        return api.row_pages(client, settings, checkpoint)

    def check(self, client: VendorClient, settings: Any) -> str:
        assert isinstance(settings, GoogleSheetsSettings)
        return api.check(client, settings)
