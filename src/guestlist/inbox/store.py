"""Writing raw envelopes to the inbox, and reading them back for the parsers.

Capture calls `accept` inside the transaction whose commit decides its 2xx, so an
acknowledged envelope is never lost. A vendor's delivery id goes in `idempotency_key`:
a redelivery with the same key for the same source is stored once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from guestlist.store.tables import inbox, sources
from guestlist.store.types import utcnow


@dataclass(frozen=True, slots=True)
class InboxEnvelope:
    """One inbox row as a parser sees it: the bytes as received, and where from."""

    id: int
    source_id: int
    kind: str
    headers: dict[str, str]
    body: bytes
    received_at: datetime
    default_region: str = "US"


# Built once: a webhook's request is mostly this insert, and building the statement
# (and its cache key) each time cost as much as running it.
_ACCEPT = {
    dialect_is_pg: dialect.insert(inbox).on_conflict_do_nothing().returning(inbox.c.id)
    for dialect_is_pg, dialect in ((False, sqlite), (True, postgresql))
}


def accept(
    conn: Connection,
    *,
    source_id: int,
    kind: str,
    headers: Mapping[str, str],
    body: bytes,
    idempotency_key: str | None = None,
    received_at: datetime | None = None,
) -> int | None:
    """Store one envelope (status pending) and return its id.

    Returns None when this source already has an envelope with `idempotency_key`.
    """
    values: dict[str, Any] = {
        "source_id": source_id,
        "kind": kind,
        "idempotency_key": idempotency_key,
        "received_at": received_at or utcnow(),
        "headers": dict(headers),
        "body": body,
        "status": "pending",
    }
    inbox_id = conn.execute(_ACCEPT[conn.dialect.name == "postgresql"], values).scalar()
    return None if inbox_id is None else int(inbox_id)


@dataclass(frozen=True, slots=True)
class NewEnvelope:
    """An envelope to store: what `accept` takes, as one value."""

    source_id: int
    kind: str
    headers: Mapping[str, str]
    body: bytes
    idempotency_key: str | None = None
    received_at: datetime | None = None


# PostgreSQL: many envelopes in one statement (one round trip instead of one each).
_ACCEPT_MANY = (
    "INSERT INTO inbox (source_id, kind, idempotency_key, received_at, headers, body, status) "
    "SELECT s, k, i, r, h, b, 'pending' FROM unnest("
    "%s::bigint[], %s::text[], %s::text[], %s::timestamptz[], %s::jsonb[], %s::bytea[]"
    ") AS t(s, k, i, r, h, b) "
    "ON CONFLICT DO NOTHING RETURNING id, source_id, idempotency_key"
)


def accept_many(conn: Connection, envelopes: Sequence[NewEnvelope]) -> list[int | None]:
    """Store envelopes together; each one's id, in order, as `accept` would return it.

    None where the source has that idempotency key already, also from an earlier
    envelope of the same call.
    """
    if conn.dialect.name != "postgresql" or len(envelopes) < 2:
        return [_accept_one(conn, envelope) for envelope in envelopes]
    now = utcnow()
    first: dict[tuple[int, str], int] = {}  # (source, key) → its first envelope
    for index, envelope in enumerate(envelopes):
        if envelope.idempotency_key is not None:
            first.setdefault((envelope.source_id, envelope.idempotency_key), index)
    keyed = [envelopes[index] for index in first.values()]
    columns = (
        [e.source_id for e in keyed],
        [e.kind for e in keyed],
        [e.idempotency_key for e in keyed],
        [e.received_at or now for e in keyed],
        [orjson.dumps(dict(e.headers)).decode() for e in keyed],
        [e.body for e in keyed],
    )
    stored = {
        (int(source_id), str(key)): int(inbox_id)
        for inbox_id, source_id, key in conn.exec_driver_sql(_ACCEPT_MANY, columns)
    }
    ids: list[int | None] = []
    for index, envelope in enumerate(envelopes):
        if envelope.idempotency_key is None:  # nothing to correlate on: one by one
            ids.append(_accept_one(conn, envelope))
            continue
        key = (envelope.source_id, envelope.idempotency_key)
        ids.append(stored.get(key) if first[key] == index else None)
    return ids


def _accept_one(conn: Connection, envelope: NewEnvelope) -> int | None:
    return accept(
        conn,
        source_id=envelope.source_id,
        kind=envelope.kind,
        headers=envelope.headers,
        body=envelope.body,
        idempotency_key=envelope.idempotency_key,
        received_at=envelope.received_at,
    )


def load_envelopes(conn: Connection, ids: Sequence[int]) -> list[InboxEnvelope]:
    """The envelopes with these ids (in id order), with their source's default region."""
    if not ids:
        return []
    rows = conn.execute(
        select(
            inbox.c.id,
            inbox.c.source_id,
            inbox.c.kind,
            inbox.c.headers,
            inbox.c.body,
            inbox.c.received_at,
            sources.c.default_region,
        )
        .join(sources, sources.c.id == inbox.c.source_id)
        .where(inbox.c.id.in_(list(ids)))
        .order_by(inbox.c.id)
    )
    return [
        InboxEnvelope(
            id=int(row.id),
            source_id=int(row.source_id),
            kind=str(row.kind),
            headers=dict(row.headers or {}),
            body=bytes(row.body),
            received_at=row.received_at,
            default_region=str(row.default_region or "US"),
        )
        for row in rows
    ]


def waiting_counts(conn: Connection, source_id: int) -> dict[str, int]:
    """How many of a source's envelopes are pending and how many failed."""
    rows = conn.execute(
        select(inbox.c.status, func.count())
        .where(inbox.c.status.in_(("pending", "failed")), inbox.c.source_id == source_id)
        .group_by(inbox.c.status)
    )
    counts = {"pending": 0, "failed": 0}
    counts.update({str(status): int(n) for status, n in rows})
    return counts


def failed_envelopes(conn: Connection, source_id: int, *, limit: int = 50) -> list[dict[str, Any]]:
    """A source's failed envelopes, oldest first: what could not be read, and why."""
    rows = conn.execute(
        select(inbox.c.id, inbox.c.kind, inbox.c.idempotency_key, inbox.c.received_at,
               inbox.c.attempts, inbox.c.error)
        .where(inbox.c.status == "failed", inbox.c.source_id == source_id)
        .order_by(inbox.c.id)
        .limit(limit)
    )
    return [
        {
            "inbox_id": int(r.id),
            "kind": r.kind,
            "delivery_id": r.idempotency_key,
            "received_at": r.received_at.isoformat(),
            "attempts": int(r.attempts),
            "error": r.error,
        }
        for r in rows
    ]


def requeue_failed(conn: Connection, source_id: int) -> int:
    """Put a source's failed envelopes back in line (after a fix); returns how many."""
    result = conn.execute(
        update(inbox)
        .where(inbox.c.status == "failed", inbox.c.source_id == source_id)
        .values(status="pending", error=None)
    )
    return int(result.rowcount or 0)
