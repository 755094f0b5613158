"""Typeform deliveries end to end: the real app, a signed body, the pipeline, the database."""

from __future__ import annotations

import subprocess
from datetime import date
from typing import Any

import orjson
import pytest

from guestlist.connectors.connections import SettingsInvalid, validate_settings
from guestlist.connectors.typeform.connector import TypeformConnector, signature
from guestlist.connectors.typeform.settings import TypeformSettings
from guestlist.pipeline import process_all
from tests.connectors.conftest import App
from tests.connectors.typeform.helpers import (
    DOCS_EXAMPLE,
    SIGNUP,
    SIGNUP_FORM,
    age_of,
    connect,
    consent_of,
    consent_text,
    deliver,
    events_of,
    inbox_rows,
    live_profiles,
    log_of,
    profile_of,
    sample,
    traits_of,
)


def test_signature_matches_an_openssl_computation() -> None:
    # No official vector exists (CONNECTORS.md §2): derive one from the documented
    # construction with openssl, independently of our code.
    body = (b'{"event_id":"LtWXD3crgy","event_type":"form_response","form_response":'
            b'{"form_id":"lT4Z3j"}}')
    out = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hmac", "s3cr3t", "-binary"],
        input=body, capture_output=True, check=True,
    ).stdout
    b64 = subprocess.run(["base64"], input=out, capture_output=True, check=True).stdout
    assert signature("s3cr3t", body) == "sha256=" + b64.decode().strip()
    assert signature("s3cr3t", body) == "sha256=hosQp6AePecfw/30UJ+5JAYfsWpoTa2Mi055XZRvDbg="


def test_signup_builds_profile_consent_and_age(app: App) -> None:  # C-2, C-4, C-6, A-3
    cid, secret = connect(app)
    assert len(secret) >= 40
    shown = app.client.get(f"/api/connections/{cid}", headers=app.read).json()
    assert secret not in str(shown)
    assert shown["webhook_url"] == f"https://guestlist.example/hooks/typeform/{cid}"
    # A sender's own x-guestlist- header is never stored: the mapping kept with the
    # delivery is the connection's.
    forged = {"X-Guestlist-Typeform-Mapping": '{"fields": {"email": "nickname"}}'}
    r = deliver(app, cid, sample(SIGNUP), secret, **forged)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "accepted", "delivery_id": "01HV7Q3SMXK4B2N8WZ6T5R9YJD"}
    process_all(app.engine)
    [row] = inbox_rows(app.engine)
    assert row.status == "processed", row.error
    kept = orjson.loads(row.headers["x-guestlist-typeform-mapping"])
    assert kept["fields"]["email"] == "email" and kept["url"] == SIGNUP_FORM["url"]
    pid = profile_of(app.engine, "email", "avery.shaw@example.com")
    assert pid is not None and live_profiles(app.engine) == 1
    assert profile_of(app.engine, "phone", "+14155550123") == pid
    traits = traits_of(app.engine, pid)
    assert traits["first_name"] == "Avery"
    assert traits["favourite_spirit"] == "Mezcal"
    assert traits["signup_store"] == "queen-st"  # a mapped hidden field

    # The email box was ticked: granted, with the question's exact text (C-2) for the
    # address typed in the same response (C-6). The SMS box was not: nothing (C-4).
    [grant] = consent_of(app.engine, pid)
    assert (grant.channel, grant.status, grant.kind) == ("email", "granted", "express")
    assert grant.identifier == "avery.shaw@example.com"
    assert grant.legal_basis == "gdpr_consent"
    assert grant.url == "https://bottleshop.typeform.com/to/Bt1Club"
    assert consent_text(app.engine, grant.text_hash) == (
        "Yes, email me tasting invitations and offers from Bottle Shop. "
        "I can unsubscribe at any time.")
    assert grant.recorded_by == "typeform"

    # A date of birth typed in: dob_provided; the 21+ box: self_declared, no date.
    ages = sorted((a.level, str(a.dob), a.method) for a in age_of(app.engine, pid))
    assert ages == [("dob_provided", str(date(1991, 7, 4)), "birthday_trait"),
                    ("self_declared", "None", "age_gate")]  # each once

    [submitted] = events_of(app.engine, pid, "Form Submitted")
    props = submitted.properties
    assert props["form_id"] == "Bt1Club"
    assert props["form_title"] == "Bottle Shop Tasting Club"
    assert props["answers"] == {"how_found": "A friend at the Queen St store told me."}
    assert props["hidden"] == {"utm_source": "instagram"}


def test_the_documented_example_keeps_unknown_fields_as_properties(app: App) -> None:
    cid, secret = connect(app)
    r = deliver(app, cid, sample(DOCS_EXAMPLE), secret)
    assert r.status_code == 200, r.text
    process_all(app.engine)
    [row] = inbox_rows(app.engine)
    assert row.status == "processed", row.error
    # The form has no mapping: its one email question is the respondent's email.
    pid = profile_of(app.engine, "email", "laura@example.com")
    assert pid is not None
    [submitted] = events_of(app.engine, pid, "Form Submitted")
    answers = submitted.properties["answers"]
    assert answers["readable_ref_short_text"] == "Laura"
    assert answers["readable_ref_picture_choice"] == ["London", "Sydney"]
    assert answers["readable_ref_yes_no"] is True
    assert answers["readable_ref_multiple_choice"] == "Barcelona"
    assert answers["readable_ref_date"] == "2005-10-15"  # not a birthday: not mapped so
    assert submitted.properties["score"] == 9
    assert submitted.properties["variables"] == {"score": 4, "name": "typeform"}
    assert consent_of(app.engine, pid) == []  # nothing mapped as consent: nothing (C-4)
    assert age_of(app.engine, pid) == []


