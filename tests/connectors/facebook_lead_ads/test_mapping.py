"""Stored leads → events: answers, custom questions, age, consent checkboxes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from guestlist.connectors.facebook_lead_ads.mapping import (
    FacebookPayloadError,
    date_of_birth,
    parse_envelope,
)
from guestlist.inbox.store import InboxEnvelope
from tests.connectors.facebook_lead_ads.helpers import CHECKBOXES, sample

LEAD = "lead__consent_and_dob.CONSTRUCTED.json"
FORM = "leadgen_form__legal_content.CONSTRUCTED.json"


def clean(name: str) -> dict[str, Any]:
    return {k: v for k, v in sample(name).items() if not k.startswith("_")}


def envelope(body: Any, kind: str = "facebook_lead_ads.lead") -> InboxEnvelope:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return InboxEnvelope(7, 3, kind, {}, raw, datetime(2026, 5, 14, 18, 23, tzinfo=UTC))


def stored(lead: dict[str, Any] | None = None, form: Any = "sample",
           checkboxes: Any = None) -> dict[str, Any]:
    return {
        "leadgen": {"leadgen_id": "1204587763310921", "page_id": "104233165087761",
                    "form_id": "887412096653201", "created_time": 1778782927},
        "lead": lead if lead is not None else clean(LEAD),
        "form": clean(FORM) if form == "sample" else form,
        "consent_checkboxes": CHECKBOXES if checkboxes is None else checkboxes,
    }


def by_name(events: list[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for e in events:
        out.setdefault(e.name or e.type, []).append(e)
    return out


def test_the_sample_lead_maps_to_profile_lead_age_and_two_consents() -> None:
    events = by_name(parse_envelope(envelope(stored())))
    (identify,) = events["identify"]
    assert identify.traits == {
        "email": "renee.lavoie@example.com", "phone": "+15145550187",
        "first_name": "Renée", "last_name": "Lavoie", "birthday": "1988-09-23",
        "address": {"city": "Burlington", "state": "VT", "postal_code": "05401"},
    }
    assert identify.message_id == "facebook_lead_ads:lead:1204587763310921"
    assert identify.timestamp == datetime(2026, 5, 14, 18, 22, 7, tzinfo=UTC)
    assert [(x.namespace, x.id) for x in identify.external_ids] == [
        ("facebook_lead_ads:lead", "1204587763310921")]
    (lead,) = events["Lead Submitted"]
    props = lead.properties
    assert (props["form_id"], props["form_name"], props["campaign_id"], props["is_organic"]) == (
        "887412096653201", "Spring tasting sign-up", "120210553380770209", False)
    # Custom questions are kept, never dropped.
    assert props["answers"] == {
        "which_tasting_would_you_like_to_attend?": "Saturday whisky flight",
        "favourite_styles": ["peated", "sherry cask"],
    }
    assert lead.context["traits"] == {"email": "renee.lavoie@example.com",
                                      "phone": "+15145550187"}
    # The date of birth is the birthday trait (one dob_provided statement), no Age Verified.
    assert "Age Verified" not in events
    assert identify.traits["birthday"] == "1988-09-23"

    consents = {e.properties["channel"]: e.properties for e in events["Consent Updated"]}
    assert sorted(consents) == ["email", "sms"]  # partner_offers unticked: nothing (C-4)
    form_boxes = {b["key"]: b["text"] for b in
                  clean(FORM)["legal_content"]["custom_disclaimer"]["checkboxes"]}
    email, sms = consents["email"], consents["sms"]
    # C-2: the exact wording of the form, the identifier consented, the basis.
    assert email["text"] == form_boxes["email_offers"] and email["text_from"] == "form"
    assert (email["status"], email["kind"], email["identifier"], email["legal_basis"]) == (
        "granted", "express", "renee.lavoie@example.com", "gdpr_consent")
    assert sms["text"] == form_boxes["sms_offers"] and sms["identifier"] == "+15145550187"
    assert email["privacy_policy_url"] == "https://cellar.example/privacy"
    assert email["disclaimer_title"] == "Stay in touch" and email["form_id"] == "887412096653201"
    outcomes = {o["key"]: o for o in props["consent_checkboxes"]}
    assert outcomes["partner_offers"] == {
        "key": "partner_offers", "checked": False, "recorded": False, "reason": "not ticked",
        "text": form_boxes["partner_offers"]}


def test_a_pre_ticked_box_an_unmapped_key_and_unknown_wording_record_nothing() -> None:  # C-4
    lead = clean(LEAD)
    lead["custom_disclaimer_responses"] = [
        {"checkbox_key": "partner_offers", "is_checked": "1"},  # pre-ticked on the form
        {"checkbox_key": "email_offers", "is_checked": True},
        {"checkbox_key": "mystery", "is_checked": "1"},
    ]
    events = by_name(parse_envelope(envelope(stored(lead, checkboxes={
        "partner_offers": {"channel": "email"}}))))
    assert "Consent Updated" not in events
    reasons = {o["key"]: o["reason"] for o in events["Lead Submitted"][0].properties[
        "consent_checkboxes"]}
    assert reasons == {
        "partner_offers": "pre-ticked on the form",
        "email_offers": "no channel configured for this checkbox key",
        "mystery": "no channel configured for this checkbox key",
    }
    # Without the form definition and without configured wording: no proof (C-2).
    events = by_name(parse_envelope(envelope(stored(form=None))))
    assert "Consent Updated" not in events
    # With wording configured on the connection, it is used and said to be.
    boxes = {"email_offers": {"channel": "email", "text": "Email me offers."}}
    (consent,) = by_name(parse_envelope(envelope(stored(form=None, checkboxes=boxes))))[
        "Consent Updated"]
    assert consent.properties["text"] == "Email me offers."
    assert consent.properties["text_from"] == "connection_settings"


def test_a_lead_without_email_or_phone_has_no_contact_consent_and_a_bad_dob_is_kept() -> None:
    lead = {
        "id": "55", "created_time": "2026-05-14T18:22:07+0000", "form_id": "887412096653201",
        "field_data": [{"name": "full_name", "values": ["Sam Q"]},
                       {"name": "date_of_birth", "values": ["not a date"]}],
        "custom_disclaimer_responses": [{"checkbox_key": "email_offers", "is_checked": "1"}],
    }
    events = by_name(parse_envelope(envelope(stored(lead))))
    assert events["identify"][0].traits == {"name": "Sam Q"}
    assert "Age Verified" not in events and "Consent Updated" not in events
    props = events["Lead Submitted"][0].properties
    assert props["answers"] == {"date_of_birth": "not a date"}
    assert props["consent_checkboxes"][0]["reason"] == "the lead has no email"


def test_dates_of_birth() -> None:
    assert date_of_birth("1988-09-23") == "1988-09-23"
    assert date_of_birth("09/23/1988") == "1988-09-23"  # Meta's MM/DD/YYYY
    assert date_of_birth("23/09/1988") is None
    assert date_of_birth("1988-02-30") is None


def test_the_webhook_envelope_maps_to_nothing_and_bad_leads_raise_naming_the_field() -> None:
    assert parse_envelope(envelope(b"{}", "facebook_lead_ads.leadgen")) == []
    with pytest.raises(FacebookPayloadError, match=r"^lead: "):
        parse_envelope(envelope({"leadgen": {}}))
    with pytest.raises(FacebookPayloadError, match=r"lead.field_data\[0\].name"):
        parse_envelope(envelope(stored({"id": "1", "created_time": "2026-05-14T18:22:07+0000",
                                        "field_data": [{"values": ["x"]}]})))
    with pytest.raises(FacebookPayloadError, match=r"lead\.created_time"):
        parse_envelope(envelope({"lead": {"id": "1"}}))
    with pytest.raises(FacebookPayloadError, match="body"):
        parse_envelope(envelope(b"not json"))


def test_a_lead_by_webhook_and_by_pull_has_the_same_message_ids() -> None:
    by_job = parse_envelope(envelope(stored()))
    page = {"stream": "leads", "records": [stored()]}
    by_pull = parse_envelope(envelope(page, "facebook_lead_ads.pull.leads"))
    assert [e.message_id for e in by_pull] == [e.message_id for e in by_job]
    with pytest.raises(FacebookPayloadError, match="stream"):
        parse_envelope(envelope({"stream": "forms", "records": []},
                                "facebook_lead_ads.pull.forms"))
