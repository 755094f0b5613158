"""profile_facts (segments.facts): built when a rule needs it, kept in the pipeline's
transaction, stale when a writer outside it or time changes what a row says, and never
the reason a query answers differently from the profiles' own rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select

from guestlist.segments.catalog import delete_segment, get_segment
from guestlist.segments.compile import compile_rule
from guestlist.segments.fact_specs import ConsentFact, EventFact, OfAgeFact, TraitFact, parse_key
from guestlist.segments.facts import ALWAYS, BASE, FOREVER, STALE, load_state
from guestlist.segments.membership import evaluate_segment, refresh_profiles
from guestlist.segments.rules import Rule
from guestlist.segments.text import parse_text, to_text
from guestlist.store.tables import fact_columns, profile_facts, profiles, segment_rechecks
from guestlist.store.types import utcnow
from tests.segments.test_membership import (
    identify,
    make,
    order,
    profile,
    send,
    state_consent,
)

RULE = (
    'count("Order Completed" within 30d) >= 2 and sum("Order Completed".total) > 100'
    ' and trait.tier = "gold" and consent.email is granted'
)


def row(conn: Connection, profile_id: int) -> dict[str, Any]:
    """A profile's facts row, its added columns by fact key."""
    state = load_state(conn)
    facts = state.table()
    found = conn.execute(select(facts).where(facts.c.profile_id == profile_id)).mappings().one()
    out = {name: found[name] for name in ("fresh_from", "fresh_until", "dob", "jurisdiction")}
    out |= {c.key: found[c.name] for c in state.columns}
    return out


def selected(conn: Connection, rule: Rule, now: datetime, *, facts: bool) -> set[int]:
    over = load_state(conn).for_compiler() if facts else None
    assert over is not None or not facts
    query = compile_rule(rule, now=now, resolve_segment=lambda s: parse_text("true"), facts=over)
    return {int(p) for p in conn.scalars(query)}


def email_consent(user: str, at: datetime, status: str = "granted") -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": "Consent Updated",
        "messageId": f"c-{user}-{status}-{at.isoformat()}",
        "timestamp": at.isoformat(),
        "properties": {"channel": "email", "status": status, "text": "Yes, email me"},
    }


def people(engine: Engine, now: datetime) -> tuple[int, int]:
    send(
        engine,
        identify("ann", now - timedelta(days=9), tier="gold", email="ann@example.com"),
        email_consent("ann", now - timedelta(days=9)),
        order("ann", now - timedelta(days=8), 70),
        order("ann", now - timedelta(days=3), 45.5),
        identify("bob", now - timedelta(days=9), tier="gold", email="bob@example.com"),
        order("bob", now - timedelta(days=40), 300),
        order("bob", now - timedelta(days=2), 10),
    )
    return profile(engine, "ann"), profile(engine, "bob")


def test_saving_a_segment_builds_the_columns_its_rule_reads(engine: Engine) -> None:
    now = utcnow()
    ann, bob = people(engine, now)
    make(engine, "gold-buyers", RULE)
    with engine.connect() as conn:
        state = load_state(conn)
        keys = {c.key for c in state.columns}
        assert state.built and all(c.ready for c in state.columns)
        count = EventFact("Order Completed", 30, (), "count", None)
        total = EventFact("Order Completed", None, (), "sum", "total")
        assert keys == set(ALWAYS) | {count.key, total.key, TraitFact("tier").key}
        assert {parse_key(k).key for k in keys} == keys  # keys read back as themselves
        assert conn.scalar(select(func.count()).select_from(profile_facts)) == 2
        a, b = row(conn, ann), row(conn, bob)
        assert (a[count.key], b[count.key]) == (2, 1)
        assert (str(a[total.key]), str(b[total.key])) == ("115.5", "310")
        assert a[TraitFact("tier").key] == "gold"
        assert a[ConsentFact("email", "marketing").key] == FOREVER  # granted, no expiry
        assert b[ConsentFact("email", "marketing").key] is None
        assert a["fresh_until"] == now - timedelta(days=8) + timedelta(days=30, microseconds=1)
        rule = parse_text(RULE)
        assert selected(conn, rule, now, facts=True) == {ann}
        assert selected(conn, rule, now, facts=False) == {ann}


