"""`profile_facts`: one row per live profile with what segment rules read, kept exact.

Counting an audience over a million profiles by looking up each profile's traits,
consent, age and events costs a million lookups per condition (seconds). Here every
live profile has one row holding, side by side: its date of birth, jurisdiction and
verification level, and one column per fact the stored rules read (a trait's value,
until when a consent is granted, an aggregate over its events: segments.fact_specs),
so a rule is one scan of one table (segments.compile, `Facts`).

Exactness, not approximation, is the contract:

- A row is written in the same transaction as whatever changes it: the pipeline's
  `refresh_profiles` rewrites the rows of a batch's profiles after applying it, a rule
  change (`ensure_facts`) adds and fills the columns it needs before it is evaluated.
  The values are computed by the same SQL the compiler runs without facts.
- Writers outside the pipeline (consent by a click, a merge) mark the row stale
  (`segments.due.mark_due`, the merge step below), as they mark the profile's recheck.
- Time changes what some facts mean: a windowed count drops when an order ages out. A
  row is fresh from when it was computed (`fresh_from`) until the profile's next
  recheck (`fresh_until`, which `schedule_rechecks` sets from the same windows);
  the compiler reads stale rows' profiles from their own rows.
- Every live profile has a row once the facts are built (`built`): the pipeline's
  refresh writes the rows of the profiles it creates.

Columns are added and dropped as rules come and go (`ALTER TABLE`); `fact_columns`
names them (`f<id>`) and says which are filled (`ready`). The fixed columns are filled
by the first build; the row `key = "base"` says so. With no segment and no computed
trait nothing is maintained, and the base row is marked not ready until rebuilt.

Indexes come and go with the rules too: a stored rule that requires a trait to be one
of some strings gets an index leading with that column and holding every column the
rule reads (`compile.index_columns`), so its count reads the index entries of those
strings, not every row (`ix_profile_facts_rule_<digest of the columns>`, at most
`MAX_RULE_INDEXES`: each one is written with every row).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Integer,
    Numeric,
    Text,
    case,
    column,
    delete,
    func,
    insert,
    literal,
    select,
    table,
    update,
)
from sqlalchemy.sql.expression import TableClause
from sqlalchemy.types import NullType, TypeEngine

from guestlist.age.policy import default_policy
from guestlist.consent.ledger import CHANNELS
from guestlist.identity.merge import merge_step
from guestlist.segments.compile import (
    FOREVER,
    Facts,
    fact_value,
    index_columns,
    policy_fingerprint,
)
from guestlist.segments.due import STALE  # fresh_until of a row known to be out of date
from guestlist.segments.fact_specs import (
    ConsentFact,
    EventFact,
    Fact,
    OfAgeFact,
    TraitFact,
    facts_of,
    parse_key,
)
from guestlist.segments.rules import Rule
from guestlist.store.tables import (
    age_state,
    fact_columns,
    profile_facts,
    profiles,
    segment_rechecks,
)
from guestlist.store.types import Json, UtcDateTime, utcnow

BASE: Final = "base"
# Consent for marketing on every channel is always kept: previews test it most.
ALWAYS: Final = frozenset(ConsentFact(channel, "marketing").key for channel in CHANNELS)
FIXED: Final = ("profile_id", "fresh_from", "fresh_until", "dob", "level", "jurisdiction")
# Indexes kept for rules (each is one more write per row the pipeline rewrites).
MAX_RULE_INDEXES: Final = 8
RULE_INDEX: Final = "ix_profile_facts_rule_"


@dataclass(frozen=True)
class FactColumn:
    id: int
    key: str
    ready: bool

    @property
    def name(self) -> str:
        return f"f{self.id}"

    @property
    def fact(self) -> Fact:
        return parse_key(self.key)


@dataclass(frozen=True)
class FactsState:
    """The registered columns, and whether every live profile has a row."""

    columns: tuple[FactColumn, ...] = ()
    built: bool = False

    def table(self) -> TableClause:
        """profile_facts with its fixed and added columns, for statements."""
        fixed = [profile_facts.c[name] for name in FIXED]
        added = [column(c.name, _query_type(c.fact)) for c in self.columns]
        return table("profile_facts", *(column(c.name, c.type) for c in fixed), *added)

    def for_compiler(self) -> Facts | None:
        """What the compiler may read: nothing until built, then the filled columns."""
        if not self.built:
            return None
        facts_table = self.table()
        ready = {c.key: facts_table.c[c.name] for c in self.columns if c.ready}
        return Facts(facts_table, ready)

    @property
    def holds_ages(self) -> bool:
        """Whether a column says who is of age: it changes at birthdays."""
        return any(isinstance(c.fact, OfAgeFact) for c in self.columns)

    @property
    def windows(self) -> frozenset[tuple[str, int]]:
        """(event, days) of the windowed aggregates held: when they change with time."""
        out: set[tuple[str, int]] = set()
        for c in self.columns:
            fact = c.fact
            if isinstance(fact, EventFact) and fact.within_days is not None:
                out.add((fact.event, fact.within_days))
        return frozenset(out)


def load_state(conn: Connection) -> FactsState:
    rows = conn.execute(
        select(fact_columns.c.id, fact_columns.c.key, fact_columns.c.ready).order_by(
            fact_columns.c.id
        )
    ).all()
    built = any(key == BASE and ready for _, key, ready in rows)
    columns = tuple(FactColumn(int(i), key, bool(ready)) for i, key, ready in rows if key != BASE)
    return FactsState(columns, built)


def wanted_keys(rules: Iterable[Rule]) -> set[str]:
    """The facts `rules` read (`of_age_for` under the shipped age table, which is the
    one stored segments are evaluated under)."""
    policy = policy_fingerprint(default_policy())
    return {fact.key for fact in facts_of(rules, policy)} | ALWAYS


# -- keeping the rows ---------------------------------------------------------------------


def refresh_facts(
    conn: Connection, state: FactsState, profile_ids: Sequence[int] | None, now: datetime
) -> None:
    """Rewrite the rows of `profile_ids` (None: every live profile) as they are at
    `now`, fresh from `now` on; `schedule_rechecks` then sets until when."""
    facts_table = state.table()
    if profile_ids is None:
        _empty(conn)
    else:
        conn.execute(delete(facts_table).where(facts_table.c.profile_id.in_(profile_ids)))
    values: list[Any] = [
        profiles.c.id,
        _at(now),
        # As the recheck already set says; schedule_rechecks corrects the few it moves
        # (writing every row twice would leave PostgreSQL a table twice its size).
        _next_recheck(profiles.c.id, now),
        age_state.c.dob,
        age_state.c.level,
        age_state.c.jurisdiction,
    ]
    values += [fact_value(c.fact, now=now) for c in state.columns]
    rows = (
        select(*values)
        .select_from(profiles.outerjoin(age_state, age_state.c.profile_id == profiles.c.id))
        .where(profiles.c.merged_into.is_(None), profiles.c.erased_at.is_(None))
    )
    if profile_ids is not None:
        rows = rows.where(profiles.c.id.in_(profile_ids))
    names = [*FIXED, *(c.name for c in state.columns)]
    conn.execute(insert(facts_table).from_select(names, rows))


def ensure_facts(
    conn: Connection, rules: Sequence[Rule], *, has_catalog: bool, now: datetime | None = None
) -> FactsState:
    """Make the columns match what `rules` read and fill what is not filled: every
    row when not built, else only the new columns. Returns the state after."""
    now = now or utcnow()
    state = load_state(conn)
    if not has_catalog:
        if state.built:
            mark_unbuilt(conn)
        return load_state(conn)
    state = _sync_columns(conn, state, wanted_keys(rules), now)
    if not state.built:
        refresh_facts(conn, state, None, now)
    elif pending := [c for c in state.columns if not c.ready]:
        _fill(conn, state, pending, now)
    else:
        _sync_indexes(conn, state, rules)
        return state
    conn.execute(update(fact_columns).values(ready=True))
    if conn.scalar(select(fact_columns.c.id).where(fact_columns.c.key == BASE)) is None:
        conn.execute(insert(fact_columns).values(key=BASE, ready=True, created_at=now))
    state = load_state(conn)
    _sync_indexes(conn, state, rules)
    return state


def _fill(conn: Connection, state: FactsState, pending: list[FactColumn], now: datetime) -> None:
    """Fill the `pending` columns of every row, as of `now` (each row is then exact
    from `now` on, not before)."""
    facts_table = state.table()
    if conn.dialect.name != "postgresql":
        pid, fresh_from = facts_table.c.profile_id, facts_table.c.fresh_from
        changes: dict[Any, Any] = {
            facts_table.c[c.name]: fact_value(c.fact, now=now, profile_id=pid) for c in pending
        }
        changes[fresh_from] = case((fresh_from < _at(now), _at(now)), else_=fresh_from)
        conn.execute(update(facts_table).values(changes))
        return
    # On PostgreSQL an UPDATE of every row leaves every old version behind, and the
    # table (scanned whole by every rule) twice its size until a VACUUM FULL. Copy the
    # rows aside and write them back instead, into a table emptied by TRUNCATE.
    conn.exec_driver_sql(
        "CREATE TEMPORARY TABLE facts_before ON COMMIT DROP AS SELECT * FROM profile_facts"
    )
    before = table("facts_before", *(column(c.name, c.type) for c in facts_table.c))
    kept = [before.c[name] for name in FIXED if name != "fresh_from"]
    waiting = {c.name for c in pending}
    kept += [before.c[c.name] for c in state.columns if c.name not in waiting]
    fresh_from = before.c.fresh_from
    values = [
        *kept,
        case((fresh_from < _at(now), _at(now)), else_=fresh_from),
        *(fact_value(c.fact, now=now, profile_id=before.c.profile_id) for c in pending),
    ]
    names = [c.name for c in kept] + ["fresh_from"] + [c.name for c in pending]
    _empty(conn)
    conn.execute(insert(facts_table).from_select(names, select(*values)))
    conn.exec_driver_sql("DROP TABLE facts_before")  # another fill may follow in this transaction


def _empty(conn: Connection) -> None:
    """Every row goes (TRUNCATE on PostgreSQL: a fresh table, no dead rows to scan)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("TRUNCATE profile_facts")
    else:
        conn.execute(delete(profile_facts))