def test_redelivery_and_resend_are_applied_once(app: App) -> None:
    cid, secret = connect(app)
    payload = sample(SIGNUP)
    assert deliver(app, cid, payload, secret).json()["status"] == "accepted"
    assert deliver(app, cid, payload, secret).json()["status"] == "duplicate"
    # A response re-sent from Typeform's panel comes with a new event_id: stored, but
    # its events are the same response token's, applied once.
    payload["event_id"] = "01HV7Q3SMXK4B2N8WZ6T5R9ZZZ"
    assert deliver(app, cid, payload, secret).json()["status"] == "accepted"
    process_all(app.engine)
    assert len(inbox_rows(app.engine)) == 2
    pid = profile_of(app.engine, "email", "avery.shaw@example.com")
    assert pid is not None
    assert len(events_of(app.engine, pid, "Form Submitted")) == 1
    assert len(consent_of(app.engine, pid)) == 1


def test_unticked_boxes_record_nothing(app: App) -> None:  # C-4
    cid, secret = connect(app)
    payload = sample(SIGNUP)
    answers = payload["form_response"]["answers"]
    for a in answers:
        if a["field"]["ref"] in ("email_optin", "is_21"):
            a["boolean"] = False
    r = deliver(app, cid, payload, secret)
    assert r.status_code == 200
    process_all(app.engine)
    pid = profile_of(app.engine, "email", "avery.shaw@example.com")
    assert pid is not None
    assert consent_of(app.engine, pid) == []  # no box ticked: no statement at all
    assert {a.level for a in age_of(app.engine, pid)} == {"dob_provided"}


REFUSALS = [
    ("bad_signature", 401, "invalid_signature", "Typeform-Signature"),
    ("no_signature", 400, "missing_header", "Typeform-Signature"),
    ("not_json", 400, "invalid_body", "body"),
    ("no_token", 400, "invalid_body", "form_response.token"),
    ("no_definition", 400, "invalid_body", "form_response.definition.fields"),
    ("partial", 400, "unsupported_topic", "event_type"),
    ("other_form", 400, "unknown_form", "form_response.form_id"),
]


def _refused_body(change: str, secret: str) -> tuple[bytes, dict[str, str]]:
    payload = sample(SIGNUP)
    headers: dict[str, str] = {}
    if change == "no_token":
        del payload["form_response"]["token"]
    elif change == "no_definition":
        del payload["form_response"]["definition"]
    elif change == "partial":
        payload["event_type"] = "form_response_partial"
    elif change == "other_form":
        payload["form_response"]["form_id"] = "zzOther"
    body = orjson.dumps(payload)
    if change == "bad_signature":
        headers["Typeform-Signature"] = signature("not-the-secret", body)
    elif change == "no_signature":
        headers["Typeform-Signature"] = ""
    elif change == "not_json":
        body = b"event_id=1&form_response=x"
    return body, headers


def test_refused_deliveries_store_nothing_and_are_logged(app: App) -> None:
    cid, secret = connect(app)
    for change, status, error, field in REFUSALS:
        body, headers = _refused_body(change, secret)
        r = deliver(app, cid, body, secret, **headers)
        assert r.status_code == status, (change, r.text)
        assert r.json()["error"]["code"] == error, change
        assert r.json()["error"]["field"] == field, change
    # Oversize: refused before it is read, whatever its signature.
    big = b'{"event_id":"big","pad":"' + b"x" * (5 << 20) + b'"}'
    r = deliver(app, cid, big, secret)
    assert r.status_code == 413
    assert inbox_rows(app.engine) == []
    # An unknown connection, or a Typeform delivery posted to another platform's URL.
    body = orjson.dumps(sample(SIGNUP))
    for path in (f"/hooks/typeform/{cid + 100}", f"/hooks/shopify/{cid}"):
        r = app.client.post(path, content=body,
                            headers={"Typeform-Signature": signature(secret, body)})
        assert r.status_code == 404, path
    assert inbox_rows(app.engine) == []
    log = [e for e in log_of(app, cid) if e["status"] != 413]
    assert len(log) == len(REFUSALS)
    assert {e["outcome"] for e in log} == {"rejected"}
    assert sorted(e["status"] for e in log) == sorted(s for _, s, _, _ in REFUSALS)


@pytest.mark.parametrize(("forms", "field"), [
    ({"Bt1Club": {"fields": {"email": "Not A Trait"}}}, "forms.Bt1Club.fields"),
    ({"Bt1Club": {"fields": {"x": {"consent": {"channel": "fax"}}}}}, "forms.Bt1Club.fields"),
    ("{not json", "forms"),
    ({"Bt1Club": {"fields": {"a": "email", "b": "email"}}}, "forms.Bt1Club.fields"),
    ({"bad id!": {}}, "forms"),
])
def test_a_bad_mapping_is_refused_naming_the_field(forms: Any, field: str) -> None:
    with pytest.raises(SettingsInvalid) as caught:
        validate_settings(TypeformConnector(), {"forms": forms})
    assert caught.value.field.startswith(field), caught.value.field


def test_the_mapping_may_come_as_a_json_string() -> None:  # the CLI's --set forms='{…}'
    parsed = validate_settings(
        TypeformConnector(), {"forms": '{"Bt1Club": {"fields": {"email": "email"}}}'})
    assert isinstance(parsed, TypeformSettings)
    assert parsed.forms["Bt1Club"].fields == {"email": "email"}