def test_the_pipeline_rewrites_a_row_in_the_batch_that_changes_it(engine: Engine) -> None:
    now = utcnow()
    ann, bob = people(engine, now)
    make(engine, "gold-buyers", RULE)
    send(engine, order("bob", now - timedelta(hours=1), 5), identify("cy", now))
    count = EventFact("Order Completed", 30, (), "count", None).key
    cy = profile(engine, "cy")
    with engine.connect() as conn:
        after = row(conn, bob)
        assert after[count] == 2
        assert after["fresh_from"] > now  # written by the batch, at its own time
        assert row(conn, cy)[count] == 0  # a new profile gets its row in its batch
        assert selected(conn, parse_text(RULE), utcnow(), facts=True) == {ann}


def test_time_makes_a_windowed_row_stale_and_its_profile_is_read_from_its_rows(
    engine: Engine,
) -> None:
    now = utcnow()
    ann, _ = people(engine, now)
    make(engine, "gold-buyers", RULE)
    rule = parse_text(RULE)
    with engine.connect() as conn:
        due = conn.scalar(
            select(segment_rechecks.c.due_at).where(segment_rechecks.c.profile_id == ann)
        )
        assert due is not None and row(conn, ann)["fresh_until"] == due
        # After ann's older order leaves the 30-day window and before any recheck ran,
        # the facts row still counts 2; the query reads ann from her own rows.
        later = due + timedelta(seconds=1)
        assert selected(conn, rule, later, facts=True) == set()
        assert selected(conn, rule, later, facts=False) == set()
        # Before the row was computed it says nothing either (fresh_from).
        earlier = now - timedelta(days=1)
        assert selected(conn, rule, earlier, facts=True) == selected(
            conn, rule, earlier, facts=False
        )


def test_consent_recorded_outside_the_pipeline_makes_the_row_stale(engine: Engine) -> None:
    now = utcnow()
    ann, _ = people(engine, now)
    make(engine, "gold-buyers", RULE)
    with engine.begin() as conn:
        state_consent(conn, ann, "email", "ann@example.com", "withdrawn", utcnow())
        assert row(conn, ann)["fresh_until"] == STALE
        assert selected(conn, parse_text(RULE), utcnow(), facts=True) == set()


def test_a_merge_leaves_one_row_for_the_person(engine: Engine) -> None:
    now = utcnow()
    send(
        engine,
        order("ann", now - timedelta(days=2), 10),
        {**order("x", now - timedelta(days=1), 20), "userId": None, "anonymousId": "anon-1"},
    )
    make(engine, "buyers", 'count("Order Completed" within 30d) >= 2')
    alias = {
        "type": "alias",
        "userId": "ann",
        "previousId": "anon-1",
        "messageId": "alias-1",
        "timestamp": now.isoformat(),
    }
    send(engine, alias)
    survivor = profile(engine, "ann")
    with engine.connect() as conn:
        ids = set(conn.scalars(select(profile_facts.c.profile_id)))
        assert ids == {survivor}
        count = EventFact("Order Completed", 30, (), "count", None).key
        assert row(conn, survivor)[count] == 2  # rewritten by the alias's batch
        rule = parse_text('count("Order Completed" within 30d) >= 2')
        assert selected(conn, rule, utcnow(), facts=True) == {survivor}


