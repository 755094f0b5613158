"""Spreadsheet rows → canonical events.

Each non-blank row under the header row is one `identify`: the mapped columns become
traits (a `customer_id` column an external id), the unmapped ones are kept on the
event's context. Its message id is the spreadsheet, sheet and row number plus a hash
of the row's cells (and of the headers and mapping that read them), so re-importing an
unchanged row applies nothing new, and a changed row is a new identify that updates
the traits. Row numbers are never an identity (rows move when a sheet is sorted).

Consent columns (with the wording the mapping records, C-2): a yes (`TRUE`, yes, y,
x, ✓, opted in, subscribed…) is a `Consent Updated` granted; an explicit withdrawal
(unsubscribed, opted out, withdrawn, stop) is withdrawn (C-5); blank, no or anything
else records nothing (C-4). Its time is the row's `at_column` date or the mapping's
`as_of`, never the import time (C-3).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from guestlist.canonical import CanonicalEvent, ExternalId
from guestlist.capture.tracking_parse import parse_timestamp
from guestlist.connectors._mapping import event_maker
from guestlist.connectors.base import PULL_KIND, pulled_page, topic_of
from guestlist.connectors.google_sheets.settings import header_key
from guestlist.inbox.store import InboxEnvelope

SLUG = "google_sheets"
# Stored with each pulled page (Page.context): the spreadsheet, sheet, header row and
# mapping that read its rows; parse is pure and never reads settings.
SHEET_HEADER = "x-guestlist-google-sheet"
CUSTOMER_NS = "google_sheets:customer"
_EPOCH = datetime(1899, 12, 30, tzinfo=UTC)  # day 0 of a spreadsheet serial date
_YES = frozenset({"true", "yes", "y", "x", "✓", "✔", "1", "opted in", "opted-in", "opt-in",
                  "subscribed", "granted", "consented"})
_WITHDRAWN = frozenset({"unsubscribed", "opted out", "opted-out", "opt-out", "withdrawn",
                        "stop", "revoked"})
_DATE_TRAITS = frozenset({"birthday", "created_at"})
_TEXT_TRAITS = frozenset({"phone", "customer_id", "address.postal_code", "postal_code"})


class SheetPayloadError(ValueError):
    """A stored page that lacks what the mapping needs; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def serial_to_datetime(value: float) -> datetime:
    """A spreadsheet serial number (days since 1899-12-30) as a UTC time."""
    return _EPOCH + timedelta(days=float(value))


def cell_time(value: Any) -> datetime | None:
    """A cell as a time: a serial number, or an ISO 8601 date or date-time."""
    if isinstance(value, bool) or _blank(value):
        return None
    if isinstance(value, int | float):
        return serial_to_datetime(value)
    text = str(value).strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        return parse_timestamp(text)
    except ValueError:
        return None


def _date_trait(value: Any) -> Any:
    """A date cell as `YYYY-MM-DD` when it reads as one; otherwise as given (the
    pipeline then flags an unreadable birthday rather than guessing a locale)."""
    when = cell_time(value)
    if when is None:
        return value
    return when.date().isoformat() if when.time() == datetime.min.time() else when.isoformat()


