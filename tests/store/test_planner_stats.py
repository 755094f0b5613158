"""store.planner_stats: the worker analyzes PostgreSQL tables whose statistics lag."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from guestlist.store.planner_stats import MIN_CHANGES, analyze_stale_tables

TABLE = "planner_stats_probe"


def _filled(engine: Engine, rows: int) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}")
        conn.exec_driver_sql(f"CREATE TABLE {TABLE} (id int)")
        conn.exec_driver_sql(f"INSERT INTO {TABLE} SELECT generate_series(1, {rows})")
        # Sets reltuples without analyzing, as CREATE INDEX does after a bulk load.
        conn.exec_driver_sql(f"VACUUM {TABLE}")
        conn.execute(text("SELECT pg_stat_force_next_flush()"))
    # The statistics collector sees the writes once that session has reported them.
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))


def test_a_table_never_analyzed_is_analyzed_even_when_its_row_estimate_is_current(
    engine: Engine,
) -> None:
    if engine.dialect.name != "postgresql":
        assert analyze_stale_tables(engine, [TABLE]) == []  # nothing to do on SQLite
        return
    try:
        _filled(engine, MIN_CHANGES * 2)
        assert analyze_stale_tables(engine, [TABLE]) == [TABLE]
        with engine.connect() as conn:
            analyzed = conn.scalar(
                text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = :t"),
                {"t": TABLE},
            )
        assert analyzed is not None
        assert analyze_stale_tables(engine, [TABLE]) == []  # current now
    finally:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}")


@pytest.mark.parametrize("rows", [MIN_CHANGES // 2])
def test_small_changes_are_left_to_autovacuum(engine: Engine, rows: int) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("statistics are PostgreSQL's")
    try:
        _filled(engine, rows)
        assert analyze_stale_tables(engine, [TABLE]) == []
    finally:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}")
