"""Legal hold (compliance P-3a): an erased person's consent evidence is kept for a
period after the last message, then purged.

Erasure (`privacy.erase`) reduces a person's consent records to the hashed identifier
and the proof. Those records are held for `consent_legal_hold_days` (default 1461 days,
4 years: the TCPA's limitation period; GDPR Art. 17(3)(e)) after the last message, then
this module deletes them. The suppression hashes (P-3) are never touched: an erased
opt-out stays suppressed for ever.

**When the hold ends.** guestlist does not send messages itself and keeps no record of
sends yet, so "the last message" is taken as the latest of: the erasure (nothing is
sent to a person after it), the last consent record's event time and its received time.
The evidence is held while `now <= held_until = that + the period` and purged by the
first run after — the same "older than the period" rule as the inbox purge. When sync
records sends, the last send to the person belongs in that maximum.

**The hash chain.** Each record links to the previous record of its chain (C-2a), and
`verify_ledger` checks every chain from its first record. Deleting some records of a
chain would break it; deleting whole chains does not, since every chain left still
starts at seq 1. A chain always belongs to one person (it is keyed by the profile it
was written for, and merges move all of a profile's records together), and the hold
is per person, so the purge takes whole chains: all of the erased person's. A chain
that also held records of someone else would be skipped and logged, never cut. Where
each chain ended is kept in `consent_chain_checkpoints` (chain, last seq, head hash,
record count, held until, purged at): the removal is itself on record, and an auditor
holding an older copy of the ledger, or the `consent.recorded` audit entries (which
carry each record's hash), can account for every chain that is no longer there.

One audit entry per run (`privacy.legal_hold_purged`) holds the counts (P-6). A dry run
counts and writes nothing. `privacy.legal_hold` runs daily (guestlist.jobs.schedule);
`guestlist privacy purge` runs it now. Exports report held evidence as "held under
legal hold until DATE" (`hold_statement`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, delete, func, select

from guestlist.audit import SYSTEM
from guestlist.jobs.registry import job_handler
from guestlist.jobs.schedule import recurring
from guestlist.privacy.retention import audited
from guestlist.settings import get_settings
from guestlist.store.engine import read_connection
from guestlist.store.tables import consent_chain_checkpoints, consent_records, profiles
from guestlist.store.types import utcnow

log = structlog.get_logger(__name__)

LEGAL_HOLD_JOB = "privacy.legal_hold"
# Erased people per transaction: each has a handful of records.
BATCH = 500


@dataclass(frozen=True)
class HeldEvidence:
    """An erased person's consent evidence still in the ledger."""

    profile_id: int
    records: int
    last_message_at: datetime  # the latest of the erasure and the records' times
    held_until: datetime

    def expired(self, now: datetime) -> bool:
        return self.held_until < now


def hold_statement(held_until: datetime) -> str:
    """How an export reports held evidence."""
    return f"held under legal hold until {held_until.date().isoformat()}"


def held_evidence(
    conn: Connection, profile_ids: Sequence[int], hold: timedelta
) -> list[HeldEvidence]:
    """The held evidence of these profiles (those erased and with records left)."""
    if not profile_ids:
        return []
    rows = conn.execute(
        select(
            consent_records.c.profile_id,
            profiles.c.erased_at,
            func.max(consent_records.c.event_time).label("last_event"),
            func.max(consent_records.c.received_at).label("last_received"),
            func.count().label("records"),
        )
        .join(profiles, profiles.c.id == consent_records.c.profile_id)
        .where(
            consent_records.c.profile_id.in_(list(profile_ids)), profiles.c.erased_at.is_not(None)
        )
        .group_by(consent_records.c.profile_id, profiles.c.erased_at)
        .order_by(consent_records.c.profile_id)
    )
    held = []
    for r in rows:
        last = max(r.erased_at, r.last_event, r.last_received)
        held.append(HeldEvidence(int(r.profile_id), int(r.records), last, last + hold))
    return held


@dataclass(frozen=True)
class ChainCheckpoint:
    chain_id: int
    profile_id: int
    last_seq: int
    head_hash: str
    records: int
    held_until: datetime
    purged_at: datetime


def checkpoints(conn: Connection, profile_ids: Sequence[int]) -> list[ChainCheckpoint]:
    """Where the purged chains of these profiles ended."""
    if not profile_ids:
        return []
    return [
        ChainCheckpoint(
            int(r.chain_id),
            int(r.profile_id),
            int(r.last_seq),
            r.head_hash,
            int(r.records),
            r.held_until,
            r.purged_at,
        )
        for r in conn.execute(
            select(consent_chain_checkpoints)
            .where(consent_chain_checkpoints.c.profile_id.in_(list(profile_ids)))
            .order_by(consent_chain_checkpoints.c.chain_id)
        )
    ]


