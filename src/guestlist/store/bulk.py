"""Bulk reads and writes straight through the driver: COPY on PostgreSQL, executemany on
SQLite, and lookups of many keys at once.

The worker writes thousands of events per transaction. Going through the driver skips
SQLAlchemy's per-row parameter processing, and on PostgreSQL COPY takes rows several
times faster than INSERT … VALUES. Both run on the transaction's own connection, so
they commit or roll back with the rest of the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import JSON, Connection, Table

from guestlist.store.types import UtcDateTime


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def sqlite_datetime(value: datetime | None) -> str | None:
    # The text form SQLAlchemy's SQLite DATETIME reads and writes, so rows compare alike.
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _row_values(
    table: Table, columns: list[str], rows: Sequence[dict[str, Any]], sqlite: bool
) -> list[Any]:
    """Rows as driver parameter tuples, converting only the columns that need it."""
    # A batch's rows share a few timestamps (an event's time on each of its traits).
    seen: dict[datetime | None, str | None] = {}

    def cached_datetime(value: datetime | None) -> str | None:
        text = seen.get(value)
        if text is None:
            text = seen[value] = sqlite_datetime(value)
        return text

    if len(columns) == 1:
        (only,) = columns
        pick: Callable[[dict[str, Any]], tuple[Any, ...]] = lambda row: (row[only],)  # noqa: E731
    else:
        pick = itemgetter(*columns)
    convert: list[tuple[int, Callable[[Any], Any]]] = []
    for index, name in enumerate(columns):
        column_type = table.c[name].type
        if isinstance(column_type, JSON):
            convert.append((index, _json))
        elif sqlite and isinstance(column_type, UtcDateTime):
            convert.append((index, cached_datetime))
    if not convert:
        return [pick(row) for row in rows]
    # Column by column: one `map` per converted column costs less than a Python loop
    # over each row's columns (these lists hold a batch's thousands of rows).
    values = [[row[name] for row in rows] for name in columns]
    for index, fn in convert:
        values[index] = list(map(fn, values[index]))
    return list(zip(*values, strict=True))


# Bound on one SQLite `IN (…)` list (SQLite allows 32,766 parameters).
IN_CHUNK = 5000


def select_in(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    in_column: str,
    values: Sequence[Any],
    **equal: Any,
) -> list[tuple[Any, ...]]:
    """Rows (as tuples of `columns`) whose `in_column` is one of `values` and whose other
    named columns equal the given values.

    For the pipeline's lookups of thousands of keys a batch, whose columns need no type
    conversion (ids, texts): SQLAlchemy would bind and compile one parameter per value
    and build a row object per result. PostgreSQL takes the values as one array.
    """
    if not values:
        return []
    names = ", ".join(f'"{c}"' for c in columns)
    driver_connection: Any = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        where = " AND ".join([*(f'"{c}" = %s' for c in equal), f'"{in_column}" = ANY(%s)'])
        with driver_connection.cursor() as cursor:
            cursor.execute(
                f'SELECT {names} FROM "{table.name}" WHERE {where}',
                [*equal.values(), list(values)],
            )
            return list(cursor.fetchall())
    found: list[tuple[Any, ...]] = []
    fixed = [f'"{c}" = ?' for c in equal]
    for i in range(0, len(values), IN_CHUNK):
        chunk = list(values[i : i + IN_CHUNK])
        where = " AND ".join([*fixed, f'"{in_column}" IN ({", ".join("?" * len(chunk))})'])
        cursor = driver_connection.execute(
            f'SELECT {names} FROM "{table.name}" WHERE {where}', [*equal.values(), *chunk]
        )
        try:
            found.extend(cursor.fetchall())
        finally:
            cursor.close()
    return found


def allocate_ids(conn: Connection, table: Table, count: int) -> list[int]:
    """Reserve `count` primary keys for rows about to be bulk-inserted with them.

    PostgreSQL hands them out from the table's sequence. SQLite continues after the
    largest id, as its own rowid allocation would; the caller holds the write lock
    (every write transaction begins IMMEDIATE), so no one else can take them.
    """
    if count <= 0:
        return []
    if conn.dialect.name == "postgresql":
        return list(
            conn.exec_driver_sql(
                f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id')) "
                f"FROM generate_series(1, {int(count)})"
            ).scalars()
        )
    top = int(conn.exec_driver_sql(f'SELECT coalesce(max(id), 0) FROM "{table.name}"').scalar_one())
    return list(range(top + 1, top + 1 + count))


def bulk_insert(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], *, into: str | None = None
) -> None:
    """Insert rows that all have the same keys; no RETURNING, no conflict handling.

    `into` names another table of the same columns (a staging copy) to write to.
    """
    target = into or table.name
    if not rows:
        return
    columns = list(rows[0])
    sqlite = conn.dialect.name == "sqlite"
    values = _row_values(table, columns, rows, sqlite)
    names = ", ".join(f'"{c}"' for c in columns)
    driver_connection: Any = conn.connection.driver_connection
    if sqlite:
        marks = ", ".join("?" for _ in columns)
        cursor = driver_connection.cursor()
        try:
            cursor.executemany(f'INSERT INTO "{target}" ({names}) VALUES ({marks})', values)
        finally:
            cursor.close()
        return
    with (
        driver_connection.cursor() as cursor,
        cursor.copy(f'COPY "{target}" ({names}) FROM STDIN') as copy,
    ):
        for row in values:
            copy.write_row(row)


def bulk_upsert_newer(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    key: Sequence[str],
    time_column: str,
) -> None:
    """Insert rows; where the key exists, overwrite only if the row is not older.

    The rows must not repeat a key. Used for traits: latest by event time wins.
    """
    if not rows:
        return
    columns = list(rows[0])
    quoted = ", ".join(f'"{c}"' for c in columns)
    updates = ", ".join(f'"{c}" = excluded."{c}"' for c in columns if c not in key)
    conflict = (
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates} "
        f'WHERE excluded."{time_column}" >= "{table.name}"."{time_column}"'
    )
    if conn.dialect.name == "sqlite":
        marks = ", ".join("?" for _ in columns)
        cursor: Any = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(
                f'INSERT INTO "{table.name}" ({quoted}) VALUES ({marks}) {conflict}',
                _row_values(table, columns, rows, True),
            )
        finally:
            cursor.close()
        return
    # PostgreSQL: COPY into a scratch table, then one INSERT … SELECT … ON CONFLICT.
    staging = f"_staging_{table.name}"
    conn.exec_driver_sql(
        f'CREATE TEMP TABLE IF NOT EXISTS "{staging}" '
        f'(LIKE "{table.name}" INCLUDING DEFAULTS) ON COMMIT DROP'
    )
    bulk_insert(conn, table, rows, into=staging)
    conn.exec_driver_sql(
        f'INSERT INTO "{table.name}" ({quoted}) SELECT {quoted} FROM "{staging}" {conflict}'
    )
    conn.exec_driver_sql(f'DELETE FROM "{staging}"')
