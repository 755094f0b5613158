"""The audience benchmark's data: generated once per size, bulk-loaded into guestlist.

`ensure_data` runs the shared generator (../shared/bench/gen_audience_data.py) into a
cache directory per size. `load_audience` writes its rows into a migrated, empty
guestlist database through `guestlist.store.bulk` (COPY on PostgreSQL, executemany
on SQLite), straight into the tables the pipeline fills:

- a profile: its `profiles` row (same id) and `identifiers` email and phone;
- favourite_category, tags, country/state: traits `favourite_category`, `tags` (a JSON
  list) and `address` ({country, state});
- email_consent, sms_consent: per channel granted or denied, a `consent_records` row
  (hash chain and HMACs as `consent.ledger.append` writes them) and its
  `consent_state` row; `unknown` is no row;
- birth_date: an `age_records` row (`dob_provided`, no place of its own) and its
  `age_state` row, judged where the address places the person (`US-TX`; `MX` for a
  state the age table cannot read, as `age.places.address_place` decides);
- an order: an `events` row, track `Order Completed`, properties {total, category,
  order_id}, timestamp created_at (read as UTC).

The table's secondary indexes, as the migrations made them, are dropped before its
rows go in and built again after (a sort instead of 10M random B-tree inserts); each
table's time includes its indexes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any, Final

import orjson
import pyarrow.parquet as pq  # type: ignore[import-untyped]
from sqlalchemy import Connection, Engine, Table, insert, text

from guestlist.age.places import address_place
from guestlist.consent.ledger import IDENTIFIER_KIND, ledger_key, personal_hash, record_hash
from guestlist.store.bulk import allocate_ids, bulk_insert
from guestlist.store.secrets import identifier_hmac
from guestlist.store.tables import (
    age_records,
    age_state,
    consent_records,
    consent_state,
    events,
    identifiers,
    profiles,
    sources,
    traits,
)

GENERATOR: Final = Path("/work/shared/bench/gen_audience_data.py")
FILES: Final = ("seg_profiles.parquet", "seg_orders.parquet", "seg_legal_age.parquet")
# When the shop learnt what the profile rows say (before every order of the data).
SIGNED_UP: Final = datetime(2023, 6, 1, tzinfo=UTC)
LOADED_AT: Final = datetime(2025, 6, 30, tzinfo=UTC)
BATCH: Final = 50_000  # rows per bulk_insert and per transaction
SOURCE_NAME: Final = "bench-audience"


def ensure_data(n_profiles: int, n_orders: int, cache: Path) -> Path:
    """The directory holding the three parquet files for this size, generated if absent."""
    where = cache / f"p{n_profiles}_o{n_orders}"
    data = where / "data"
    if not all((data / name).exists() for name in FILES):
        where.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, str(GENERATOR), str(n_profiles), str(n_orders)],
            cwd=where,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(
            f"  generated {n_profiles:,} profiles / {n_orders:,} orders "
            f"in {time.perf_counter() - started:.1f} s → {data}"
        )
    return data


@dataclass(frozen=True)
class TableLoad:
    table: str
    rows: int
    seconds: float  # rows and indexes


def load_audience(engine: Engine, data: Path) -> list[TableLoad]:
    """Fill an empty, migrated database with the generated data; time per table."""
    with engine.begin() as conn:
        source_id = int(
            conn.execute(
                insert(sources)
                .values(name=SOURCE_NAME, kind="import", created_at=LOADED_AT)
                .returning(sources.c.id)
            ).scalar_one()
        )
        key = ledger_key(conn)
    profile_file = data / "seg_profiles.parquet"
    loader = _Loader(engine, source_id, key)
    out = [
        loader.table(profiles, lambda: _profile_rows(profile_file)),
        loader.table(identifiers, lambda: _identifier_rows(profile_file, source_id)),
        loader.table(traits, lambda: _trait_rows(profile_file, source_id)),
        *loader.consent(profile_file),
        *loader.age(profile_file),
        loader.table(events, lambda: _event_rows(data / "seg_orders.parquet", source_id)),
    ]
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:  # ids were given explicitly: move the sequence past them
            conn.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence('profiles', 'id'), "
                "(SELECT max(id) FROM profiles))"
            )
    return out


# A unit of work: given the transaction's connection (to allocate ids on), the rows
# it inserts, table by table.
_Step = Callable[[Connection], list[tuple[Table, list[dict[str, Any]]]]]


class _Loader:
    def __init__(self, engine: Engine, source_id: int, key: bytes) -> None:
        self.engine = engine
        self.source_id = source_id
        self.key = key

    def table(self, table: Table, rows: Callable[[], Iterator[list[dict[str, Any]]]]) -> TableLoad:
        started = time.perf_counter()
        count = self._fill([table], (partial(_just, table, batch) for batch in rows()))
        return TableLoad(table.name, count[table.name], time.perf_counter() - started)

    def consent(self, profile_file: Path) -> list[TableLoad]:
        """Records and state together: the state row names its record's id."""
        started = time.perf_counter()
        count = self._fill(
            [consent_records, consent_state],
            _consent_steps(profile_file, self.source_id, self.key),
        )
        return [
            TableLoad(
                "consent_records + _state",
                count["consent_records"] + count["consent_state"],
                time.perf_counter() - started,
            )
        ]

    def age(self, profile_file: Path) -> list[TableLoad]:
        started = time.perf_counter()
        count = self._fill([age_records, age_state], _age_steps(profile_file, self.source_id))
        return [
            TableLoad(
                "age_records + _state",
                count["age_records"] + count["age_state"],
                time.perf_counter() - started,
            )
        ]

    def _fill(self, tables: list[Table], steps: Iterator[_Step]) -> dict[str, int]:
        """Drop the tables' secondary indexes, run every step (a transaction each),
        build the indexes again; rows inserted per table."""
        with self.engine.begin() as conn:
            saved = [sql for t in tables for sql in _drop_indexes(conn, t.name)]
        count = {t.name: 0 for t in tables}
        for step in steps:
            with self.engine.begin() as conn:
                for table, rows in step(conn):
                    bulk_insert(conn, table, rows)
                    count[table.name] += len(rows)
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '512MB'")
            for sql in saved:
                conn.exec_driver_sql(sql)
        return count


