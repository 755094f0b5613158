"""Customer file imports: the reader process gives the same result as reading inline, and
a row imported again applies nothing."""

from __future__ import annotations

import csv
from pathlib import Path

from sqlalchemy import Engine, func, select

from guestlist.capture.import_ids import file_key
from guestlist.capture.imports import Destination, file_digest, import_file, prepare_chunks
from guestlist.identity.graph import extract_identifiers
from guestlist.identity.rules import compiled, load_rules
from guestlist.inbox.parsers import parse_envelope
from guestlist.inbox.store import InboxEnvelope, accept
from guestlist.keys import ensure_source
from guestlist.store.tables import age_records, events, identifiers, inbox, profiles, traits


def write_file(path: Path) -> None:
    with path.open("w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["email", "phone", "first_name"])
        for i in range(30):
            if i % 10 == 3:
                w.writerow(["", "", f"nobody{i}"])  # rejected: names no one
            elif i % 10 == 7:
                w.writerow([f"bad{i}@", f"+1604555{i:04d}", f"p{i}"])  # kept by phone
            else:
                w.writerow([f"c{i % 20}@shop.ca", f"+1416555{i:04d}", f"n{i}"])


def test_reader_process_imports_what_inline_reading_does(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    write_file(path)
    to = Destination(1, "US", file_key(file_digest(path)))
    inline = list(prepare_chunks(path, "csv", "US", 4, to))
    report = import_file(engine, path, "pos", chunk_size=4, parallel=True)
    assert report.rows == sum(c.rows for c in inline) == 30
    assert report.imported == sum(c.messages for c in inline) == 27
    assert [(p.line, p.error) for p in report.problems] == [
        (p.line, p.error) for c in inline for p in c.problems
    ]
    assert report.rejected == 3
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(events)) == 27
        # c0..c19 repeat once (rows i and i+20 share an email): 20 people by email,
        # 3 by phone only, minus those whose rows were rejected or had a bad email.
        n_profiles = conn.scalar(select(func.count()).select_from(profiles))
        emails = conn.scalar(select(func.count()).where(identifiers.c.kind == "email"))
    assert emails == len({f"c{i % 20}" for i in range(30) if i % 10 not in (3, 7)})
    assert n_profiles == emails + 3


def test_the_events_handed_on_are_those_the_stored_envelope_gives(
    engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "customers.csv"
    write_file(path)
    with engine.begin() as conn:
        # A source kept in Canada: its phones without a country code are Canadian.
        source_id = ensure_source(conn, "pos", default_region="CA")
    to = Destination(source_id, "CA", file_key(file_digest(path)))
    for prepared in prepare_chunks(path, "csv", "US", 4, to):
        assert prepared.body is not None
        with engine.begin() as conn:
            inbox_id = accept(
                conn,
                source_id=source_id,
                kind="tracking.batch",
                headers={},
                body=prepared.body,
                received_at=prepared.received_at,
            )
            row = conn.execute(select(inbox).where(inbox.c.id == inbox_id)).one()
        stored = InboxEnvelope(
            row.id, row.source_id, row.kind, row.headers, row.body, row.received_at, "CA"
        )
        for event in prepared.parsed.events:
            event.inbox_id = inbox_id
        events = parse_envelope(stored)
        assert prepared.parsed.events == events
        assert {e.default_region for e in events} == {"CA"}
        rules = compiled(load_rules())
        assert prepared.parsed.identities == [extract_identifiers(e, rules) for e in events]


def write_rows(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["email", "birthday", "tier"])
        w.writerows(rows)


def test_a_row_imported_again_from_another_file_applies_nothing(
    engine: Engine, tmp_path: Path
) -> None:
    first, second = tmp_path / "monday.csv", tmp_path / "friday.csv"
    write_rows(first, [["a@shop.ca", "1980-01-02", "gold"], ["b@shop.ca", "1990-03-04", "silver"]])
    # Friday's export: Monday's rows in another order, one of them changed, one new
    # customer, and one row twice.
    write_rows(
        second,
        [
            ["c@shop.ca", "1985-05-06", "gold"],
            ["b@shop.ca", "1990-03-04", "gold"],
            ["a@shop.ca", "1980-01-02", "gold"],
            ["c@shop.ca", "1985-05-06", "gold"],
        ],
    )
    import_file(engine, first, "pos")
    import_file(engine, second, "pos")
    import_file(engine, second, "pos")  # the same file again: its ids are known
    with engine.connect() as conn:
        stored = conn.execute(
            select(events.c.profile_id, events.c.message_id).order_by(events.c.id)
        ).all()
        tiers = dict(
            conn.execute(
                select(identifiers.c.key, traits.c.value)
                .join(traits, traits.c.profile_id == identifiers.c.profile_id)
                .where(traits.c.name == "tier")
            ).all()
        )
        n_age_records = conn.scalar(select(func.count()).select_from(age_records))
    # Monday's two rows, then Friday's changed b and new c; a and c's repeat apply nothing.
    assert len(stored) == 4
    assert tiers == {"a@shop.ca": "gold", "b@shop.ca": "gold", "c@shop.ca": "gold"}
    assert n_age_records == 4  # a, b, c, and b's changed row stating its birthday again
    # Ids follow the file's order, so they append to the events index.
    friday = [m for _, m in stored[2:]]
    assert friday == sorted(friday)
    assert all(m.startswith("import-" + file_key(file_digest(second))) for m in friday)


def test_the_same_row_from_another_source_is_applied(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    write_rows(path, [["a@shop.ca", "1980-01-02", "gold"]])
    import_file(engine, path, "pos")
    import_file(engine, path, "website-export")
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(events)) == 2
        assert conn.scalar(select(func.count()).select_from(profiles)) == 1
