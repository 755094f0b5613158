"""Intercom payloads → events: contacts, tags, chat messages, pulled pages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from guestlist.connectors.intercom.mapping import IntercomPayloadError, parse_envelope, text_of
from guestlist.inbox.store import InboxEnvelope
from tests.connectors.intercom.helpers import sample

RECEIVED = datetime(2026, 5, 1, 12, tzinfo=UTC)


def envelope(kind: str, body: Any) -> InboxEnvelope:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return InboxEnvelope(5, 2, f"intercom.{kind}", {}, raw, RECEIVED)


def test_contact_created() -> None:
    body = sample("contact.user.created__from_spec_example.CONSTRUCTED.json")
    (identify,) = parse_envelope(envelope("contact.user.created", body))
    assert identify.traits == {
        "email": "joe@bloggs.com", "phone": "+353861234567", "name": "Joe Bloggs",
        "intercom_role": "user", "intercom_external_id": "70",
        "created_at": "2024-12-18T15:57:04Z", "intercom_signed_up_at": "2024-12-18T15:57:04Z",
        "address": {"city": "Dublin", "state": "Dublin", "country": "Ireland"},
    }
    assert [(x.namespace, x.id) for x in identify.external_ids] == [
        ("intercom:contact", "6762f0d01bb69f9f2193bb7d"), ("intercom:external_id", "70")]
    assert identify.message_id == "intercom:contact:6762f0d01bb69f9f2193bb7d:1734537424"
    assert identify.timestamp == datetime.fromtimestamp(1734537424, UTC)


def test_unsubscribed_is_a_withdrawal_and_false_is_nothing() -> None:  # C-5, C-4
    body = sample("contact.user.created__from_spec_example.CONSTRUCTED.json")
    body["data"]["item"]["unsubscribed_from_emails"] = True
    identify, consent = parse_envelope(envelope("contact.lead.updated", body))
    assert identify.type == "identify"
    assert consent.name == "Consent Updated"
    assert consent.properties == {
        "channel": "email", "status": "withdrawn", "kind": "express", "recorded_by": "intercom",
        "intercom_contact_id": "6762f0d01bb69f9f2193bb7d",
        "intercom_field": "unsubscribed_from_emails", "identifier": "joe@bloggs.com"}


def test_the_legacy_documented_example_has_no_time_and_takes_the_received_one() -> None:
    body = sample("webhook_signed_notification_example.json")["body"]
    (identify,) = parse_envelope(envelope("user.created", body))
    assert identify.traits == {"name": "Hoban Washburne", "intercom_external_id": "25"}
    assert identify.timestamp == RECEIVED
    assert [(x.namespace, x.id) for x in identify.external_ids] == [
        ("intercom:contact", "530370b477ad7120001d"), ("intercom:external_id", "25")]


def test_a_chat_message_is_an_inquiry_on_the_author() -> None:
    body = sample("conversation.user.created__from_spec_example.CONSTRUCTED.json")
    (message,) = parse_envelope(envelope("conversation.user.created", body))
    assert message.name == "Inbound Message"
    assert message.properties == {
        "channel": "chat",
        "body": "Hi! Do you still have the 12-year Redbreast?\nI'd pick it up Saturday.",
        "message_id": "intercom:conversation:503", "conversation_id": "503",
        "delivered_as": "customer_initiated", "intercom_part_id": "403918334"}
    assert message.context["traits"] == {"email": "joe@bloggs.com", "name": "Joe Bloggs"}
    assert [(x.namespace, x.id) for x in message.external_ids] == [
        ("intercom:contact", "6762f0d01bb69f9f2193bb7d"), ("intercom:external_id", "70")]


def test_a_reply_maps_only_the_persons_parts() -> None:
    body = sample("conversation.user.replied__from_spec_example.CONSTRUCTED.json")
    (message,) = parse_envelope(envelope("conversation.user.replied", body))
    assert message.properties["body"] == "Great, see you Saturday & thanks!"
    assert message.message_id == "intercom:part:4"
    assert message.timestamp == datetime.fromtimestamp(1734540000, UTC)
    body["data"]["item"]["conversation_parts"]["conversation_parts"].pop()
    with pytest.raises(IntercomPayloadError, match="no part written by the person"):
        parse_envelope(envelope("conversation.user.replied", body))


def test_a_tag_is_a_category() -> None:
    body = sample("contact.user.tag.created__CONSTRUCTED.json")
    (tagged,) = parse_envelope(envelope("contact.user.tag.created", body))
    assert tagged.name == "Tag Added"
    assert tagged.properties == {"category": "whisky club", "tag": "whisky club",
                                 "tag_id": "123456", "source": "intercom"}
    assert tagged.context["traits"] == {"email": "joe@bloggs.com", "phone": "+353861234567"}
    (removed,) = parse_envelope(envelope("contact.user.tag.deleted", body))
    assert removed.name == "Tag Removed" and removed.message_id != tagged.message_id


def test_pulled_pages_and_errors() -> None:
    record = sample("contact.user.created__from_spec_example.CONSTRUCTED.json")["data"]["item"]
    record["tag_names"] = ["whisky club"]
    (identify,) = parse_envelope(envelope("pull.contacts", {"stream": "contacts",
                                                            "records": [record]}))
    assert identify.traits["tags"] == ["whisky club"]
    with pytest.raises(IntercomPayloadError, match=r"records\[0\]\.updated_at"):
        parse_envelope(envelope("pull.contacts", {"stream": "contacts",
                                                  "records": [{"id": "x"}]}))
    with pytest.raises(IntercomPayloadError, match=r"data\.item"):
        parse_envelope(envelope("contact.user.created", {"data": {}}))
    with pytest.raises(IntercomPayloadError, match="body"):
        parse_envelope(envelope("contact.user.created", b"[1"))
    assert parse_envelope(envelope("ping", {"type": "notification_event"})) == []


def test_text_of_html() -> None:
    assert text_of("<p>a &amp; b</p><p>c<br/>d</p>") == "a & b\nc\nd"
    assert text_of(None) == ""
