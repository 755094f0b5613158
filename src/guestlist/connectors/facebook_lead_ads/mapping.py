"""Facebook leads → canonical events.

The webhook (`facebook_lead_ads.leadgen`) holds only ids, so it maps to nothing; the
fetch job stores each lead as read from the Graph API (`facebook_lead_ads.lead`:
`{"leadgen", "lead", "form", "consent_checkboxes"}`), and that envelope becomes:

- an `identify` with the standard questions (email, phone, names, address, birthday);
- a `Lead Submitted` track with the form, ad and campaign, and every other answer
  under `answers` (custom questions are kept, never dropped);
- a date of birth the person typed as the `birthday` trait (a `dob_provided` age
  statement, recorded by the pipeline);
- a `Consent Updated` (granted, express) per custom-disclaimer checkbox the person
  ticked, when the shop mapped its key to a channel and the wording is known: the
  form's own checkbox text (C-2). An unticked box, a box the form pre-ticks, a box
  without wording or an unmapped key record nothing (C-4).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson

from guestlist.canonical import CanonicalEvent, ExternalId
from guestlist.capture.tracking_parse import parse_timestamp
from guestlist.connectors._mapping import event_maker
from guestlist.connectors.base import PULL_KIND, pulled_page, topic_of
from guestlist.inbox.store import InboxEnvelope

SLUG = "facebook_lead_ads"
LEAD_KIND = "lead"  # inbox kind facebook_lead_ads.lead
WEBHOOK_TOPIC = "leadgen"
LEAD_NS = "facebook_lead_ads:lead"
EVENT = "Lead Submitted"

# Standard lead-form questions (their `name` in field_data) → traits.
_PLAIN = {
    "email": "email",
    "phone_number": "phone",
    "first_name": "first_name",
    "last_name": "last_name",
    "full_name": "name",
    "gender": "gender",
    "job_title": "title",
}
_ADDRESS = {
    "street_address": "street",
    "city": "city",
    "state": "state",
    "province": "state",
    "zip_code": "postal_code",
    "post_code": "postal_code",
    "postal_code": "postal_code",
    "country": "country",
}
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")  # Meta's date questions: MM/DD/YYYY
_CHANNEL_IDENTIFIER = {"email": "email", "sms": "phone", "whatsapp": "phone", "phone": "phone"}


class FacebookPayloadError(ValueError):
    """A stored lead that lacks what the mapping needs; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def date_of_birth(raw: str) -> str | None:
    """`YYYY-MM-DD` from a date question's answer, None when it is not a date."""
    text = raw.strip()
    iso = _ISO_DATE.match(text)
    us = _US_DATE.match(text)
    if iso:
        year, month, day = (int(g) for g in iso.groups())
    elif us:
        month, day, year = (int(g) for g in us.groups())
    else:
        return None
    try:
        return datetime(year, month, day).date().isoformat()
    except ValueError:
        return None


def _answers(lead: dict[str, Any]) -> dict[str, Any]:
    """field_data as {name: value}: one value as itself, several as a list."""
    raw = lead.get("field_data")
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise FacebookPayloadError("lead.field_data", "expected a list")
    out: dict[str, Any] = {}
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise FacebookPayloadError(f"lead.field_data[{i}].name", "missing")
        values = item.get("values") or []
        if not isinstance(values, list):
            values = [values]
        strings = [str(v) for v in values if v not in (None, "")]
        if not strings:
            continue
        out[item["name"]] = strings[0] if len(strings) == 1 else strings
    return out


def _first(value: Any) -> str:
    return str(value[0] if isinstance(value, list) else value).strip()


def _time(lead: dict[str, Any], leadgen: dict[str, Any]) -> datetime:
    created = lead.get("created_time")
    if isinstance(created, str) and created:
        try:
            return parse_timestamp(created)
        except ValueError:
            raise FacebookPayloadError("lead.created_time", f"{created!r} is not a time") from None
    stamp = leadgen.get("created_time")
    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
        return datetime.fromtimestamp(stamp, UTC)
    raise FacebookPayloadError("lead.created_time", "missing")