def _text(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value.strip() if isinstance(value, str) else value


def _put(traits: dict[str, Any], name: str, value: Any) -> None:
    head, _, tail = name.partition(".")
    if tail:
        nested = traits.setdefault(head, {})
        if isinstance(nested, dict):
            nested[tail] = value
    else:
        traits[name] = value


def row_hash(values: list[Any], headers: list[Any], mapping: Mapping[str, Any]) -> str:
    blob = orjson.dumps([values, headers, mapping], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(blob).hexdigest()[:20]


def row_events(
    row: Mapping[str, Any], sheet: Mapping[str, Any], envelope: InboxEnvelope
) -> list[CanonicalEvent]:
    number = row.get("row")
    values = row.get("values")
    if not isinstance(number, int) or not isinstance(values, list):
        raise SheetPayloadError("row", "each row needs its number and values")
    if all(_blank(v) for v in values):
        return []  # a blank row is no one
    headers = list(sheet.get("headers") or [])
    mapping = sheet.get("mapping") or {}
    columns = {header_key(h): t for h, t in (mapping.get("columns") or {}).items()}
    spreadsheet, tab = str(sheet.get("spreadsheet_id")), str(sheet.get("sheet"))
    cells = {header_key(h): (h, values[i] if i < len(values) else None)
             for i, h in enumerate(headers) if not _blank(h)}
    digest = row_hash(values, headers, mapping)
    base = f"{SLUG}:row:{spreadsheet}:{tab}:{number}:{digest}"

    traits: dict[str, Any] = {}
    unmapped: dict[str, Any] = {}
    external: list[ExternalId] = []
    consents: list[tuple[dict[str, Any], Any]] = []
    for key, (header, value) in cells.items():
        target = columns.get(key)
        if target is None:
            if not _blank(value):
                unmapped[str(header)] = value
            continue
        if isinstance(target, dict):
            consents.append((target.get("consent") or {}, value))
            continue
        if _blank(value):
            continue  # an empty cell states nothing; it never clears a trait
        if target == "customer_id":
            external.append(ExternalId(CUSTOMER_NS, f"{spreadsheet}:{_text(value)}"))
        elif target == "tags":
            traits["tags"] = [t.strip() for t in str(value).split(",") if t.strip()]
        elif target in _DATE_TRAITS:
            _put(traits, target, _date_trait(value))
        elif target in _TEXT_TRAITS:
            _put(traits, target, _text(value))
        else:
            _put(traits, target, value.strip() if isinstance(value, str) else value)

    when = None
    if mapping.get("updated_column"):
        when = cell_time(cells.get(header_key(mapping["updated_column"]), (None, None))[1])
    if when is None and mapping.get("as_of"):
        when = parse_timestamp(str(mapping["as_of"]))
    when = when or envelope.received_at
    contact = {k: traits[k] for k in ("email", "phone") if k in traits}
    anonymous = None if contact or external else f"{SLUG}:row:{spreadsheet}:{digest}"
    origin = {"spreadsheet_id": spreadsheet, "sheet": tab, "row": number}
    notes: list[str] = []

    def event(kind: str, message_id: str, at: datetime, **fields: Any) -> CanonicalEvent:
        # A consent's time is its own column's, not the row's: the time is per event.
        return event_maker(envelope, at, external, anonymous_id=anonymous)(
            kind, message_id, **fields
        )

    events: list[CanonicalEvent] = []
    for rule, value in consents:
        word = str(value).strip().casefold() if isinstance(value, str) else value
        if value is True or (isinstance(word, str) and word in _YES):
            status = "granted"
        elif isinstance(word, str) and word in _WITHDRAWN:
            status = "withdrawn"  # C-5: a withdrawal noted anywhere counts
        else:
            continue  # C-4: blank, no, or unknown is not consent
        channel = str(rule.get("channel"))
        at = None
        if rule.get("at_column"):
            at = cell_time(cells.get(header_key(rule["at_column"]), (None, None))[1])
        if at is None and rule.get("as_of"):
            at = parse_timestamp(str(rule["as_of"]))
        if at is None:
            notes.append(f"{channel} consent not recorded: no date in {rule.get('at_column')!r}")
            continue
        props: dict[str, Any] = {
            "channel": channel,
            "status": status,
            "kind": "express",
            "purpose": rule.get("purpose") or "marketing",
            "recorded_by": SLUG,
            "sheet_cell": value,
            **{f"sheet_{k}": v for k, v in origin.items()},
        }
        if status == "granted":
            props["text"] = rule.get("text")
            if rule.get("legal_basis"):
                props["legal_basis"] = rule["legal_basis"]
            if rule.get("url"):
                props["url"] = rule["url"]
        identifier = contact.get("email" if channel == "email" else "phone")
        if identifier and channel in ("email", "sms", "whatsapp", "phone"):
            props["identifier"] = identifier
        events.append(event("track", f"{base}:consent:{channel}", at, name="Consent Updated",
                            properties=props, context={"traits": contact}))

    context: dict[str, Any] = {"google_sheets": {**origin, "columns": unmapped}}
    if notes:
        context["google_sheets"]["notes"] = notes
    events.insert(0, event("identify", base, when, traits=traits, context=context))
    return events


def parse_envelope(envelope: InboxEnvelope) -> list[CanonicalEvent]:
    topic = topic_of(envelope, SLUG)
    if not topic.startswith(f"{PULL_KIND}."):
        raise SheetPayloadError("kind", f"Google Sheets sends no webhooks ({envelope.kind!r})")
    stream, records = pulled_page(envelope)
    if stream != "rows":
        raise SheetPayloadError("stream", f"unknown Google Sheets stream {stream!r}")
    if not records:
        return []
    raw = envelope.headers.get(SHEET_HEADER)
    sheet = orjson.loads(raw) if raw else None
    if not isinstance(sheet, dict):
        raise SheetPayloadError(SHEET_HEADER, "a pulled page is stored with its header row")
    return [e for r in records for e in row_events(r, sheet, envelope)]
