"""Typeform responses → events, without the app: the mapping's choices one by one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from guestlist.connectors.typeform.mapping import (
    FORM_HEADER,
    MAPPING_HEADER,
    TypeformPayloadError,
    parse_envelope,
)
from guestlist.inbox.store import InboxEnvelope
from tests.connectors.typeform.helpers import DOCS_EXAMPLE, SIGNUP, SIGNUP_FORM, sample


def envelope(body: Any, kind: str = "typeform.form_response",
             mapping: dict[str, Any] | None = None,
             form: dict[str, Any] | None = None) -> InboxEnvelope:
    headers = {MAPPING_HEADER: orjson.dumps(mapping).decode()} if mapping is not None else {}
    if form is not None:
        headers = {FORM_HEADER: orjson.dumps({"form": form, "mapping": mapping}).decode()}
    return InboxEnvelope(id=7, source_id=3, kind=kind, headers=headers,
                         body=body if isinstance(body, bytes) else orjson.dumps(body),
                         received_at=datetime(2026, 3, 14, 18, 5, tzinfo=UTC))


def by_name(events: list[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for e in events:
        out.setdefault(e.name or e.type, []).append(e)
    return out


def test_signup_events() -> None:  # C-2, C-4, A-3
    events = by_name(parse_envelope(envelope(sample(SIGNUP), mapping=SIGNUP_FORM)))
    [identify] = events["identify"]
    assert identify.traits == {"first_name": "Avery", "email": "avery.shaw@example.com",
                               "phone": "+14155550123", "favourite_spirit": "Mezcal",
                               "signup_store": "queen-st", "birthday": "1991-07-04"}
    assert identify.timestamp == datetime(2026, 3, 14, 18, 2, 11, tzinfo=UTC)
    assert identify.message_id == "typeform:response:f0c1d2e3a4b5968778695a4b3c2d1e0f:identify"
    [consent] = events["Consent Updated"]  # the SMS box was answered no: silence
    assert consent.properties["channel"] == "email"
    assert consent.properties["text"].startswith("Yes, email me tasting invitations")
    assert consent.properties["identifier"] == "avery.shaw@example.com"
    assert consent.context["traits"]["email"] == "avery.shaw@example.com"
    # The date of birth is the birthday trait alone (one dob_provided statement); the
    # 21+ box a self_declared Age Verified without a date.
    assert identify.traits["birthday"] == "1991-07-04"
    [gate] = events["Age Verified"]
    assert gate.properties["level"] == "self_declared" and "birthday" not in gate.properties
    assert gate.properties["text"] == "I confirm I am 21 years of age or older."


def test_a_choice_question_as_consent_needs_its_yes_label() -> None:  # C-2, C-4
    payload = sample(DOCS_EXAMPLE)
    rule = {"consent": {"channel": "email", "yes_labels": ["Barcelona"]}}
    mapping = {"fields": {"readable_ref_multiple_choice": rule}}
    [consent] = by_name(parse_envelope(envelope(payload, mapping=mapping)))["Consent Updated"]
    assert consent.properties["text"] == "Which city do you like best?\nBarcelona"
    payload["form_response"]["answers"][-1]["choice"]["label"] = "London"
    assert "Consent Updated" not in by_name(parse_envelope(envelope(payload, mapping=mapping)))


def test_consent_for_a_channel_without_its_address_names_none() -> None:  # C-6
    payload = sample(SIGNUP)
    answers = payload["form_response"]["answers"]
    payload["form_response"]["answers"] = [a for a in answers if a["field"]["ref"] != "mobile"]
    for a in payload["form_response"]["answers"]:
        if a["field"]["ref"] == "sms_optin":
            a["boolean"] = True
    consents = by_name(parse_envelope(envelope(payload, mapping=SIGNUP_FORM)))["Consent Updated"]
    sms = next(c for c in consents if c.properties["channel"] == "sms")
    # No phone in the response: no identifier; the ledger uses the profile's only one
    # or refuses the statement with an issue, never a guess here.
    assert "identifier" not in sms.properties


def test_a_response_without_contact_is_its_own_anonymous_profile() -> None:
    payload = sample(DOCS_EXAMPLE)
    payload["form_response"]["answers"] = [
        a for a in payload["form_response"]["answers"] if a["type"] != "email"]
    events = parse_envelope(envelope(payload))
    assert [e.name for e in events] == ["Form Submitted"]
    assert events[0].anonymous_id == "typeform:response:a3a12ec67a1365927098a606107fac15"


def test_unknown_answer_types_are_kept() -> None:
    payload = sample(DOCS_EXAMPLE)
    payload["form_response"]["answers"].append(
        {"type": "payment", "payment": {"amount": "4.50", "last4": "4242", "name": "L"},
         "field": {"id": "p1", "type": "payment", "ref": "tip"}})
    payload["form_response"]["answers"].append(
        {"type": "hologram", "hologram": "✨", "field": {"id": "h1", "type": "x", "ref": "h"}})
    [submitted] = by_name(parse_envelope(envelope(payload)))["Form Submitted"]
    assert submitted.properties["answers"]["tip"]["last4"] == "4242"
    assert submitted.properties["answers"]["h"] == "✨"


def test_pulled_page_uses_its_form_record() -> None:
    form = {"id": "Bt1Club", "title": "Club", "url": "https://x.typeform.com/to/Bt1Club",
            "fields": [{"ref": "email_optin", "title": "Email me offers", "type": "yes_no"}]}
    item = {"token": "t1", "submitted_at": "2026-01-05T09:00:00Z", "answers": [
        {"type": "email", "email": "a@example.com", "field": {"ref": "email", "type": "email"}},
        {"type": "boolean", "boolean": True, "field": {"ref": "email_optin", "type": "yes_no"}},
    ]}
    mapping = {"fields": {"email_optin": {"consent": {"channel": "email"}}}}
    body = {"stream": "responses", "records": [item]}
    events = by_name(parse_envelope(envelope(body, kind="typeform.pull.responses",
                                             mapping=mapping, form=form)))
    [consent] = events["Consent Updated"]
    assert consent.properties["text"] == "Email me offers"
    assert consent.properties["url"] == "https://x.typeform.com/to/Bt1Club"
    assert consent.message_id == "typeform:response:t1:consent:email_optin"


@pytest.mark.parametrize(("body", "field"), [
    (b"not json", "body"),
    ({"event_id": "e"}, "form_response"),
    ({"form_response": {"form_id": "f", "submitted_at": "2026-01-01T00:00:00Z"}},
     "form_response.token"),
    ({"form_response": {"form_id": "f", "token": "t", "submitted_at": "yesterday"}},
     "form_response.submitted_at"),
    ({"form_response": {"form_id": "f", "token": "t", "submitted_at": "2026-01-01T00:00:00Z",
                        "answers": [{"type": "text", "text": "x"}]}},
     "form_response.answers[0].field.ref"),
])
def test_a_stored_payload_lacking_fields_fails_clearly(body: Any, field: str) -> None:
    with pytest.raises(TypeformPayloadError) as caught:
        parse_envelope(envelope(body))
    assert caught.value.field == field


def test_a_response_by_webhook_and_by_pull_has_the_same_ids() -> None:
    payload = sample(SIGNUP)
    hooked = parse_envelope(envelope(payload, mapping=SIGNUP_FORM))
    response = {k: v for k, v in payload["form_response"].items() if k != "definition"}
    form = {"id": "Bt1Club", "title": "Bottle Shop Tasting Club",
            "fields": payload["form_response"]["definition"]["fields"]}
    body = {"stream": "responses", "records": [response]}
    pulled = parse_envelope(envelope(body, kind="typeform.pull.responses",
                                     mapping=SIGNUP_FORM, form=form))
    assert [e.message_id for e in pulled] == [e.message_id for e in hooked]
    assert [e.properties for e in pulled] == [e.properties for e in hooked]