def mark_unbuilt(conn: Connection) -> None:
    """Nothing maintains the rows any more: stop the compiler reading them, and drop
    the rule indexes (no rule left to serve, and each would be written for nothing)."""
    conn.execute(update(fact_columns).where(fact_columns.c.key == BASE).values(ready=False))
    for name in rule_indexes(conn):
        conn.exec_driver_sql(f"DROP INDEX {name}")


def set_fresh_until(conn: Connection, profile_ids: Sequence[int] | None, now: datetime) -> None:
    """Each row of `profile_ids` (None: every row) still fresh at `now` is fresh until
    its profile's next recheck in `segment_rechecks` (forever without one). Only rows
    whose instant changes are written."""
    pf = profile_facts.c
    until = _next_recheck(pf.profile_id, now)
    stmt = (
        update(profile_facts)
        .where(pf.fresh_until > now, pf.fresh_until != until)
        .values(fresh_until=until)
    )
    if profile_ids is not None:
        stmt = stmt.where(pf.profile_id.in_(profile_ids))
    conn.execute(stmt)


def _next_recheck(profile_id: ColumnElement[Any], now: datetime) -> ColumnElement[Any]:
    """The profile's recheck after `now`, or FOREVER: until when its row is fresh."""
    due = segment_rechecks.c
    after = select(due.due_at).where(due.profile_id == profile_id, due.due_at > now)
    return func.coalesce(after.scalar_subquery(), _at(FOREVER))


