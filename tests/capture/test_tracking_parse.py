"""`tracking.*` envelopes → canonical events (pure: no database needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

import guestlist.capture  # noqa: F401  (registers the parser)
from guestlist.canonical import ExternalId
from guestlist.capture.tracking_parse import parse_tracking_envelope, stringify_id
from guestlist.inbox.parsers import EnvelopeError, parse_envelope
from guestlist.inbox.store import InboxEnvelope

RECEIVED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def envelope(kind: str, body: Any, inbox_id: int = 7, region: str = "GB") -> InboxEnvelope:
    return InboxEnvelope(
        id=inbox_id,
        source_id=3,
        kind=kind,
        headers={"content-type": "application/json"},
        body=orjson.dumps(body),
        received_at=RECEIVED,
        default_region=region,
    )


def test_a_single_identify_becomes_one_event_with_everything_carried_over() -> None:
    env = envelope(
        "tracking.identify",
        {
            "writeKey": "gl_write_x",
            "userId": "u1",
            "anonymousId": "a1",
            "traits": {"email": "ann@example.com", "plan": "gold"},
            "context": {"ip": "203.0.113.9"},
            "timestamp": "2024-05-01T11:00:00Z",
            "messageId": "m-1",
        },
    )
    [event] = parse_envelope(env)
    assert event.type == "identify"
    assert event.message_id == "m-1"
    assert event.user_id == "u1" and event.anonymous_id == "a1"
    assert event.traits == {"email": "ann@example.com", "plan": "gold"}
    assert event.context == {"ip": "203.0.113.9"}
    assert event.timestamp == datetime(2024, 5, 1, 11, 0, tzinfo=UTC)
    assert event.received_at == RECEIVED
    assert event.source_id == 3 and event.inbox_id == 7
    assert event.default_region == "GB"


def test_the_url_decides_the_type_of_a_single_call() -> None:
    [event] = parse_tracking_envelope(
        envelope("tracking.track", {"type": "identify", "userId": 1, "event": "Signed Up"})
    )
    assert event.type == "track" and event.name == "Signed Up"


def test_batch_context_is_merged_under_each_message_context() -> None:
    env = envelope(
        "tracking.batch",
        {
            "context": {"library": {"name": "batchlib"}, "ip": "198.51.100.1", "locale": "en"},
            "batch": [
                {"type": "track", "userId": "u1", "event": "A",
                 "context": {"ip": "203.0.113.9"}},
                {"type": "track", "userId": "u1", "event": "B"},
            ],
        },
    )
    first, second = parse_envelope(env)
    assert first.context == {"library": {"name": "batchlib"}, "ip": "203.0.113.9",
                             "locale": "en"}
    assert second.context == {"library": {"name": "batchlib"}, "ip": "198.51.100.1",
                              "locale": "en"}


def test_clock_skew_is_corrected_with_sent_at() -> None:
    # The client's clock is 10 minutes fast: it says it sent at 12:10 what happened at
    # 12:05, and we received it at 12:00 — so it happened at 11:55 our time.
    env = envelope(
        "tracking.batch",
        {
            "sentAt": "2024-05-01T12:10:00Z",
            "batch": [
                {"type": "track", "userId": "u", "event": "Batch sentAt",
                 "timestamp": "2024-05-01T12:05:00Z"},
                {"type": "track", "userId": "u", "event": "Own sentAt wins",
                 "timestamp": "2024-05-01T12:05:00+02:00", "sentAt": "2024-05-01T12:06:00+02:00"},
                {"type": "track", "userId": "u", "event": "originalTimestamp",
                 "originalTimestamp": "2024-05-01T12:09:00Z"},
                {"type": "track", "userId": "u", "event": "No time"},
            ],
        },
    )
    times = {e.name: e.timestamp for e in parse_envelope(env)}
    assert times == {
        "Batch sentAt": RECEIVED - timedelta(minutes=5),
        "Own sentAt wins": RECEIVED - timedelta(minutes=1),
        "originalTimestamp": RECEIVED - timedelta(minutes=1),
        "No time": RECEIVED,
    }


def test_without_sent_at_the_timestamp_is_taken_as_it_is() -> None:
    [with_ts, with_original, naive] = parse_envelope(
        envelope(
            "tracking.batch",
            {"batch": [
                {"type": "track", "userId": "u", "event": "a",
                 "timestamp": "2020-01-02T03:04:05.678+01:00"},
                {"type": "track", "userId": "u", "event": "b",
                 "originalTimestamp": "2020-01-02T03:04:05Z"},
                {"type": "track", "userId": "u", "event": "c",
                 "timestamp": "2020-01-02T03:04:05"},
            ]},
        )
    )
    assert with_ts.timestamp == datetime(2020, 1, 2, 2, 4, 5, 678000, tzinfo=UTC)
    assert with_original.timestamp == datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert naive.timestamp == datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_missing_message_ids_are_deterministic_per_inbox_row_and_index() -> None:
    body = {"batch": [
        {"type": "track", "userId": "u", "event": "a"},
        {"type": "track", "userId": "u", "event": "b", "messageId": "given"},
        {"type": "page", "anonymousId": "x"},
    ]}
    first = [e.message_id for e in parse_envelope(envelope("tracking.batch", body, 41))]
    again = [e.message_id for e in parse_envelope(envelope("tracking.batch", body, 41))]
    assert first == again == ["gl-41-0", "given", "gl-41-2"]
    [single] = parse_envelope(envelope("tracking.alias", {"userId": "n", "previousId": "o"}, 9))
    assert single.message_id == "gl-9-0"


def test_external_ids_become_namespaced_ids_and_bad_entries_are_skipped() -> None:
    [event] = parse_envelope(
        envelope(
            "tracking.identify",
            {
                "userId": "u",
                "context": {"externalIds": [
                    {"id": "cus_123", "type": "stripe:customer", "collection": "users",
                     "encoding": "none"},
                    {"id": 98765, "type": "shopify:customer"},
                    {"id": "no-type"},
                    "junk",
                ]},
            },
        )
    )
    assert event.external_ids == [
        ExternalId(namespace="stripe:customer", id="cus_123"),
        ExternalId(namespace="shopify:customer", id="98765"),
    ]


def test_batch_level_external_ids_apply_to_every_message() -> None:
    events = parse_envelope(envelope("tracking.batch", {
        "context": {"externalIds": [{"id": "9", "type": "pos:member"}]},
        "batch": [{"type": "track", "userId": "u", "event": "x"}],
    }))
    assert events[0].external_ids == [ExternalId("pos:member", "9")]


def test_each_call_type_maps_its_own_fields() -> None:
    identify, track, page, screen, group, alias = parse_envelope(envelope("tracking.batch", {
        "batch": [
            {"type": "identify", "userId": 42, "traits": {"email": "a@example.com"}},
            {"type": "track", "anonymousId": 7.0, "event": "Order Completed",
             "properties": {"total": 12.5}},
            {"type": "page", "userId": "u", "name": "Home", "category": "Shop",
             "properties": {"path": "/"}},
            {"type": "screen", "userId": "u", "name": "Cart"},
            {"type": "group", "userId": "u", "groupId": 5, "traits": {"name": "Acme Ltd"}},
            {"type": "alias", "userId": "new", "previousId": 1.5},
        ],
    }))
    assert (identify.user_id, identify.traits) == ("42", {"email": "a@example.com"})
    assert (track.anonymous_id, track.user_id, track.name) == ("7", None, "Order Completed")
    assert track.properties == {"total": 12.5}
    assert (page.name, page.properties) == ("Home", {"path": "/", "category": "Shop"})
    assert screen.name == "Cart"
    assert group.group_id == "5"
    assert group.properties == {"name": "Acme Ltd"}
    assert group.traits == {}  # group traits describe the group, not the person
    assert (alias.user_id, alias.previous_id) == ("new", "1.5")


def test_rudderstack_identify_traits_in_context_are_read_as_traits() -> None:
    [event] = parse_envelope(envelope("tracking.batch", {"batch": [{
        "type": "identify", "userId": "u",
        "context": {"traits": {"email": "ctx@example.com", "plan": "basic"}},
        "traits": {"plan": "gold"},
    }]}))
    assert event.traits == {"email": "ctx@example.com", "plan": "gold"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [("abc", "abc"), (42, "42"), (42.0, "42"), (4.25, "4.25"), (None, None), ("", None)],
)
def test_ids_are_strings_the_way_segment_prints_them(value: Any, expected: str | None) -> None:
    assert stringify_id(value) == expected


@pytest.mark.parametrize(
    ("kind", "body", "message"),
    [
        ("tracking.batch", b"not json", "not JSON"),
        ("tracking.batch", b"[]", "not a JSON object"),
        ("tracking.batch", b'{"batch": {}}', "not a list"),
        ("tracking.batch", b'{"batch": [1]}', r"batch\[0\] is not an object"),
        ("tracking.batch", b'{"batch": [{"type": "explode"}]}', "explode"),
        ("tracking.teleport", b"{}", "unknown tracking kind"),
    ],
)
def test_an_unreadable_envelope_raises(kind: str, body: bytes, message: str) -> None:
    env = InboxEnvelope(id=1, source_id=1, kind=kind, headers={}, body=body,
                        received_at=RECEIVED)
    with pytest.raises(EnvelopeError, match=message):
        parse_envelope(env)
