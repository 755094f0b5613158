"""The apply step: store events and keep each trait's latest value by event time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from guestlist.canonical import CanonicalEvent
from guestlist.capture.import_ids import row_hash
from guestlist.identity.graph import EventIdentity
from guestlist.profiles.trait_names import canonical_trait_name
from guestlist.store.bulk import bulk_insert, bulk_upsert_newer, select_in, sqlite_datetime
from guestlist.store.tables import events, traits
from guestlist.store.types import utcnow


def drop_seen(conn: Connection, batch: Sequence[CanonicalEvent]) -> list[CanonicalEvent]:
    """Events whose (source, messageId) is not stored yet, first occurrence only."""
    by_source: dict[int, list[str]] = {}
    for event in batch:
        by_source.setdefault(event.source_id, []).append(event.message_id)
    stored: set[tuple[int, str]] = set()
    for source_id, ids in by_source.items():
        unique = list(dict.fromkeys(ids))
        rows = select_in(conn, events, ["message_id"], "message_id", unique, source_id=source_id)
        stored.update((source_id, message_id) for (message_id,) in rows)
    fresh: list[CanonicalEvent] = []
    for event in batch:
        key = (event.source_id, event.message_id)
        if key not in stored:
            stored.add(key)
            fresh.append(event)
    return fresh


def drop_reimported(
    conn: Connection, batch: Sequence[CanonicalEvent], found: Sequence[EventIdentity]
) -> tuple[list[CanonicalEvent], list[EventIdentity]]:
    """Resolved events without the imported rows their profile already received.

    An imported row's `messageId` ends in the hash of the row (capture.import_ids): the
    same row from the same source, met again in another file or twice in one, applies
    nothing. Only profiles that existed before the batch are looked up, by profile, so
    a first import reads nothing here.
    """
    contents = [row_hash(e.message_id) if e.type == "identify" else None for e in batch]
    if not any(contents):
        return list(batch), list(found)
    by_source: dict[int, set[int]] = {}
    for event, ident, content in zip(batch, found, contents, strict=True):
        if content is not None and not ident.created:
            by_source.setdefault(event.source_id, set()).add(ident.profile_id)
    stored: set[tuple[int, int, str]] = set()
    columns = ["profile_id", "message_id"]
    for source_id, profile_ids in by_source.items():
        for pid, message_id in select_in(
            conn,
            events,
            columns,
            "profile_id",
            sorted(profile_ids),
            source_id=source_id,
            type="identify",
        ):
            if (held := row_hash(message_id)) is not None:
                stored.add((int(pid), source_id, held))
    kept_events: list[CanonicalEvent] = []
    kept_found: list[EventIdentity] = []
    for event, ident, content in zip(batch, found, contents, strict=True):
        if content is not None:
            key = (ident.profile_id, event.source_id, content)
            if key in stored:
                continue
            stored.add(key)
        kept_events.append(event)
        kept_found.append(ident)
    return kept_events, kept_found


def trait_updates(event: CanonicalEvent) -> dict[str, Any]:
    """Traits an event sets on its profile (identify only, as in Segment)."""
    if event.type != "identify":
        return {}
    return {canonical_trait_name(k): v for k, v in event.traits.items()}


def apply_events(
    conn: Connection, batch: Sequence[CanonicalEvent], found: Sequence[EventIdentity]
) -> None:
    """Write resolved events, their trait updates and profile activity times."""
    if not batch:
        return
    now = utcnow()
    event_rows: list[dict[str, Any]] = []
    latest: dict[tuple[int, str], dict[str, Any]] = {}
    created: set[int] = set()
    span: dict[int, tuple[datetime, datetime]] = {}
    for event, ident in zip(batch, found, strict=True):
        pid = ident.profile_id
        event_rows.append(
            {
                "profile_id": pid,
                "source_id": event.source_id,
                "message_id": event.message_id,
                "type": event.type,
                "name": event.name,
                "properties": event.properties or None,
                "traits": event.traits or None,
                "context": event.context or None,
                "user_id": event.user_id,
                "anonymous_id": event.anonymous_id,
                "issues": ident.issues or None,
                "timestamp": event.timestamp,
                "received_at": event.received_at,
                "inbox_id": event.inbox_id,
            }
        )
        for name, value in trait_updates(event).items():
            current = latest.get((pid, name))
            if current is None or event.timestamp >= current["event_time"]:
                latest[(pid, name)] = {
                    "profile_id": pid,
                    "name": name,
                    "value": value,
                    "source_id": event.source_id,
                    "event_time": event.timestamp,
                    "updated_at": now,
                }
        if ident.created:  # new profiles were inserted with their times
            created.add(pid)
        else:
            first, last = span.get(pid, (event.timestamp, event.timestamp))
            span[pid] = (min(first, event.timestamp), max(last, event.timestamp))
    bulk_insert(conn, events, event_rows)
    # A profile created by this batch has no stored traits yet: plain inserts.
    fresh = [row for (pid, _), row in latest.items() if pid in created]
    bulk_insert(conn, traits, fresh)
    # Elsewhere a later-arriving but older event never overwrites a newer value.
    older = [row for (pid, _), row in latest.items() if pid not in created]
    bulk_upsert_newer(conn, traits, older, key=("profile_id", "name"), time_column="event_time")
    if span:
        _widen_seen(conn, span)


def _widen_seen(conn: Connection, span: dict[int, tuple[datetime, datetime]]) -> None:
    """Move each profile's first and last seen times out to cover its events."""
    # Driver-level statements: SQLAlchemy's per-row executemany cost more than the update.
    if conn.dialect.name == "sqlite":
        rows = []
        for pid, (first, last) in span.items():
            f, la = sqlite_datetime(first), sqlite_datetime(last)
            rows.append((f, f, la, la, pid))
        conn.exec_driver_sql(_WIDEN_SEEN_SQLITE, rows)
        return
    # PostgreSQL: one statement over arrays instead of one UPDATE per profile.
    ids, firsts, lasts = zip(*((pid, f, la) for pid, (f, la) in span.items()), strict=True)
    conn.exec_driver_sql(_WIDEN_SEEN_POSTGRESQL, (list(ids), list(firsts), list(lasts)))

_WIDEN_SEEN_SQLITE = (
    "UPDATE profiles SET "
    "first_seen_at = CASE WHEN first_seen_at > ? THEN ? ELSE first_seen_at END, "
    "last_seen_at = CASE WHEN last_seen_at < ? THEN ? ELSE last_seen_at END "
    "WHERE id = ?"
)
_WIDEN_SEEN_POSTGRESQL = (
    "UPDATE profiles AS p SET "
    "first_seen_at = CASE WHEN p.first_seen_at > v.first THEN v.first ELSE p.first_seen_at END, "
    "last_seen_at = CASE WHEN p.last_seen_at < v.last THEN v.last ELSE p.last_seen_at END "
    "FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[]) AS v(id, first, last) "
    "WHERE p.id = v.id"
)