# -- columns ------------------------------------------------------------------------------


def _sync_columns(
    conn: Connection, state: FactsState, wanted: set[str], now: datetime
) -> FactsState:
    have = {c.key: c for c in state.columns}
    # A column no row of fact_columns names (its row deleted without it) goes first.
    named = set(FIXED) | {c.name for c in state.columns}
    for orphan in sorted(_present_columns(conn) - named):
        _drop_column(conn, orphan)
    for key in sorted(wanted - have.keys()):
        new_id = conn.execute(
            insert(fact_columns)
            .values(key=key, ready=False, created_at=now)
            .returning(fact_columns.c.id)
        ).scalar_one()
        added = FactColumn(int(new_id), key, False)
        ddl = _ddl_type(added.fact, conn.dialect.name)
        conn.exec_driver_sql(f"ALTER TABLE profile_facts ADD COLUMN {added.name} {ddl}".rstrip())
    for key in sorted(have.keys() - wanted):
        gone = have[key]
        _drop_column(conn, gone.name)
        conn.execute(delete(fact_columns).where(fact_columns.c.id == gone.id))
    return load_state(conn)


# -- indexes ------------------------------------------------------------------------------


def _sync_indexes(conn: Connection, state: FactsState, rules: Sequence[Rule]) -> None:
    """Make the rule indexes those `rules` want (the first `MAX_RULE_INDEXES` of them)."""
    facts = state.for_compiler()
    wanted: dict[str, tuple[str, ...]] = {}
    for rule in rules:
        columns = () if facts is None else index_columns(rule, facts)
        if columns and len(wanted) < MAX_RULE_INDEXES:
            wanted.setdefault(rule_index_name(columns), columns)
    present = rule_indexes(conn)
    for name in present.keys() - wanted.keys():
        conn.exec_driver_sql(f"DROP INDEX {name}")
    for name in wanted.keys() - present.keys():
        listed = ", ".join(wanted[name])
        # PostgreSQL: with the id too, the count is an index-only scan.
        include = " INCLUDE (profile_id)" if conn.dialect.name == "postgresql" else ""
        conn.exec_driver_sql(f"CREATE INDEX {name} ON profile_facts ({listed}){include}")


