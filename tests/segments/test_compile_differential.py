"""The main guarantee of issue 4: the SQL compiler and the in-memory evaluator agree.

Hypothesis draws a few stored profiles, rules for the segments `in_segment` may use,
and several rules whose names and values mostly come from those profiles. The
profiles are written into the database (SQLite, then PostgreSQL) in a transaction
that is rolled back after the example. For every part of every rule (each and/or/not
and each condition on its own, as well as the whole), the ids `compile_rule` selects
must be exactly those whose `ProfileView` (from `load_profile_views`) `evaluate`
admits. Checking the parts multiplies what one example tests: a condition on an edge
(a date of birth on the day of legal age, an event exactly `within` days old) is
checked alone, not only when the rest of its rule lets it decide.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine

from guestlist.segments.compile import compile_rule
from guestlist.segments.evaluate import ProfileView, evaluate, explain
from guestlist.segments.profile_view import load_profile_views
from guestlist.segments.rules import Rule, parse_rule, rule_to_json, walk
from guestlist.segments.text import to_text
from tests.segments.strategies_db import (
    Population,
    db_rules,
    insert_population,
    pools,
    populations,
    segment_rules,
)

EXAMPLES = 150  # per backend


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
    (part, selected by SQL, admitted by the evaluator, the views), smallest first."""
    now = population.now
    views = load_profile_views(conn, population.ids, now=now)
    parts = list(dict.fromkeys(node for rule in rules for _, node in walk(rule)))
    out = []
    for part in parts:
        query = compile_rule(part, now=now, resolve_segment=segments.__getitem__)
        selected = set(conn.scalars(query))
        admitted = {
            pid
            for pid, view in views.items()
            if evaluate(part, view, now, member_of(segments, view, now))
        }
        if selected != admitted:
            out.append((part, selected, admitted, views))
    return sorted(out, key=lambda found: len(to_text(found[0])))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(data=st.data())
def test_sql_selects_exactly_the_profiles_the_evaluator_admits(
    engine: Engine, data: st.DataObject
) -> None:
    exact_sums = engine.dialect.name == "postgresql"
    population = data.draw(populations(exact_sums=exact_sums), label="population")
    held = pools(population, exact_sums=exact_sums)
    segments = data.draw(segment_rules(held, exact_sums=exact_sums), label="segments")
    rules = data.draw(
        st.lists(db_rules(held, exact_sums=exact_sums), min_size=1, max_size=5), label="rules"
    )
    for rule in (*rules, *segments.values()):
        assert parse_rule(rule_to_json(rule)) == rule  # a rule the API could have stored
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            insert_population(conn, population)
            found = disagreements(conn, population, segments, rules)
        finally:
            transaction.rollback()
    if found:
        part, selected, admitted, views = found[0]
        note(f"rule: {to_text(part)}")
        note(f"json: {json.dumps(rule_to_json(part))}")
        note(f"SQL selects {sorted(selected)}, the evaluator admits {sorted(admitted)}")
        for pid in sorted(selected ^ admitted):
            if pid in views:
                note(f"profile {pid}: {views[pid]}")
                member = member_of(segments, views[pid], population.now)
                for step in explain(part, views[pid], population.now, member):
                    note(f"  {step.path or '/'} {step.held}: {step.condition}")
    assert not found
