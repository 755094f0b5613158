"""Typeform responses → canonical events.

One submitted response (a `form_response` webhook, or an item of a pulled page) is:

- an `identify` with the traits the form's mapping names (an answer to an `email` or
  `phone_number` question is the respondent's email/phone when the mapping maps none);
- a `Form Submitted` track with the form id and title, and every answer the mapping
  does not name, by field ref (unknown fields are kept, never a crash), plus hidden
  fields, the score and variables;
- a `Consent Updated` (granted, express) per consent box answered yes, with the
  question's exact title as `text` (C-2) and the address given in the same response
  for that channel as `identifier` (C-6); a box left unticked or answered no is
  silence, not a denial (C-4), and records nothing;
- the `birthday` trait for a date mapped as `birthday` (the pipeline records it as
  one `dob_provided` statement), and an `Age Verified` at `self_declared` (without a
  date) for a box mapped as `age_confirmed` (A-3).

Message ids come from the response `token`, so one response arriving by webhook (even
redelivered under a new `event_id`) and by pull is applied once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from guestlist.canonical import CanonicalEvent
from guestlist.capture.tracking_parse import parse_timestamp
from guestlist.connectors._mapping import event_maker
from guestlist.connectors.base import PULL_KIND, pulled_page, topic_of
from guestlist.inbox.store import InboxEnvelope

SLUG = "typeform"
TOPIC = "form_response"
FORM_EVENT = "Form Submitted"
# Stored with each delivery (Delivery.context): the form's mapping as it was when the
# delivery came in; parse is pure and never reads settings.
MAPPING_HEADER = "x-guestlist-typeform-mapping"
# Stored with each pulled page (Page.context): the form (id, title, URL, fields) and
# its mapping.
FORM_HEADER = "x-guestlist-typeform-form"
_YES_WORDS = frozenset({"yes", "true", "1", "y", "on", "checked", "accept", "accepted"})


class TypeformPayloadError(ValueError):
    """A stored Typeform payload that lacks what the mapping needs; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _time(value: Any, field: str) -> datetime:
    if not isinstance(value, str) or not value:
        raise TypeformPayloadError(field, "missing")
    try:
        return parse_timestamp(value)
    except ValueError:
        raise TypeformPayloadError(field, f"{value!r} is not an ISO 8601 time") from None


def answer_value(answer: Mapping[str, Any]) -> Any:
    """An answer's value as JSON: text, number, boolean, a date string, a label, labels."""
    kind = answer.get("type")
    if kind == "choice":
        choice = answer.get("choice") or {}
        return choice.get("label") if choice.get("label") is not None else choice.get("other")
    if kind == "choices":
        choices = answer.get("choices") or {}
        labels = list(choices.get("labels") or [])
        if choices.get("other"):
            labels.append(choices["other"])
        return labels
    if isinstance(kind, str) and kind in answer:
        return answer[kind]
    # A type we do not know yet: keep whatever it carries besides the field.
    rest = {k: v for k, v in answer.items() if k not in ("field", "type")}
    return rest if len(rest) != 1 else next(iter(rest.values()))


def _is_yes(value: Any, yes_labels: tuple[str, ...]) -> tuple[bool, str | None]:
    """Whether an answer ticks a consent box, and the option label it ticked."""
    if isinstance(value, bool):
        return value, None
    labels = value if isinstance(value, list) else [value]
    for label in labels:
        if not isinstance(label, str):
            continue
        if yes_labels:
            if label in yes_labels:
                return True, label
        elif label.strip().lower() in _YES_WORDS:
            return True, label
    return False, None


def _put_trait(traits: dict[str, Any], name: str, value: Any) -> None:
    if value is None or value == "" or value == []:
        return
    head, _, tail = name.partition(".")
    if tail:
        nested = traits.setdefault(head, {})
        if isinstance(nested, dict):
            nested[tail] = value
        return
    traits[name] = value


