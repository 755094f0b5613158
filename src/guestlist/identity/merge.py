"""Merging two stored profiles: every profile-scoped row moves to the survivor."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, case, delete, exists, select, update
from sqlalchemy.orm import aliased

from guestlist.audit import audit
from guestlist.store.tables import (
    identifiers,
    profile_merges,
    profile_scoped_tables,
    profiles,
    traits,
)
from guestlist.store.types import utcnow

# Tables whose rows need more than `SET profile_id = survivor`, keyed by table name.
MergeStep = Callable[[Connection, int, int], None]
_merge_steps: dict[str, MergeStep] = {}


def merge_step(table_name: str) -> Callable[[MergeStep], MergeStep]:
    """Register how a table with per-profile unique keys folds one profile into another."""

    def register(fn: MergeStep) -> MergeStep:
        _merge_steps[table_name] = fn
        return fn

    return register


@merge_step("identifiers")
def _merge_identifiers(conn: Connection, survivor: int, merged: int) -> None:
    held = aliased(identifiers)
    conn.execute(
        delete(identifiers).where(
            identifiers.c.profile_id == merged,
            exists().where(
                held.c.profile_id == survivor,
                held.c.kind == identifiers.c.kind,
                held.c.key == identifiers.c.key,
            ),
        )
    )
    conn.execute(
        update(identifiers).where(identifiers.c.profile_id == merged).values(profile_id=survivor)
    )


@merge_step("traits")
def _merge_traits(conn: Connection, survivor: int, merged: int) -> None:
    """Per trait the value with the later event time wins; on a tie the survivor's."""
    other = aliased(traits)
    newer_elsewhere = exists().where(
        other.c.profile_id == merged,
        other.c.name == traits.c.name,
        other.c.event_time > traits.c.event_time,
    )
    conn.execute(delete(traits).where(traits.c.profile_id == survivor, newer_elsewhere))
    still_held = exists().where(other.c.profile_id == survivor, other.c.name == traits.c.name)
    conn.execute(delete(traits).where(traits.c.profile_id == merged, still_held))
    conn.execute(update(traits).where(traits.c.profile_id == merged).values(profile_id=survivor))


def _move_rows(conn: Connection, table: Table, survivor: int, merged: int) -> None:
    conn.execute(update(table).where(table.c.profile_id == merged).values(profile_id=survivor))


def merge_profiles(
    conn: Connection,
    survivor: int,
    merged: int,
    *,
    reason: str,
    identifier_kind: str | None = None,
    identifier_key: str | None = None,
    detail: dict[str, Any] | None = None,
    message_id: str | None = None,
    at: datetime | None = None,
) -> None:
    """Fold `merged` into `survivor` and record why. Both must be live profiles."""
    if survivor == merged:
        raise ValueError("a profile cannot be merged into itself")
    for table in profile_scoped_tables():
        step = _merge_steps.get(table.name)
        if step is not None:
            step(conn, survivor, merged)
        else:
            _move_rows(conn, table, survivor, merged)
    first, last = conn.execute(
        select(profiles.c.first_seen_at, profiles.c.last_seen_at).where(profiles.c.id == merged)
    ).one()
    conn.execute(
        update(profiles)
        .where(profiles.c.id == survivor)
        .values(
            first_seen_at=case(
                (profiles.c.first_seen_at > first, first), else_=profiles.c.first_seen_at
            ),
            last_seen_at=case(
                (profiles.c.last_seen_at < last, last), else_=profiles.c.last_seen_at
            ),
        )
    )
    # Old ids keep resolving: whatever pointed at `merged` now points at the survivor.
    conn.execute(
        update(profiles).where(profiles.c.merged_into == merged).values(merged_into=survivor)
    )
    conn.execute(update(profiles).where(profiles.c.id == merged).values(merged_into=survivor))
    audit(
        conn,
        "profile.merged",
        profile_id=survivor,
        detail={
            "merged_profile_id": merged,
            "identifier_kind": identifier_kind,
            "event_message_id": message_id,
        },
        reason=reason,
        at=at,
    )
    conn.execute(
        profile_merges.insert().values(
            profile_id=survivor,
            merged_profile_id=merged,
            reason=reason,
            identifier_kind=identifier_kind,
            identifier_key=identifier_key,
            detail=detail,
            event_message_id=message_id,
            merged_at=at or utcnow(),
        )
    )


def live_profile_id(conn: Connection, profile_id: int) -> int | None:
    """The profile an id stands for now (following merges), or None if unknown."""
    row = conn.execute(
        select(profiles.c.id, profiles.c.merged_into).where(profiles.c.id == profile_id)
    ).first()
    if row is None:
        return None
    return int(row.merged_into) if row.merged_into is not None else int(row.id)
