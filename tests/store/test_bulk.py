"""store.bulk: the driver-level reads and writes the pipeline uses, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select

from guestlist.store.bulk import IN_CHUNK, bulk_insert, select_in
from guestlist.store.tables import identifiers, profiles

T = datetime(2026, 5, 1, tzinfo=UTC)


def _people(engine: Engine, n: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(profiles),
            [{"id": i, "created_at": T, "first_seen_at": T, "last_seen_at": T}
             for i in range(1, n + 1)],
        )
        rows = []
        for i in range(1, n + 1):
            rows.append({"profile_id": i, "kind": "email", "key": f"p{i}@shop.ca",
                         "value": f"p{i}@shop.ca", "source_id": None, "first_seen_at": T})
            rows.append({"profile_id": i, "kind": "user_id", "key": f"p{i}@shop.ca",
                         "value": f"p{i}@shop.ca", "source_id": None, "first_seen_at": T})
        bulk_insert(conn, identifiers, rows)


def test_select_in_finds_every_match_beyond_one_in_list_and_filters_by_the_others(
    engine: Engine,
) -> None:
    n = IN_CHUNK + 700  # two IN lists on SQLite
    _people(engine, n)
    wanted = [f"p{i}@shop.ca" for i in range(1, n + 1, 2)] + ["nobody@shop.ca"]
    with engine.connect() as conn:
        rows = select_in(
            conn, identifiers, ["profile_id", "key"], "key", wanted, kind="email"
        )
        # The same answer as SQLAlchemy's own query.
        expected = {
            (int(r.profile_id), r.key)
            for r in conn.execute(
                select(identifiers.c.profile_id, identifiers.c.key).where(
                    identifiers.c.kind == "email", identifiers.c.key.in_(wanted)
                )
            )
        }
    assert {(int(p), k) for p, k in rows} == expected
    assert len(rows) == len(range(1, n + 1, 2))  # the user_id rows with the same key left out


def test_select_in_of_nothing_asks_nothing(engine: Engine) -> None:
    with engine.connect() as conn:
        assert select_in(conn, identifiers, ["profile_id"], "profile_id", []) == []