def rule_index_name(columns: Sequence[str]) -> str:
    return RULE_INDEX + hashlib.sha1(",".join(columns).encode()).hexdigest()[:12]


def rule_indexes(conn: Connection) -> dict[str, tuple[str, ...]]:
    """The rule indexes on profile_facts, with their columns."""
    if conn.dialect.name == "postgresql":
        query = """
            SELECT i.relname, array_agg(a.attname ORDER BY k.n)
            FROM pg_index x
            JOIN pg_class i ON i.oid = x.indexrelid
            JOIN pg_class t ON t.oid = x.indrelid
            CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)
            JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
            WHERE k.n <= x.indnkeyatts  -- the key columns, not INCLUDE's
              AND t.relname = 'profile_facts'
              AND t.relnamespace = current_schema()::regnamespace
            GROUP BY i.relname
        """
        found = {str(n): tuple(cols) for n, cols in conn.exec_driver_sql(query)}
    else:
        names = conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'profile_facts'"
        ).scalars()
        found = {
            str(name): tuple(
                str(row[2]) for row in conn.exec_driver_sql(f'PRAGMA index_info("{name}")')
            )
            for name in list(names)
        }
    return {name: columns for name, columns in found.items() if name.startswith(RULE_INDEX)}


def _drop_column(conn: Connection, name: str) -> None:
    for index, columns in rule_indexes(conn).items():
        if name in columns:  # SQLite drops no column an index holds
            conn.exec_driver_sql(f"DROP INDEX {index}")
    conn.exec_driver_sql(f"ALTER TABLE profile_facts DROP COLUMN {name}")


def _present_columns(conn: Connection) -> set[str]:
    if conn.dialect.name == "postgresql":
        query = (
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'profile_facts' AND table_schema = current_schema()"
        )
        return {str(name) for (name,) in conn.exec_driver_sql(query)}
    return {str(row[1]) for row in conn.exec_driver_sql("PRAGMA table_info(profile_facts)")}


def _ddl_type(fact: Fact, dialect: str) -> str:
    """The column's declared type. On SQLite the declared type decides how a value is
    stored: trait values as in `traits` (JSON), exact sums as decimal text, and a
    minimum or maximum untyped, so an integer stays an integer and a real a real."""
    pg = dialect == "postgresql"
    match fact:
        case TraitFact():
            return "JSONB" if pg else "JSON"
        case ConsentFact():
            return "TIMESTAMP WITH TIME ZONE" if pg else "DATETIME"
        case EventFact(fn="count" | "n"):
            return "BIGINT" if pg else "INTEGER"
        case OfAgeFact():
            return "SMALLINT" if pg else "INTEGER"
        case EventFact(fn="sum"):
            return "NUMERIC" if pg else "TEXT"
        case EventFact():
            return "NUMERIC" if pg else ""
    raise ValueError(f"no column type for {fact}")


def _query_type(fact: Fact) -> TypeEngine[Any]:
    match fact:
        case TraitFact():
            return Json
        case ConsentFact():
            return UtcDateTime()
        case EventFact(fn="count" | "n"):
            return BigInteger().with_variant(Integer(), "sqlite")
        case OfAgeFact():
            return Integer()
        case EventFact(fn="sum"):
            return Numeric().with_variant(Text(), "sqlite")
        case EventFact():
            return NullType()
    raise ValueError(f"no column type for {fact}")


def _at(moment: datetime) -> ColumnElement[Any]:
    return literal(moment, UtcDateTime())


# -- merges ------------------------------------------------------------------------------


@merge_step("profile_facts")
def _merge_facts(conn: Connection, survivor: int, merged: int) -> None:
    """The merged profile has no row of its own any more; the survivor's is stale
    until its batch (or recheck) rewrites it."""
    conn.execute(delete(profile_facts).where(profile_facts.c.profile_id == merged))
    conn.execute(
        update(profile_facts)
        .where(profile_facts.c.profile_id == survivor)
        .values(fresh_until=STALE)
    )


__all__ = [
    "FOREVER",
    "STALE",
    "FactColumn",
    "FactsState",
    "ensure_facts",
    "load_state",
    "mark_unbuilt",
    "refresh_facts",
    "set_fresh_until",
]
