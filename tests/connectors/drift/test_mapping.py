"""Drift events → canonical events, and the token check."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from guestlist.connectors.drift.mapping import DriftPayloadError, parse_envelope, text_of
from guestlist.connectors.drift.token import token_ok
from guestlist.inbox.store import InboxEnvelope
from tests.connectors.drift.helpers import sample

RECEIVED = datetime(2026, 5, 1, 12, tzinfo=UTC)


def envelope(kind: str, body: Any) -> InboxEnvelope:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return InboxEnvelope(5, 2, f"drift.{kind}", {}, raw, RECEIVED)


def test_token_check() -> None:
    assert token_ok("t0k", "t0k", None) and token_ok("t0k", None, "t0k")
    assert token_ok("t0k", "t0k", "t0k")
    assert not token_ok("t0k", "t0k", "other")  # every copy must match
    assert not token_ok("t0k", "other", "t0k")
    assert not token_ok("t0k", None, None) and not token_ok("t0k", "", None)
    assert not token_ok("t0k", 123, None)


def test_contact_identified() -> None:
    (identify,) = parse_envelope(envelope("contact_identified",
                                          sample("contact_identified.CONSTRUCTED.json")))
    assert identify.traits == {
        "email": "priya.natarajan@example.com", "name": "Priya Natarajan",
        "phone": "+1 802 555 0192", "drift_external_id": "shop-5120", "tags": ["bourbon"],
        "created_at": "2026-03-02T15:00:00Z"}
    assert [(x.namespace, x.id) for x in identify.external_ids] == [
        ("drift:contact", "16344778575"), ("drift:external_id", "shop-5120")]
    assert identify.timestamp == datetime(2026, 3, 2, 15, tzinfo=UTC)


def test_a_visitors_message_is_an_inquiry() -> None:  # C-7: no implied consent
    (message,) = parse_envelope(envelope("new_message", sample("new_message.CONSTRUCTED.json")))
    assert message.name == "Inbound Message"
    assert message.properties == {
        "channel": "chat", "body": "Hi! Do you ship the Blanton's to Vermont?\nI'd order two.",
        "message_id": "drift:message:4461930872", "drift_message_id": "4461930872",
        "conversation_id": "3510296644", "url": "https://cellar.example/products/blantons",
        "page_title": "Blanton's Single Barrel | Cellar & Co"}
    assert [(x.namespace, x.id) for x in message.external_ids] == [
        ("drift:contact", "16344778575")]


@pytest.mark.parametrize("change", [
    {"author": {"id": 1, "type": "user", "bot": False}},  # an agent
    {"author": {"id": 1, "type": "contact", "bot": True}},
    {"type": "private_note"},
    {"body": "<p> </p>"},
])
def test_words_that_are_not_the_persons_map_to_nothing(change: dict[str, Any]) -> None:
    body = sample("new_message.CONSTRUCTED.json")
    body["data"].update(change)
    assert parse_envelope(envelope("new_message", body)) == []


def test_other_events_are_kept_and_map_to_nothing() -> None:
    assert parse_envelope(envelope("new_conversation",
                                   sample("new_conversation.CONSTRUCTED.json"))) == []


@pytest.mark.parametrize(("kind", "body", "field"), [
    ("new_message", b"nope", "body"),
    ("new_message", {"data": {"id": 1}}, "data.author"),
    ("new_message", {"data": {"id": 1, "body": "hi", "author": {"type": "contact"}}},
     "data.author.id"),
    ("new_message", {"data": {"id": 1, "body": "hi", "author": {"id": 2, "type": "contact"}}},
     "data.createdAt"),
    ("contact_identified", {"data": {"attributes": {"email": "a@b.c"}}}, "data.id"),
    ("contact_identified", {"data": {"id": 3, "attributes": {}}}, "data.attributes.email"),
    ("contact_identified", {"data": None}, "data"),
    ("mystery", {"data": {}}, "type"),
])
def test_stored_payloads_lacking_fields_fail_clearly(kind: str, body: Any, field: str) -> None:
    with pytest.raises(DriftPayloadError) as failed:
        parse_envelope(envelope(kind, body))
    assert failed.value.field == field


def test_text_of() -> None:
    assert text_of("<p>a &amp; b</p><p>c</p>") == "a & b\nc"
    assert text_of(None) == ""
