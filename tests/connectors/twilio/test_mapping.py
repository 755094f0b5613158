"""The stored delivery → `Inbound Message`: the CONSTRUCTED sample replayed, WhatsApp,
media, unknown parameters kept, and stored bodies that lack what the mapping needs."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from guestlist.connectors.registry import connector_for
from guestlist.connectors.twilio.mapping import TwilioPayloadError, form_params, parse_envelope
from guestlist.inbox.store import InboxEnvelope
from tests.connectors.twilio.helpers import message, sample

AT = datetime(2026, 5, 1, 12, tzinfo=UTC)


def envelope(body: bytes, kind: str = "twilio.sms") -> InboxEnvelope:
    return InboxEnvelope(id=7, source_id=3, kind=kind, headers={}, body=body, received_at=AT)


def test_the_sample_replays_into_an_inbound_message() -> None:
    params = sample("inbound_message_params.CONSTRUCTED.json")["sms"]
    (event,) = connector_for("twilio").parse(envelope(urlencode(params).encode()))
    assert (event.type, event.name, event.message_id) == (
        "track",
        "Inbound Message",
        "twilio:message:SMXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    )
    assert event.context == {"traits": {"phone": "+14017122661"}}
    assert (event.timestamp, event.received_at, event.source_id, event.inbox_id) == (AT, AT, 3, 7)
    assert event.properties == {
        "channel": "sms",
        "message_id": "SMXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "body": "Ahoy!",
        "account_sid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "messaging_service_sid": "MGXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "to": "+15558675310",
        "num_media": 0,
        "num_segments": 1,
        "from_country": "US",
        "to_country": "US",
    }


def test_whatsapp_media_keywords_and_unknown_parameters() -> None:
    params = message(
        "Stop all",
        sid="SM1",
        whatsapp=True,
        NumMedia="2",
        MediaUrl1="https://api.twilio.com/m/2",
        MediaContentType1="audio/ogg",
        MediaUrl0="https://api.twilio.com/m/1",
        MediaContentType0="image/png",
        ButtonPayload="deals",
        Latitude="",
    )
    (event,) = parse_envelope(envelope(urlencode(params).encode(), "twilio.whatsapp"))
    props = event.properties
    assert props["channel"] == "whatsapp" and event.context["traits"]["phone"] == "+14155550100"
    assert props["to"] == "+15558675310"
    assert (props["profile_name"], props["wa_id"]) == ("Ann", "14155550100")
    assert props["media"] == [
        {"url": "https://api.twilio.com/m/1", "content_type": "image/png"},
        {"url": "https://api.twilio.com/m/2", "content_type": "audio/ogg"},
    ]
    assert (props["keyword_kind"], props["keyword"]) == ("opt_out", "STOPALL")
    assert (props["ButtonPayload"], props["Latitude"]) == ("deals", "")  # kept as sent
    plain = parse_envelope(
        envelope(urlencode(message("take me off your list", sid="SM2")).encode())
    )
    assert plain[0].properties["plain_language_rule"] == "remove_me"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"From=%2B14155550100&Body=hi", "MessageSid"),
        (b"MessageSid=SM1&Body=hi", "From"),
        (b"MessageSid=SM1&From=messenger%3A123", "From"),
        (b"MessageSid=SM1&From=whatsapp%3A", "From"),
        (b"\xff\xfe", "body"),
    ],
)
def test_a_stored_body_without_what_we_need_fails_naming_it(body: bytes, field: str) -> None:
    with pytest.raises(TwilioPayloadError) as failed:
        parse_envelope(envelope(body))
    assert failed.value.field == field


def test_form_params_reads_like_parse_qsl() -> None:
    body = b"A=1&A=2&Empty=&Bare&Plus=a+b&Pct=%F0%9F%98%80"
    assert form_params(body) == [
        ("A", "1"), ("A", "2"), ("Empty", ""), ("Bare", ""), ("Plus", "a b"), ("Pct", "😀"),
    ]  # fmt: skip
    assert form_params(body) == form_params(bytes(body))  # the cached read is the same


def test_form_params_matches_parse_qsl_on_random_forms() -> None:
    import random
    from urllib.parse import parse_qsl

    rng = random.Random(6)
    for _ in range(3000):
        text = "".join(rng.choice("ab=&%+;2F9x é") for _ in range(rng.randint(0, 16)))
        try:
            expected = parse_qsl(text, keep_blank_values=True)
        except ValueError:
            continue
        assert form_params(text.encode()) == expected, text
