"""Retention (P-4) on SQLite and PostgreSQL: processed inbox payloads purged after the
period and nothing unprocessed ever; inactive profiles flagged and unflagged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select, update

from guestlist.audit import audit_entries
from guestlist.inbox.store import accept
from guestlist.privacy.erase import erase_profile
from guestlist.privacy.retention import (
    flag_inactive_profiles,
    purge_inbox,
    review_queue,
    review_reason,
    run_retention,
)
from guestlist.store.engine import read_connection
from guestlist.store.tables import events, inbox, profiles
from tests.privacy.retention_data import customer, envelope, inbox_row, source

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAYS = 30
CUTOFF = NOW - timedelta(days=DAYS)
OLD = CUTOFF - timedelta(days=1)
REVIEW_DAYS = 1095
LONG_AGO = NOW - timedelta(days=REVIEW_DAYS + 30)
LATELY = NOW - timedelta(days=20)


def inbox_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(inbox)) or 0)


# -- the inbox ----------------------------------------------------------------------


def test_only_processed_envelopes_older_than_the_period_are_purged(engine: Engine) -> None:
    """P-4: a processed envelope past the period loses its payload; pending, failed and
    recent ones are untouched — nothing is lost before it is applied."""
    src = source(engine)
    keyless = envelope(engine, src, OLD)
    keyed = envelope(engine, src, OLD, key="wh_01HQ")
    recent = envelope(engine, src, NOW - timedelta(days=2))
    at_cutoff = envelope(engine, src, CUTOFF)  # exactly the period old: not older
    pending = envelope(engine, src, OLD - timedelta(days=300), status="pending")
    failed = envelope(engine, src, OLD, status="failed", key="wh_failed")
    erased = envelope(engine, src, OLD, status="erased", key="wh_erased")

    result = purge_inbox(engine, retention_days=DAYS, now=NOW)

    assert (result.deleted, result.emptied, result.cutoff) == (1, 1, CUTOFF)
    assert inbox_row(engine, keyless) is None
    row = inbox_row(engine, keyed)
    assert (row.status, bytes(row.body), row.headers) == ("purged", b"", {})
    assert (row.idempotency_key, row.received_at) == ("wh_01HQ", OLD)
    for kept, status in (
        (recent, "processed"),
        (at_cutoff, "processed"),
        (pending, "pending"),
        (failed, "failed"),
    ):
        row = inbox_row(engine, kept)
        assert row.status == status and bytes(row.body).startswith(b'{"batch"'), kept
        assert row.headers["user-agent"] == "Shopify-Captain-Hook"
    assert inbox_row(engine, erased).status == "erased"


def test_an_unprocessed_envelope_is_kept_however_old(engine: Engine) -> None:
    """P-4: data is never lost before processing, even years past the period."""
    src = source(engine)
    pending = envelope(engine, src, NOW - timedelta(days=3650), status="pending")
    purge_inbox(engine, retention_days=1, now=NOW)
    assert inbox_row(engine, pending).status == "pending"


def test_a_redelivery_after_the_purge_is_stored_once(engine: Engine) -> None:
    """P-4: the purged row keeps its idempotency key, so the unique index still
    recognises a redelivered webhook; its events are not applied twice."""
    src = source(engine)
    body = b'{"batch": [{"type": "identify", "userId": "u-77", "messageId": "m-77"}]}'
    received = NOW - timedelta(days=45)
    with engine.begin() as conn:
        first = accept(
            conn,
            source_id=src,
            kind="tracking.batch",
            headers={},
            body=body,
            idempotency_key="evt_77",
            received_at=received,
        )
    from guestlist.pipeline import process_all

    process_all(engine)
    assert purge_inbox(engine, retention_days=DAYS, now=NOW).emptied == 1
    with engine.begin() as conn:
        again = accept(
            conn,
            source_id=src,
            kind="tracking.batch",
            headers={},
            body=body,
            idempotency_key="evt_77",
        )
    assert first is not None and again is None
    assert process_all(engine) == 0
    assert inbox_count(engine) == 1
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(events)) == 1


def test_purging_goes_in_batches_and_is_audited_once(engine: Engine) -> None:
    """P-4, P-6: short transactions (here 2 ids each), one summary entry per run."""
    src = source(engine)
    for index in range(5):
        envelope(engine, src, OLD, key=f"k{index}" if index % 2 else None)
    result = purge_inbox(engine, retention_days=DAYS, now=NOW, actor="cli", batch=2)
    assert (result.deleted, result.emptied) == (3, 2)
    assert inbox_count(engine) == 2
    with engine.connect() as conn:
        [entry] = audit_entries(conn, action="privacy.inbox_purged")
    assert entry.actor == "cli" and entry.profile_id is None
    assert entry.detail == {
        "retention_days": DAYS,
        "cutoff": CUTOFF.isoformat(),
        "dry_run": False,
        "deleted": 3,
        "emptied": 2,
    }
    # Run again: nothing left to purge, and that is on record too.
    assert purge_inbox(engine, retention_days=DAYS, now=NOW).deleted == 0
    with engine.connect() as conn:
        assert len(audit_entries(conn, action="privacy.inbox_purged")) == 2


def test_an_inbox_dry_run_counts_and_changes_nothing(engine: Engine) -> None:
    """P-4: --dry-run reports what would go, writes nothing, not even an audit entry."""
    src = source(engine)
    ids = [envelope(engine, src, OLD), envelope(engine, src, OLD, key="k")]
    before = [inbox_row(engine, i) for i in ids]
    dry = purge_inbox(engine, retention_days=DAYS, now=NOW, dry_run=True)
    assert (dry.deleted, dry.emptied, dry.dry_run) == (1, 1, True)
    assert [inbox_row(engine, i) for i in ids] == before
    with engine.connect() as conn:
        assert audit_entries(conn, action="privacy.inbox_purged") == []
    real = purge_inbox(engine, retention_days=DAYS, now=NOW)
    assert (real.deleted, real.emptied) == (dry.deleted, dry.emptied)


# -- review flags -------------------------------------------------------------------


def flags(engine: Engine) -> dict[int, datetime | None]:
    with engine.connect() as conn:
        return {
            int(r.id): r.review_flagged_at
            for r in conn.execute(select(profiles.c.id, profiles.c.review_flagged_at))
        }


def queue_ids(engine: Engine, now: datetime = NOW) -> list[int]:
    with read_connection(engine) as conn:
        return [i.profile_id for i in review_queue(conn, review_days=REVIEW_DAYS, now=now)]


def test_profiles_without_activity_or_consent_are_flagged(engine: Engine) -> None:
    """P-4: no event, trait change or consent record for the period and no consent
    granted now: flagged, with the reason, once."""
    src = source(engine)
    idle = customer(engine, src, "idle", LONG_AGO)
    active = customer(engine, src, "active", LATELY)
    consented = customer(engine, src, "consented", LONG_AGO, {"status": "granted"})
    withdrew = customer(engine, src, "withdrew", LONG_AGO, {"status": "withdrawn"})
    expired = customer(
        engine,
        src,
        "expired",
        LONG_AGO,
        {
            "status": "granted",
            "kind": "implied",
            "expires_at": (NOW - timedelta(days=400)).isoformat(),
        },
    )
    boundary = customer(engine, src, "boundary", NOW - timedelta(days=REVIEW_DAYS))

    result = flag_inactive_profiles(engine, review_days=REVIEW_DAYS, now=NOW)

    flagged = {pid for pid, at in flags(engine).items() if at is not None}
    assert flagged == {idle, withdrew, expired}
    assert {active, consented, boundary}.isdisjoint(flagged)
    assert (result.flagged, result.cleared, result.flagged_total) == (3, 0, 3)
    with read_connection(engine) as conn:
        items = review_queue(conn, review_days=REVIEW_DAYS, now=NOW)
    assert [i.profile_id for i in items] == sorted(flagged)
    assert {i.reason for i in items} == {review_reason(REVIEW_DAYS)}
    assert items[0].flagged_at == NOW and items[0].last_seen_at == LONG_AGO


def test_flagging_is_idempotent_and_audited_once_per_run(engine: Engine) -> None:
    """P-4, P-6: a second run changes nothing and keeps the first flag time; each run
    writes one summary entry, not one per profile."""
    src = source(engine)
    for name in ("a", "b", "c"):
        customer(engine, src, name, LONG_AGO)
    flag_inactive_profiles(engine, review_days=REVIEW_DAYS, now=NOW, batch=2)
    first = flags(engine)
    later = NOW + timedelta(days=1)
    again = flag_inactive_profiles(engine, review_days=REVIEW_DAYS, now=later, batch=2)
    assert (again.flagged, again.cleared, again.flagged_total) == (0, 0, 3)
    assert flags(engine) == first
    with engine.connect() as conn:
        entries = audit_entries(conn, action="privacy.review_flagged")
    assert [(e.actor, e.detail["flagged"], e.detail["flagged_total"]) for e in entries] == [
        ("system", 3, 3),
        ("system", 0, 3),
    ]


def test_a_flag_clears_when_the_profile_is_active_again(engine: Engine) -> None:
    """P-4: activity (an event, or consent given) takes the profile off the list at
    once and clears its flag at the next run; erasure clears it too."""
    src = source(engine)
    comeback = customer(engine, src, "comeback", LONG_AGO)
    signup = customer(engine, src, "signup", LONG_AGO)
    gone = customer(engine, src, "gone", LONG_AGO)
    stays = customer(engine, src, "stays", LONG_AGO)
    flag_inactive_profiles(engine, review_days=REVIEW_DAYS, now=NOW)
    assert queue_ids(engine) == [comeback, signup, gone, stays]

    assert customer(engine, src, "comeback", LATELY) == comeback
    assert customer(engine, src, "signup", LONG_AGO, {"status": "granted"}) == signup
    with engine.begin() as conn:
        erase_profile(conn, gone, actor="cli", reason="asked")
    assert queue_ids(engine) == [stays]  # before any run

    result = flag_inactive_profiles(engine, review_days=REVIEW_DAYS, now=NOW)
    assert (result.flagged, result.cleared, result.flagged_total) == (0, 3, 1)
    assert {pid for pid, at in flags(engine).items() if at is not None} == {stays}
    with engine.connect() as conn:
        reason = conn.scalar(select(profiles.c.review_reason).where(profiles.c.id == comeback))
    assert reason is None


def test_a_review_dry_run_counts_and_changes_nothing(engine: Engine) -> None:
    """P-4: the dry run's counts are what the run then does; nothing is written."""
    src = source(engine)
    customer(engine, src, "idle", LONG_AGO)
    back = customer(engine, src, "back", LONG_AGO)
    flag_inactive_profiles(engine, review_days=REVIEW_DAYS, now=NOW)
    customer(engine, src, "other", LONG_AGO)
    with engine.begin() as conn:  # `back` was active lately
        conn.execute(update(profiles).where(profiles.c.id == back).values(last_seen_at=LATELY))
    before = flags(engine)
    dry = flag_inactive_profiles(engine, review_days=REVIEW_DAYS, now=NOW, dry_run=True)
    assert (dry.flagged, dry.cleared, dry.flagged_total) == (1, 1, 2)
    assert flags(engine) == before
    with engine.connect() as conn:
        assert len(audit_entries(conn, action="privacy.review_flagged")) == 1
    real = flag_inactive_profiles(engine, review_days=REVIEW_DAYS, now=NOW)
    assert (real.flagged, real.cleared, real.flagged_total) == (1, 1, 2)


def test_run_retention_does_both(engine: Engine) -> None:  # P-4
    src = source(engine)
    envelope(engine, src, OLD)
    customer(engine, src, "idle", LONG_AGO)
    run = run_retention(engine, inbox_retention_days=DAYS, review_days=REVIEW_DAYS, now=NOW)
    assert run.inbox.deleted == 1 and run.review.flagged == 1
    assert set(run.as_dict()) == {"inbox", "review"}
