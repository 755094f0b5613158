"""Retention and legal hold from outside (both databases): `guestlist privacy purge` and
`review`, `GET /api/privacy/review`, and the daily jobs a worker schedules and runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, update
from typer.testing import CliRunner

from guestlist.api.app import create_app
from guestlist.audit import audit_entries
from guestlist.cli import app
from guestlist.jobs.schedule import enqueue_due, recurring_kinds
from guestlist.jobs.worker import Worker
from guestlist.keys import clear_key_cache, create_key
from guestlist.privacy.erase import erase_profile
from guestlist.privacy.legal_hold import LEGAL_HOLD_JOB
from guestlist.privacy.retention import RETENTION_JOB, flag_inactive_profiles
from guestlist.settings import get_settings
from guestlist.store.tables import consent_records, inbox, jobs, profiles
from guestlist.store.types import utcnow
from tests.privacy.retention_data import consent_at, customer, envelope, inbox_row, source

runner = CliRunner()
YEARS_AGO = utcnow() - timedelta(days=5 * 365)


def erased_long_ago(engine: Engine, src: int) -> int:
    """A person erased five years ago whose evidence is five years old: past the hold."""
    pid = customer(engine, src, "long-gone", YEARS_AGO)
    consent_at(engine, pid, "long-gone@example.com", YEARS_AGO)
    with engine.begin() as conn:
        erase_profile(conn, pid, actor="cli", reason="asked")
        conn.execute(update(profiles).where(profiles.c.id == pid).values(erased_at=YEARS_AGO))
    return pid


@pytest.fixture
def backlog(engine: Engine) -> dict[str, int]:
    src = source(engine)
    made = {
        "idle": customer(engine, src, "idle", YEARS_AGO),
        "erased": erased_long_ago(engine, src),
    }
    # After the people: making them runs the pipeline, which would process a pending one.
    forty_days_ago = utcnow() - timedelta(days=40)
    made["old_envelope"] = envelope(engine, src, forty_days_ago)
    made["pending_envelope"] = envelope(engine, src, forty_days_ago, status="pending")
    return made


def evidence(engine: Engine, profile_id: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.scalar(
                select(func.count())
                .select_from(consent_records)
                .where(consent_records.c.profile_id == profile_id)
            )
            or 0
        )


def test_purge_dry_run_prints_counts_and_changes_nothing(
    engine: Engine, backlog: dict[str, int]
) -> None:
    """P-4, P-3a: `purge --dry-run --json` counts; nothing is written or audited."""
    result = runner.invoke(app, ["privacy", "purge", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["inbox"]["deleted"], data["inbox"]["dry_run"]) == (1, True)
    assert data["review"]["flagged"] == 1
    assert (data["legal_hold"]["profiles"], data["legal_hold"]["records"]) == (1, 1)
    assert inbox_row(engine, backlog["old_envelope"]) is not None
    assert evidence(engine, backlog["erased"]) == 1
    with engine.connect() as conn:
        assert (
            conn.scalar(
                select(profiles.c.review_flagged_at).where(profiles.c.id == backlog["idle"])
            )
            is None
        )
        actions = {e.action for e in audit_entries(conn, limit=1000)}
    assert not actions & {
        "privacy.inbox_purged",
        "privacy.review_flagged",
        "privacy.legal_hold_purged",
    }


def test_purge_runs_both_now_and_audits_as_the_cli(engine: Engine, backlog: dict[str, int]) -> None:
    """P-4, P-3a, P-6: the purges run at once, each with an entry naming the CLI."""
    result = runner.invoke(app, ["privacy", "purge"])
    assert result.exit_code == 0, result.output
    assert "inbox (kept 30 days): 1 envelopes deleted, 0 emptied" in result.stdout
    assert "review (inactive 1095 days): 1 flagged, 0 cleared, 1 flagged in all" in result.stdout
    assert "legal hold (1461 days): 1 consent records of 1 erased people" in result.stdout
    assert inbox_row(engine, backlog["old_envelope"]) is None
    assert inbox_row(engine, backlog["pending_envelope"]).status == "pending"
    assert evidence(engine, backlog["erased"]) == 0
    with engine.connect() as conn:
        entries = {
            e.action: e.actor
            for e in audit_entries(conn, limit=1000)
            if e.action.startswith("privacy.")
        }
    assert entries == {
        "privacy.inbox_purged": "cli",
        "privacy.review_flagged": "cli",
        "privacy.legal_hold_purged": "cli",
    }


def test_review_lists_flagged_profiles(engine: Engine, backlog: dict[str, int]) -> None:
    """P-4: `guestlist privacy review [--json]`."""
    assert "no profiles awaiting review" in runner.invoke(app, ["privacy", "review"]).output
    flag_inactive_profiles(engine, review_days=1095)
    result = runner.invoke(app, ["privacy", "review", "--json"])
    assert result.exit_code == 0, result.output
    [item] = json.loads(result.stdout)
    assert item["profile_id"] == backlog["idle"] and "(P-4)" in item["reason"]
    table = runner.invoke(app, ["privacy", "review"])
    assert table.exit_code == 0 and str(backlog["idle"]) in table.stdout


@pytest.fixture
def api(engine: Engine, db_url: str) -> Iterator[tuple[TestClient, dict[str, str]]]:
    clear_key_cache()
    keys = {}
    with engine.begin() as conn:
        for kind in ("read", "admin"):
            _, keys[kind] = create_key(conn, kind, None)  # type: ignore[arg-type]
    with TestClient(create_app(db_url)) as client:
        yield client, keys


def test_review_api_pages_with_a_cursor_for_admins_only(
    engine: Engine, api: tuple[TestClient, dict[str, str]]
) -> None:
    """P-4: `GET /api/privacy/review` (admin), cursor pagination like /api/audit."""
    client, keys = api
    src = source(engine)
    ids = [customer(engine, src, f"idle-{n}", YEARS_AGO) for n in range(3)]
    flag_inactive_profiles(engine, review_days=1095)
    assert client.get("/api/privacy/review").status_code == 401
    read = client.get("/api/privacy/review", headers={"Authorization": f"Bearer {keys['read']}"})
    assert read.status_code == 403
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    seen: list[int] = []
    cursor = None
    for _ in range(3):
        params: dict[str, str | int] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = client.get("/api/privacy/review", headers=admin, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [item["profile_id"] for item in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    bad = client.get("/api/privacy/review", headers=admin, params={"cursor": "nope"})
    assert bad.status_code == 400


def test_the_daily_jobs_are_scheduled_and_run_with_the_settings(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """P-4, P-3a: a worker enqueues `privacy.retention` and `privacy.legal_hold` once a
    day and runs them as the system, with the settings' periods."""
    assert recurring_kinds()[RETENTION_JOB] == timedelta(days=1)
    assert recurring_kinds()[LEGAL_HOLD_JOB] == timedelta(days=1)
    monkeypatch.setenv("GUESTLIST_INBOX_RETENTION_DAYS", "5")
    get_settings.cache_clear()
    src = source(engine)
    week_old = envelope(engine, src, utcnow() - timedelta(days=7))
    enqueue_due(engine)
    enqueue_due(engine)  # another worker, the same day
    with engine.connect() as conn:
        kinds = sorted(conn.scalars(select(jobs.c.kind)))
    assert [k for k in kinds if k.startswith("privacy.")] == [LEGAL_HOLD_JOB, RETENTION_JOB]
    worker = Worker(engine, kinds=[RETENTION_JOB, LEGAL_HOLD_JOB])
    assert worker.run_once() == 2
    assert inbox_row(engine, week_old) is None
    with engine.connect() as conn:
        statuses = set(conn.scalars(select(jobs.c.status).where(jobs.c.kind.like("privacy.%"))))
        entries = {e.action: e.actor for e in audit_entries(conn, limit=1000)}
        assert conn.scalar(select(func.count()).select_from(inbox)) == 0
    assert statuses == {"done"}
    assert entries["privacy.inbox_purged"] == "system"
    assert entries["privacy.legal_hold_purged"] == "system"