def _is_checked(value: Any) -> bool:
    # The Graph API documents `is_checked` as a string; JSON booleans are taken too.
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes")


def _form_checkboxes(form: Any) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The form's custom-disclaimer checkboxes by key, and the disclaimer's proof."""
    if not isinstance(form, dict):
        return {}, {}
    legal = form.get("legal_content") if isinstance(form.get("legal_content"), dict) else {}
    disclaimer = legal.get("custom_disclaimer") if isinstance(legal, dict) else None
    proof: dict[str, Any] = {}
    if form.get("name"):
        proof["form_name"] = form["name"]
    policy = legal.get("privacy_policy") if isinstance(legal, dict) else None
    if isinstance(policy, dict) and policy.get("url"):
        proof["privacy_policy_url"] = policy["url"]
    elif form.get("privacy_policy_url"):
        proof["privacy_policy_url"] = form["privacy_policy_url"]
    if not isinstance(disclaimer, dict):
        return {}, proof
    if disclaimer.get("title"):
        proof["disclaimer_title"] = disclaimer["title"]
    body = disclaimer.get("body")
    if isinstance(body, dict) and body.get("text"):
        proof["disclaimer_body"] = body["text"]
    boxes = {
        str(box["key"]): box
        for box in disclaimer.get("checkboxes") or []
        if isinstance(box, dict) and box.get("key")
    }
    return boxes, proof


def lead_events(body: dict[str, Any], envelope: InboxEnvelope) -> list[CanonicalEvent]:
    lead = body.get("lead")
    if not isinstance(lead, dict):
        raise FacebookPayloadError("lead", "expected an object")
    raw_leadgen = body.get("leadgen")
    leadgen: dict[str, Any] = raw_leadgen if isinstance(raw_leadgen, dict) else {}
    lead_id = lead.get("id") or leadgen.get("leadgen_id")
    if not lead_id:
        raise FacebookPayloadError("lead.id", "missing")
    lead_id = str(lead_id)
    when = _time(lead, leadgen)
    answers = _answers(lead)

    traits: dict[str, Any] = {}
    address: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    dob: str | None = None
    for name, value in answers.items():
        key = name.lower()
        if key in _PLAIN:
            traits[_PLAIN[key]] = _first(value)
        elif key in _ADDRESS:
            address[_ADDRESS[key]] = _first(value)
        elif key == "date_of_birth" and date_of_birth(_first(value)):
            dob = date_of_birth(_first(value))
        else:
            rest[name] = value  # custom questions, and answers we could not read
    if address:
        traits["address"] = address
    if dob:
        traits["birthday"] = dob
    contact: dict[str, Any] = {k: traits[k] for k in ("email", "phone") if k in traits}
    base = f"{LEAD_NS}:{lead_id}"
    external = [ExternalId(LEAD_NS, lead_id)]

    event = event_maker(envelope, when, external)

    form_id = lead.get("form_id") or leadgen.get("form_id")
    props: dict[str, Any] = {"leadgen_id": lead_id}
    for ours, value in (
        ("form_id", form_id),
        ("page_id", leadgen.get("page_id")),
        ("ad_id", lead.get("ad_id") or leadgen.get("ad_id")),
        ("ad_name", lead.get("ad_name")),
        ("adset_id", lead.get("adset_id") or leadgen.get("adgroup_id")),
        ("campaign_id", lead.get("campaign_id")),
        ("campaign_name", lead.get("campaign_name")),
        ("is_organic", lead.get("is_organic")),
        ("platform", lead.get("platform")),
    ):
        if value not in (None, ""):
            props[ours] = str(value) if ours.endswith("_id") else value
    boxes, proof = _form_checkboxes(body.get("form"))
    if "form_name" in proof:
        props["form_name"] = proof["form_name"]
    props["answers"] = rest
    if body.get("form_error"):
        props["form_error"] = str(body["form_error"])  # the form could not be read

    # A date of birth is the identify's `birthday` trait, which the pipeline records as
    # the person's own statement (dob_provided; docs/age.md), once.
    events = [event("identify", base, traits=traits)]

    configured = body.get("consent_checkboxes")
    mapping: dict[str, Any] = configured if isinstance(configured, dict) else {}
    responses = lead.get("custom_disclaimer_responses") or []
    if not isinstance(responses, list):
        raise FacebookPayloadError("lead.custom_disclaimer_responses", "expected a list")
    outcomes: list[dict[str, Any]] = []
    consents: list[CanonicalEvent] = []
    for i, response in enumerate(responses):
        if not isinstance(response, dict) or not response.get("checkbox_key"):
            raise FacebookPayloadError(
                f"lead.custom_disclaimer_responses[{i}].checkbox_key", "missing"
            )
        key = str(response["checkbox_key"])
        checked = _is_checked(response.get("is_checked"))
        outcome: dict[str, Any] = {"key": key, "checked": checked, "recorded": False}
        outcomes.append(outcome)
        box = boxes.get(key, {})
        config = mapping.get(key) if isinstance(mapping.get(key), dict) else None
        text = box.get("text") or (config or {}).get("text")
        if text:
            outcome["text"] = text
        if not checked:
            outcome["reason"] = "not ticked"  # silence, not a denial (C-4)
        elif box.get("is_checked_by_default") is True:
            outcome["reason"] = "pre-ticked on the form"  # C-4 (Planet49)
        elif config is None:
            outcome["reason"] = "no channel configured for this checkbox key"
        elif not text:
            outcome["reason"] = "the checkbox wording is unknown"  # C-2
        elif _CHANNEL_IDENTIFIER[config["channel"]] not in contact:
            outcome["reason"] = f"the lead has no {_CHANNEL_IDENTIFIER[config['channel']]}"
        else:
            outcome["recorded"] = True
            channel = str(config["channel"])
            consent: dict[str, Any] = {
                "channel": channel,
                "status": "granted",
                "kind": "express",
                "identifier": contact[_CHANNEL_IDENTIFIER[channel]],
                "text": text,
                "recorded_by": SLUG,
                "leadgen_id": lead_id,
                "checkbox_key": key,
                "text_from": "form" if box.get("text") else "connection_settings",
                **{k: v for k, v in proof.items() if k != "form_name"},
            }
            if config.get("legal_basis"):
                consent["legal_basis"] = config["legal_basis"]
            if "form_name" in proof:
                consent["form_name"] = proof["form_name"]
            for name in ("form_id", "page_id", "ad_id"):
                if name in props:
                    consent[name] = props[name]
            if box.get("is_required") is not None:
                consent["checkbox_required"] = box["is_required"]
            consents.append(
                event(
                    "track",
                    f"{base}:consent:{key}",
                    name="Consent Updated",
                    properties=consent,
                    context={"traits": contact},
                )
            )
    if outcomes:
        props["consent_checkboxes"] = outcomes
    events.append(event("track", f"{base}:submitted", name=EVENT, properties=props,
                        context={"traits": contact}))
    return events + consents


def parse_envelope(envelope: InboxEnvelope) -> list[CanonicalEvent]:
    topic = topic_of(envelope, SLUG)
    if topic.startswith(f"{PULL_KIND}."):
        stream, records = pulled_page(envelope)
        if stream != "leads":
            raise FacebookPayloadError("stream", f"unknown stream {stream!r}")
        out: list[CanonicalEvent] = []
        for record in records:
            out.extend(lead_events(record, envelope))
        return out
    if topic == WEBHOOK_TOPIC:
        return []  # ids only: the fetch job stores the lead itself
    if topic != LEAD_KIND:
        raise FacebookPayloadError("kind", f"unknown Facebook Lead Ads envelope {envelope.kind!r}")
    try:
        body = orjson.loads(envelope.body)
    except orjson.JSONDecodeError:
        raise FacebookPayloadError("body", "not JSON") from None
    if not isinstance(body, dict):
        raise FacebookPayloadError("body", "expected an object")
    return lead_events(body, envelope)
