"""The official Segment and RudderStack Python SDKs, unchanged, against a live server.

Both POST to `/v1/batch`: Segment's with HTTP Basic auth and `writeKey` in the body
(gzip when asked), RudderStack's with Basic auth only, gzipped by default, and with
identify traits in `context.traits`. What they send must come back out of the inbox
as the same events.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import rudderstack.analytics as rudder_analytics
import segment.analytics as analytics
from rudderstack.analytics.client import Client as RudderClient
from segment.analytics.client import Client as SegmentClient
from sqlalchemy import Engine, select

import guestlist.capture  # noqa: F401  (registers the tracking parser)
from guestlist.canonical import CanonicalEvent
from guestlist.inbox.parsers import parse_envelope
from guestlist.inbox.store import load_envelopes
from guestlist.keys import create_key
from guestlist.store.tables import inbox

pytestmark = pytest.mark.slow


@pytest.fixture
def server_and_key(engine: Engine, live_server_factory: Any) -> Iterator[tuple[str, str]]:
    with engine.begin() as conn:
        _, key = create_key(conn, "write", "python-backend")
    server = live_server_factory("--no-worker").start()
    yield server.url, key


def inbox_events(engine: Engine) -> tuple[list[str], list[CanonicalEvent]]:
    with engine.connect() as conn:
        rows = conn.execute(select(inbox.c.id, inbox.c.kind).order_by(inbox.c.id)).all()
        envelopes = load_envelopes(conn, [r.id for r in rows])
    return [r.kind for r in rows], [e for env in envelopes for e in parse_envelope(env)]


def summary(event: CanonicalEvent) -> tuple[Any, ...]:
    return (event.type, event.user_id, event.anonymous_id, event.name, event.traits,
            event.properties, event.previous_id, event.group_id)


def assert_recent(events: list[CanonicalEvent]) -> None:
    now = datetime.now(UTC)
    for event in events:
        assert now - timedelta(minutes=1) < event.timestamp <= now + timedelta(seconds=5)


def test_segment_analytics_python(
    server_and_key: tuple[str, str], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, key = server_and_key
    errors: list[Any] = []

    def on_error(error: Exception, batch: Any) -> None:
        errors.append(error)

    monkeypatch.setattr(analytics, "write_key", key)
    monkeypatch.setattr(analytics, "host", url)
    monkeypatch.setattr(analytics, "sync_mode", True)
    monkeypatch.setattr(analytics, "on_error", on_error)
    monkeypatch.setattr(analytics, "max_retries", 0)
    monkeypatch.setattr(analytics, "default_client", None)

    sent = [
        analytics.identify("u-100", {"email": "ann@example.com", "firstName": "Ann"})[1],
        analytics.track("u-100", "Order Completed", {"total": 42.5, "currency": "USD"})[1],
        analytics.alias("anon-7", "u-100")[1],
    ]
    analytics.flush()

    client = SegmentClient(key, host=url, gzip=True, on_error=on_error, upload_interval=0.2,
                           max_retries=0)
    batch = [
        client.identify(anonymous_id="anon-8", traits={"phone": "+1 415 555 0100"})[1],
        client.track("u-101", "Product Viewed", {"sku": "IPA-6"})[1],
        client.page("u-101", "Shop", "Beer", {"path": "/beer"})[1],
        client.screen("u-101", None, "Cart")[1],
        client.group("u-101", "acme", {"name": "Acme Bar"})[1],
        client.track(7, "Age Verified", {"method": "id_scan", "level": "id_document"})[1],
    ]
    client.flush()
    client.shutdown()
    assert errors == []

    kinds, events = inbox_events(engine)
    assert kinds[:3] == ["tracking.batch"] * 3  # sync mode: one request per call
    assert 4 <= len(kinds) <= 9
    assert [e.message_id for e in events] == [m["messageId"] for m in [*sent, *batch]]
    assert [summary(e) for e in events] == [
        ("identify", "u-100", None, None, {"email": "ann@example.com", "firstName": "Ann"},
         {}, None, None),
        ("track", "u-100", None, "Order Completed", {}, {"total": 42.5, "currency": "USD"},
         None, None),
        ("alias", "u-100", None, None, {}, {}, "anon-7", None),
        ("identify", None, "anon-8", None, {"phone": "+1 415 555 0100"}, {}, None, None),
        ("track", "u-101", None, "Product Viewed", {}, {"sku": "IPA-6"}, None, None),
        ("page", "u-101", None, "Beer", {}, {"path": "/beer", "category": "Shop"}, None, None),
        ("screen", "u-101", None, "Cart", {}, {}, None, None),
        ("group", "u-101", None, None, {}, {"name": "Acme Bar"}, None, "acme"),
        ("track", "7", None, "Age Verified", {}, {"method": "id_scan", "level": "id_document"},
         None, None),
    ]
    assert all(e.context["library"]["name"] == "analytics-python" for e in events)
    assert_recent(events)


def test_rudder_sdk_python(
    server_and_key: tuple[str, str], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, key = server_and_key
    errors: list[Any] = []

    def on_error(error: Exception, batch: Any) -> None:
        errors.append(error)

    monkeypatch.setattr(rudder_analytics, "write_key", key)
    monkeypatch.setattr(rudder_analytics, "dataPlaneUrl", url)
    monkeypatch.setattr(rudder_analytics, "sync_mode", True)
    monkeypatch.setattr(rudder_analytics, "on_error", on_error)
    monkeypatch.setattr(rudder_analytics, "max_retries", 0)
    monkeypatch.setattr(rudder_analytics, "default_client", None)

    rudder_analytics.identify("u-200", {"email": "bo@example.com", "dob": "1990-04-01"})
    rudder_analytics.track("u-200", "Consent Updated", {"channel": "email", "status": "granted"})
    rudder_analytics.alias("anon-9", "u-200")

    client = RudderClient(key, host=url, on_error=on_error, upload_interval=0.2,
                          max_retries=0)
    client.identify(anonymous_id="anon-10", traits={"zip": "94110"})
    client.track("u-201", "Order Completed", {"total": 19})
    client.page("u-201", name="Checkout", properties={"path": "/checkout"})
    client.group("u-201", "bar-42", {"name": "Corner Bar"})
    client.flush()
    client.shutdown()
    assert errors == []

    kinds, events = inbox_events(engine)
    assert kinds[:3] == ["tracking.batch"] * 3
    with engine.connect() as conn:
        [first] = load_envelopes(conn, [conn.execute(select(inbox.c.id)).scalars().first()])
    assert first.headers["user-agent"].startswith("analytics-python/")
    assert [summary(e) for e in events] == [
        ("identify", "u-200", None, None, {"email": "bo@example.com", "dob": "1990-04-01"},
         {}, None, None),
        ("track", "u-200", None, "Consent Updated", {},
         {"channel": "email", "status": "granted"}, None, None),
        ("alias", "u-200", None, None, {}, {}, "anon-9", None),
        ("identify", None, "anon-10", None, {"zip": "94110"}, {}, None, None),
        ("track", "u-201", None, "Order Completed", {}, {"total": 19}, None, None),
        ("page", "u-201", None, "Checkout", {}, {"path": "/checkout"}, None, None),
        ("group", "u-201", None, None, {}, {"name": "Corner Bar"}, None, "bar-42"),
    ]
    assert len({e.message_id for e in events}) == len(events)
    assert all(not e.message_id.startswith("gl-") for e in events)
    assert_recent(events)


def test_a_client_with_a_wrong_key_is_told_why(
    server_and_key: tuple[str, str], engine: Engine
) -> None:
    url, _ = server_and_key
    client = SegmentClient("gl_write_wrong", host=url, sync_mode=True, max_retries=0)
    with pytest.raises(Exception) as raised:
        client.track("u", "Nope")
    assert getattr(raised.value, "status", None) == 401
    assert getattr(raised.value, "code", None) == "invalid_write_key"
    assert inbox_events(engine) == ([], [])
