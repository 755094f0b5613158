"""What would bring the example audience under 0.15 s (and the preview under 0.3 s):
plan shapes, indexes, maintained aggregates, measured on a scratch copy of a database
`bench/segments.py --keep` left.

    .venv/bin/python bench/segments_variants.py --backend sqlite|postgresql
        [--profiles 1000000 --orders 10000000] [--reps 5] [--only NAME,…] [--conditions]

`--conditions` first times each of the audience's conditions alone, over every profile.

The copy (bench/.data/segments-scratch.db, or the PostgreSQL database
`guestlist_bench_segments_scratch`) gets what guestlist does not have yet and is
dropped at the end:

- computed traits, maintained as issue 4 asks (here computed once, at NOW):
  `lifetime_spend` (sum of totals), `orders_90d` (orders within 91 days of NOW, the
  benchmark's window), as ordinary trait rows;
- `profile_facts`: one typed row per profile holding what segments read most (consent
  per channel, date of birth and jurisdiction, favourite category, the aggregates)
  and `profile_tags` (tag, profile_id): what a maintained, columnar-ish summary would
  give the compiler;
- extra indexes, named per variant; they accumulate in the order listed (`+ …`),
  and on SQLite the last variants run after ANALYZE, which guestlist never runs.

Each variant prints its median of `reps` runs after one warm-up and its count, which
must equal the reference's.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Final

from sqlalchemy import Connection, Engine, create_engine, text

from guestlist.age import default_policy
from guestlist.segments.compile import latest_dobs_of_age
from guestlist.store.engine import make_engine
from segments import AUDIENCE, CACHE, NOW, PG_ADMIN, PREVIEW, count_query, parse, pg_database

SCRATCH_PG: Final = "guestlist_bench_segments_scratch"
CUTOFF: Final = "2025-04-01 00:00:00"  # NOW - 91 days, as the benchmark's rule
CUTOFF_30: Final = "2025-06-01 00:00:00"  # NOW - 30 days, the preview's window

# The same audience, cheapest and most selective conditions first.
AUDIENCE_REORDERED: Final = """
    trait.favourite_category in ["bourbon", "tequila"]
    and consent.sms is granted
    and not trait.tags contains "vip-excluded"
    and of_age_for("alcohol")
    and count("Order Completed" within 91d) >= 2
    and sum("Order Completed".total) > 100
"""
# With the computed traits of issue 4 instead of aggregates over events.
AUDIENCE_COMPUTED: Final = """
    trait.favourite_category in ["bourbon", "tequila"]
    and consent.sms is granted
    and trait.orders_90d >= 2
    and trait.lifetime_spend > 100
    and not trait.tags contains "vip-excluded"
    and of_age_for("alcohol")
