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

from sqlalchemy import Connection, select
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
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(inbox).values(values).on_conflict_do_nothing().returning(inbox.c.id)
    inbox_id = conn.execute(stmt).scalar()
    return None if inbox_id is None else int(inbox_id)


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