def _just(
    table: Table, rows: list[dict[str, Any]], _conn: Connection
) -> list[tuple[Table, list[dict[str, Any]]]]:
    return [(table, rows)]


def _drop_indexes(conn: Connection, table: str) -> list[str]:
    """Drop the table's secondary indexes (not those of its primary key or of a
    constraint); returns the statements that build them again, as the database
    holds them."""
    if conn.dialect.name == "sqlite":
        found = conn.execute(
            text(
                "SELECT name, sql FROM sqlite_master "
                "WHERE type = 'index' AND tbl_name = :t AND sql IS NOT NULL"
            ),
            {"t": table},
        ).all()
    else:
        found = conn.execute(
            text(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i "
                "WHERE i.schemaname = current_schema() AND i.tablename = :t "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
                "  WHERE c.conindid = (quote_ident(i.indexname))::regclass)"
            ),
            {"t": table},
        ).all()
    for name, _ in found:
        conn.exec_driver_sql(f'DROP INDEX "{name}"')
    return [sql for _, sql in found]


# -- rows ---------------------------------------------------------------------------


def _batches(path: Path, columns: list[str]) -> Iterator[dict[str, list[Any]]]:
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH, columns=columns):
        yield {name: batch.column(name).to_pylist() for name in columns}


def email_of(profile_id: int) -> str:
    return f"customer{profile_id}@example.org"


def phone_of(profile_id: int) -> str:
    # NANP: area 415, exchange 200-999, unique for ids below 8,000,000.
    return f"+1415{200 + profile_id // 10_000:03d}{profile_id % 10_000:04d}"


def _profile_rows(path: Path) -> Iterator[list[dict[str, Any]]]:
    for b in _batches(path, ["id", "last_order_at"]):
        yield [
            {
                "id": pid,
                "created_at": SIGNED_UP,
                "first_seen_at": SIGNED_UP,
                "last_seen_at": SIGNED_UP if last is None else last.replace(tzinfo=UTC),
                "merged_into": None,
                "erased_at": None,
            }
            for pid, last in zip(b["id"], b["last_order_at"], strict=True)
        ]


def _identifier_rows(path: Path, source_id: int) -> Iterator[list[dict[str, Any]]]:
    for b in _batches(path, ["id"]):
        rows = []
        for pid in b["id"]:
            for kind, value in (("email", email_of(pid)), ("phone", phone_of(pid))):
                rows.append(
                    {
                        "profile_id": pid,
                        "kind": kind,
                        "key": value,
                        "value": value,
                        "source_id": source_id,
                        "first_seen_at": SIGNED_UP,
                    }
                )
        yield rows


def _trait_rows(path: Path, source_id: int) -> Iterator[list[dict[str, Any]]]:
    for b in _batches(path, ["id", "favourite_category", "tags", "country", "state"]):
        rows = []
        for pid, fav, tags, country, state in zip(
            b["id"], b["favourite_category"], b["tags"], b["country"], b["state"], strict=True
        ):
            for name, value in (
                ("favourite_category", fav),
                ("tags", tags),
                ("address", {"country": country, "state": state}),
            ):
                rows.append(
                    {
                        "profile_id": pid,
                        "name": name,
                        "value": value,
                        "source_id": source_id,
                        "event_time": SIGNED_UP,
                        "updated_at": LOADED_AT,
                    }
                )
        yield rows


