"""Canonical events cross process boundaries whole (an import's reader hands them over)."""

from __future__ import annotations

import pickle
from dataclasses import fields
from datetime import UTC, datetime

from guestlist.canonical import CanonicalEvent, ExternalId


def test_an_event_with_every_field_set_survives_pickling() -> None:
    at = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    event = CanonicalEvent(
        type="alias",
        message_id="m-1",
        timestamp=at,
        received_at=at.replace(minute=1),
        source_id=7,
        user_id="u-1",
        anonymous_id="a-1",
        name="Order Completed",
        traits={"email": "jo@shop.ca"},
        properties={"total": 12.5, "items": [{"sku": "IPA-6"}]},
        context={"ip": "203.0.113.9"},
        previous_id="a-0",
        group_id="g-1",
        external_ids=[ExternalId("shopify:customer", "123")],
        inbox_id=42,
        default_region="CA",
    )
    earlier = at.replace(hour=1)
    defaults = CanonicalEvent("track", "m-0", earlier, earlier, 1)
    # Every field differs from its default, so a field left out of pickling would show.
    assert all(getattr(event, f.name) != getattr(defaults, f.name) for f in fields(event))
    copy = pickle.loads(pickle.dumps(event))
    assert copy == event
    assert copy.external_ids[0].key == "shopify:customer:123"
