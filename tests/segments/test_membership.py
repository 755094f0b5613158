"""Membership (issue 4, part 5): real time through the pipeline, full evaluation when a
rule changes, time-based exits and entries through rechecks that only touch the
profiles that can change, history, the change log, merges and restricted segments."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection, Engine, select

from guestlist.age.policy import default_policy
from guestlist.consent.ledger import ConsentStatement, append
from guestlist.inbox.store import accept
from guestlist.keys import ensure_source
from guestlist.pipeline import process_all
from guestlist.segments.catalog import (
    SegmentError,
    SegmentInput,
    create_segment,
    delete_segment,
    get_segment,
    update_segment,
)
from guestlist.segments.membership import (
    evaluate_segment,
    next_age_change,
    refresh_profiles,
    run_due_rechecks,
    size_history,
)
from guestlist.segments.text import text_to_json
from guestlist.store.tables import (
    identifiers,
    segment_changes,
    segment_memberships,
    segment_rechecks,
)
from guestlist.store.types import utcnow


def send(engine: Engine, *messages: dict[str, Any]) -> None:
    with engine.begin() as conn:
        source_id = ensure_source(conn, "web")
        accept(
            conn,
            source_id=source_id,
            kind="tracking.batch",
            headers={"content-type": "application/json"},
            body=orjson.dumps({"batch": list(messages)}),
        )
    process_all(engine)


def identify(user: str, at: datetime, **traits: Any) -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": user,
        "messageId": f"id-{user}-{at.isoformat()}-{sorted(traits)}",
        "timestamp": at.isoformat(),
        "traits": traits,
    }


def order(user: str, at: datetime, total: float, category: str = "bourbon") -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": "Order Completed",
        "messageId": f"o-{user}-{at.isoformat()}",
        "timestamp": at.isoformat(),
        "properties": {"total": total, "category": category},
    }


def profile(engine: Engine, user: str) -> int:
    with engine.connect() as conn:
        found = conn.scalar(
            select(identifiers.c.profile_id).where(
                identifiers.c.kind == "user_id", identifiers.c.key == user
            )
        )
    assert found is not None
    return int(found)


def make(engine: Engine, slug: str, rule: str, **extra: Any) -> int:
    with engine.begin() as conn:
        segment = create_segment(
            conn,
            SegmentInput(name=slug.title(), slug=slug, rule=text_to_json(rule), **extra),
            actor="test",
        )
        evaluate_segment(conn, slug)
    return segment.id


def members(engine: Engine, segment_id: int) -> set[int]:
    with engine.connect() as conn:
        return {
            int(p)
            for p in conn.scalars(
                select(segment_memberships.c.profile_id).where(
                    segment_memberships.c.segment_id == segment_id,
                    segment_memberships.c.exited_at.is_(None),
                )
            )
        }


def changes(engine: Engine, segment_id: int) -> list[tuple[int, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(segment_changes.c.profile_id, segment_changes.c.change, segment_changes.c.reason)
            .where(segment_changes.c.segment_id == segment_id)
            .order_by(segment_changes.c.id)
        )
        return [(int(p), c, r) for p, c, r in rows]


def state_consent(
    conn: Connection, profile_id: int, channel: str, identifier: str, status: str, at: datetime
) -> None:
    """Record express marketing consent outside the pipeline (an unsubscribe page, a
    STOP, a confirmation click): the ledger, not an event."""
    statement = ConsentStatement(
        channel=channel,
        purpose="marketing",
        status=status,
        kind="express",
        identifier=identifier,
        event_time=at,
    )
    append(conn, profile_id, statement)


def test_events_move_profiles_in_and_out_in_real_time(engine: Engine) -> None:
    now = utcnow()
    seg = make(engine, "bourbon-fans", 'count("Order Completed" where category = "bourbon") >= 2')
    send(engine, order("ann", now - timedelta(days=3), 40))
    ann = profile(engine, "ann")
    assert members(engine, seg) == set()
    send(engine, order("ann", now - timedelta(days=1), 25))
    assert members(engine, seg) == {ann}
    assert changes(engine, seg) == [(ann, "entered", "event")]

    vip = make(engine, "vips", 'trait.tier = "gold"')
    send(engine, identify("ann", now - timedelta(hours=2), tier="gold"))
    assert members(engine, vip) == {ann}
    send(engine, identify("ann", now - timedelta(hours=1), tier="silver"))
    assert members(engine, vip) == set()
    assert changes(engine, vip) == [(ann, "entered", "event"), (ann, "exited", "event")]
    # An older event arriving late does not bring the old tier (or the member) back.
    send(engine, identify("ann", now - timedelta(hours=3), tier="gold"))
    assert members(engine, vip) == set()


def test_a_new_or_changed_rule_is_evaluated_in_the_database(engine: Engine) -> None:
    now = utcnow()
    send(
        engine,
        order("ann", now - timedelta(days=5), 120),
        order("bob", now - timedelta(days=5), 30),
        order("cy", now - timedelta(days=400), 500),
    )
    ann, bob, cy = (profile(engine, u) for u in ("ann", "bob", "cy"))
    seg = make(engine, "big-spenders", 'sum("Order Completed".total) > 100')
    assert members(engine, seg) == {ann, cy}
    assert sorted(changes(engine, seg)) == sorted(
        [(ann, "entered", "rule"), (cy, "entered", "rule")]
    )
    with engine.begin() as conn:
        updated = update_segment(
            conn,
            "big-spenders",
            SegmentInput(
                name="Big spenders",
                slug="big-spenders",
                rule=text_to_json('sum("Order Completed".total within 365d) > 100'),
            ),
            actor="test",
        )
        assert updated.version == 2
        evaluate_segment(conn, "big-spenders")
    assert members(engine, seg) == {ann}
    # The SQL result and the evaluator agree: a real-time pass over all changes nothing.
    with engine.begin() as conn:
        assert len(refresh_profiles(conn, [ann, bob, cy])) == 0
    with engine.connect() as conn:
        history = size_history(conn, seg)
    assert history[-1][1] == 1


def test_an_order_ageing_out_of_the_window_exits_only_by_recheck(engine: Engine) -> None:
    now = utcnow()
    bought = now - timedelta(days=10)
    send(engine, order("ann", bought, 50), identify("bob", now - timedelta(days=1), tier="gold"))
    ann, bob = profile(engine, "ann"), profile(engine, "bob")
    seg = make(engine, "recent", 'count("Order Completed" within 30d) >= 1')
    make(engine, "gold", 'trait.tier = "gold"')
    assert members(engine, seg) == {ann}
    with engine.connect() as conn:
        due = dict(
            conn.execute(select(segment_rechecks.c.profile_id, segment_rechecks.c.due_at)).all()
        )
    # Only the profile that can change by time alone is due, at the instant it can.
    assert set(due) == {ann}
    assert due[ann].astimezone(UTC) == bought + timedelta(days=30, microseconds=1)
    with engine.begin() as conn:
        assert len(run_due_rechecks(conn, now=bought + timedelta(days=30))) == 0
    assert members(engine, seg) == {ann}
    with engine.begin() as conn:
        done = run_due_rechecks(conn, now=bought + timedelta(days=30, seconds=1))
    assert done.exited == [(seg, ann)]
    assert members(engine, seg) == set()
    assert changes(engine, seg)[-1] == (ann, "exited", "schedule")
    assert bob not in {p for _, p in done.exited + done.entered}


def test_a_birthday_brings_a_profile_in_on_the_day(engine: Engine) -> None:
    today = utcnow().date()
    # Born so that the 21st birthday is tomorrow.
    dob = (today + timedelta(days=1)).replace(year=today.year - 21)
    send(engine, identify("ann", utcnow() - timedelta(hours=1), birthday=dob.isoformat()))
    ann = profile(engine, "ann")
    seg = make(engine, "adults", "age >= 21")
    assert members(engine, seg) == set()
    birthday = datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC)
    with engine.connect() as conn:
        due = conn.scalar(
            select(segment_rechecks.c.due_at).where(segment_rechecks.c.profile_id == ann)
        )
    assert due is not None and due.astimezone(UTC) <= birthday
    with engine.begin() as conn:
        run_due_rechecks(conn, now=birthday - timedelta(seconds=1))
        run_due_rechecks(conn, now=birthday - timedelta(seconds=1))
    assert members(engine, seg) == set()
    with engine.begin() as conn:
        run_due_rechecks(conn, now=birthday)
    assert members(engine, seg) == {ann}


def test_next_age_change_reads_29_february_both_ways_and_local_midnight() -> None:
    policy = default_policy()
    now = datetime(2027, 2, 27, 12, tzinfo=UTC)
    leapling = date(2004, 2, 29)
    first = next_age_change(leapling, None, now, policy)
    assert first == datetime(2027, 2, 28, tzinfo=UTC)
    second = next_age_change(leapling, None, first, policy)
    assert second == datetime(2027, 3, 1, tzinfo=UTC)
    # In New York the local midnight of the birthday comes five hours after UTC's.
    at_utc = next_age_change(date(2006, 7, 4), "US-NY", datetime(2027, 7, 3, tzinfo=UTC), policy)
    at_ny = next_age_change(date(2006, 7, 4), "US-NY", at_utc, policy)
    assert (at_utc, at_ny) == (
        datetime(2027, 7, 4, tzinfo=UTC),
        datetime(2027, 7, 4, 4, tzinfo=UTC),  # EDT is UTC-4 in July
    )


def test_restricted_segments_admit_only_what_the_guard_admits(engine: Engine) -> None:
    """A-6: of age for the category at its level, consent granted on the channel."""
    now = utcnow()
    send(
        engine,
        identify(
            "ann",
            now - timedelta(days=2),
            birthday="1990-01-01",
            phone="+14155550100",
            address={"country": "US", "state": "CA"},
        ),
        order("ann", now - timedelta(days=2), 80),
    )
    ann = profile(engine, "ann")
    seg = make(
        engine,
        "sms-spirits",
        'count("Order Completed") >= 1',
        category="alcohol",
        channel="sms",
    )
    assert members(engine, seg) == set()  # no SMS consent yet (C-4)
    send(
        engine,
        {
            "type": "track",
            "userId": "ann",
            "event": "Consent Updated",
            "messageId": "c-1",
            "timestamp": (now - timedelta(days=1)).isoformat(),
            "properties": {"channel": "sms", "status": "granted", "text": "Yes, text me"},
        },
    )
    assert members(engine, seg) == {ann}
    # A withdrawal outside the pipeline (an unsubscribe page, a STOP) marks the
    # profile due; the next recheck pass takes it out.
    with engine.begin() as conn:
        state_consent(conn, ann, "sms", "+14155550100", "withdrawn", utcnow())
        run_due_rechecks(conn)
    assert members(engine, seg) == set()
    assert changes(engine, seg)[-1] == (ann, "exited", "schedule")


def test_a_merge_takes_the_merged_profile_out_and_keeps_its_history(engine: Engine) -> None:
    now = utcnow()
    send(
        engine,
        order("ann", now - timedelta(days=2), 10),
        {**order("x", now - timedelta(days=2), 10), "userId": None, "anonymousId": "anon-1"},
    )
    ann = profile(engine, "ann")
    with engine.connect() as conn:
        anon = int(
            conn.scalar(select(identifiers.c.profile_id).where(identifiers.c.key == "anon-1"))
        )
    seg = make(engine, "buyers", 'count("Order Completed") >= 1')
    assert members(engine, seg) == {ann, anon}
    send(
        engine,
        {
            "type": "alias",
            "userId": "ann",
            "previousId": "anon-1",
            "messageId": "alias-1",
            "timestamp": now.isoformat(),
        },
    )
    survivor = profile(engine, "ann")
    merged = anon if survivor == ann else ann
    assert members(engine, seg) == {survivor}
    assert (merged, "exited", "merge") in changes(engine, seg)


def test_bad_segments_are_refused_with_the_field_named(engine: Engine) -> None:
    make(engine, "base", 'trait.tier = "gold"')
    make(engine, "uses-base", 'in_segment("base") and age >= 21')
    with engine.begin() as conn:
        with pytest.raises(SegmentError) as cycle:
            update_segment(
                conn,
                "base",
                SegmentInput(name="Base", slug="base", rule={"in_segment": "uses-base"}),
                actor="test",
            )
        assert cycle.value.field == "rule"  # the in_segment is the whole rule here
        assert "base → uses-base → base" in cycle.value.message
        with pytest.raises(SegmentError) as used:
            delete_segment(conn, "base", actor="test")
        assert used.value.status == 409 and "uses-base" in used.value.message
        with pytest.raises(SegmentError) as unknown:
            create_segment(
                conn,
                SegmentInput(name="X", slug="x", rule={"trait": "tier", "op": "bogus", "value": 1}),
                actor="test",
            )
        assert unknown.value.field == "rule/op"
        with pytest.raises(SegmentError) as no_channel:
            create_segment(
                conn,
                SegmentInput(
                    name="X", slug="x", rule={"trait": "a", "op": "exists"}, category="alcohol"
                ),
                actor="test",
            )
        assert no_channel.value.field == "channel"
        with pytest.raises(SegmentError) as twice:
            create_segment(
                conn,
                SegmentInput(name="B", slug="base", rule={"trait": "a", "op": "exists"}),
                actor="test",
            )
        assert twice.value.status == 409
    with engine.begin() as conn:
        delete_segment(conn, "uses-base", actor="test")
        delete_segment(conn, "base", actor="test")
        assert get_segment(conn, "base") is None


def test_the_worker_runs_due_rechecks_every_minute(engine: Engine) -> None:
    """The recurring `segments.recheck` job: a consent withdrawal outside the pipeline
    takes the profile out of a consent segment without anyone asking."""
    import time

    from guestlist.jobs.worker import Worker
    from guestlist.pipeline import process_pending
    from guestlist.segments.service import RECHECK

    now = utcnow()
    send(engine, identify("ann", now - timedelta(days=1), email="ann@example.com"))
    ann = profile(engine, "ann")
    with engine.begin() as conn:
        state_consent(conn, ann, "email", "ann@example.com", "granted", now - timedelta(hours=1))
    seg = make(engine, "emailable", "consent.email is granted")
    assert members(engine, seg) == {ann}
    with engine.begin() as conn:
        state_consent(conn, ann, "email", "ann@example.com", "withdrawn", now)
    thread, stop = Worker(
        engine, process_inbox=process_pending, kinds=[RECHECK], poll_seconds=0.01
    ).start_in_thread()
    try:
        deadline = time.monotonic() + 10
        while members(engine, seg) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(10)
    assert members(engine, seg) == set()
