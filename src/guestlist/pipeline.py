"""Processing: inbox envelopes → parse → resolve → apply, one transaction per batch.

An envelope is marked processed in the same transaction that applies its events, so a
worker killed at any moment leaves it pending and the next run redoes it whole; the
(source, messageId) check makes a redone event count once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy import Connection, Engine, select, text, update

# Imported for what they register: the tracking parsers, the segment jobs.
import guestlist.capture
import guestlist.connectors
import guestlist.segments.service
from guestlist.age.events import plan_age, record_age
from guestlist.canonical import CanonicalEvent
from guestlist.consent.events import plan_consent, record_consent
from guestlist.consent.gpc import plan_gpc, record_gpc
from guestlist.identity.graph import BatchResolver, EventIdentity, Extracted
from guestlist.identity.rules import load_rules
from guestlist.inbox.parsers import parse_envelope
from guestlist.inbox.store import InboxEnvelope
from guestlist.privacy.suppression import screen_batch
from guestlist.profiles.apply import apply_events, drop_reimported, drop_seen
from guestlist.runtime import collector_paused
from guestlist.segments.membership import refresh_profiles
from guestlist.store.planner_stats import analyze_stale_tables
from guestlist.store.tables import inbox, sources
from guestlist.store.types import utcnow

log = structlog.get_logger(__name__)

guestlist.connectors.load_all()  # each platform's parser for its envelopes

# Identity resolution reads then writes the graph; one processor at a time keeps two
# workers from creating the same person twice. Other jobs still run in parallel.
PIPELINE_LOCK = 0x6775_6573_746C  # "guestl"
# One transaction takes envelopes up to about this many body bytes (at least one).
BATCH_BYTES = 4 << 20
# Tables whose lookups the pipeline depends on; see planner_stats.
WRITTEN_TABLES = ("inbox", "events", "identifiers", "profiles", "traits")


def _pending(conn: Connection, limit: int, ids: Sequence[int] | None) -> list[InboxEnvelope]:
    query = (
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
        .where(inbox.c.status == "pending")
        .order_by(inbox.c.id)
        .limit(limit)
    )
    if ids is not None:
        query = query.where(inbox.c.id.in_(ids))
    taken: list[InboxEnvelope] = []
    size = 0
    for r in conn.execute(query):
        if taken and size + len(r.body) > BATCH_BYTES:
            break
        size += len(r.body)
        taken.append(
            InboxEnvelope(
                id=int(r.id),
                source_id=int(r.source_id),
                kind=r.kind,
                headers=r.headers,
                body=r.body,
                received_at=r.received_at,
                default_region=r.default_region,
            )
        )
    return taken


def process_events(
    conn: Connection,
    batch: Sequence[CanonicalEvent],
    *,
    request_headers: Mapping[int, Mapping[str, str]] | None = None,
    extracted: Extracted | None = None,
) -> int:
    """Resolve and apply canonical events not seen before; returns how many were new.

    `request_headers` are the headers kept with each event's inbox envelope, by inbox
    id: what only the HTTP request showed (the Global Privacy Control header, P-5).
    `extracted`: identifiers already extracted from some of the events.
    """
    fresh = drop_seen(conn, batch)
    if fresh:
        found = BatchResolver(conn, load_rules()).resolve(fresh, extracted)
        fresh, found = drop_reimported(conn, fresh, found)
        screen_batch(conn, fresh, found)  # P-3: erased addresses stay opted out
        # Before the events are written: a statement that cannot be recorded becomes
        # an issue on its event. Age first, so that a batch's consent is recorded with
        # the age check that gated it (SMS-6a) and where it places the person (E-3).
        record_age(conn, plan_age(fresh, found), found)
        record_consent(conn, plan_consent(fresh, found), found)
        record_gpc(conn, plan_gpc(fresh, found, request_headers or {}), found)  # P-5
        apply_events(conn, fresh, found)
        # Real-time segments: the batch's profiles, after everything above is written.
        refresh_profiles(conn, {ident.profile_id for ident in found}, reason="event")
    return len(fresh)


@dataclass
class ParsedEnvelope:
    """What parsing a stored envelope gives, and its events' identifiers, worked out
    ahead: an import's reader process does so for what it stores, so the storing
    process need not do it again."""

    events: list[CanonicalEvent]
    identities: list[EventIdentity]  # extract_identifiers of each event


Parsed = Mapping[int, ParsedEnvelope]  # by inbox id


def _process(
    conn: Connection, envelopes: Sequence[InboxEnvelope], parsed: Parsed | None = None
) -> None:
    batch: list[CanonicalEvent] = []
    extracted: dict[int, EventIdentity] = {}
    for env in envelopes:
        known = parsed.get(env.id) if parsed else None
        if known is None:
            batch.extend(parse_envelope(env))
            continue
        batch.extend(known.events)
        for event, identity in zip(known.events, known.identities, strict=True):
            extracted[id(event)] = identity
    process_events(
        conn,
        batch,
        request_headers={env.id: env.headers for env in envelopes},
        extracted=extracted,
    )
    conn.execute(
        update(inbox)
        .where(inbox.c.id.in_([e.id for e in envelopes]))
        .values(status="processed", processed_at=utcnow(), attempts=inbox.c.attempts + 1)
    )


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PIPELINE_LOCK})


def process_pending(engine: Engine, limit: int = 200, parsed: Parsed | None = None) -> int:
    """Process up to `limit` pending envelopes; returns how many were taken.

    `parsed` holds what parsing some of them gives, if known (see `Parsed`). Only this
    first try uses it: resolution fills those objects in, so after a failed try the
    envelopes are parsed again from the store.
    """
    analyze_stale_tables(engine, WRITTEN_TABLES)
    try:
        with collector_paused(), engine.begin() as conn:
            _lock(conn)
            envelopes = _pending(conn, limit, None)
            if not envelopes:
                return 0
            _process(conn, envelopes, parsed)
            return len(envelopes)
    except Exception:
        log.warning("inbox batch failed; retrying envelope by envelope", exc_info=True)
    return _process_one_by_one(engine, limit)


def _process_one_by_one(engine: Engine, limit: int) -> int:
    """After a failed batch: each envelope alone, so one bad one cannot block the rest."""
    with engine.begin() as conn:
        ids = [e.id for e in _pending(conn, limit, None)]
    for envelope_id in ids:
        try:
            with engine.begin() as conn:
                _lock(conn)
                envelopes = _pending(conn, 1, [envelope_id])
                if envelopes:
                    _process(conn, envelopes)
        except Exception as exc:
            log.error("inbox envelope failed", inbox_id=envelope_id, error=str(exc))
            with engine.begin() as conn:
                conn.execute(
                    update(inbox)
                    .where(inbox.c.id == envelope_id)
                    .values(
                        status="failed",
                        error=f"{type(exc).__name__}: {exc}"[:2000],
                        attempts=inbox.c.attempts + 1,
                    )
                )
    return len(ids)


def process_all(engine: Engine, batch_size: int = 200, parsed: Parsed | None = None) -> int:
    """Drain the inbox (tests, imports, `guestlist demo`)."""
    total = 0
    while n := process_pending(engine, batch_size, parsed):
        total += n
    return total
