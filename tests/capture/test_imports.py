"""Customer file imports: the reader process gives the same result as reading inline."""

from __future__ import annotations

import csv
from pathlib import Path

from sqlalchemy import Engine, func, select

from guestlist.capture.imports import import_file, prepare_chunks
from guestlist.store.tables import events, identifiers, profiles


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
    inline = list(prepare_chunks(path, "csv", "US", 4))
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
