"""Caught Zapier records → canonical events, through the connection's mapping.

Per record: an `identify` with the mapped traits (their identifiers put the record on a
profile); with a track mapping, a `track` of the configured name with the mapped
properties; and a `Consent Updated` (granted, express) per ticked checkbox the mapping
names, carrying the exact wording the shop configured. An unticked or absent box records
nothing: silence is not a denial (C-4). Fields no path names are kept as properties.
"""

from __future__ import annotations

import copy
import hashlib
from datetime import datetime
from typing import Any

import orjson

from guestlist.canonical import CanonicalEvent
from guestlist.capture.tracking_parse import parse_timestamp
from guestlist.connectors.zapier.settings import CHANNEL_TRAITS, ZapierMapping
from guestlist.inbox.store import InboxEnvelope
from guestlist.profiles.trait_names import canonical_trait_name

SLUG = "zapier"
TOPIC = "catch"
# The stored header carrying the connection's mapping as it was when the record came in
# (written by the connector's `reply`, in the delivery's transaction), so the pure
# `parse` maps it as configured then. A sender may not set it.
MAPPING_HEADER = "x-guestlist-zapier-mapping"
CONNECTION_HEADER = "x-guestlist-zapier-connection"  # the connection's name, likewise
RESERVED_HEADERS = (MAPPING_HEADER, CONNECTION_HEADER)
CONSENT_EVENT = "Consent Updated"
AGE_EVENT = "Age Verified"
IDENTIFIER_TRAITS = ("email", "phone")
# Top-level fields taken as traits when the mapping names none.
AUTO_TRAITS = frozenset({
    "email", "phone", "first_name", "last_name", "name", "birthday", "address", "company",
})
TICKED = frozenset({"true", "yes", "y", "1", "on", "checked", "agree", "agreed", "accepted"})
_MAX_KEY = 120
_MISSING = object()


class ZapierPayloadError(ValueError):
    """A caught body the mapping cannot read; `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def records_of(body: bytes) -> list[dict[str, Any]]:
    """The records of a caught body: one JSON object, or a non-empty list of them."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ZapierPayloadError("body", "the body is not JSON") from None
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
        return value
    raise ZapierPayloadError("body", "the body is not a JSON object or a list of objects")


def lookup(record: Any, path: str) -> Any:
    """The value at a dotted path (`contact.emails.0.value`), or `_MISSING`."""
    here = record
    for step in path.split("."):
        if isinstance(here, dict) and step in here:
            here = here[step]
        elif isinstance(here, list) and step.isdigit() and int(step) < len(here):
            here = here[int(step)]
        else:
            return _MISSING
    return here


def _present(value: Any) -> bool:
    return value is not _MISSING and value is not None and value != ""


def _drop(record: Any, path: str) -> None:
    steps = path.split(".")
    here = record
    for step in steps[:-1]:
        if isinstance(here, dict) and step in here:
            here = here[step]
        elif isinstance(here, list) and step.isdigit() and int(step) < len(here):
            here = here[int(step)]
        else:
            return
    last = steps[-1]
    if isinstance(here, dict):
        here.pop(last, None)
    elif isinstance(here, list) and last.isdigit() and int(last) < len(here):
        here[int(last)] = None


def _pruned(value: Any) -> Any:
    if isinstance(value, dict):
        kept = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        items = [_pruned(v) for v in value]
        return [] if all(v in (None, {}, []) for v in items) else items
    return value


def trait_paths(mapping: ZapierMapping, record: dict[str, Any]) -> dict[str, str]:
    """trait → path, from the mapping or (when it names none) from the field names."""
    if mapping.traits:
        return dict(mapping.traits)
    found: dict[str, str] = {}
    for key in record:
        if "." in key:
            continue
        name = canonical_trait_name(key)
        if name in AUTO_TRAITS and name not in found:
            found[name] = key
    return found


