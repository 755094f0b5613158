"""`Consent Updated`, the canonical consent event, applied by the pipeline.

Sources, connectors and the console all state consent through it (see
docs/consent.md for its properties). The tracking API checks its properties when it
accepts the call (a bad one is a 400 naming the property); the pipeline records each
statement in the ledger for the profile the event resolved to. What only the profile
shows is checked then, and a statement it refuses becomes an issue on its event: the
identifier it is for (C-2, C-6), and whether it is implied consent for a recipient the
profile places in the EU/UK without the soft opt-in (E-3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from guestlist.canonical import CanonicalEvent
from guestlist.capture.tracking import register_event_check
from guestlist.consent.eu_uk import recipient_jurisdiction
from guestlist.consent.ledger import (
    IDENTIFIER_KIND,
    ConsentError,
    ConsentStatement,
    append_many,
    check_eu_uk_basis,
    ledger_key,
    parse_statement,
)
from guestlist.identity.graph import EventIdentity
from guestlist.store.tables import identifiers
from guestlist.store.types import utcnow

CONSENT_EVENT = "Consent Updated"


def check_consent_properties(properties: dict[str, Any]) -> None:
    """Raise ConsentError if a `Consent Updated` call could not be recorded."""
    parse_statement(properties, event_time=utcnow())


register_event_check(CONSENT_EVENT, check_consent_properties)


@dataclass
class PlannedConsent:
    index: int  # position of the event in the batch
    statement: ConsentStatement


def plan_consent(
    batch: Sequence[CanonicalEvent], found: Sequence[EventIdentity]
) -> list[PlannedConsent]:
    """Statements from the batch's consent events; a bad one becomes an event issue."""
    planned = []
    for index, event in enumerate(batch):
        if event.type != "track" or event.name != CONSENT_EVENT:
            continue
        try:
            statement = parse_statement(
                event.properties, event_time=event.timestamp, region=event.default_region
            )
        except ConsentError as exc:
            found[index].issues.append(
                {
                    "field": f"properties.{exc.field}",
                    "error": exc.message,
                    "consent": "not recorded",
                }
            )
            continue
        statement.source_id = event.source_id
        statement.received_at = event.received_at
        statement.message_id = statement.message_id or event.message_id
        planned.append(PlannedConsent(index, statement))
    return planned


def _own_identifier(
    conn: Connection, profile_id: int, channel: str, ident: EventIdentity
) -> str | None:
    """The profile's address for the channel: the event's own, else the only one held."""
    kind = IDENTIFIER_KIND[channel]
    on_event = [i.key for i in ident.identifiers if i.kind == kind]
    if on_event:
        return on_event[0]
    held = list(
        conn.scalars(
            select(identifiers.c.key).where(
                identifiers.c.profile_id == profile_id, identifiers.c.kind == kind
            )
        )
    )
    return held[0] if len(held) == 1 else None


def record_consent(
    conn: Connection,
    planned: Sequence[PlannedConsent],
    found: Sequence[EventIdentity],
) -> int:
    """Append the planned statements to the ledger; returns how many were recorded."""
    if not planned:
        return 0
    key = ledger_key(conn)
    accepted: list[tuple[int, ConsentStatement]] = []
    for item in planned:
        ident = found[item.index]
        statement = item.statement
        if statement.identifier is None:
            statement.identifier = _own_identifier(conn, ident.profile_id, statement.channel, ident)
        if statement.identifier is None:
            # C-2: a record without the consented identifier is invalid.
            ident.issues.append(
                {
                    "field": "properties.identifier",
                    "error": f"the profile has no single {statement.channel} identifier; "
                    "name the one consented",
                    "consent": "not recorded",
                }
            )
            continue
        if statement.kind == "implied" and statement.status == "granted":
            try:  # E-3, with where the profile is placed now
                check_eu_uk_basis(statement, recipient_jurisdiction(conn, ident.profile_id))
            except ConsentError as exc:
                ident.issues.append(
                    {
                        "field": f"properties.{exc.field}",
                        "error": exc.message,
                        "consent": "not recorded",
                    }
                )
                continue
        accepted.append((ident.profile_id, statement))
    append_many(conn, accepted, key=key)  # one round of statements for the whole batch
    return len(accepted)