def test_columns_come_and_go_with_the_rules(engine: Engine) -> None:
    now = utcnow()
    ann, bob = people(engine, now)
    make(engine, "gold", 'trait.tier = "gold"')
    make(engine, "spenders", 'max("Order Completed".total) > 200')
    top = EventFact("Order Completed", None, (), "max", "total").key
    with engine.connect() as conn:
        assert row(conn, bob)[top] == 300 and row(conn, ann)[top] == 70
    with engine.begin() as conn:
        delete_segment(conn, "spenders", actor="test")
        segment = get_segment(conn, "gold")
        assert segment is not None
        evaluate_segment(conn, "gold")
        assert top not in {c.key for c in load_state(conn).columns}
        assert top not in row(conn, bob)
    with engine.begin() as conn:
        delete_segment(conn, "gold", actor="test")
        refresh_profiles(conn, [ann])  # nothing keeps the rows now
        assert not load_state(conn).built
        # A column whose row is gone (a restored backup, a manual delete) is dropped
        # when the columns are next made to match.
        conn.execute(delete(fact_columns).where(fact_columns.c.key != BASE))
    make(engine, "gold-again", 'trait.tier = "gold"')
    with engine.connect() as conn:
        state = load_state(conn)
        assert state.built and {c.key for c in state.columns} == set(ALWAYS) | {
            TraitFact("tier").key
        }
        assert row(conn, ann)[TraitFact("tier").key] == "gold"
        live = conn.scalar(select(func.count()).select_from(profiles))
        assert conn.scalar(select(func.count()).select_from(profile_facts)) == live


def test_a_row_is_exact_for_numbers_the_evaluator_reads_exactly(engine: Engine) -> None:
    """Sums stay exact decimals (77.84 + 13.76 + 8.4 is 100, not more), and an integer
    minimum stays an integer, in the facts columns as in the profile's rows."""
    at = datetime.now(UTC) - timedelta(days=1)
    send(
        engine,
        order("ann", at - timedelta(minutes=3), 77.84),
        order("ann", at - timedelta(minutes=2), 13.76),
        order("ann", at - timedelta(minutes=1), 8.4),
    )
    rules = [
        parse_text('sum("Order Completed".total) > 100'),
        parse_text('sum("Order Completed".total) >= 100'),
        parse_text('min("Order Completed".total) = 8.4'),
        parse_text('avg("Order Completed".total) = 33.333333333333336'),
    ]
    ann = profile(engine, "ann")
    make(engine, "hundred", " or ".join(f"({to_text(rule)})" for rule in rules))
    with engine.connect() as conn:
        now = utcnow()
        for rule in rules:
            assert selected(conn, rule, now, facts=True) == selected(conn, rule, now, facts=False)
        assert selected(conn, rules[0], now, facts=True) == set()
        assert selected(conn, rules[1], now, facts=True) == {ann}


def test_who_is_of_age_is_kept_until_the_next_birthday(engine: Engine) -> None:
    """A-2 through the facts row: `of_age_for` is worked out when the row is written and
    read back only until the profile's next birthday (its recheck)."""
    now = utcnow()
    tomorrow = (now + timedelta(days=2)).date()
    dob = tomorrow.replace(year=tomorrow.year - 21)  # 21 in two days (UTC and in Texas)
    send(
        engine,
        identify(
            "ann",
            now - timedelta(hours=1),
            birthday=dob.isoformat(),
            address={"country": "US", "state": "TX"},
        ),
        identify(
            "bob",
            now - timedelta(hours=1),
            birthday="1980-05-05",
            address={"country": "US", "state": "TX"},
        ),
    )
    ann, bob = profile(engine, "ann"), profile(engine, "bob")
    make(engine, "drinkers", 'of_age_for("alcohol")')
    rule = parse_text('of_age_for("alcohol")')
    with engine.connect() as conn:
        state = load_state(conn)
        ages = [c for c in state.columns if isinstance(c.fact, OfAgeFact)]
        assert [c.fact.category for c in ages if isinstance(c.fact, OfAgeFact)] == ["alcohol"]
        assert row(conn, ann)[ages[0].key] == 0 and row(conn, bob)[ages[0].key] == 1
        until = row(conn, ann)["fresh_until"]
        assert now < until <= datetime.combine(tomorrow, datetime.min.time(), UTC)
        assert row(conn, bob)["fresh_until"] > now
        assert selected(conn, rule, now, facts=True) == {bob}
        birthday = datetime.combine(tomorrow, datetime.min.time(), UTC) + timedelta(hours=12)
        assert selected(conn, rule, birthday, facts=True) == {ann, bob}
        assert selected(conn, rule, birthday, facts=False) == {ann, bob}