def traits_of(mapping: ZapierMapping, record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, path in trait_paths(mapping, record).items():
        value = lookup(record, path)
        if _present(value):
            out[name] = value
    return out


def missing_identifier(mapping: ZapierMapping, record: dict[str, Any]) -> str | None:
    """The field to name when a record carries no identifier; None when it has one."""
    traits = traits_of(mapping, record)
    if any(_present(traits.get(name)) for name in IDENTIFIER_TRAITS):
        return None
    paths = trait_paths(mapping, record)
    named = [paths[n] for n in IDENTIFIER_TRAITS if n in paths]
    return named[0] if named else "email"


def record_key(mapping: ZapierMapping, record: dict[str, Any]) -> str:
    """The record's own id when the mapping names one, else a hash of its content."""
    if mapping.delivery_id is not None:
        value = lookup(record, mapping.delivery_id)
        if _present(value) and not isinstance(value, (dict, list)):
            text = str(value)
            if len(text) <= _MAX_KEY and text.isprintable():
                return f"id:{text}"
            return "id-sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return "sha256:" + hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()


def delivery_key(mapping: ZapierMapping, records: list[dict[str, Any]], body: bytes) -> str:
    if len(records) == 1 and mapping.delivery_id is not None:
        key = record_key(mapping, records[0])
        if key.startswith("id:"):
            return key
    return "sha256:" + hashlib.sha256(body).hexdigest()


def ticked(value: Any) -> bool:
    if value is True:
        return True
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value == 1
    return isinstance(value, str) and value.strip().lower() in TICKED


def _when(mapping: ZapierMapping, record: dict[str, Any], received_at: datetime) -> datetime:
    if mapping.timestamp is None:
        return received_at
    value = lookup(record, mapping.timestamp)
    if not isinstance(value, str) or not value:
        return received_at
    try:
        when = parse_timestamp(value)
    except ValueError:
        return received_at
    return min(when, received_at)  # a Zap's clock can run fast; never in the future


def _unmapped(mapping: ZapierMapping, record: dict[str, Any]) -> dict[str, Any]:
    if not mapping.keep_unmapped:
        return {}
    rest = copy.deepcopy(record)
    used = [
        *trait_paths(mapping, record).values(),
        *mapping.properties.values(),
        *(c.field for c in mapping.consent),
        *(c.identifier for c in mapping.consent if c.identifier is not None),
        *([mapping.age_gate.field] if mapping.age_gate is not None else []),
        *(p for p in (mapping.delivery_id, mapping.timestamp) if p is not None),
    ]
    for path in used:
        _drop(rest, path)
    pruned = _pruned(rest)
    return pruned if isinstance(pruned, dict) else {}


def events_for(
    mapping: ZapierMapping, record: dict[str, Any], envelope: InboxEnvelope
) -> list[CanonicalEvent]:
    """The events of one caught record."""
    key = record_key(mapping, record)
    traits = traits_of(mapping, record)
    identifiers = {n: traits[n] for n in IDENTIFIER_TRAITS if n in traits}
    properties = _unmapped(mapping, record)
    for name, path in mapping.properties.items():
        value = lookup(record, path)
        if value is not _MISSING:
            properties[name] = value
    common: dict[str, Any] = {
        "timestamp": _when(mapping, record, envelope.received_at),
        "received_at": envelope.received_at,
        "source_id": envelope.source_id,
        "inbox_id": envelope.id,
        "default_region": envelope.default_region,
    }
    events: list[CanonicalEvent] = []
    if traits:
        events.append(CanonicalEvent(
            type="identify",
            message_id=f"{SLUG}:{key}:identify",
            traits=traits,
            properties=properties if mapping.type == "identify" else {},
            **common,
        ))
    if mapping.type == "track":
        assert mapping.event is not None
        events.append(CanonicalEvent(
            type="track",
            message_id=f"{SLUG}:{key}:track",
            name=mapping.event,
            properties=properties,
            context={"traits": identifiers},
            **common,
        ))
    for n, box in enumerate(mapping.consent):
        value = lookup(record, box.field)
        if not ticked(value):
            continue  # unticked, absent, anything else: silence (C-4)
        props: dict[str, Any] = {
            "channel": box.channel,
            "purpose": box.purpose,
            "status": "granted",
            "kind": "express",
            "text": box.text,
            "recorded_by": SLUG,
            "form_field": box.field,
            "form_value": value,
        }
        if box.identifier is not None:
            given = lookup(record, box.identifier)
            if _present(given):
                props["identifier"] = given
        elif box.channel in CHANNEL_TRAITS and CHANNEL_TRAITS[box.channel] in traits:
            props["identifier"] = traits[CHANNEL_TRAITS[box.channel]]
        if box.url is not None:
            props["url"] = box.url
        if box.legal_basis is not None:
            props["legal_basis"] = box.legal_basis
        connection = envelope.headers.get(CONNECTION_HEADER)
        if connection:
            props["connection"] = connection
        events.append(CanonicalEvent(
            type="track",
            message_id=f"{SLUG}:{key}:consent:{n}",
            name=CONSENT_EVENT,
            properties=props,
            context={"traits": identifiers},
            **common,
        ))
    gate = mapping.age_gate
    if gate is not None and ticked(value := lookup(record, gate.field)):
        # Self-declared, without a date: evidence of a gate passed, never eligibility.
        age: dict[str, Any] = {
            "level": "self_declared",
            "method": "age_gate",
            "recorded_by": SLUG,
            "statement": gate.text,
            "form_field": gate.field,
            "form_value": value,
        }
        if gate.minimum_age is not None:
            age["minimum_age"] = gate.minimum_age
        events.append(CanonicalEvent(
            type="track",
            message_id=f"{SLUG}:{key}:age",
            name=AGE_EVENT,
            properties=age,
            context={"traits": identifiers},
            **common,
        ))
    return events


def stored_mapping(envelope: InboxEnvelope) -> ZapierMapping:
    raw = envelope.headers.get(MAPPING_HEADER)
    if raw is None:
        return ZapierMapping()
    try:
        return ZapierMapping.model_validate_json(raw)
    except ValueError:
        raise ZapierPayloadError(MAPPING_HEADER, "the stored mapping is not valid") from None


def parse_envelope(envelope: InboxEnvelope) -> list[CanonicalEvent]:
    topic = envelope.kind[len(SLUG) + 1:]
    if topic != TOPIC:
        raise ZapierPayloadError("kind", f"unknown Zapier topic {topic!r}")
    mapping = stored_mapping(envelope)
    out: list[CanonicalEvent] = []
    for record in records_of(envelope.body):
        out.extend(events_for(mapping, record, envelope))
    return out
