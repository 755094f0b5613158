"""The field mapping: settings validation, and records → events without a database."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from guestlist.connectors.zapier.mapping import (
    MAPPING_HEADER,
    ZapierPayloadError,
    delivery_key,
    missing_identifier,
    parse_envelope,
    record_key,
    records_of,
    ticked,
)
from guestlist.connectors.zapier.settings import ZapierMapping, ZapierSettings
from guestlist.inbox.store import InboxEnvelope
from tests.connectors.zapier.helpers import (
    CONTEST,
    CONTEST_MAPPING,
    EMAIL_TEXT,
    FLAT,
    SEVERAL,
    sample,
    sample_bytes,
)

RECEIVED = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def envelope(body: bytes, mapping: dict[str, Any] | None = None) -> InboxEnvelope:
    headers = {"content-type": "application/json"}
    if mapping is not None:
        headers[MAPPING_HEADER] = json.dumps(mapping)
    return InboxEnvelope(id=7, source_id=3, kind="zapier.catch", headers=headers, body=body,
                         received_at=RECEIVED)


def test_mapping_from_a_json_string_or_an_object() -> None:
    as_text = ZapierSettings.model_validate({"mapping": json.dumps(CONTEST_MAPPING)})
    as_object = ZapierSettings.model_validate({"mapping": CONTEST_MAPPING})
    assert as_text == as_object
    assert as_text.mapping.traits["first_name"] == "contact.first_name"  # firstName
    # What the store keeps reads back the same.
    dumped = as_text.model_dump(mode="json")
    assert ZapierSettings.model_validate(dumped) == as_text
    assert ZapierSettings.model_validate({}).mapping == ZapierMapping()


@pytest.mark.parametrize("mapping,where", [
    ("{not json", "mapping"),
    ({"type": "track"}, "mapping"),
    ({"event": "X"}, "mapping"),
    ({"type": "page"}, "mapping.type"),
    ({"traits": {"email": ""}}, "mapping.traits.email"),
    ({"traits": {"email": "a..b"}}, "mapping.traits.email"),
    ({"consent": [{"field": "optin", "channel": "email"}]}, "mapping.consent.0.text"),
    ({"consent": [{"field": "optin", "channel": "fax", "text": "t"}]},
     "mapping.consent.0.channel"),
    ({"fields": {}}, "mapping.fields"),
    ({"age_gate": {"field": "a"}}, "mapping.age_gate.text"),
    ({"age_gate": {"field": "a", "text": "21+", "minimum_age": 120}},
     "mapping.age_gate.minimum_age"),
])
def test_bad_mappings_name_the_field(mapping: Any, where: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ZapierSettings.model_validate({"mapping": mapping})
    assert ".".join(str(p) for p in caught.value.errors()[0]["loc"]) == where


def test_contest_entry_mapped() -> None:
    events = parse_envelope(envelope(sample_bytes(CONTEST), CONTEST_MAPPING))
    identify, track, consent, age = events  # the empty SMS box records nothing (C-4)
    assert identify.type == "identify"
    assert identify.traits == {
        "email": "Maya.Chen@example.org", "phone": "(415) 555-0134", "first_name": "Maya",
        "last_name": "Chen", "birthday": "1990-04-12",
    }
    assert identify.properties == {}  # the track carries them
    assert identify.timestamp == datetime(2026, 11, 20, 18, 4, 11, tzinfo=UTC)
    assert identify.message_id == "zapier:id:ce_1042:identify"
    assert (track.type, track.name) == ("track", "Contest Entered")
    assert track.properties == {
        "contest": "Holiday Rye Giveaway", "favorite_spirit": "Rye whiskey",
        "utm_source": "instagram", "zap_meta": {"zap_id": "241733918", "step": "2"},
    }  # unmapped fields kept; mapped ones (contact, answers…) not repeated
    assert track.context["traits"] == {"email": "Maya.Chen@example.org",
                                       "phone": "(415) 555-0134"}
    assert consent.name == "Consent Updated"
    assert consent.properties == {
        "channel": "email", "purpose": "marketing", "status": "granted", "kind": "express",
        "text": EMAIL_TEXT, "recorded_by": "zapier", "form_field": "answers.email_optin",
        "form_value": "yes", "identifier": "Maya.Chen@example.org",
        "url": "https://bottleshop.example/giveaway", "legal_basis": "gdpr_consent",
    }  # C-2: the exact wording the shop configured, with the form's answer
    assert (age.name, age.message_id) == ("Age Verified", "zapier:id:ce_1042:age")
    assert age.properties == {
        "level": "self_declared", "method": "age_gate", "recorded_by": "zapier",
        "statement": "I am 21 or older", "form_field": "answers.age_21_plus",
        "form_value": "checked", "minimum_age": 21,
    }  # no birthday: a gate passed, never eligibility on its own (docs/age.md)


def test_the_default_mapping_takes_fields_named_like_traits() -> None:
    identify, = parse_envelope(envelope(sample_bytes(FLAT)))
    assert identify.traits == {"email": "r.okoye@example.net", "first_name": "Rita",
                               "last_name": "Okoye", "phone": "+1 604 555 0199"}
    assert identify.properties == {"Notes": "Asked about the tasting on Friday",
                                   "Lead Source": "Facebook Lead Ad"}
    assert identify.timestamp == RECEIVED
    assert identify.message_id.startswith("zapier:sha256:")


def test_several_records_in_one_post() -> None:
    mapping = {**CONTEST_MAPPING, "consent": [CONTEST_MAPPING["consent"][0]]}
    events = parse_envelope(envelope(sample_bytes(SEVERAL), mapping))  # no age box in them
    names = [(e.type, e.name, e.message_id) for e in events]
    assert names == [
        ("identify", None, "zapier:id:ce_2001:identify"),
        ("track", "Contest Entered", "zapier:id:ce_2001:track"),
        ("track", "Consent Updated", "zapier:id:ce_2001:consent:0"),
        ("identify", None, "zapier:id:ce_2002:identify"),  # false: no consent (C-4)
        ("track", "Contest Entered", "zapier:id:ce_2002:track"),
        ("identify", None, "zapier:id:ce_2003:identify"),
        ("track", "Contest Entered", "zapier:id:ce_2003:track"),
    ]
    assert events[-1].properties["extra"] == {"referrer": "friend"}
    assert events[0].timestamp == RECEIVED  # no submitted_at: when received


def test_keep_unmapped_off_and_missing_paths() -> None:
    mapping = {"traits": {"email": "contact.email"}, "properties": {"nope": "a.b.c"},
               "keep_unmapped": False}
    identify, = parse_envelope(envelope(sample_bytes(CONTEST), mapping))
    assert identify.traits == {"email": "Maya.Chen@example.org"}
    assert identify.properties == {}  # a missing path is left out, never a crash


@pytest.mark.parametrize("value,expected", [
    (True, True), ("yes", True), ("Yes ", True), ("on", True), ("1", True), (1, True),
    ("checked", True), (False, False), ("", False), ("no", False), (None, False), (0, False),
    ("maybe", False), ([], False),
])
def test_ticked(value: Any, expected: bool) -> None:
    assert ticked(value) is expected


def test_keys() -> None:
    mapping = ZapierMapping.model_validate(CONTEST_MAPPING)
    record = sample(CONTEST)
    assert record_key(mapping, record) == "id:ce_1042"
    assert delivery_key(mapping, [record], b"{}") == "id:ce_1042"
    # A list is one delivery: its bytes' hash; each record keeps its own id.
    assert delivery_key(mapping, [record, record], b"[]").startswith("sha256:")
    plain = ZapierMapping()
    assert record_key(plain, {"b": 1, "a": 2}) == record_key(plain, {"a": 2, "b": 1})
    assert delivery_key(plain, [record], b"{}").startswith("sha256:")


def test_a_record_without_identifier_names_the_path() -> None:
    mapping = ZapierMapping.model_validate(CONTEST_MAPPING)
    assert missing_identifier(mapping, {"contact": {"first_name": "A"}}) == "contact.email"
    assert missing_identifier(mapping, {"contact": {"phone": "+14155550100"}}) is None
    assert missing_identifier(ZapierMapping(), {"Name": "x"}) == "email"


@pytest.mark.parametrize("body", [b"nope", b"3", b"[]", b"[1, 2]", b'"x"', b"[{}, 2]"])
def test_bodies_that_are_not_records(body: bytes) -> None:
    with pytest.raises(ZapierPayloadError) as caught:
        records_of(body)
    assert caught.value.field == "body"
