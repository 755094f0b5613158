"""The `guestlist` command, run in-process with Typer's runner (both databases)."""

from __future__ import annotations

import csv
from pathlib import Path

from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from guestlist.cli import app
from guestlist.keys import authenticate, clear_key_cache
from guestlist.store.tables import identifiers, profiles, traits

runner = CliRunner()


def test_keys_create_prints_the_key_alone_on_its_last_line(engine: Engine) -> None:
    result = runner.invoke(app, ["keys", "create", "--kind", "write", "--source", "web"])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[-1]
    clear_key_cache()
    info = authenticate(engine, key, {"write"})
    assert info is not None and info.kind == "write"


def test_keys_create_refuses_a_write_key_without_source(engine: Engine) -> None:
    result = runner.invoke(app, ["keys", "create", "--kind", "write"])
    assert result.exit_code == 2
    assert "--source" in result.output


def test_import_keeps_good_rows_and_reports_bad_ones(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    with path.open("w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["Email", "Phone", "First Name", "birthday"])
        w.writerow(["ann@shop.ca", "416 555 0101", "Ann", "1990-02-03"])
        w.writerow(["ANN@shop.ca", "", "Annie", ""])  # same person, other spelling
        w.writerow(["not-an-email", "604 555 0102", "Bo", ""])  # kept by phone, flagged
        w.writerow(["", "", "Nobody", ""])  # names no one: rejected
        w.writerow(["noemail@store.com", "", "Placeholder", ""])  # rejected
    report = tmp_path / "report.csv"
    result = runner.invoke(
        app, ["import", str(path), "--source", "pos-2019", "--region", "CA",
              "--errors", str(report)]
    )
    assert result.exit_code == 0, result.output
    assert "5 rows: 3 imported, 2 rejected, 2 warnings" in result.output
    rows = list(csv.DictReader(report.open()))
    assert [(r["line"], r["row_rejected"]) for r in rows] == [
        ("4", "no"), ("5", "yes"), ("6", "no"), ("6", "yes")]
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(profiles)) == 2
        phones = set(conn.scalars(select(identifiers.c.key).where(identifiers.c.kind == "phone")))
        names = set(conn.scalars(select(traits.c.value).where(traits.c.name == "first_name")))
    assert phones == {"+14165550101", "+16045550102"}
    assert names == {"Annie", "Bo"}


def test_import_twice_applies_nothing_twice(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "customers.jsonl"
    path.write_text('{"email": "x@shop.ca", "tier": "gold"}\nnot json\n')
    for _ in range(2):
        result = runner.invoke(app, ["import", str(path), "--source", "file"])
        assert result.exit_code == 0, result.output
        assert "2 rows: 1 imported, 1 rejected" in result.output
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(profiles)) == 1
