"""Keep PostgreSQL's planner statistics current while the worker fills tables fast.

Autovacuum analyzes a table a minute or more after it changes. Until then a freshly
filled table has no column statistics, and the planner, guessing, answers the worker's
`key IN (2,000 values)` lookups with sequential scans: an import slows down
quadratically as its tables grow. The worker therefore analyzes a table itself once as
many rows have changed since its last analysis as it held then (it doubled, say):
estimates within a factor of two are enough to choose index lookups, and analyzing at
every fifth cost the 1M-row import a tenth of its time.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, text

# Below this many changed rows a stale estimate costs less than analyzing.
MIN_CHANGES = 5000
STALE_FRACTION = 1.0  # of the rows at the last analysis

_STALE = text(
    """
    SELECT s.relname
    FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
    WHERE s.schemaname = current_schema() AND s.relname = ANY(:names)
      AND s.n_mod_since_analyze > :min_changes
      AND (s.n_mod_since_analyze > :fraction * greatest(c.reltuples, 0)
           -- CREATE INDEX and VACUUM set reltuples without analyzing: a table never
           -- analyzed has no statistics however many rows it is thought to hold.
           OR coalesce(s.last_analyze, s.last_autoanalyze) IS NULL)
    """
)


def analyze_stale_tables(engine: Engine, tables: Sequence[str]) -> list[str]:
    """ANALYZE those of `tables` whose statistics lag behind; returns their names."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        stale = list(
            conn.execute(
                _STALE,
                {"names": list(tables), "min_changes": MIN_CHANGES, "fraction": STALE_FRACTION},
            ).scalars()
        )
        for name in stale:
            conn.exec_driver_sql(f'ANALYZE "{name}"')
    return stale
