"""Global Privacy Control: a browser's opt-out of the sale and sharing of data (P-5).

California treats an opt-out preference signal as a request to opt out of sale and
sharing (the CCPA regulations, 11 CCR § 7025; the Attorney General's Sephora settlement
was about ignoring it). The Global Privacy Control signal (https://w3c.github.io/gpc/, formerly
https://privacycg.github.io/gpc-spec/) reaches guestlist in two ways:

- **the `Sec-GPC: 1` request header**, which a browser with GPC on adds to every
  request, analytics.js's calls to `/v1/*` included. Only the HTTP request shows it, so
  the tracking API keeps it with the inbox row (`capture.tracking`) and the pipeline
  hands each envelope's headers to `plan_gpc`. The spec defines one value, `1`; any
  other value is no signal.
- **a field in the call's `context`**: `context.gpc` or `context.globalPrivacyControl`,
  holding what `navigator.globalPrivacyControl` returns (`true`) or the header's value
  (`"1"`). For clients that read the property themselves and for servers relaying a
  browser's events, where the header does not survive. Neither Segment's nor
  RudderStack's SDKs send the signal by themselves (Segment's `context.consent` holds
  the shop's own consent categories, RudderStack's `context.consentManagement` a
  CMP's ids), so these two names are guestlist's, documented in docs/consent.md. Any
  other value (`false`, `0`, `1`, `"true"`) is no signal.

A signal on an event appends, for the profile the event resolved to, one ledger record:
purpose `sale_sharing`, status `withdrawn`, kind `express`, channel `browser` and
identifier `anonymous_id:<id>` (else `user_id:<id>`) — the browser or device that sent
it, which the CCPA regulations name (11 CCR § 7025), and which lets a signal from
a visitor nobody knows yet follow them when they sign up and their profiles merge.

`withdrawn`, never `denied`: sale and sharing is opt-out, so before the signal the shop
could share (no record is "not opted out"); the signal takes that away. SMS STOP and
email unsubscribe record `sale_sharing` the same way.

Exactly once: only events not seen before reach this step (the pipeline drops a
redelivered messageId first), and a signal is recorded only when the profile is not
opted out already (`guard.sale_sharing_opted_out`), so a browser that sends the header
on every call adds one record, not one per call. After a later `granted` the next
signal is recorded again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection

from guestlist.canonical import CanonicalEvent
from guestlist.consent.ledger import BROWSER, ConsentStatement, append, ledger_key
from guestlist.guard import SALE_SHARING, load_facts, sale_sharing_opted_out
from guestlist.identity.graph import EventIdentity

HEADER: Final = "sec-gpc"  # as the inbox keeps header names: lower case
HEADER_VALUE: Final = "1"
CONTEXT_FIELDS: Final = ("gpc", "globalPrivacyControl")
LEGAL_BASIS: Final = "ccpa_opt_out_preference_signal"
RECORDED_BY: Final = "global-privacy-control"
_MAX_IDENTIFIER = 320  # consent_records.identifier


def header_signal(headers: Mapping[str, str] | None) -> bool:
    """Whether request headers (lower-case names) carry `Sec-GPC: 1`."""
    return headers is not None and headers.get(HEADER) == HEADER_VALUE


def context_signals(context: Mapping[str, Any]) -> list[str]:
    """The `context` fields that carry the signal: `true` or `"1"`, nothing else."""
    found = []
    for name in CONTEXT_FIELDS:
        value = context.get(name)
        if value is True or (isinstance(value, str) and value == HEADER_VALUE):
            found.append(f"context.{name}")
    return found


@dataclass
class PlannedSignal:
    """One event that carried the signal, and the statement it makes."""

    index: int  # position of the event in the batch
    statement: ConsentStatement
    signals: list[str] = field(default_factory=list)


def _text(value: Any, limit: int | None = None) -> str | None:
    """A non-empty string that fits its column, else None."""
    if not isinstance(value, str) or not value:
        return None
    return value if limit is None or len(value) <= limit else None


def _request_ip(headers: Mapping[str, str]) -> str | None:
    forwarded = _text(headers.get("x-forwarded-for"))
    if forwarded:
        return _text(forwarded.split(",")[0].strip(), 64)
    return _text(headers.get("client-ip"), 64)


def _browser(event: CanonicalEvent) -> str | None:
    if event.anonymous_id:
        return f"anonymous_id:{event.anonymous_id}"
    if event.user_id:
        return f"user_id:{event.user_id}"
    return None


def plan_gpc(
    batch: Sequence[CanonicalEvent],
    found: Sequence[EventIdentity],
    request_headers: Mapping[int, Mapping[str, str]],
) -> list[PlannedSignal]:
    """Statements from the batch's events that carried the signal; `request_headers`
    maps an inbox id to the headers kept with that envelope."""
    planned = []
    for index, event in enumerate(batch):
        headers = request_headers.get(event.inbox_id, {}) if event.inbox_id is not None else {}
        by_header = header_signal(headers)
        signals = ["header Sec-GPC: 1"] if by_header else []
        signals += context_signals(event.context)
        if not signals:
            continue
        identifier = _browser(event)
        if identifier is None or len(identifier) > _MAX_IDENTIFIER:
            found[index].issues.append(
                {
                    "field": "anonymousId",
                    "error": "Global Privacy Control signal from a client without a usable "
                    "anonymousId or userId",
                    "consent": "not recorded",
                }
            )
            continue
        context = event.context
        page = context.get("page")
        url = _text(page.get("url")) if isinstance(page, dict) else None
        proof: dict[str, Any] = {"signals": signals}
        if event.inbox_id is not None:
            proof["inbox_id"] = event.inbox_id
        statement = ConsentStatement(
            channel=BROWSER,
            purpose=SALE_SHARING,
            status="withdrawn",
            kind="express",
            # The header belongs to the request, sent when it was received; a context
            # field was set when the event was made.
            event_time=event.received_at if by_header else event.timestamp,
            identifier=identifier,
            legal_basis=LEGAL_BASIS,
            url=url,
            message_id=_text(event.message_id, 255),
            recorded_by=RECORDED_BY,
            ip=_text(context.get("ip"), 64) or _request_ip(headers),
            user_agent=_text(context.get("userAgent")) or _text(headers.get("user-agent")),
            source_id=event.source_id,
            received_at=event.received_at,
            proof=proof,
        )
        planned.append(PlannedSignal(index, statement, signals))
    return planned


def record_signal(
    conn: Connection, profile_id: int, statement: ConsentStatement, *, key: bytes | None = None
) -> int | None:
    """Append the opt-out unless the profile is opted out already (or gone); returns
    the record id, or None when nothing was recorded."""
    facts = load_facts(conn, [profile_id])[profile_id]
    if not facts.exists or facts.merged_into is not None or facts.erased:
        return None
    if sale_sharing_opted_out(facts, None):  # None: an expired grant still counts here
        return None
    return append(conn, profile_id, statement, key=key)


def record_gpc(
    conn: Connection, planned: Sequence[PlannedSignal], found: Sequence[EventIdentity]
) -> int:
    """Append the planned opt-outs to the ledger; returns how many were recorded."""
    if not planned:
        return 0
    key = ledger_key(conn)
    recorded = 0
    for item in planned:
        if record_signal(conn, found[item.index].profile_id, item.statement, key=key):
            recorded += 1
    return recorded


def form_statement(
    *,
    channel: str,
    identifier: str,
    at: datetime,
    form: str,
    message_id: str | None,
    ip: str | None,
    user_agent: str | None,
) -> ConsentStatement:
    """The opt-out a form submitted with `Sec-GPC: 1` makes, for the address the form
    is about (guestlist's own pages: the double opt-in and unsubscribe buttons)."""
    return ConsentStatement(
        channel=channel,
        purpose=SALE_SHARING,
        status="withdrawn",
        kind="express",
        event_time=at,
        identifier=identifier,
        legal_basis=LEGAL_BASIS,
        message_id=message_id,
        recorded_by=RECORDED_BY,
        ip=ip,
        user_agent=user_agent,
        received_at=at,
        proof={"signals": ["header Sec-GPC: 1"], "form": form},
    )
