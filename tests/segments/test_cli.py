"""`guestlist segments …` (issue 4, part 6), run in-process (both databases)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import orjson
from sqlalchemy import Engine
from typer.testing import CliRunner

from guestlist.cli import app
from guestlist.inbox.store import accept
from guestlist.keys import ensure_source
from guestlist.pipeline import process_all
from guestlist.store.types import utcnow

runner = CliRunner()


def load(engine: Engine) -> None:
    now = utcnow()
    batch = []
    for i, total in enumerate([30, 90, 250]):
        batch.append(
            {
                "type": "identify",
                "userId": f"u{i}",
                "timestamp": (now - timedelta(days=3)).isoformat(),
                "traits": {"email": f"p{i}@example.com"},
            }
        )
        batch.append(
            {
                "type": "track",
                "userId": f"u{i}",
                "event": "Order Completed",
                "timestamp": (now - timedelta(days=2)).isoformat(),
                "properties": {"total": total},
            }
        )
    with engine.begin() as conn:
        accept(
            conn,
            source_id=ensure_source(conn, "web"),
            kind="tracking.batch",
            headers={},
            body=orjson.dumps({"batch": batch}),
        )
    process_all(engine)


def test_create_preview_members_explain_delete(engine: Engine, tmp_path: Path) -> None:
    load(engine)
    rule = 'sum("Order Completed".total) >= 90'
    preview = runner.invoke(app, ["segments", "preview", "--rule", rule])
    assert preview.exit_code == 0, preview.output
    assert json.loads(preview.stdout)["count"] == 2

    created = runner.invoke(
        app, ["segments", "create", "spenders", "--name", "Spenders", "--rule", rule]
    )
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["members"] == 2

    out = tmp_path / "members.csv"
    members = runner.invoke(app, ["segments", "members", "spenders", "--csv", str(out)])
    assert members.exit_code == 0, members.output
    lines = out.read_text().splitlines()
    assert lines[0] == "profile_id,email,phone,user_id,entered_at"
    assert sorted(line.split(",")[1] for line in lines[1:]) == ["p1@example.com", "p2@example.com"]

    pid = int(lines[1].split(",")[0])
    explained = runner.invoke(app, ["segments", "explain", "spenders", "--profile", str(pid)])
    assert explained.exit_code == 0, explained.output
    assert "SELECT" in explained.stdout
    found = explained.stdout[explained.stdout.rindex("\n{\n") :]  # after the SQL
    assert json.loads(found)["holds"] is True

    listed = runner.invoke(app, ["segments", "list"])
    assert json.loads(listed.stdout)[0]["members"] == 2
    assert runner.invoke(app, ["segments", "delete", "spenders"]).exit_code == 0


def test_bad_rules_are_cli_errors(engine: Engine) -> None:
    bad = runner.invoke(app, ["segments", "preview", "--rule", "trait.a =="])
    assert bad.exit_code == 2 and "line 1, column" in bad.output
    both = runner.invoke(app, ["segments", "preview", "--rule", "x", "--rule-json", "{}"])
    assert both.exit_code == 2 and "once" in both.output
    unknown = runner.invoke(
        app, ["segments", "create", "s", "--name", "S", "--rule-json", '{"in_segment": "nope"}']
    )
    assert unknown.exit_code == 1 and "no segment 'nope'" in unknown.output