"""


@dataclass(frozen=True)
class Variant:
    name: str
    run: Callable[[Connection], int]
    setup: tuple[str, ...] = ()  # statements, run once before timing


def compiled(rule_text: str) -> Callable[[Connection], int]:
    rule = parse(rule_text)
    return lambda conn: int(conn.execute(count_query(rule, None)).scalar_one())


def raw(sql: str) -> Callable[[Connection], int]:
    return lambda conn: int(conn.exec_driver_sql(sql).scalar_one())


def of_age_sql(conn: Connection, jurisdiction: str, dob: str) -> str:
    """`of_age_for("alcohol")` at NOW for the jurisdictions the data holds, as plain
    SQL: the latest date of birth per jurisdiction that the compiler works out."""
    latest = latest_dobs_of_age(default_policy(), "alcohol", NOW)
    held = [r[0] for r in conn.exec_driver_sql("SELECT DISTINCT jurisdiction FROM age_state")]
    by_date: dict[date, list[str]] = {}
    for code in held:
        found = latest.by_jurisdiction.get(code) or latest.by_country_fallback.get(code[:2])
        if found is not None:
            by_date.setdefault(found, []).append(code)
    parts = [
        f"({jurisdiction} IN ({', '.join(repr(c) for c in sorted(codes))}) "
        f"AND {dob} <= '{day.isoformat()}')"
        for day, codes in sorted(by_date.items())
    ]
    return "(" + " OR ".join(parts) + ")"


def facts_where(conn: Connection) -> str:
    """The audience over profile_facts and profile_tags."""
    return f"""f.favourite_category IN ('bourbon', 'tequila') AND f.sms_marketing = 'granted'
        AND f.orders_90d >= 2 AND f.lifetime_spend > 100
        AND {of_age_sql(conn, "f.jurisdiction", "f.dob")}
        AND NOT EXISTS (SELECT 1 FROM profile_tags t
                        WHERE t.tag = 'vip-excluded' AND t.profile_id = f.profile_id)"""


def cutoff(conn: Connection, at: str = CUTOFF) -> str:
    # SQLite holds UTC text; PostgreSQL reads a literal in the session's zone.
    return at + ("+00" if conn.dialect.name == "postgresql" else "")


def variants(conn: Connection) -> list[Variant]:
    pg = conn.dialect.name == "postgresql"
    age = of_age_sql(conn, "a.jurisdiction", "a.dob")
    text_value = "(v.value #>> '{}')" if pg else "json_extract(v.value, '$')"
    number = "(v.value #>> '{}')::numeric" if pg else "v.value"
    total = "(e.properties ->> 'total')::numeric" if pg else "json_extract(e.properties, '$.total')"
    vip = (
        "v.value @> '[\"vip-excluded\"]'"
        if pg
        else "EXISTS (SELECT 1 FROM json_each(v.value) j WHERE j.value = 'vip-excluded')"
    )
    fav_index = (
        "CREATE INDEX ix_traits_name_text ON traits (name, (value #>> '{}'))"
        if pg
        else "CREATE INDEX ix_traits_name_text ON traits (name, json_extract(value, '$'))"
    )
    covering = (
        "CREATE INDEX ix_events_profile_name_time ON events (profile_id, name, timestamp) "
        "INCLUDE (type)"
        if pg
        else "CREATE INDEX ix_events_profile_time_kind ON events "
        "(profile_id, timestamp, type, name)"
    )
    # At least 2 in the window, stopping at the second (LIMIT), not counting them all.
    two_recent = (
        "(SELECT count(*) FROM (SELECT 1 FROM events e WHERE e.profile_id = p.id "
        "AND e.type = 'track' AND e.name = 'Order Completed' "
        f"AND e.timestamp >= '{cutoff(conn)}' LIMIT 2) two) = 2"
    )
    spent = (
        f"(SELECT sum({total}) FROM events e WHERE e.profile_id = p.id "
        "AND e.type = 'track' AND e.name = 'Order Completed') > 100"
    )
    category = "(e.properties ->> 'category')" if pg else "json_extract(e.properties, '$.category')"
    trait_is = (
        "EXISTS (SELECT 1 FROM traits v WHERE v.profile_id = p.id AND v.name = '{name}' AND {cond})"
    )
    # Cheap conditions first, as a materialized candidate set; events only for those.
    hand = f"""
        WITH candidates AS MATERIALIZED (
            SELECT p.id FROM profiles p
            JOIN traits fav ON fav.profile_id = p.id AND fav.name = 'favourite_category'
            JOIN consent_state c ON c.profile_id = p.id AND c.channel = 'sms'
                 AND c.purpose = 'marketing' AND c.status = 'granted'
            JOIN age_state a ON a.profile_id = p.id
            WHERE p.merged_into IS NULL AND p.erased_at IS NULL
              AND {text_value.replace("v.", "fav.")} IN ('bourbon', 'tequila')
              AND a.level = 'dob_provided' AND {age}
              AND NOT {trait_is.format(name="tags", cond=vip)})
        SELECT count(*) FROM candidates p WHERE {two_recent} AND {spent}"""
    # The window's events first (index on name, timestamp), grouped per profile.
    events_first = f"""
        WITH recent AS MATERIALIZED (
            SELECT e.profile_id FROM events e
            WHERE e.name = 'Order Completed' AND e.type = 'track'
              AND e.timestamp >= '{cutoff(conn)}'
            GROUP BY e.profile_id HAVING count(*) >= 2),
        candidates AS MATERIALIZED (
            SELECT p.id FROM profiles p
            JOIN traits fav ON fav.profile_id = p.id AND fav.name = 'favourite_category'
            JOIN consent_state c ON c.profile_id = p.id AND c.channel = 'sms'
                 AND c.purpose = 'marketing' AND c.status = 'granted'
            JOIN age_state a ON a.profile_id = p.id
            WHERE p.merged_into IS NULL AND p.erased_at IS NULL
              AND p.id IN (SELECT profile_id FROM recent)
              AND {text_value.replace("v.", "fav.")} IN ('bourbon', 'tequila')
              AND a.level = 'dob_provided' AND {age}
              AND NOT {trait_is.format(name="tags", cond=vip)})
        SELECT count(*) FROM candidates p WHERE {spent}"""
    preview_events_first = f"""
        SELECT count(*) FROM profiles p
        JOIN consent_state c ON c.profile_id = p.id AND c.channel = 'email'
             AND c.purpose = 'marketing' AND c.status = 'granted'
        JOIN age_state a ON a.profile_id = p.id
        WHERE p.merged_into IS NULL AND p.erased_at IS NULL
          AND a.level = 'dob_provided' AND {age}
          AND p.id IN (SELECT e.profile_id FROM events e
                       WHERE e.name = 'Order Completed' AND e.type = 'track'
                         AND e.timestamp >= '{cutoff(conn, CUTOFF_30)}'
                         AND {category} = 'bourbon')"""
    hand_computed = f"""
        SELECT count(*) FROM profiles p
        JOIN traits fav ON fav.profile_id = p.id AND fav.name = 'favourite_category'
        JOIN consent_state c ON c.profile_id = p.id AND c.channel = 'sms'
             AND c.purpose = 'marketing' AND c.status = 'granted'
        JOIN age_state a ON a.profile_id = p.id
        WHERE p.merged_into IS NULL AND p.erased_at IS NULL
          AND {text_value.replace("v.", "fav.")} IN ('bourbon', 'tequila')
          AND a.level = 'dob_provided' AND {age}
          AND {trait_is.format(name="orders_90d", cond=number + " >= 2")}
          AND {trait_is.format(name="lifetime_spend", cond=number + " > 100")}
          AND NOT {trait_is.format(name="tags", cond=vip)}"""
    facts = f"SELECT count(*) FROM profile_facts f WHERE {facts_where(conn)}"
    facts_index = (
        "CREATE INDEX ix_profile_facts_fav_sms ON profile_facts "
        "(favourite_category, sms_marketing, orders_90d, lifetime_spend, jurisdiction, dob)"
    )
    sqlite = not pg
    analyze = ("ANALYZE",) if sqlite else ()
    found = [
        Variant("compiled (the benchmark)", compiled(AUDIENCE)),
        Variant("compiled, cheapest conditions first", compiled(AUDIENCE_REORDERED)),
        Variant("hand-written: candidates CTE, LIMIT 2 count", raw(hand)),
        Variant("hand-written: window's events first, GROUP BY", raw(events_first)),
        Variant("preview count: compiled", compiled(PREVIEW)),
        Variant("preview count: hand-written, events first", raw(preview_events_first)),
        Variant(
            "+ covering events index: compiled, reordered",
            compiled(AUDIENCE_REORDERED),
            (covering,),
        ),
        Variant("+ covering events index: hand-written", raw(hand)),
        Variant("+ index traits (name, text value): hand-written", raw(hand), (fav_index,)),
        Variant("computed traits: compiled", compiled(AUDIENCE_COMPUTED)),
        Variant("computed traits: hand-written", raw(hand_computed)),
        Variant("profile_facts: scan", raw(facts)),
        Variant("profile_facts + covering index", raw(facts), (facts_index,)),
        Variant(
            "stored membership count",
            raw(
                "SELECT count(*) FROM segment_memberships "
                "WHERE segment_id = 1 AND exited_at IS NULL"
            ),
        ),
    ]
    if sqlite:  # guestlist never runs ANALYZE on SQLite: what statistics would change
        found += [
            Variant("+ ANALYZE: compiled (the benchmark)", compiled(AUDIENCE), analyze),
            Variant("+ ANALYZE: compiled, reordered", compiled(AUDIENCE_REORDERED)),
            Variant("+ ANALYZE: computed traits, compiled", compiled(AUDIENCE_COMPUTED)),
        ]
    return found


# -- the scratch copy ----------------------------------------------------------------


@contextmanager
def scratch(backend: str, n_profiles: int, n_orders: int) -> Iterator[Engine]:
    if backend == "sqlite":
        kept = CACHE / f"segments-p{n_profiles}_o{n_orders}.db"
        copy = CACHE / "segments-scratch.db"
        for suffix in ("", "-wal"):  # the WAL holds the last commits: copy it too
            if Path(f"{kept}{suffix}").exists():
                shutil.copyfile(f"{kept}{suffix}", f"{copy}{suffix}")
        engine = make_engine(f"sqlite:///{copy}")
        try:
            yield engine
        finally:
            engine.dispose()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{copy}{suffix}").unlink(missing_ok=True)
        return
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{SCRATCH_PG}" WITH (FORCE)'))
        conn.execute(
            text(f'CREATE DATABASE "{SCRATCH_PG}" TEMPLATE "{pg_database(n_profiles, n_orders)}"')
        )
    engine = make_engine(PG_ADMIN.rsplit("/", 1)[0] + "/" + SCRATCH_PG)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{SCRATCH_PG}" WITH (FORCE)'))
        admin.dispose()


def add_maintained(engine: Engine) -> None:
    """The computed traits, profile_facts and profile_tags, as maintained state at NOW;
    and the example audience stored as segment 1's memberships."""
    pg = engine.dialect.name == "postgresql"
    total = "(properties ->> 'total')::numeric" if pg else "json_extract(properties, '$.total')"
    as_json = "to_jsonb({})" if pg else "{}"
    text_value = "(value #>> '{}')" if pg else "json_extract(value, '$')"
    tags = (
        "SELECT t.profile_id, x.tag FROM traits t, jsonb_array_elements_text(t.value) x(tag) "
        "WHERE t.name = 'tags'"
        if pg
        else "SELECT t.profile_id, j.value FROM traits t, json_each(t.value) j "
        "WHERE t.name = 'tags'"
    )
    with engine.connect() as conn:
        limit = cutoff(conn)
    statements = [
        f"""INSERT INTO traits (profile_id, name, value, source_id, event_time, updated_at)
            SELECT profile_id, 'lifetime_spend', {as_json.format(f"sum({total})")}, NULL,
                   max(timestamp), max(timestamp)
            FROM events WHERE type = 'track' AND name = 'Order Completed' GROUP BY profile_id""",
        f"""INSERT INTO traits (profile_id, name, value, source_id, event_time, updated_at)
            SELECT profile_id, 'orders_90d',
                   {as_json.format(f"count(*) FILTER (WHERE timestamp >= '{limit}')")},
                   NULL, max(timestamp), max(timestamp)
            FROM events WHERE type = 'track' AND name = 'Order Completed' GROUP BY profile_id""",
        """CREATE TABLE profile_facts (
               profile_id BIGINT PRIMARY KEY, sms_marketing VARCHAR(20),
               email_marketing VARCHAR(20), dob DATE, jurisdiction VARCHAR(6),
               favourite_category VARCHAR(200), orders_90d INTEGER,
               lifetime_spend NUMERIC, last_order_at TIMESTAMP)""",
        f"""INSERT INTO profile_facts
            SELECT p.id,
                   (SELECT status FROM consent_state c WHERE c.profile_id = p.id
                    AND c.channel = 'sms' AND c.purpose = 'marketing'),
                   (SELECT status FROM consent_state c WHERE c.profile_id = p.id
                    AND c.channel = 'email' AND c.purpose = 'marketing'),
                   a.dob, a.jurisdiction,
                   (SELECT {text_value} FROM traits t WHERE t.profile_id = p.id
                    AND t.name = 'favourite_category'),
                   coalesce(o.recent, 0), coalesce(o.spent, 0), o.last_at
            FROM profiles p LEFT JOIN age_state a ON a.profile_id = p.id
            LEFT JOIN (SELECT profile_id,
                              count(*) FILTER (WHERE timestamp >= '{limit}') AS recent,
                              sum({total}) AS spent, max(timestamp) AS last_at
                       FROM events WHERE type = 'track' AND name = 'Order Completed'
                       GROUP BY profile_id) o ON o.profile_id = p.id""",
        "CREATE TABLE profile_tags (tag VARCHAR(200), profile_id BIGINT, "
        "PRIMARY KEY (tag, profile_id))",
        f"INSERT INTO profile_tags (profile_id, tag) {tags}",
        """INSERT INTO segments (slug, name, rule, version, created_at, updated_at)
           VALUES ('audience', 'audience', '{}', 1, '2025-07-01', '2025-07-01')""",
    ]
    with engine.begin() as conn:
        for sql in statements:
            started = time.perf_counter()
            conn.exec_driver_sql(sql)
            print(f"    {time.perf_counter() - started:6.1f} s  {' '.join(sql.split())[:70]}")
        started = time.perf_counter()
        conn.execute(
            text(
                "INSERT INTO segment_memberships (segment_id, profile_id, entered_at) "
                f"SELECT 1, f.profile_id, :at FROM profile_facts f WHERE {facts_where(conn)}"
            ),
            {"at": NOW},
        )
        print(f"    {time.perf_counter() - started:6.1f} s  memberships of the audience")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if pg:  # as autovacuum would; SQLite gets no statistics (as guestlist runs it)
            conn.exec_driver_sql("VACUUM ANALYZE")


