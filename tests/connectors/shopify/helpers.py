"""What the Shopify tests share: settings, the samples, and reading the results."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from guestlist.store.tables import events
from tests.connectors.helpers import (  # the database reads the connector tests share
    consent_of,
    count_events,
    inbox_rows,
    live_profiles,
    profile_of,
    traits_of,
)
from tests.fakes.shopify import SHOP, TOKEN

__all__ = ["consent_of", "count_events", "inbox_rows", "live_profiles", "profile_of", "traits_of"]

SECRET = "shpss_test_client_secret"


def settings(**overrides: Any) -> dict[str, Any]:
    return {"shop_domain": SHOP, "access_token": TOKEN, "webhook_secret": SECRET, **overrides}


def events_of(engine: Engine, profile_id: int, name: str) -> list[Any]:
    """The profile's events of one name, in no set order (the shared one orders by id)."""
    with engine.connect() as conn:
        return list(conn.execute(
            select(events).where(events.c.profile_id == profile_id, events.c.name == name)
        ))
