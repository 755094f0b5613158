"""Access and portability (compliance P-1): everything held about a person, as JSON.

`export_profile` follows merges to the person an id stands for and gathers, for it and
every profile merged into it: the profile, identifiers, traits (value, source, time),
events, merges, consent records with their proof (the wording shown resolved from
`consent_texts`), current consent, age records and age state, the destinations holding
the person, the audit entries naming any of the profiles, and the rows of any other
profile-scoped table (so a table added later is exported without being named here).

An erased person's export holds the tombstone, the consent records reduced to their
hashes and proof (P-3a, marked `"reduced": true`, each with `"legal_hold": "held under
legal hold until DATE"`), `consent.legal_hold` saying until when the evidence is held
or when it was purged (`privacy.legal_hold`), and the audit entries.
Every export is recorded in the audit log (`profile.exported`, P-6).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, select

from guestlist.audit import SYSTEM, audit
from guestlist.consent.ledger import current_consent
from guestlist.privacy.erase import CONSENT_PERSONAL_COLUMNS, profile_group
from guestlist.privacy.legal_hold import checkpoints, held_evidence, hold_statement
from guestlist.settings import get_settings
from guestlist.store.tables import (
    age_records,
    age_state,
    audit_log,
    consent_records,
    consent_state,
    consent_texts,
    events,
    identifiers,
    profile_facts,
    profile_links,
    profile_merges,
    profile_scoped_tables,
    profiles,
    segment_changes,
    segment_memberships,
    segment_rechecks,
    segments,
    sources,
    traits,
)
from guestlist.store.types import utcnow

FORMAT = "guestlist.profile-export/1"
# Profile-scoped tables with a section of their own; any other one lands in `other_tables`.
_SECTIONS = {
    identifiers.name,
    traits.name,
    events.name,
    profile_merges.name,
    consent_records.name,
    consent_state.name,
    age_records.name,
    age_state.name,
    profile_links.name,
    segment_memberships.name,
    segment_changes.name,
    segment_rechecks.name,  # scheduling only: nothing about the person
    profile_facts.name,  # a copy of the sections above, kept for segment queries
}


def jsonable(value: Any) -> Any:
    """`value` with datetimes and dates as ISO 8601 strings, bytes as base64."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _rows(conn: Connection, table: Table, ids: Sequence[int], *order: Any) -> list[dict[str, Any]]:
    query = select(table).where(table.c.profile_id.in_(ids)).order_by(*order)
    return [dict(r) for r in conn.execute(query).mappings()]