def _fields(form: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for field in form.get("fields") or []:
        if isinstance(field, dict) and isinstance(field.get("ref"), str):
            out[field["ref"]] = field
    return out


def response_events(
    response: Mapping[str, Any],
    form: Mapping[str, Any],
    mapping: Mapping[str, Any] | None,
    envelope: InboxEnvelope,
) -> list[CanonicalEvent]:
    """The events of one submitted response of `form` ({id, title, url, fields})."""
    token = response.get("token") or response.get("response_id")
    if not isinstance(token, str) or not token:
        raise TypeformPayloadError("form_response.token", "missing")
    when = _time(response.get("submitted_at"), "form_response.submitted_at")
    form_id = str(form.get("id") or response.get("form_id") or "")
    if not form_id:
        raise TypeformPayloadError("form_response.form_id", "missing")
    answers = response.get("answers") or []
    if not isinstance(answers, list):
        raise TypeformPayloadError("form_response.answers", "expected a list")
    rules: dict[str, Any] = dict((mapping or {}).get("fields") or {})
    url = (mapping or {}).get("url") or form.get("url")
    definitions = _fields(form)
    base = f"{SLUG}:response:{token}"

    # ref → (value, the answer's type)
    given: dict[str, tuple[Any, str | None]] = {}
    for i, answer in enumerate(answers):
        if not isinstance(answer, dict):
            raise TypeformPayloadError(f"form_response.answers[{i}]", "expected an object")
        raw_field = answer.get("field")
        field: dict[str, Any] = raw_field if isinstance(raw_field, dict) else {}
        ref = field.get("ref") or field.get("id")
        if not isinstance(ref, str) or not ref:
            raise TypeformPayloadError(f"form_response.answers[{i}].field.ref", "missing")
        given[ref] = (answer_value(answer), field.get("type") or answer.get("type"))
    raw_hidden = response.get("hidden")
    hidden: dict[str, Any] = raw_hidden if isinstance(raw_hidden, dict) else {}
    for name, value in hidden.items():
        if name in rules and name not in given:
            given[name] = (value, "hidden")

    traits: dict[str, Any] = {}
    unmapped: dict[str, Any] = {}
    consents: list[tuple[str, dict[str, Any], Any]] = []
    age_boxes: list[str] = []
    for ref, (value, _kind) in given.items():
        rule = rules.get(ref)
        if rule is None:
            if _kind != "hidden":
                unmapped[ref] = value
        elif isinstance(rule, dict):
            consents.append((ref, rule.get("consent") or {}, value))
        elif rule == "birthday":
            # A date of birth the person typed: the `birthday` trait alone, which the
            # pipeline records as one `dob_provided` statement.
            _put_trait(traits, "birthday", value)
        elif rule == "age_confirmed":
            if _is_yes(value, ())[0]:
                age_boxes.append(ref)
        else:
            _put_trait(traits, str(rule), value)
    # Without a mapped email/phone, the answer to an email / phone question is the
    # respondent's (the only contact questions a form asks are about the person).
    targets = {r for r in rules.values() if isinstance(r, str)}
    for trait, kind in (("email", "email"), ("phone", "phone_number")):
        if trait in targets:
            continue
        found = [ref for ref, (v, k) in given.items() if k == kind and ref in unmapped and v]
        if len(found) == 1:
            traits[trait] = unmapped.pop(found[0])
    contact = {k: traits[k] for k in ("email", "phone") if k in traits}

    # A response without email or phone names nobody we know: its own profile.
    anonymous = None if contact else f"{SLUG}:response:{token}"
    event = event_maker(envelope, when, anonymous_id=anonymous)

    events: list[CanonicalEvent] = []
    if traits:
        events.append(event("identify", f"{base}:identify", traits=traits))
    props: dict[str, Any] = {
        "form_id": form_id,
        "response_token": token,
        "answers": unmapped,
    }
    if form.get("title"):
        props["form_title"] = form["title"]
    if url:
        props["form_url"] = url
    if response.get("landed_at"):
        props["landed_at"] = response["landed_at"]
    unmapped_hidden = {k: v for k, v in hidden.items() if k not in rules}
    if unmapped_hidden:
        props["hidden"] = unmapped_hidden
    calculated = response.get("calculated")
    if isinstance(calculated, dict) and "score" in calculated:
        props["score"] = calculated["score"]
    if isinstance(response.get("variables"), list) and response["variables"]:
        props["variables"] = {
            v["key"]: v.get(v.get("type") or "", None)
            for v in response["variables"]
            if isinstance(v, dict) and isinstance(v.get("key"), str)
        }
    ending = response.get("ending")
    if isinstance(ending, dict) and ending.get("ref"):
        props["ending_ref"] = ending["ref"]
    events.append(
        event("track", f"{base}:submitted", name=FORM_EVENT, properties=props,
              context={"traits": contact})
    )

    for ref, rule, value in consents:
        ticked, label = _is_yes(value, tuple(rule.get("yes_labels") or ()))
        if not ticked:
            continue  # C-4: an unticked box or a "no" is silence, not a denial
        channel = str(rule.get("channel"))
        title = (definitions.get(ref) or {}).get("title")
        consent: dict[str, Any] = {
            "channel": channel,
            "status": "granted",
            "kind": "express",
            "purpose": rule.get("purpose") or "marketing",
            "recorded_by": SLUG,
            "typeform_form_id": form_id,
            "typeform_field_ref": ref,
            "typeform_response_token": token,
        }
        if isinstance(title, str) and title:
            # C-2: the question as Typeform showed it; a chosen option's label after it.
            consent["text"] = f"{title}\n{label}" if label else title
        else:
            consent["text_missing"] = True  # no definition came with the response
        if url:
            consent["url"] = url
        if rule.get("legal_basis"):
            consent["legal_basis"] = rule["legal_basis"]
        identifier = contact.get("email" if channel == "email" else "phone")
        if channel in ("email", "sms", "whatsapp", "phone") and identifier:
            consent["identifier"] = identifier  # C-6: the address given in this response
        events.append(
            event("track", f"{base}:consent:{ref}", name="Consent Updated",
                  properties=consent, context={"traits": contact})
        )

    age_common = {"provider": SLUG, "reference": token, "recorded_by": SLUG,
                  "typeform_form_id": form_id}
    for ref in age_boxes:
        title = (definitions.get(ref) or {}).get("title")
        props = {"level": "self_declared", "method": "age_gate",
                 "typeform_field_ref": ref, **age_common}
        if title:
            props["text"] = title
        events.append(
            event("track", f"{base}:age:{ref}", name="Age Verified",
                  properties=props, context={"traits": contact})
        )
    return events


def webhook_form(form_response: Mapping[str, Any]) -> dict[str, Any]:
    """The form as a webhook describes it: id, title and fields from `definition`."""
    definition = form_response.get("definition")
    definition = definition if isinstance(definition, dict) else {}
    return {
        "id": form_response.get("form_id") or definition.get("id"),
        "title": definition.get("title"),
        "fields": definition.get("fields") or [],
    }


def _webhook(envelope: InboxEnvelope) -> list[CanonicalEvent]:
    try:
        body = orjson.loads(envelope.body)
    except orjson.JSONDecodeError:
        raise TypeformPayloadError("body", "not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("form_response"), dict):
        raise TypeformPayloadError("form_response", "missing")
    mapping: dict[str, Any] | None = None
    raw = envelope.headers.get(MAPPING_HEADER)
    if raw:
        loaded = orjson.loads(raw)
        mapping = loaded if isinstance(loaded, dict) else None
    response = body["form_response"]
    return response_events(response, webhook_form(response), mapping, envelope)


def _page(records: list[dict[str, Any]], envelope: InboxEnvelope) -> list[CanonicalEvent]:
    if not records:
        return []
    raw = envelope.headers.get(FORM_HEADER)
    head = orjson.loads(raw) if raw else None
    if not isinstance(head, dict):
        raise TypeformPayloadError(FORM_HEADER, "a pulled page is stored with its form")
    form = head.get("form") or {}
    mapping = head.get("mapping")
    return [e for r in records for e in response_events(r, form, mapping, envelope)]


def parse_envelope(envelope: InboxEnvelope) -> list[CanonicalEvent]:
    topic = topic_of(envelope, SLUG)
    if topic.startswith(f"{PULL_KIND}."):
        stream, records = pulled_page(envelope)
        if stream != "responses":
            raise TypeformPayloadError("stream", f"unknown Typeform stream {stream!r}")
        return _page(records, envelope)
    if topic != TOPIC:
        raise TypeformPayloadError("event_type", f"unknown Typeform topic {topic!r}")
    return _webhook(envelope)