def time_conditions(conn: Connection) -> None:
    """Each condition of the audience alone, over every profile: what it costs."""
    for line in AUDIENCE_REORDERED.strip().splitlines():
        condition = line.strip().removeprefix("and ")
        run = compiled(condition)
        run(conn)
        started = time.perf_counter()
        count = run(conn)
        print(f"  alone: {condition:<55}{time.perf_counter() - started:>8.3f} s  {count:,}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), required=True)
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=10_000_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated variant name prefixes")
    parser.add_argument(
        "--conditions", action="store_true", help="first time each condition alone (1 run)"
    )
    args = parser.parse_args()
    with scratch(args.backend, args.profiles, args.orders) as engine:
        print("  maintained state on the scratch copy:")
        add_maintained(engine)
        with engine.connect() as conn:
            if args.backend == "postgresql":
                conn.exec_driver_sql("SET jit = off")
            if args.conditions:
                time_conditions(conn)
            for variant in variants(conn):
                wanted = [w.strip() for w in args.only.split(",") if w.strip()]
                if wanted and not any(variant.name.strip().startswith(w) for w in wanted):
                    continue
                for sql in variant.setup:
                    conn.exec_driver_sql(sql)
                    conn.commit()
                if variant.setup and args.backend == "postgresql":
                    conn.exec_driver_sql("ANALYZE")
                variant.run(conn)
                times = []
                for _ in range(args.reps):
                    started = time.perf_counter()
                    count = variant.run(conn)
                    times.append(time.perf_counter() - started)
                print(f"  {variant.name:<50}{statistics.median(times):>9.3f} s  {count:,}")


if __name__ == "__main__":
    main()