def export_profile(
    conn: Connection,
    profile_id: int,
    *,
    actor: str = SYSTEM,
    legal_hold_days: int | None = None,
) -> dict[str, Any]:
    """Everything held about the person `profile_id` stands for (JSON-serialisable).

    Raises guestlist.privacy.erase.ProfileNotFound for an unknown id. Writes a
    `profile.exported` audit entry in the caller's transaction. `legal_hold_days`
    (default: the setting) dates the hold of an erased person's evidence (P-3a).
    """
    group = profile_group(conn, profile_id)
    ids = group.ids
    if legal_hold_days is None:
        legal_hold_days = get_settings().consent_legal_hold_days
    legal_hold = _legal_hold(conn, ids, timedelta(days=legal_hold_days))
    names = {int(r.id): r.name for r in conn.execute(select(sources.c.id, sources.c.name))}

    def source(source_id: Any) -> str | None:
        return None if source_id is None else names.get(int(source_id))

    tombstones = {
        int(r.id): r for r in conn.execute(select(profiles).where(profiles.c.id.in_(ids)))
    }
    live = tombstones[group.profile_id]
    slugs = {int(i): slug for i, slug in conn.execute(select(segments.c.id, segments.c.slug))}
    out: dict[str, Any] = {
        "format": FORMAT,
        "exported_at": utcnow(),
        "requested_id": profile_id,
        "profile": {
            "id": group.profile_id,
            "created_at": live.created_at,
            "first_seen_at": live.first_seen_at,
            "last_seen_at": live.last_seen_at,
            "erased_at": live.erased_at,
            "review_flagged_at": live.review_flagged_at,
            "review_reason": live.review_reason,
            "merged_profile_ids": ids[1:],
        },
        "identifiers": [
            {
                "kind": r["kind"],
                "value": r["value"],
                "key": r["key"],
                "source": source(r["source_id"]),
                "first_seen_at": r["first_seen_at"],
            }
            for r in _rows(conn, identifiers, ids, identifiers.c.kind, identifiers.c.id)
        ],
        "traits": [
            {
                "name": r["name"],
                "value": r["value"],
                "source": source(r["source_id"]),
                "event_time": r["event_time"],
                "updated_at": r["updated_at"],
            }
            for r in _rows(conn, traits, ids, traits.c.name)
        ],
        "events": [
            {
                **{k: v for k, v in r.items() if k not in ("profile_id", "source_id")},
                "source": source(r["source_id"]),
            }
            for r in _rows(conn, events, ids, events.c.timestamp, events.c.id)
        ],
        "merges": [
            {k: v for k, v in r.items() if k != "id"}
            for r in conn.execute(
                select(profile_merges)
                .where(
                    profile_merges.c.profile_id.in_(ids)
                    | profile_merges.c.merged_profile_id.in_(ids)
                )
                .order_by(profile_merges.c.id)
            ).mappings()
        ],
        "consent": {
            "records": _consent_records(conn, ids, source, legal_hold),
            "legal_hold": legal_hold,
            "state": [
                {
                    "channel": s.channel,
                    "purpose": s.purpose,
                    "identifier": s.identifier,
                    "status": s.status,
                    "kind": s.kind,
                    "event_time": s.event_time,
                    "expires_at": s.expires_at,
                    "record_id": s.record_id,
                }
                for pid in ids
                for s in current_consent(conn, pid)
            ],
        },
        "age": {
            "records": [
                {
                    **{k: v for k, v in r.items() if k != "source_id"},
                    "source": source(r["source_id"]),
                }
                for r in _rows(conn, age_records, ids, age_records.c.event_time, age_records.c.id)
            ],
            "state": _rows(conn, age_state, ids),
        },
        "destinations": [
            {
                "connection": r["connection"],
                "external_id": r["external_id"],
                "created_at": r["created_at"],
            }
            for r in _rows(conn, profile_links, ids, profile_links.c.id)
        ],
        "segments": {
            "memberships": [
                {
                    "segment": slugs.get(r["segment_id"]),
                    "entered_at": r["entered_at"],
                    "exited_at": r["exited_at"],
                }
                for r in _rows(conn, segment_memberships, ids, segment_memberships.c.id)
            ],
            "changes": [
                {
                    "segment": slugs.get(r["segment_id"]),
                    **{k: r[k] for k in ("change", "reason", "at")},
                }
                for r in _rows(conn, segment_changes, ids, segment_changes.c.id)
            ],
        },
        "other_tables": {
            table.name: _rows(conn, table, ids)
            for table in profile_scoped_tables()
            if table.name not in _SECTIONS
        },
        "audit": [
            {
                "id": int(r.id),
                "at": r.at,
                "actor": r.actor,
                "action": r.action,
                "profile_id": r.profile_id,
                "detail": r.detail,
                "reason": r.reason,
            }
            for r in conn.execute(
                select(audit_log).where(audit_log.c.profile_id.in_(ids)).order_by(audit_log.c.id)
            )
        ],
    }
    audit(
        conn,
        "profile.exported",
        actor=actor,
        profile_id=group.profile_id,
        detail={
            "requested_id": profile_id,
            "events": len(out["events"]),
            "consent_records": len(out["consent"]["records"]),
            "audit_entries": len(out["audit"]),
        },
    )
    result: dict[str, Any] = jsonable(out)
    return result


def _legal_hold(conn: Connection, ids: Sequence[int], hold: timedelta) -> dict[str, Any] | None:
    """P-3a: until when an erased person's evidence is held, or when it was purged."""
    held = held_evidence(conn, ids, hold)
    if held:
        until = max(h.held_until for h in held)
        return {"status": "held", "held_until": until, "statement": hold_statement(until)}
    purged = checkpoints(conn, ids)
    if purged:
        last = max(c.purged_at for c in purged)
        return {
            "status": "purged",
            "purged_at": last,
            "statement": f"purged after its legal hold on {last.date().isoformat()}",
            "chains": [
                {"chain_id": c.chain_id, "last_seq": c.last_seq, "head_hash": c.head_hash}
                for c in purged
            ],
        }
    return None


def _consent_records(
    conn: Connection, ids: Sequence[int], source: Any, legal_hold: dict[str, Any] | None
) -> list[dict[str, Any]]:
    rows = _rows(conn, consent_records, ids, consent_records.c.chain_id, consent_records.c.seq)
    hashes = sorted({r["text_hash"] for r in rows if r["text_hash"]})
    texts = {
        r.hash: r.text
        for r in conn.execute(
            select(consent_texts.c.hash, consent_texts.c.text).where(
                consent_texts.c.hash.in_(hashes)
            )
        )
    }
    return [
        {
            **{k: v for k, v in r.items() if k != "source_id"},
            "source": source(r["source_id"]),
            "text": texts.get(r["text_hash"]) if r["text_hash"] else None,
            # P-3a: erased, kept as evidence with the hashed identifier and the proof.
            "reduced": reduced,
            "legal_hold": legal_hold["statement"] if reduced and legal_hold else None,
        }
        for r in rows
        for reduced in [all(r[name] is None for name in CONSENT_PERSONAL_COLUMNS)]
    ]