def _consent_steps(path: Path, source_id: int, key: bytes) -> Iterator[_Step]:
    """One record per stated channel, chained per profile (email seq 1, sms next), with
    the hashes `consent.ledger.append` writes; the state row points at it."""
    for b in _batches(path, ["id", "email_consent", "sms_consent"]):
        statements = [
            (pid, channel, status)
            for pid, email, sms in zip(b["id"], b["email_consent"], b["sms_consent"], strict=True)
            for channel, status in (("email", email), ("sms", sms))
            if status != "unknown"
        ]
        yield partial(_consent_batch, statements=statements, source_id=source_id, key=key)


def _consent_batch(
    conn: Connection, statements: list[tuple[int, str, str]], source_id: int, key: bytes
) -> list[tuple[Table, list[dict[str, Any]]]]:
    ids = allocate_ids(conn, consent_records, len(statements))
    records: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    last: dict[int, tuple[int, str]] = {}
    for record_id, (pid, channel, status) in zip(ids, statements, strict=True):
        identifier = email_of(pid) if channel == "email" else phone_of(pid)
        seq, prev = last.get(pid, (0, None))
        row: dict[str, Any] = {
            "id": record_id,
            "profile_id": pid,
            "chain_id": pid,
            "seq": seq + 1,
            "channel": channel,
            "purpose": "marketing",
            "status": status,
            "kind": "express",
            "identifier": identifier,
            "identifier_hash": identifier_hmac(key, IDENTIFIER_KIND[channel], identifier),
            "event_time": SIGNED_UP,
            "received_at": SIGNED_UP,
            "expires_at": None,
            "source_id": source_id,
            "connection": None,
            "legal_basis": None,
            "text_hash": None,
            "url": None,
            "message_id": None,
            "keyword": None,
            "recorded_by": None,
            "ip": None,
            "user_agent": None,
            "proof": None,
            "needs_review": False,
            "prev_hash": prev,
        }
        row["personal_hash"] = personal_hash(key, row)
        row["record_hash"] = record_hash(row)
        last[pid] = (seq + 1, row["record_hash"])
        records.append(row)
        states.append(
            {
                "profile_id": pid,
                "channel": channel,
                "purpose": "marketing",
                "identifier_hash": row["identifier_hash"],
                "identifier": identifier,
                "status": status,
                "kind": "express",
                "event_time": SIGNED_UP,
                "expires_at": None,
                "record_id": record_id,
            }
        )
    return [(consent_records, records), (consent_state, states)]


def _age_steps(path: Path, source_id: int) -> Iterator[_Step]:
    """A typed date of birth per profile, judged where its address places it (the
    record names no place: `age.records` then takes the address trait's)."""
    places: dict[tuple[str, str], str | None] = {}
    for b in _batches(path, ["id", "birth_date", "country", "state"]):
        yield partial(_age_batch, b=b, source_id=source_id, places=places)


def _age_batch(
    conn: Connection,
    b: dict[str, list[Any]],
    source_id: int,
    places: dict[tuple[str, str], str | None],
) -> list[tuple[Table, list[dict[str, Any]]]]:
    ids = allocate_ids(conn, age_records, len(b["id"]))
    records: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    for record_id, pid, dob, country, state in zip(
        ids, b["id"], b["birth_date"], b["country"], b["state"], strict=True
    ):
        assert isinstance(dob, date)
        if (country, state) not in places:
            place = address_place({"country": country, "state": state})
            places[country, state] = place.jurisdiction
        records.append(
            {
                "id": record_id,
                "profile_id": pid,
                "dob": dob.isoformat(),
                "level": "dob_provided",
                "method": "signup_form",
                "provider": None,
                "reference": None,
                "country": None,
                "region": None,
                "source_id": source_id,
                "message_id": None,
                "recorded_by": None,
                "event_time": SIGNED_UP,
                "received_at": SIGNED_UP,
            }
        )
        states.append(
            {
                "profile_id": pid,
                "dob": dob.isoformat(),
                "level": "dob_provided",
                "jurisdiction": places[country, state],
                "conflict": False,
                "detail": orjson.dumps(
                    {
                        "record_id": record_id,
                        "jurisdiction_from": "address",
                        "conflicting_record_ids": [],
                    }
                ).decode(),
                "updated_at": LOADED_AT,
            }
        )
    return [(age_records, records), (age_state, states)]


def _event_rows(path: Path, source_id: int) -> Iterator[list[dict[str, Any]]]:
    for b in _batches(path, ["order_id", "customer_id", "created_at", "amount", "category"]):
        rows = []
        for oid, pid, at, amount, category in zip(
            b["order_id"],
            b["customer_id"],
            b["created_at"],
            b["amount"],
            b["category"],
            strict=True,
        ):
            when = at.replace(tzinfo=UTC)
            rows.append(
                {
                    "profile_id": pid,
                    "source_id": source_id,
                    "message_id": f"order-{oid}",
                    "type": "track",
                    "name": "Order Completed",
                    "properties": {"total": amount, "category": category, "order_id": oid},
                    "timestamp": when,
                    "received_at": when,
                }
            )
        yield rows
