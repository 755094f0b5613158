"""The audit log (compliance P-6): who did what, when and why. Append-only.

Every package writes to it through `audit`; it depends on nothing but the store, so
any stage may call it. Entries name a profile by id only and never copy personal data
into `detail` (an erased person's entries stay, without the erased data: P-2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select

from guestlist.store.tables import audit_log
from guestlist.store.types import utcnow

SYSTEM = "system"


def audit(
    conn: Connection,
    action: str,
    *,
    actor: str = SYSTEM,
    profile_id: int | None = None,
    detail: Mapping[str, Any] | None = None,
    reason: str | None = None,
    at: datetime | None = None,
) -> None:
    """Append one entry, in the caller's transaction (it commits with the change)."""
    conn.execute(
        audit_log.insert().values(
            at=at or utcnow(),
            actor=actor,
            action=action,
            profile_id=profile_id,
            detail=dict(detail) if detail else None,
            reason=reason,
        )
    )


@dataclass(frozen=True, slots=True)
class AuditEntry:
    actor: str = SYSTEM
    profile_id: int | None = None
    detail: Mapping[str, Any] | None = None
    reason: str | None = None


def audit_many(
    conn: Connection, action: str, entries: Sequence[AuditEntry], *, at: datetime | None = None
) -> None:
    """Append one entry per item, of one action, in one statement (same transaction)."""
    if not entries:
        return
    when = at or utcnow()
    conn.execute(
        audit_log.insert(),
        [
            {
                "at": when,
                "actor": e.actor,
                "action": action,
                "profile_id": e.profile_id,
                "detail": dict(e.detail) if e.detail else None,
                "reason": e.reason,
            }
            for e in entries
        ],
    )


def audit_entries(
    conn: Connection,
    *,
    profile_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    action: str | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> list[Row[Any]]:
    """Entries oldest first, filtered; `after_id` continues a previous page."""
    query = select(audit_log).order_by(audit_log.c.id).limit(limit)
    if profile_id is not None:
        query = query.where(audit_log.c.profile_id == profile_id)
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    if until is not None:
        query = query.where(audit_log.c.at < until)
    if action is not None:
        query = query.where(audit_log.c.action == action)
    if after_id is not None:
        query = query.where(audit_log.c.id > after_id)
    return list(conn.execute(query))
