"""`guestlist privacy …`, `guestlist report compliance` and key auditing (both databases)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from sqlalchemy import Engine, select, update
from typer.testing import CliRunner

from guestlist.audit import audit_entries
from guestlist.cli import app
from guestlist.store.tables import consent_records, profiles
from tests.privacy.conftest import EMAIL, SMS_TEXT, Person

runner = CliRunner()


def erased_at(engine: Engine, profile_id: int) -> object:
    with engine.connect() as conn:
        return conn.scalar(select(profiles.c.erased_at).where(profiles.c.id == profile_id))


def test_erase_asks_first_and_needs_a_reason(engine: Engine, person: Person) -> None:  # P-2
    pid = str(person.profile_id)
    result = runner.invoke(app, ["privacy", "erase", pid, "--reason", "asked"], input="n\n")
    assert result.exit_code == 1 and "not erased" in result.output
    assert erased_at(engine, person.profile_id) is None
    result = runner.invoke(app, ["privacy", "erase", pid])
    assert result.exit_code == 2 and "--reason" in result.output
    result = runner.invoke(app, ["privacy", "erase", pid, "--reason", "asked"], input="y\n")
    assert result.exit_code == 0, result.output
    assert erased_at(engine, person.profile_id) is not None


def test_erase_reports_and_audits(engine: Engine, person: Person) -> None:  # P-2, P-6
    result = runner.invoke(
        app, ["privacy", "erase", str(person.merged_id), "--reason", "email 2026-03-04", "--yes"]
    )
    assert result.exit_code == 0, result.output
    assert f"erased profile {person.profile_id}" in result.output
    assert "erasure queued for mailchimp:main" in result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert report["erased_profile_ids"] == [person.profile_id, person.merged_id]
    with engine.connect() as conn:
        [entry] = audit_entries(conn, action="profile.erased")
    assert (entry.actor, entry.reason) == ("cli", "email 2026-03-04")
    again = runner.invoke(
        app, ["privacy", "erase", str(person.profile_id), "--reason", "x", "--yes"]
    )
    assert again.exit_code == 1 and "already erased" in again.output
    unknown = runner.invoke(app, ["privacy", "erase", "99999", "--reason", "x", "--yes"])
    assert unknown.exit_code == 1 and "no profile 99999" in unknown.output


def test_export_to_a_file_and_to_stdout(
    engine: Engine, person: Person, tmp_path: Path
) -> None:  # P-1, P-6
    target = tmp_path / "export.json"
    result = runner.invoke(
        app, ["privacy", "export", str(person.profile_id), "--output", str(target)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(target.read_text())
    assert any(i["value"] == EMAIL.lower() for i in data["identifiers"])
    assert any(r["text"] == SMS_TEXT for r in data["consent"]["records"])
    result = runner.invoke(app, ["privacy", "export", str(person.merged_id)])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["profile"]["id"] == person.profile_id
    with engine.connect() as conn:
        assert [e.actor for e in audit_entries(conn, action="profile.exported")] == ["cli"] * 2
    assert runner.invoke(app, ["privacy", "export", "99999"]).exit_code == 1


def test_verify_ledger_exits_1_with_a_table_of_problems(
    engine: Engine, person: Person
) -> None:  # C-2a
    result = runner.invoke(app, ["privacy", "verify-ledger"])
    assert result.exit_code == 0, result.output
    assert "ledger intact" in result.output and "3 records checked" in result.output
    with engine.begin() as conn:  # someone turns a withdrawal into nothing at all
        conn.execute(
            update(consent_records)
            .where(consent_records.c.channel == "sms")
            .values(status="denied")
        )
    result = runner.invoke(app, ["privacy", "verify-ledger"])
    assert result.exit_code == 1
    assert "content changed after it was written" in result.output


def test_report_compliance_prints_tables_and_writes_csv(
    engine: Engine, person: Person, tmp_path: Path
) -> None:
    target = tmp_path / "report.csv"
    result = runner.invoke(app, ["report", "compliance", "--csv", str(target), "--days", "5"])
    assert result.exit_code == 0, result.output
    assert "Consent by channel and purpose" in result.output
    assert "Ledger: intact" in result.output
    rows = list(csv.reader(target.open()))
    assert ["# age_verification"] in rows
    result = runner.invoke(app, ["report", "compliance", "--json", "--no-verify-ledger"])
    assert json.loads(result.stdout)["ledger"]["checked"] is False


def test_keys_create_is_audited_without_the_key(engine: Engine) -> None:  # P-6
    result = runner.invoke(app, ["keys", "create", "--kind", "admin"])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[-1]
    with engine.connect() as conn:
        [entry] = audit_entries(conn, action="key.created")
    assert entry.actor == "cli"
    assert entry.detail == {"key_id": entry.detail["key_id"], "kind": "admin", "source": None}
    assert key not in json.dumps(entry.detail) and key[:12] not in json.dumps(entry.detail)
