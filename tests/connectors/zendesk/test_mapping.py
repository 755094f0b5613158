"""Zendesk payloads → events: exported users, user events, the ticket template."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from guestlist.connectors.zendesk.mapping import (
    BIRTHDATE_KEY,
    ZendeskPayloadError,
    birthday_of,
    channel_of,
    parse_envelope,
)
from guestlist.inbox.store import InboxEnvelope
from tests.connectors.zendesk.helpers import sample

RECEIVED = datetime(2026, 5, 1, 12, tzinfo=UTC)


def envelope(kind: str, body: Any) -> InboxEnvelope:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return InboxEnvelope(5, 2, f"zendesk.{kind}", {}, raw, RECEIVED)


def page(records: list[dict[str, Any]]) -> InboxEnvelope:
    return envelope("pull.users", {"stream": "users", "records": records})


def test_the_documented_export_example_is_an_agent_and_maps_to_nothing() -> None:
    (agent,) = sample("incremental_users_cursor__docs_example.json")["users"]
    assert parse_envelope(page([agent])) == []  # staff, not a customer


def test_an_exported_end_user_with_a_birthdate_field() -> None:  # A-3 dob_provided via trait
    (user,) = sample("incremental_users_cursor__docs_example.json")["users"]
    user = {**user, "role": "end-user", BIRTHDATE_KEY: "user_date"}
    (identify,) = parse_envelope(page([user]))
    t = identify.traits
    assert (t["name"], t["email"], t["phone"], t["locale"], t["time_zone"]) == (
        "Johnny Agent", "johnny@example.com", "+15551234567", "en-US", "Copenhagen")
    assert t["tags"] == ["enterprise", "other_tag"] and t["zendesk_suspended"] is True
    assert t["birthday"] == "2012-07-23"  # the pipeline records it as dob_provided
    assert t["zendesk_user_fields"]["user_dropdown"] == "option_1"
    assert [(x.namespace, x.id) for x in identify.external_ids] == [
        ("zendesk:user", "35436"), ("zendesk:external_id", "sai989sur98w9")]
    assert identify.message_id == "zendesk:user:35436:2011-05-05T10:38:52Z"
    assert identify.timestamp == datetime(2011, 5, 5, 10, 38, 52, tzinfo=UTC)
    # No Age Verified beside the trait: that would record the date twice.
    assert [e.type for e in parse_envelope(page([user]))] == ["identify"]


def test_birthday_values() -> None:
    assert birthday_of("1990-01-18") == "1990-01-18"
    assert birthday_of("1990-01-18T00:00:00Z") == "1990-01-18"
    assert birthday_of("18/01/1990") == "18/01/1990"  # passed on: the pipeline flags it
    assert birthday_of(None) is None and birthday_of("") is None


def test_user_events() -> None:
    (identify,) = parse_envelope(envelope(
        "user.active_changed", sample("user_active_changed__docs_example.CONSTRUCTED.json")))
    assert identify.message_id == "zendesk:event:2b24ef10-19d4-4740-93cf-8f98ec4776c0"
    assert identify.traits == {"email": "dana.reyes@example.com", "zendesk_role": "end-user",
                               "created_at": "2099-07-04T05:27:58Z", "zendesk_active": False}
    body = sample("user_created.CONSTRUCTED.json")
    body["type"] = "zen:event-type:user.name_changed"
    body["event"] = {"current": "Marco B.", "previous": "Marco"}
    (renamed,) = parse_envelope(envelope("user.name_changed", body))
    assert renamed.traits["name"] == "Marco B."
    body["detail"]["role"] = "admin"
    assert parse_envelope(envelope("user.name_changed", body)) == []


def test_the_ticket_template_is_an_inquiry_keeping_unknown_fields() -> None:  # C-7
    (message,) = parse_envelope(envelope(
        "ticket", sample("trigger_ticket_default_template.CONSTRUCTED.json")))
    assert message.name == "Inbound Message"
    p = message.properties
    assert (p["channel"], p["ticket_id"], p["zendesk_via"]) == ("email", "35436", "Mail")
    assert p["body"].startswith("Hi, I saw it on your site")
    assert (p["priority"], p["store_location"]) == ("normal", "Burlington")
    assert message.context["traits"] == {"email": "marco.bianchi@example.com",
                                         "phone": "+1 (802) 555-0147", "name": "Marco Bianchi"}
    assert [(x.namespace, x.id) for x in message.external_ids] == [
        ("zendesk:user", "7001234567890"), ("zendesk:external_id", "shop-4411")]


def test_channels() -> None:
    assert [channel_of(v) for v in ("Mail", "Chat", "WhatsApp", "SMS", "Web form", None)] == [
        "email", "chat", "whatsapp", "sms", "support", "support"]


def test_test_requests_map_to_nothing() -> None:
    assert parse_envelope(envelope("test", b"anything")) == []


@pytest.mark.parametrize(("kind", "body", "field"), [
    ("ticket", b"nope", "body"),
    ("ticket", {"requester": {"email": "a@b.c"}}, "ticket_id"),
    ("ticket", {"ticket_id": "1"}, "requester"),
    ("ticket", {"ticket_id": "1", "requester": {"name": "x"}}, "requester"),
    ("user.created", {"id": "e", "time": "2026-01-01T00:00:00Z"}, "detail"),
    ("user.created", {"id": "e", "time": "2026-01-01T00:00:00Z", "detail": {}}, "detail.id"),
    ("user.created", {"time": "2026-01-01T00:00:00Z", "detail": {"id": "1"}}, "id"),
    ("user.created", {"id": "e", "time": "yesterday", "detail": {"id": "1"}}, "time"),
    ("organization.created", {}, "topic"),
])
def test_stored_payloads_lacking_fields_fail_clearly(kind: str, body: Any, field: str) -> None:
    with pytest.raises(ZendeskPayloadError) as failed:
        parse_envelope(envelope(kind, body))
    assert failed.value.field == field


def test_a_pulled_record_without_a_time_fails_naming_it() -> None:
    with pytest.raises(ZendeskPayloadError) as failed:
        parse_envelope(page([{"id": 1, "role": "end-user"}]))
    assert failed.value.field == "records[0].updated_at"
