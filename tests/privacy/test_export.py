"""Access and portability (both databases); rule ids from compliance.md."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine

from guestlist.audit import audit_entries
from guestlist.privacy.erase import ProfileNotFound, erase_profile
from guestlist.privacy.export import FORMAT, export_profile
from tests.privacy.conftest import (
    ALT_EMAIL,
    ANON_ID,
    DOB,
    EMAIL,
    IP,
    PHONE_KEY,
    SMS_TEXT,
    USER_AGENT,
    Person,
)


def export(engine: Engine, profile_id: int) -> dict:  # type: ignore[type-arg]
    with engine.begin() as conn:
        data = export_profile(conn, profile_id, actor="user:dpo")
    json.dumps(data)  # JSON as it is, without a custom encoder
    return data


def test_export_holds_everything_with_consent_proofs_and_audit_entries(
    engine: Engine, person: Person
) -> None:  # P-1
    data = export(engine, person.profile_id)
    assert data["format"] == FORMAT
    assert data["profile"]["id"] == person.profile_id
    assert data["profile"]["merged_profile_ids"] == [person.merged_id]
    assert {(i["kind"], i["value"]) for i in data["identifiers"]} >= {
        ("email", EMAIL.lower()),
        ("email", ALT_EMAIL),
        ("anonymous_id", ANON_ID),
    }
    first_name = next(t for t in data["traits"] if t["name"] == "first_name")
    assert (first_name["value"], first_name["source"]) == ("Zelda", "web")
    assert first_name["event_time"].startswith("2026-03-02T15:30:00")
    assert {e["message_id"] for e in data["events"]} >= {
        "m-identify",
        "m-sms",
        "m-email",
        "m-order",
        "m-anon",
        "m-alias",
    }
    assert [m["merged_profile_id"] for m in data["merges"]] == [person.merged_id]
    # Consent records with their proof: the wording shown, IP, user agent, URL, store.
    sms = next(r for r in data["consent"]["records"] if r["channel"] == "sms")
    assert sms["text"] == SMS_TEXT
    assert (sms["identifier"], sms["ip"], sms["user_agent"]) == (PHONE_KEY, IP, USER_AGENT)
    assert sms["url"] == "https://quist.example/signup"
    assert sms["proof"]["store"] == "Zelda's corner"
    # SMS-6a: the age check that gated the grant (the birthday typed at signup), by
    # reference: the date of birth stays in the age record.
    gate = sms["proof"]["age_gate"]
    assert (gate["from"], gate["level"], gate["method"]) == (
        "age_record", "dob_provided", "birthday_trait"
    )
    assert DOB not in str(gate)
    assert sms["source"] == "web" and sms["reduced"] is False
    assert sms["record_hash"] and sms["event_time"].startswith("2026-03-02T15:32:00")
    state = {(s["channel"], s["identifier"]): s["status"] for s in data["consent"]["state"]}
    assert state[("sms", PHONE_KEY)] == "granted"
    assert state[("email", ALT_EMAIL)] == "granted"
    assert [r["level"] for r in data["age"]["records"]][-1] == "id_document"
    assert data["age"]["state"][0]["dob"] == DOB
    assert {d["connection"] for d in data["destinations"]} == {"mailchimp:main", "klaviyo:eu"}
    actions = [a["action"] for a in data["audit"]]
    assert "consent.recorded" in actions and "profile.merged" in actions
    assert data["other_tables"] == {}


def test_export_is_audited(engine: Engine, person: Person) -> None:  # P-6
    export(engine, person.merged_id)
    with engine.connect() as conn:
        [entry] = audit_entries(conn, action="profile.exported")
    assert (entry.profile_id, entry.actor) == (person.profile_id, "user:dpo")
    assert entry.detail["requested_id"] == person.merged_id
    assert EMAIL.lower() not in json.dumps(entry.detail).lower()
    # The next export lists the previous one.
    again = export(engine, person.profile_id)
    assert "profile.exported" in [a["action"] for a in again["audit"]]


def test_an_erased_person_export_shows_the_evidence_kept_as_such(
    engine: Engine, person: Person
) -> None:  # P-3a, P-1
    with engine.begin() as conn:
        erase_profile(conn, person.profile_id, actor="cli", reason="asked")
    data = export(engine, person.profile_id)
    assert data["profile"]["erased_at"] is not None
    assert data["identifiers"] == data["traits"] == data["events"] == []
    assert data["consent"]["state"] == [] and data["destinations"] == []
    records = data["consent"]["records"]
    assert len(records) == 3 and all(r["reduced"] for r in records)
    sms = next(r for r in records if r["channel"] == "sms")
    assert sms["identifier"] is None and sms["identifier_hash"]
    assert sms["text"] == SMS_TEXT  # what they were told stays provable
    assert "profile.erased" in [a["action"] for a in data["audit"]]


def test_export_of_an_unknown_profile_is_refused(engine: Engine) -> None:  # P-1
    with pytest.raises(ProfileNotFound), engine.begin() as conn:
        export_profile(conn, 424242)