def checkpoint_count(conn: Connection) -> int:
    return int(conn.scalar(select(func.count()).select_from(consent_chain_checkpoints)) or 0)


@dataclass
class LegalHoldPurge:
    """What a purge did (or, in a dry run, would do)."""

    hold_days: int
    now: datetime
    dry_run: bool
    profiles: int = 0  # people whose evidence was purged
    chains: int = 0
    records: int = 0
    skipped_chains: int = 0  # chains shared with another profile: left whole
    still_held: int = 0  # people whose evidence is still under hold
    next_expiry: datetime | None = None  # the earliest `held_until` still running

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["now"] = self.now.isoformat()
        data["next_expiry"] = None if self.next_expiry is None else self.next_expiry.isoformat()
        return data


def _erased_ids(engine: Engine) -> list[int]:
    with read_connection(engine) as conn:
        return [
            int(i)
            for i in conn.scalars(
                select(profiles.c.id)
                .where(profiles.c.erased_at.is_not(None))
                .order_by(profiles.c.id)
            )
        ]


def _batches(ids: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def purge_expired_evidence(
    engine: Engine,
    *,
    hold_days: int,
    now: datetime | None = None,
    dry_run: bool = False,
    actor: str = SYSTEM,
    batch: int = BATCH,
) -> LegalHoldPurge:
    """Delete the consent evidence of erased people whose legal hold has run out."""
    now = now or utcnow()
    hold = timedelta(days=hold_days)
    result = LegalHoldPurge(hold_days, now, dry_run)
    ids = _erased_ids(engine)

    def purge() -> None:
        for chunk in _batches(ids, batch):
            if dry_run:
                with read_connection(engine) as conn:
                    _purge_batch(conn, chunk, hold, now, result, write=False)
            else:
                with engine.begin() as conn:
                    _purge_batch(conn, chunk, hold, now, result, write=True)

    if dry_run:
        purge()
    else:
        audited(engine, "privacy.legal_hold_purged", actor, result, purge)
    return result


def _purge_batch(
    conn: Connection,
    ids: Sequence[int],
    hold: timedelta,
    now: datetime,
    result: LegalHoldPurge,
    *,
    write: bool,
) -> None:
    for evidence in held_evidence(conn, ids, hold):
        if not evidence.expired(now):
            result.still_held += 1
            if result.next_expiry is None or evidence.held_until < result.next_expiry:
                result.next_expiry = evidence.held_until
            continue
        chains = _chains(conn, evidence.profile_id)
        whole = [c for c in chains if not c.shared]
        result.skipped_chains += len(chains) - len(whole)
        for chain in chains:
            if chain.shared:
                log.warning(
                    "privacy.legal_hold_chain_shared",
                    chain_id=chain.chain_id,
                    profile_id=evidence.profile_id,
                )
        if not whole:
            continue
        result.profiles += 1
        result.chains += len(whole)
        result.records += sum(c.records for c in whole)
        if not write:
            continue
        conn.execute(
            consent_chain_checkpoints.insert(),
            [
                {
                    "chain_id": c.chain_id,
                    "profile_id": evidence.profile_id,
                    "last_seq": c.last_seq,
                    "head_hash": c.head_hash,
                    "records": c.records,
                    "held_until": evidence.held_until,
                    "purged_at": now,
                }
                for c in whole
            ],
        )
        conn.execute(
            delete(consent_records).where(
                consent_records.c.chain_id.in_([c.chain_id for c in whole])
            )
        )


@dataclass(frozen=True)
class _Chain:
    chain_id: int
    last_seq: int
    head_hash: str
    records: int
    shared: bool  # holds records of another profile too


def _chains(conn: Connection, profile_id: int) -> list[_Chain]:
    """The chains holding the profile's records, each with every record it holds."""
    chain_ids = list(
        conn.scalars(
            select(consent_records.c.chain_id)
            .where(consent_records.c.profile_id == profile_id)
            .distinct()
        )
    )
    out = []
    for chain_id in sorted(int(c) for c in chain_ids):
        rows = conn.execute(
            select(
                consent_records.c.seq, consent_records.c.record_hash, consent_records.c.profile_id
            )
            .where(consent_records.c.chain_id == chain_id)
            .order_by(consent_records.c.seq)
        ).all()
        out.append(
            _Chain(
                chain_id,
                int(rows[-1].seq),
                rows[-1].record_hash,
                len(rows),
                any(int(r.profile_id) != profile_id for r in rows),
            )
        )
    return out


@recurring(LEGAL_HOLD_JOB, every=timedelta(days=1))
@job_handler(LEGAL_HOLD_JOB)
def legal_hold_job(engine: Engine, args: dict[str, Any]) -> None:
    """P-3a, daily: purge the evidence whose legal hold has run out."""
    purge_expired_evidence(engine, hold_days=get_settings().consent_legal_hold_days)
