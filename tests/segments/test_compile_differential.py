"""The main guarantee of issue 4: the SQL compiler and the in-memory evaluator agree.

Hypothesis draws a few stored profiles, rules for the segments `in_segment` may use,
and several rules whose names and values mostly come from those profiles
(tests/segments/strategies_db.py). The profiles are written into the database, once
on SQLite and once on PostgreSQL, in a transaction rolled back after the example. For
every part of every rule (each and/or/not and each condition on its own, as well as
the whole), the ids `compile_rule` selects must be exactly those whose `ProfileView`
(from `load_profile_views`) `evaluate` admits, both over the profiles' own rows and over
their `profile_facts` rows (segments.facts), with a third of those rows stale. Each
example also sweeps every operator of every kind of condition, and the `not` of each,
over values the profiles hold (`condition_sweep`): a condition on an edge (a date of
birth on the day of legal age, an event exactly `within` days old) is checked on its
own, not only when the rest of a rule lets it decide.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from hypothesis import HealthCheck, given, note, settings
from sqlalchemy import Connection, literal, select, union_all, update

from guestlist.segments.compile import Facts, compile_rule
from guestlist.segments.evaluate import ProfileView, evaluate, explain
from guestlist.segments.facts import STALE, ensure_facts
from guestlist.segments.profile_view import load_profile_views
from guestlist.segments.rules import Rule, parse_rule, rule_to_json, walk
from guestlist.segments.text import to_text
from guestlist.store.engine import get_engine
from guestlist.store.tables import profile_facts
from tests.conftest import backend_url
from tests.segments.strategies_db import Example, Population, examples, insert_population

EXAMPLES = 75  # per backend; each checks every part twice (own rows, facts rows)
BATCH = 100  # statements per UNION ALL (SQLite allows 500)

differential = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@differential
@given(example=examples(exact_sums=True))
def test_sqlite_selects_exactly_the_profiles_the_evaluator_admits(
    database_urls: dict[str, str], example: Example
) -> None:
    check(backend_url(database_urls, "sqlite"), example)


@differential
@given(example=examples(exact_sums=True))
def test_postgresql_selects_exactly_the_profiles_the_evaluator_admits(
    database_urls: dict[str, str], example: Example
) -> None:
    check(backend_url(database_urls, "postgresql"), example)


def check(url: str, example: Example) -> None:
    for rule in (*example.rules, *example.segments.values()):
        assert parse_rule(rule_to_json(rule)) == rule  # a rule the API could have stored
    with get_engine(url).connect() as conn:
        transaction = conn.begin()
        try:
            insert_population(conn, example.population)
            found = disagreements(conn, example.population, example.segments, example.rules)
        finally:
            transaction.rollback()
    if found:
        part, selected, admitted, views = found[0]
        now = example.population.now
        note(f"rule: {to_text(part)}")
        note(f"json: {json.dumps(rule_to_json(part))}")
        note(f"SQL selects {sorted(selected)}, the evaluator admits {sorted(admitted)}")
        for pid in sorted(selected ^ admitted):
            if pid in views:
                note(f"profile {pid}: {views[pid]}")
                member = member_of(example.segments, views[pid], now)
                for step in explain(part, views[pid], now, member):
                    note(f"  {step.path or '/'} {step.held}: {step.condition}")
    assert not found


def member_of(
    segments: Mapping[str, Rule], view: ProfileView, now: datetime
) -> Callable[[str], bool]:
    """in_segment for the evaluator: the used segment's own rule on the same profile
    (what stored membership holds when it is up to date)."""

    def member(slug: str) -> bool:
        return evaluate(segments[slug], view, now, member)

    return member


def disagreements(
    conn: Connection,
    population: Population,
    segments: Mapping[str, Rule],
    rules: Sequence[Rule],
) -> list[tuple[Rule, set[int], set[int], dict[int, ProfileView]]]:
    """Each part of `rules` on which SQL and the evaluator select different profiles:
    (part, selected by SQL, admitted by the evaluator, the views), smallest first.

    The parts' statements run as one UNION ALL per BATCH (one round trip, not one
    per part)."""
    now = population.now
    views = load_profile_views(conn, population.ids, now=now)
    parts = list(dict.fromkeys(node for rule in rules for _, node in walk(rule)))
    facts = build_facts(conn, population, [*segments.values(), *parts])
    # Each part twice: over the profiles' own rows, and over their facts rows.
    compiled = [(part, None) for part in parts] + [(part, facts) for part in parts]
    selected: dict[int, set[int]] = {i: set() for i in range(len(compiled))}
    for start in range(0, len(compiled), BATCH):
        queries = []
        for i in range(start, min(start + BATCH, len(compiled))):
            part, over = compiled[i]
            matches = compile_rule(part, now=now, resolve_segment=segments.__getitem__, facts=over)
            found = matches.subquery()
            queries.append(select(literal(i).label("part"), found.c.id))
        for i, pid in conn.execute(union_all(*queries)):
            selected[i].add(pid)
    out = []
    for i, (part, over) in enumerate(compiled):
        admitted = {
            pid
            for pid, view in views.items()
            if evaluate(part, view, now, member_of(segments, view, now))
        }
        if selected[i] != admitted:
            note(f"over the facts rows: {over is not None}")
            out.append((part, selected[i], admitted, views))
    return sorted(out, key=lambda found: len(to_text(found[0])))


def build_facts(conn: Connection, population: Population, rules: Sequence[Rule]) -> Facts:
    """The facts rows of `rules` as the pipeline keeps them, built at the population's
    `now`; every third profile's row is then stale (as a consent click leaves it), so
    both halves of a facts query are compared."""
    state = ensure_facts(conn, rules, has_catalog=True, now=population.now)
    stale = [pid for pid in population.ids if pid % 3 == 0]
    conn.execute(
        update(profile_facts).where(profile_facts.c.profile_id.in_(stale)).values(fresh_until=STALE)
    )
    facts = state.for_compiler()
    assert facts is not None and len(facts.columns) == len(state.columns)
    return facts
