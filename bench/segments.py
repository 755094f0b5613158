"""Segment figures (issue 4), on the embedded SQLite and on PostgreSQL.

    .venv/bin/python bench/segments.py [--profiles 1000000 --orders 10000000]
        [--backend sqlite|postgresql|both] [--keep] [--reuse] [--plans]

Generates the shared audience data (../shared/bench/gen_audience_data.py) once per size
into bench/.data/, loads it into a fresh guestlist database (bench/audience_data.py),
and prints, beside the DuckDB ceiling (../shared/bench/duckdb_reference.py):

- the example audience counted in the database: median of 5 after one warm-up
  (goal ≤ 0.15 s), its count checked against the reference's;
- a preview of a typical rule, its count and first 20 members by id (goal ≤ 0.3 s);
- one profile's memberships re-evaluated in memory across 50 rules (goal ≤ 2 ms,
  median over many profiles), and the same with its ProfileView loaded first.

The reference judges everything at the naive instant 2025-06-30 00:00: ages on the
date 2025-06-30, orders from 2025-04-01 00:00 on. guestlist judges legal age on the
local date of the person's jurisdiction (compliance A-2), which at 2025-06-30 00:00 UTC
is still 29 June everywhere in North America. So the rules run at NOW = 2025-07-01
00:00 UTC, when it is 30 June in every zone of the data, and the 90-day window is
written `within 91d` (from 2025-04-01 00:00 UTC, as the reference's). No order is
dated after 2025-06-30, so the extra day adds none.

`--keep` keeps the databases (SQLite file in bench/.data/, PostgreSQL database
`guestlist_bench_segments_p…_o…`), `--reuse` uses kept ones of the same size instead of
loading again, `--plans` writes the audience's query plans to
bench/results/segments-plans.txt.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

from sqlalchemy import (
    ClauseElement,
    Connection,
    Engine,
    Executable,
    Select,
    create_engine,
    func,
    select,
    text,
)
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from audience_data import ensure_data, load_audience
from guestlist.runtime import tune_gc
from guestlist.segments.catalog import SegmentInput, create_segment, get_segment
from guestlist.segments.compile import Facts, compile_rule
from guestlist.segments.evaluate import ProfileView, evaluate
from guestlist.segments.facts import load_state
from guestlist.segments.membership import evaluate_segment
from guestlist.segments.profile_view import load_profile_views
from guestlist.segments.rules import Rule, RuleError, check_cost, rule_to_json
from guestlist.segments.service import count_and_first
from guestlist.segments.text import parse_text
from guestlist.store.engine import make_engine, read_connection
from guestlist.store.migrate import upgrade
from guestlist.store.planner_stats import analyze_stale_tables
from guestlist.store.tables import events, profiles

HERE: Final = Path(__file__).resolve().parent
CACHE: Final = HERE / ".data"
PLANS: Final = HERE / "results" / "segments-plans.txt"
REFERENCE: Final = Path("/work/shared/bench/duckdb_reference.py")
PG_ADMIN: Final = os.environ.get(
    "GUESTLIST_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1/test"
)
PG_DATABASE: Final = "guestlist_bench_segments"  # + the size: _p1000000_o10000000
LOADED_TABLES: Final = (
    "profiles",
    "identifiers",
    "traits",
    "consent_records",
    "consent_state",
    "age_records",
    "age_state",
    "events",
)

NOW: Final = datetime(2025, 7, 1, tzinfo=UTC)  # see the module docstring

# The example audience of issue 4, selecting exactly what duckdb_reference.py selects.
AUDIENCE: Final = """
    of_age_for("alcohol")
    and consent.sms is granted
    and count("Order Completed" within 91d) >= 2
    and sum("Order Completed".total) > 100
    and trait.favourite_category in ["bourbon", "tequila"]
    and not trait.tags contains "vip-excluded"
