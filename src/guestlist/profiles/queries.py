"""Reading profiles: search, one profile in full, its events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, String, cast, exists, or_, select

from guestlist.identity.normalize import InvalidIdentifier, normalize
from guestlist.store.tables import events, identifiers, profile_merges, profiles, sources, traits

SUMMARY_TRAITS = ("email", "phone", "first_name", "last_name", "name")


class BadQuery(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def search_profiles(
    conn: Connection,
    *,
    email: str | None = None,
    phone: str | None = None,
    external_id: str | None = None,
    user_id: str | None = None,
    q: str | None = None,
    region: str = "US",
    after_id: int | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Live profiles matching every filter given, in id order after `after_id`
    (merged-away and erased profiles are not live)."""
    query = select(profiles.c.id).where(
        profiles.c.merged_into.is_(None), profiles.c.erased_at.is_(None)
    )
    for kind, raw, field in (
        ("email", email, "email"),
        ("phone", phone, "phone"),
        ("external", external_id, "external_id"),
        ("user_id", user_id, "user_id"),
    ):
        if raw is None:
            continue
        try:
            key = normalize(kind, raw, region).key
        except InvalidIdentifier as exc:
            raise BadQuery(field, str(exc)) from None
        query = query.where(
            exists().where(
                identifiers.c.profile_id == profiles.c.id,
                identifiers.c.kind == kind,
                identifiers.c.key == key,
            )
        )
    if q:
        pattern = f"%{q.strip().lower()}%"
        query = query.where(
            or_(
                exists().where(
                    identifiers.c.profile_id == profiles.c.id,
                    identifiers.c.value.ilike(pattern),
                ),
                exists().where(
                    traits.c.profile_id == profiles.c.id,
                    traits.c.name.in_(SUMMARY_TRAITS),
                    cast(traits.c.value, String).ilike(pattern),
                ),
            )
        )
    if after_id is not None:
        query = query.where(profiles.c.id > after_id)
    ids = [int(i) for i in conn.scalars(query.order_by(profiles.c.id).limit(limit))]
    return summaries(conn, ids)


def summaries(conn: Connection, ids: list[int]) -> list[dict[str, Any]]:
    if not ids:
        return []
    rows = {
        int(r.id): {
            "id": int(r.id),
            "first_seen_at": r.first_seen_at,
            "last_seen_at": r.last_seen_at,
            "traits": {},
        }
        for r in conn.execute(select(profiles).where(profiles.c.id.in_(ids)))
    }
    for t in conn.execute(
        select(traits.c.profile_id, traits.c.name, traits.c.value).where(
            traits.c.profile_id.in_(ids), traits.c.name.in_(SUMMARY_TRAITS)
        )
    ):
        rows[int(t.profile_id)]["traits"][t.name] = t.value
    return [rows[i] for i in ids if i in rows]


def _source_names(conn: Connection) -> dict[int, str]:
    return {int(r.id): r.name for r in conn.execute(select(sources.c.id, sources.c.name))}


def get_profile(conn: Connection, profile_id: int, recent: int = 20) -> dict[str, Any] | None:
    row = conn.execute(select(profiles).where(profiles.c.id == profile_id)).first()
    if row is None:
        return None
    names = _source_names(conn)
    return {
        "id": int(row.id),
        "merged_into": row.merged_into,
        "erased_at": row.erased_at,  # set: a tombstone, the person's data was erased
        "created_at": row.created_at,
        "first_seen_at": row.first_seen_at,
        "last_seen_at": row.last_seen_at,
        "traits": {
            t.name: {
                "value": t.value,
                "source": names.get(t.source_id) if t.source_id else None,
                "event_time": t.event_time,
                "updated_at": t.updated_at,
            }
            for t in conn.execute(
                select(traits).where(traits.c.profile_id == profile_id).order_by(traits.c.name)
            )
        },
        "identifiers": [
            {
                "kind": i.kind,
                "value": i.value,
                "key": i.key,
                "source": names.get(i.source_id) if i.source_id else None,
                "first_seen_at": i.first_seen_at,
            }
            for i in conn.execute(
                select(identifiers)
                .where(identifiers.c.profile_id == profile_id)
                .order_by(identifiers.c.kind, identifiers.c.id)
            )
        ],
        "merges": [
            {
                "merged_profile_id": m.merged_profile_id,
                "reason": m.reason,
                "identifier_kind": m.identifier_kind,
                "identifier_key": m.identifier_key,
                "event_message_id": m.event_message_id,
                "merged_at": m.merged_at,
            }
            for m in conn.execute(
                select(profile_merges)
                .where(profile_merges.c.profile_id == profile_id)
                .order_by(profile_merges.c.id)
            )
        ],
        "recent_events": profile_events(conn, profile_id, limit=recent, names=names),
    }


def profile_events(
    conn: Connection,
    profile_id: int,
    *,
    before_id: int | None = None,
    limit: int = 50,
    type_: str | None = None,
    name: str | None = None,
    names: dict[int, str] | None = None,
) -> list[dict[str, Any]]:
    """Newest first (by event time, then id)."""
    names = names if names is not None else _source_names(conn)
    query = select(events).where(events.c.profile_id == profile_id)
    if before_id is not None:
        query = query.where(events.c.id < before_id)
    if type_:
        query = query.where(events.c.type == type_)
    if name:
        query = query.where(events.c.name == name)
    query = query.order_by(events.c.id.desc()).limit(limit)
    return [_event(e, names) for e in conn.execute(query)]


def _event(e: Any, names: dict[int, str]) -> dict[str, Any]:
    timestamp: datetime = e.timestamp
    return {
        "id": int(e.id),
        "type": e.type,
        "name": e.name,
        "message_id": e.message_id,
        "source": names.get(e.source_id),
        "timestamp": timestamp,
        "received_at": e.received_at,
        "user_id": e.user_id,
        "anonymous_id": e.anonymous_id,
        "traits": e.traits,
        "properties": e.properties,
        "context": e.context,
        "issues": e.issues,
    }
