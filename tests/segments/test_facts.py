"""profile_facts (segments.facts): built when a rule needs it, kept in the pipeline's
transaction, stale when a writer outside it or time changes what a row says, and never
the reason a query answers differently from the profiles' own rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select, text

from guestlist.segments.catalog import SegmentInput, create_segment, delete_segment, get_segment
from guestlist.segments.compile import compile_rule
from guestlist.segments.fact_specs import ConsentFact, EventFact, OfAgeFact, TraitFact, parse_key
from guestlist.segments.facts import (
    ALWAYS,
    BASE,
    FOREVER,
    MAX_RULE_INDEXES,
    STALE,
    load_state,
    rule_index_name,
    rule_indexes,
)
from guestlist.segments.membership import evaluate_segment, refresh_profiles
from guestlist.segments.rules import Rule
from guestlist.segments.text import parse_text, text_to_json, to_text
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
        assert rule_indexes(conn)  # the gold rule's
        refresh_profiles(conn, [ann])  # nothing keeps the rows now
        assert not load_state(conn).built
        assert rule_indexes(conn) == {}
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


def column_of(conn: Connection, key: str) -> str:
    return next(c.name for c in load_state(conn).columns if c.key == key)


def plan_of(conn: Connection, rule: Rule, now: datetime) -> str:
    facts = load_state(conn).for_compiler()
    query = compile_rule(rule, now=now, resolve_segment=lambda s: parse_text("true"), facts=facts)
    sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    if conn.dialect.name == "postgresql":
        # A table of a few rows is read whole whichever index exists, and with that
        # forbidden through the freshness indexes: ask for the rule's (rolled back).
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        conn.execute(text("SET LOCAL enable_bitmapscan = off"))
        conn.execute(text("DROP INDEX ix_profile_facts_fresh_from, ix_profile_facts_fresh_until"))
        return "\n".join(str(r[0]) for r in conn.execute(text(f"EXPLAIN {sql}")))
    return "\n".join(str(r[-1]) for r in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}")))


AUDIENCE = (
    'trait.favourite in ["bourbon", "tequila"] and consent.email is granted'
    ' and count("Order Completed" within 30d) >= 2 and not trait.tags contains "vip"'
)


def test_a_rule_requiring_strings_of_a_trait_is_counted_from_its_index(engine: Engine) -> None:
    """The trait's column leads the rule's index, then every column the rule reads, so
    the count reads only the index entries of those strings; and comparing the JSON
    text finds exactly the JSON strings (not 12 for "12", not a list holding one)."""
    now = utcnow()
    ann, bob = people(engine, now)
    at = now - timedelta(days=1)
    values: dict[str, Any] = {
        "cy": "12", "di": 12, "ed": ["bourbon"], "flo": None, "gus": "Bourbon", "hal": True,
    }  # fmt: skip
    send(
        engine,
        identify("ann", at, favourite="bourbon", tags=["gold"]),
        identify("bob", at, favourite="tequila", tags=["vip"]),
        *(identify(user, at, favourite=value) for user, value in values.items()),
        identify("ivy", at, email="ivy@example.com"),  # no favourite at all
    )
    make(engine, "audience", AUDIENCE)
    rules = {
        AUDIENCE: {ann},
        'trait.favourite in ["bourbon", "tequila"]': {ann, bob},
        'trait.favourite = "12"': {profile(engine, "cy")},
        'trait.favourite = "Bourbon"': {profile(engine, "gus")},
    }
    with engine.begin() as conn:
        favourite = column_of(conn, TraitFact("favourite").key)
        (columns,) = rule_indexes(conn).values()
        assert columns[0] == favourite
        assert columns[-2:] == ("fresh_from", "fresh_until")
        for rule_text, expected in rules.items():
            rule = parse_text(rule_text)
            assert selected(conn, rule, now, facts=True) == expected, rule_text
            assert selected(conn, rule, now, facts=False) == expected, rule_text
    index = rule_index_name(columns)
    with engine.connect() as conn, conn.begin() as transaction:
        plan = plan_of(conn, parse_text(AUDIENCE), now)
        transaction.rollback()
        if conn.dialect.name == "postgresql":
            assert f"Index Only Scan using {index}" in plan, plan
        else:
            assert f"USING COVERING INDEX {index} ({favourite}=?" in plan, plan


def test_rule_indexes_come_and_go_with_the_rules(engine: Engine) -> None:
    now = utcnow()
    people(engine, now)
    make(engine, "gold", 'trait.tier = "gold" and count("Order Completed" within 30d) >= 1')
    make(engine, "tier-or", 'trait.tier = "gold" or trait.tier = "silver"')  # none leads
    make(engine, "quoted", 'trait.tier = "say \\"hi\\""')  # not plain: no index
    with engine.begin() as conn:
        assert len(rule_indexes(conn)) == 1
        count = EventFact("Order Completed", 30, (), "count", None).key
        (columns,) = rule_indexes(conn).values()
        assert columns[:2] == (column_of(conn, TraitFact("tier").key), column_of(conn, count))
        # The rule changes: its count column goes, and the index holding it first.
        delete_segment(conn, "gold", actor="test")
        make_in(conn, "gold", 'trait.tier = "gold"')
        (columns,) = rule_indexes(conn).values()
        assert column_of(conn, TraitFact("tier").key) in columns
        assert count not in {c.key for c in load_state(conn).columns}
        for slug in ("gold", "tier-or", "quoted"):
            delete_segment(conn, slug, actor="test")
        make_in(conn, "other", 'count("Order Completed") >= 1')
        assert rule_indexes(conn) == {}
        # One index per distinct set of columns, and no more than the cap.
        for n in range(MAX_RULE_INDEXES + 2):
            make_in(conn, f"tier-{n}", f'trait.tier = "t{n}" and trait.t{n} exists')
        assert len(rule_indexes(conn)) == MAX_RULE_INDEXES


def make_in(conn: Connection, slug: str, rule: str) -> None:
    create_segment(conn, SegmentInput(slug.title(), slug, text_to_json(rule)), actor="test")
    evaluate_segment(conn, slug)