"""
# A typical preview: emailable bourbon buyers of the last 30 days.
PREVIEW: Final = """
    of_age_for("alcohol")
    and consent.email is granted
    and count("Order Completed" where category = "bourbon" within 30d) >= 1
"""
PREVIEW_SAMPLE: Final = 20
# The preview in DuckDB, on the reference's tables (30 days before NOW: 2025-06-01).
PREVIEW_DUCKDB: Final = """
    SELECT p.id FROM profiles p
    JOIN legal_age r ON r.country = p.country AND r.state = p.state
    WHERE p.email_consent = 'granted'
      AND p.birth_date <= DATE '2025-06-30' - to_years(r.min_age)
      AND p.id IN (SELECT customer_id FROM orders
                   WHERE category = 'bourbon' AND created_at >= TIMESTAMP '2025-06-01 00:00:00')
"""

# Fifty segments a shop might hold at once: every kind of condition, windows and
# filters, nesting, and the example audience.
EVALUATOR_RULES: Final = (
    'of_age_for("alcohol") and consent.sms is granted',
    'of_age_for("alcohol") and consent.email is granted',
    'consent.email is granted and trait.favourite_category = "bourbon"',
    'consent.sms is granted and trait.favourite_category in ["tequila", "mezcal"]',
    'trait.tags contains "vip-excluded"',
    'trait.tags contains "loyalty-gold" and consent.email is granted',
    'not trait.tags contains "lapsed" and count("Order Completed" within 30d) >= 1',
    'count("Order Completed" within 90d) >= 2',
    'count("Order Completed") = 0',
    'count("Order Completed" within 365d) >= 12',
    'sum("Order Completed".total) > 1000',
    'sum("Order Completed".total within 90d) > 200',
    'avg("Order Completed".total) > 60',
    'max("Order Completed".total within 180d) >= 150',
    'min("Order Completed".total) < 10',
    'count("Order Completed" where category = "bourbon" within 90d) >= 1',
    'count("Order Completed" where category in ["red-wine", "white-wine"] within 180d) >= 3',
    'sum("Order Completed".total where category = "scotch") > 300',
    "age >= 65",
    'age < 25 and of_age_for("alcohol")',
    "age >= 30 and age < 40",
    'of_age_for("alcohol.spirits")',
    'of_age_for("alcohol", level="id_document")',
    "identifier.phone exists and consent.sms is not_granted",
    "identifier.email exists and consent.email is granted and trait.address exists",
    'trait.favourite_category starts_with "w"',
    'trait.favourite_category != "beer" and count("Order Completed" within 60d) >= 1',
    'trait.tags contains "newsletter" or trait.tags contains "club-member"',
    'any(trait.tags contains "gift-buyer", sum("Order Completed".total within 30d) > 150)',
    "not (consent.email is granted or consent.sms is granted)",
    'consent.email is granted and consent.sms is granted and of_age_for("alcohol")',
    AUDIENCE,
    'count("Order Completed" within 7d) >= 1',
    'count("Order Completed" within 14d) >= 1 and consent.sms is granted',
    'count("Order Completed" within 180d) = 0 and count("Order Completed") >= 1',
    'sum("Order Completed".total within 365d) >= 500 and of_age_for("alcohol")',
    'max("Order Completed".total) > 300',
    'avg("Order Completed".total within 365d) < 30',
    'count("Order Completed" where total > 100 within 365d) >= 2',
    'count("Order Completed" where category = "tequila" and total >= 50) >= 1',
    'trait.favourite_category in ["vodka", "gin", "rum"] and consent.email is granted'
    ' and count("Order Completed" within 30d) >= 1',
    'trait.tags contains "high-value" and not trait.tags contains "vip-excluded"',
    "trait.tags not_exists",
    "trait.favourite_category exists and age exists",
    "age >= 21 and age <= 29 and consent.sms is granted",
    'of_age_for("alcohol") and trait.tags contains "event-2024"'
    ' and count("Order Completed" within 120d) >= 1',
    'count("Order Completed" where category = "cognac" within 365d) >= 1'
    ' or count("Order Completed" where category = "liqueur" within 365d) >= 1',
    'sum("Order Completed".total where category in ["bourbon", "scotch"] within 365d) > 250',
    "consent.email is not_granted and consent.sms is granted"
    ' and count("Order Completed" within 90d) >= 1',
    'not of_age_for("alcohol")',
)

T = TypeVar("T")


def parse(rule_text: str) -> Rule:
    rule = parse_text(rule_text)
    check_cost(rule)
    return rule


def no_segments(slug: str) -> Rule:
    raise RuleError("", f"the benchmark's rules use no segment ({slug})")


def segment_query(rule: Rule, facts: Facts | None) -> Select[Any]:
    return compile_rule(rule, now=NOW, resolve_segment=no_segments, facts=facts)


def count_query(rule: Rule, facts: Facts | None) -> Select[Any]:
    return select(func.count()).select_from(segment_query(rule, facts).subquery())


def save_audience(engine: Engine) -> None:
    """Store the example audience as a segment, as a shop would, and evaluate it: the
    first evaluation adds and fills the facts columns its conditions read
    (segments.facts) and stores its members; later ones (a kept database) fill only
    columns the code has learnt to keep since."""
    with engine.begin() as conn:
        if get_segment(conn, "audience") is None:
            rule = rule_to_json(parse(AUDIENCE))
            create_segment(conn, SegmentInput("Audience", "audience", rule), actor="bench")
    started = time.perf_counter()
    with engine.begin() as conn:
        changes = evaluate_segment(conn, "audience", now=NOW)
    print(
        f"  {'save the audience (facts + members)':<40}{time.perf_counter() - started:>10.1f}"
        f"  ({len(changes.entered):,} members)"
    )
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE profile_facts")  # as autovacuum would


def timed(run: Callable[[], T], reps: int) -> tuple[float, T]:
    """Median seconds of `reps` runs after one warm-up, and the last result."""
    result = run()
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


# -- the reference -------------------------------------------------------------------


@dataclass
class Reference:
    audience_count: int
    audience_seconds: float
    preview_count: int | None = None
    preview_sample: list[int] = field(default_factory=list)
    preview_seconds: float | None = None


def duckdb_reference(data: Path, reps: int) -> Reference:
    """The shared script's audience figure, and the preview measured the same way."""
    out = subprocess.run(
        [sys.executable, str(REFERENCE), str(data), str(reps)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found = re.search(r"audience: (\d+) profiles, median ([0-9.]+) s", out)
    if found is None:
        raise RuntimeError(f"unexpected output from {REFERENCE.name}: {out!r}")
    ref = Reference(int(found[1]), float(found[2]))
    try:
        import duckdb
    except ImportError:
        return ref
    con = duckdb.connect()
    con.execute("SET threads=2")  # as the reference
    for table, name in (
        ("profiles", "seg_profiles"),
        ("orders", "seg_orders"),
        ("legal_age", "seg_legal_age"),
    ):
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM read_parquet('{data}/{name}.parquet')")

    def preview() -> tuple[int, list[int]]:
        (n,) = con.execute(f"SELECT count(*) FROM ({PREVIEW_DUCKDB})").fetchone() or (0,)
        first = con.execute(f"{PREVIEW_DUCKDB} ORDER BY p.id LIMIT {PREVIEW_SAMPLE}").fetchall()
        return int(n), [int(r[0]) for r in first]

    ref.preview_seconds, (ref.preview_count, ref.preview_sample) = timed(preview, reps)
    con.close()
    return ref


# -- databases -----------------------------------------------------------------------


@contextmanager
def sqlite_database(
    n_profiles: int, n_orders: int, keep: bool, reuse: bool
) -> Iterator[tuple[str, bool]]:
    """The database URL, and whether it already holds the data."""
    path = CACHE / f"segments-p{n_profiles}_o{n_orders}.db"
    loaded = reuse and path.exists()
    if not loaded:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    try:
        yield f"sqlite:///{path}", loaded
    finally:
        if not keep:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)


def pg_database(n_profiles: int, n_orders: int) -> str:
    return f"{PG_DATABASE}_p{n_profiles}_o{n_orders}"


@contextmanager
def postgresql_database(
    n_profiles: int, n_orders: int, keep: bool, reuse: bool
) -> Iterator[tuple[str, bool]]:
    name = pg_database(n_profiles, n_orders)
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        loaded = bool(reuse and exists)
        if not loaded:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name, loaded
    finally:
        if not keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def holds_data(engine: Engine, n_profiles: int, n_orders: int) -> bool:
    try:
        with engine.connect() as conn:
            n_p = conn.scalar(select(func.count()).select_from(profiles))
            n_e = conn.scalar(select(func.count()).select_from(events))
    except Exception:  # not migrated, or not a guestlist database
        return False
    return (n_p, n_e) == (n_profiles, n_orders)


def prepare(engine: Engine, url: str, data: Path) -> None:
    """Migrate, load, and bring the planner's statistics up to date."""
    upgrade(url)
    started = time.perf_counter()
    loads = load_audience(engine, data)
    print(f"  {'load':<28}{'rows':>12}{'seconds':>10}")
    for load in loads:
        print(f"  {load.table:<28}{load.rows:>12,}{load.seconds:>10.1f}")
    if engine.dialect.name == "postgresql":
        analyzed_at = time.perf_counter()
        # A backend reports its row counts to pg_stat_user_tables when it has been
        # idle a while or exits: close the loading connections first, or the store's
        # ANALYZE sees the last tables unchanged.
        engine.dispose()
        analyzed = analyze_stale_tables(engine, LOADED_TABLES)
        # It skips a table whose rows as many as pg_class.reltuples says it holds,
        # and CREATE INDEX sets reltuples without analyzing: the tables whose indexes
        # the loader built again are never analyzed by it. Autoanalyze would catch
        # up within a minute; do its work now. Then VACUUM, which autovacuum runs
        # after such inserts too (it sets the visibility map index-only scans read).
        missed = [name for name in LOADED_TABLES if name not in analyzed]
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for name in missed:
                conn.exec_driver_sql(f'ANALYZE "{name}"')
            for name in LOADED_TABLES:
                conn.exec_driver_sql(f'VACUUM "{name}"')
        print(
            f"  {'ANALYZE + VACUUM':<40}{time.perf_counter() - analyzed_at:>10.1f}"
            + (f"  (the store's ANALYZE skipped {', '.join(missed)})" if missed else "")
        )
    print(f"  {'total':<40}{time.perf_counter() - started:>10.1f}")


# -- figures -------------------------------------------------------------------------


@dataclass
class Figure:
    name: str
    goal: float
    ours: float
    reference: float | None = None
    note: str = ""


def measure_sql(conn: Connection, reps: int, ref: Reference) -> list[Figure]:
    audience, preview = parse(AUDIENCE), parse(PREVIEW)
    facts = load_state(conn).for_compiler()

    def count_audience() -> int:
        return int(conn.execute(count_query(audience, facts)).scalar_one())

    seconds, count = timed(count_audience, reps)
    check = "= reference" if count == ref.audience_count else f"≠ reference {ref.audience_count:,}"
    figures = [Figure("audience count", 0.150, seconds, ref.audience_seconds, f"{count:,} {check}")]

    def run_preview() -> tuple[int, list[int]]:
        return count_and_first(conn, segment_query(preview, facts), PREVIEW_SAMPLE)

    seconds, (n, sample) = timed(run_preview, reps)
    if ref.preview_count is None:
        check = "(no duckdb to check)"
    elif (n, sample) == (ref.preview_count, ref.preview_sample):
        check = "= reference"
    else:
        check = f"≠ reference {ref.preview_count:,}"
    figures.append(
        Figure(
            f"preview (count + {PREVIEW_SAMPLE})",
            0.300,
            seconds,
            ref.preview_seconds,
            f"{n:,} {check}",
        )
    )
    return figures


def measure_evaluator(conn: Connection, n_profiles: int, sample: int) -> list[Figure]:
    """50 rules for one profile in memory, median over `sample` profiles; then the
    same with the profile's view loaded from the store first."""
    rules = [parse(r) for r in EVALUATOR_RULES]
    assert len(rules) == 50
    ids = random.Random(4).sample(range(1, n_profiles + 1), min(sample, n_profiles))
    views = load_profile_views(conn, ids, now=NOW)

    def members(view: ProfileView) -> list[bool]:
        return [evaluate(rule, view, NOW, segments=lambda _slug: False) for rule in rules]

    in_memory = []
    for pid in ids:
        view = views[pid]
        members(view)  # warm
        started = time.perf_counter()
        members(view)
        in_memory.append(time.perf_counter() - started)
    with_load = []
    for pid in ids[:200]:
        started = time.perf_counter()
        members(load_profile_views(conn, [pid], now=NOW)[pid])
        with_load.append(time.perf_counter() - started)
    # The evaluator and the compiler must agree: the audience over the sample, both ways.
    audience = parse(AUDIENCE)
    by_sql = set(
        conn.execute(segment_query(audience, None).where(profiles.c.id.in_(ids))).scalars()
    )
    by_memory = {pid for pid in ids if evaluate(audience, views[pid], NOW, lambda _s: False)}
    agree = "agrees with SQL" if by_sql == by_memory else f"DISAGREES on {by_sql ^ by_memory}"
    events_seen = sorted(len(v.events) for v in views.values())
    return [
        Figure(
            "50 rules, 1 profile, memory",
            0.002,
            statistics.median(in_memory),
            note=f"p95 {_quantile(in_memory, 0.95) * 1000:.2f} ms; {len(ids)} profiles, "
            f"≤ {events_seen[-1]} events each; audience {agree}",
        ),
        Figure(
            "  + load its ProfileView",
            0.002,
            statistics.median(with_load),
            note=f"p95 {_quantile(with_load, 0.95) * 1000:.2f} ms; {len(with_load)} profiles",
        ),
    ]


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def print_table(title: str, figures: Sequence[Figure]) -> None:
    print(f"\n  {title}")
    print(f"  {'figure':<30}{'goal':>9}{'ours':>10}{'DuckDB':>10}{'ratio':>8}  check")
    for f in figures:
        ref = "—" if f.reference is None else _seconds(f.reference)
        ratio = "—" if f.reference is None else f"{f.ours / f.reference:.1f}x"
        mark = "ok" if f.ours <= f.goal else "MISS"
        print(
            f"  {f.name:<30}{'≤' + _seconds(f.goal):>9}{_seconds(f.ours):>10}{ref:>10}"
            f"{ratio:>8}  {mark}  {f.note}"
        )


def _seconds(value: float) -> str:
    return f"{value * 1000:.2f}ms" if value < 0.01 else f"{value:.3f}s"


# -- plans ---------------------------------------------------------------------------


class Explain(Executable, ClauseElement):
    """`EXPLAIN …` in front of a statement, its parameters bound as for the statement."""

    inherit_cache = False

    def __init__(self, prefix: str, statement: Select[Any]) -> None:
        self.prefix = prefix
        self.statement = statement


@compiles(Explain)
def _explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{element.prefix} {compiler.process(element.statement, **kw)}"


def write_plans(conn: Connection, backend: str, size: str) -> None:
    query = count_query(parse(AUDIENCE), load_state(conn).for_compiler())
    try:  # readable, with the values in place
        sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    except CompileError:
        sql = str(query.compile(dialect=conn.dialect))
    parts = [f"==== {backend}, {size}: the example audience, count(*)\n\n{sql}\n"]
    if backend == "sqlite":
        rows = conn.execute(Explain("EXPLAIN QUERY PLAN", query)).all()
        depth: dict[int, int] = {0: 0}
        lines = []
        for node, parent, _, detail in rows:
            depth[node] = depth.get(parent, 0) + 1
            lines.append("  " * depth[node] + str(detail))
        parts.append("-- EXPLAIN QUERY PLAN\n" + "\n".join(lines) + "\n")
    else:
        for jit in ("off", "on"):
            conn.exec_driver_sql(f"SET jit = {jit}")
            rows = conn.execute(Explain("EXPLAIN (ANALYZE, BUFFERS)", query)).all()
            plan = "\n".join(str(r[0]) for r in rows)
            parts.append(f"-- EXPLAIN (ANALYZE, BUFFERS), jit = {jit}\n")
            if jit == "on" and "JIT:" not in plan:
                threshold = conn.exec_driver_sql("SHOW jit_above_cost").scalar_one()
                parts.append(
                    f"(no JIT: the plan's estimated cost is below jit_above_cost {threshold})\n"
                )
            parts.append(plan + "\n")
        conn.exec_driver_sql("RESET jit")
    PLANS.parent.mkdir(parents=True, exist_ok=True)
    with PLANS.open("a") as out:
        out.write("\n".join(parts) + "\n")
    print(f"  plans appended to {PLANS.relative_to(HERE.parent)}")


# -- main ----------------------------------------------------------------------------


def run_backend(backend: str, args: argparse.Namespace, data: Path, ref: Reference) -> None:
    size = f"{args.profiles:,} profiles / {args.orders:,} orders"
    print(f"\n== {'SQLite (embedded, WAL)' if backend == 'sqlite' else 'PostgreSQL'}, {size}")
    database = (
        sqlite_database(args.profiles, args.orders, args.keep, args.reuse)
        if backend == "sqlite"
        else postgresql_database(args.profiles, args.orders, args.keep, args.reuse)
    )
    with database as (url, loaded):
        engine = make_engine(url)
        if loaded:
            if not holds_data(engine, args.profiles, args.orders):
                raise SystemExit(f"{url} does not hold this size's data: run without --reuse")
            print("  reusing the loaded database")
            upgrade(url)  # a database kept before a migration gets it
        else:
            prepare(engine, url, data)
        save_audience(engine)
        with read_connection(engine) as conn:
            figures = measure_sql(conn, args.reps, ref)
            if backend == "postgresql":
                conn.exec_driver_sql("SET jit = off")
                jit_off = measure_sql(conn, args.reps, ref)
                conn.exec_driver_sql("RESET jit")
                for f in jit_off:
                    f.name += ", jit off"
                figures += jit_off
            figures += measure_evaluator(conn, args.profiles, args.evaluator_profiles)
            if args.plans:
                write_plans(conn, backend, size)
        engine.dispose()
    print_table(f"{backend}, {size} (now = {NOW.isoformat()})", figures)


def main() -> None:
    tune_gc()  # as `guestlist worker` does
    if isinstance(sys.stdout, io.TextIOWrapper):  # progress shows when piped to a file
        sys.stdout.reconfigure(line_buffering=True)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=10_000_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--evaluator-profiles", type=int, default=1000)
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--reuse", action="store_true", help="use kept databases of this size")
    parser.add_argument("--plans", action="store_true", help=f"write plans to {PLANS.name}")
    args = parser.parse_args()
    for rule in EVALUATOR_RULES:
        parse(rule)  # a typo fails here, not after the load
    data = ensure_data(args.profiles, args.orders, CACHE)
    ref = duckdb_reference(data, args.reps)
    print(
        f"DuckDB reference: audience {ref.audience_count:,} in {ref.audience_seconds:.4f} s; "
        f"preview {ref.preview_count} in {ref.preview_seconds or 0:.4f} s"
    )
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    for backend in backends:
        run_backend(backend, args, data, ref)


if __name__ == "__main__":
    main()
