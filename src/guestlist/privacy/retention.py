"""Retention (compliance P-4): raw inbox payloads go after a period; profiles without
activity or consent are flagged for review.

**Inbox purge.** An envelope is purged once it is `processed` and was received more
than `inbox_retention_days` ago. Nothing else is touched: a `pending` envelope has not
been applied yet and a `failed` one is waiting for someone to look at it, so purging
either would lose data that was acknowledged (2xx) but never applied; `erased` ones
are empty already. What purging does depends on the idempotency key:

- with a key (a vendor's delivery id): the row stays, with an empty body, no headers
  and status `purged`. The inbox's unique index on (source, idempotency key) is what
  recognises a redelivered webhook (`inbox.store.accept` inserts with ON CONFLICT DO
  NOTHING); the events table would not catch every case (a vendor payload without a
  stable message id gets one made from the inbox row's id). Deleting the row would let
  a late redelivery — or a vendor replaying its history — be stored and applied again,
  so its key is kept, exactly as erasure does.
- without a key (tracking API calls, imports): nothing de-duplicates on the row, so it
  is deleted. Those events are de-duplicated by (source, messageId) in `events`.

Rows go in batches of `BATCH` ids, one short transaction each, so SQLite's single
write lock is never held for long and capture keeps answering.

**Review flags.** A live profile is flagged (`review_flagged_at`, `review_reason`) when,
for `inactive_profile_review_days`, it has had no event (`last_seen_at`, the latest
event time), no trait change (`traits.event_time`) and no consent record
(`consent_records.event_time`), and holds no consent that is granted now (unexpired).
Flagging is idempotent (a flagged profile keeps its first `review_flagged_at`); a run
clears the flag of a profile that became active, got consent, was merged away or
erased; and the review list re-checks activity when it is read, so a customer who came
back never shows as inactive in between runs. Deciding what to do with a flagged
profile (erase it, or keep it with a reason) stays with the shop.

Each run writes one audit entry per step (`privacy.inbox_purged`,
`privacy.review_flagged`) with the counts, not one per row or profile (P-6). A dry run
counts and writes nothing. `privacy.retention` runs daily (guestlist.jobs.schedule);
`guestlist privacy purge` runs it now.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import (
    ColumnElement,
    Connection,
    CursorResult,
    Engine,
    and_,
    delete,
    exists,
    func,
    not_,
    or_,
    select,
    update,
)

from guestlist.audit import SYSTEM, audit
from guestlist.jobs.registry import job_handler
from guestlist.jobs.schedule import recurring
from guestlist.settings import get_settings
from guestlist.store.engine import read_connection
from guestlist.store.tables import consent_records, consent_state, inbox, profiles, traits
from guestlist.store.types import utcnow

RETENTION_JOB = "privacy.retention"
# Ids per statement (and per transaction): short write locks on SQLite.
BATCH = 5000
PURGED = "purged"


def _iso(value: datetime) -> str:
    return value.isoformat()


def _count(result: CursorResult[Any]) -> int:
    return int(result.rowcount or 0)


class Audited(Protocol):
    def as_dict(self) -> dict[str, Any]: ...


def audited(
    engine: Engine, action: str, actor: str, result: Audited, work: Callable[[], None]
) -> None:
    """Run `work` (which fills in `result`), then write one audit entry with the counts.

    The work commits batch by batch; when a batch fails, the entry still says what was
    done before it, and the error, and the exception goes on.
    """
    try:
        work()
    except Exception as exc:
        detail = {**result.as_dict(), "error": f"{type(exc).__name__}: {exc}"[:500]}
        with engine.begin() as conn:
            audit(conn, action, actor=actor, detail=detail)
        raise
    with engine.begin() as conn:
        audit(conn, action, actor=actor, detail=result.as_dict())


# -- the inbox ----------------------------------------------------------------------


@dataclass
class InboxPurge:
    """What an inbox purge did (or, in a dry run, would do)."""

    retention_days: int
    cutoff: datetime  # envelopes received before this were purged
    dry_run: bool
    deleted: int = 0  # rows without an idempotency key: gone
    emptied: int = 0  # rows with one: body and headers gone, key kept, status purged

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cutoff": _iso(self.cutoff)}


def _purgeable(cutoff: datetime) -> ColumnElement[bool]:
    # Only `processed`: never pending or failed envelopes (not applied yet).
    return and_(inbox.c.status == "processed", inbox.c.received_at < cutoff)


def purge_inbox(
    engine: Engine,
    *,
    retention_days: int,
    now: datetime | None = None,
    dry_run: bool = False,
    actor: str = SYSTEM,
    batch: int = BATCH,
) -> InboxPurge:
    """Purge processed envelopes received more than `retention_days` ago (see above)."""
    now = now or utcnow()
    result = InboxPurge(retention_days, now - timedelta(days=retention_days), dry_run)
    if dry_run:
        with read_connection(engine) as conn:
            keyed = inbox.c.idempotency_key.is_not(None)
            for has_key, count in conn.execute(
                select(keyed, func.count()).where(_purgeable(result.cutoff)).group_by(keyed)
            ):
                if has_key:
                    result.emptied = int(count)
                else:
                    result.deleted = int(count)
        return result
    audited(
        engine,
        "privacy.inbox_purged",
        actor,
        result,
        lambda: _purge_inbox_batches(engine, result, batch),
    )
    return result


def _purge_inbox_batches(engine: Engine, result: InboxPurge, batch: int) -> None:
    after = 0
    while True:
        with engine.begin() as conn:
            rows = conn.execute(
                select(inbox.c.id, inbox.c.idempotency_key.is_not(None).label("keyed"))
                .where(_purgeable(result.cutoff), inbox.c.id > after)
                .order_by(inbox.c.id)
                .limit(batch)
            ).all()
            if not rows:
                return
            after = int(rows[-1].id)
            keyless = [int(r.id) for r in rows if not r.keyed]
            keyed = [int(r.id) for r in rows if r.keyed]
            # The status is checked again: erasure may have emptied a row meanwhile.
            if keyless:
                result.deleted += _count(
                    conn.execute(
                        delete(inbox).where(inbox.c.id.in_(keyless), _purgeable(result.cutoff))
                    )
                )
            if keyed:
                result.emptied += _count(
                    conn.execute(
                        update(inbox)
                        .where(inbox.c.id.in_(keyed), _purgeable(result.cutoff))
                        .values(body=b"", headers={}, status=PURGED)
                    )
                )
        if len(rows) < batch:
            return


# -- review flags -------------------------------------------------------------------


@dataclass
class ReviewFlags:
    """What a flagging run did (or, in a dry run, would do)."""

    review_days: int
    cutoff: datetime  # no activity since this time
    dry_run: bool
    flagged: int = 0  # newly flagged
    cleared: int = 0  # flags removed: active again, consented, merged or erased
    flagged_total: int = 0  # flagged after the run

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cutoff": _iso(self.cutoff)}


def inactive(cutoff: datetime, now: datetime) -> ColumnElement[bool]:
    """Profiles (the `profiles` row in the query) with no activity since `cutoff` and
    no consent granted at `now`: what P-4 asks to review."""
    return and_(
        profiles.c.merged_into.is_(None),
        profiles.c.erased_at.is_(None),
        profiles.c.last_seen_at < cutoff,
        not_(exists().where(traits.c.profile_id == profiles.c.id, traits.c.event_time >= cutoff)),
        not_(
            exists().where(
                consent_records.c.profile_id == profiles.c.id,
                consent_records.c.event_time >= cutoff,
            )
        ),
        not_(
            exists().where(
                consent_state.c.profile_id == profiles.c.id,
                consent_state.c.status == "granted",
                or_(consent_state.c.expires_at.is_(None), consent_state.c.expires_at > now),
            )
        ),
    )


def review_reason(review_days: int) -> str:
    return (
        f"no event, trait change or consent record for {review_days} days "
        "and no consent granted (P-4)"
    )


def flag_inactive_profiles(
    engine: Engine,
    *,
    review_days: int,
    now: datetime | None = None,
    dry_run: bool = False,
    actor: str = SYSTEM,
    batch: int = BATCH,
) -> ReviewFlags:
    """Flag live profiles inactive for `review_days`, clear flags no longer true."""
    now = now or utcnow()
    result = ReviewFlags(review_days, now - timedelta(days=review_days), dry_run)
    idle = inactive(result.cutoff, now)
    flagged = profiles.c.review_flagged_at.is_not(None)
    if dry_run:
        with read_connection(engine) as conn:
            count = select(func.count()).select_from(profiles)
            result.flagged = int(conn.scalar(count.where(not_(flagged), idle)) or 0)
            result.cleared = int(conn.scalar(count.where(flagged, not_(idle))) or 0)
            result.flagged_total = int(conn.scalar(count.where(flagged)) or 0)
        result.flagged_total += result.flagged - result.cleared
        return result
    with read_connection(engine) as conn:
        top = int(conn.scalar(select(func.max(profiles.c.id))) or 0)
    reason = review_reason(review_days)

    def flag() -> None:
        for low in range(0, top + 1, batch):
            in_range = and_(profiles.c.id >= low, profiles.c.id < low + batch)
            with engine.begin() as conn:
                result.flagged += _count(
                    conn.execute(
                        update(profiles)
                        .where(in_range, not_(flagged), idle)
                        .values(review_flagged_at=now, review_reason=reason)
                    )
                )
                result.cleared += _count(
                    conn.execute(
                        update(profiles)
                        .where(in_range, flagged, not_(idle))
                        .values(review_flagged_at=None, review_reason=None)
                    )
                )
        with read_connection(engine) as conn:
            result.flagged_total = int(
                conn.scalar(select(func.count()).select_from(profiles).where(flagged)) or 0
            )

    audited(engine, "privacy.review_flagged", actor, result, flag)
    return result


@dataclass(frozen=True)
class ReviewItem:
    """A profile awaiting review, with what the shop needs to decide."""

    profile_id: int
    flagged_at: datetime
    reason: str | None
    created_at: datetime
    last_seen_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "profile_id": self.profile_id,
            "flagged_at": _iso(self.flagged_at),
            "reason": self.reason,
            "created_at": _iso(self.created_at),
            "last_seen_at": _iso(self.last_seen_at),
        }


def review_queue(
    conn: Connection,
    *,
    review_days: int,
    now: datetime | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> list[ReviewItem]:
    """Flagged profiles by id (`after_id` continues a page), leaving out any that
    became active since the run that flagged them."""
    now = now or utcnow()
    query = (
        select(
            profiles.c.id,
            profiles.c.review_flagged_at,
            profiles.c.review_reason,
            profiles.c.created_at,
            profiles.c.last_seen_at,
        )
        .where(
            profiles.c.review_flagged_at.is_not(None),
            inactive(now - timedelta(days=review_days), now),
        )
        .order_by(profiles.c.id)
        .limit(limit)
    )
    if after_id is not None:
        query = query.where(profiles.c.id > after_id)
    return [
        ReviewItem(int(r.id), r.review_flagged_at, r.review_reason, r.created_at, r.last_seen_at)
        for r in conn.execute(query)
    ]


# -- the daily job ------------------------------------------------------------------


@dataclass
class RetentionRun:
    inbox: InboxPurge
    review: ReviewFlags

    def as_dict(self) -> dict[str, Any]:
        return {"inbox": self.inbox.as_dict(), "review": self.review.as_dict()}


def run_retention(
    engine: Engine,
    *,
    inbox_retention_days: int,
    review_days: int,
    now: datetime | None = None,
    dry_run: bool = False,
    actor: str = SYSTEM,
) -> RetentionRun:
    """The inbox purge, then the review flags."""
    now = now or utcnow()
    return RetentionRun(
        purge_inbox(
            engine, retention_days=inbox_retention_days, now=now, dry_run=dry_run, actor=actor
        ),
        flag_inactive_profiles(
            engine, review_days=review_days, now=now, dry_run=dry_run, actor=actor
        ),
    )


@recurring(RETENTION_JOB, every=timedelta(days=1))
@job_handler(RETENTION_JOB)
def retention_job(engine: Engine, args: dict[str, Any]) -> None:
    """P-4, daily: purge the inbox and refresh the review flags, as the settings say."""
    settings = get_settings()
    run_retention(
        engine,
        inbox_retention_days=settings.inbox_retention_days,
        review_days=settings.inactive_profile_review_days,
    )
