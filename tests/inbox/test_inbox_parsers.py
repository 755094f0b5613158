"""The parser registry: longest prefix wins, unknown kinds raise."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from guestlist.canonical import CanonicalEvent
from guestlist.inbox import parsers
from guestlist.inbox.parsers import (
    UnknownEnvelopeKind,
    parse_envelope,
    register_parser,
    registered_prefixes,
)
from guestlist.inbox.store import InboxEnvelope

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def empty_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsers, "_parsers", {})


def envelope(kind: str) -> InboxEnvelope:
    return InboxEnvelope(id=1, source_id=1, kind=kind, headers={}, body=b"{}", received_at=T0)


def named(label: str) -> parsers.EnvelopeParser:
    def parse(env: InboxEnvelope) -> list[CanonicalEvent]:
        return [CanonicalEvent(type="track", message_id=label, timestamp=T0, received_at=T0,
                               source_id=env.source_id, name=env.kind)]

    parse.__qualname__ = f"parse_{label}"
    return parse


def test_the_longest_matching_prefix_wins() -> None:
    register_parser("shop.", named("shop"))
    register_parser("shop.orders.", named("orders"))
    assert [e.message_id for e in parse_envelope(envelope("shop.orders.create"))] == ["orders"]
    assert [e.message_id for e in parse_envelope(envelope("shop.customers.create"))] == ["shop"]
    assert registered_prefixes() == ["shop.", "shop.orders."]


def test_an_unknown_kind_raises_naming_the_kind_and_the_known_prefixes() -> None:
    register_parser("shop.", named("shop"))
    with pytest.raises(UnknownEnvelopeKind, match=r"'twilio\.sms'.*shop\."):
        parse_envelope(envelope("twilio.sms"))


def test_registering_the_same_function_twice_is_harmless() -> None:
    fn = named("shop")
    register_parser("shop.", fn)
    register_parser("shop.", fn)
    assert registered_prefixes() == ["shop."]


def test_a_second_parser_for_a_taken_prefix_is_refused() -> None:
    register_parser("shop.", named("shop"))
    with pytest.raises(ValueError, match="already has a parser"):
        register_parser("shop.", named("other"))


def test_an_empty_prefix_is_refused() -> None:
    with pytest.raises(ValueError):
        register_parser("", named("all"))
