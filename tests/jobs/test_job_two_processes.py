"""Two worker processes claiming from one queue never take the same job.

This is the guarantee `FOR UPDATE SKIP LOCKED` gives on PostgreSQL — the case that
matters, where many `guestlist worker` processes share one database. It runs through
the `db_url` fixture, so like every PostgreSQL test it fails in CI (`CI=true`) when
PostgreSQL is missing rather than skipping. The SQLite run is cheap and checks that
`BEGIN IMMEDIATE` serialises claimers in separate processes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from guestlist.jobs.queue import enqueue
from guestlist.store.tables import jobs

HERE = Path(__file__).parent
JOBS = 400


@pytest.mark.slow
def test_two_worker_processes_never_take_the_same_job(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        ids = {enqueue(conn, "test.noop", {"n": n}) for n in range(JOBS)}
    assert None not in ids and len(ids) == JOBS

    go = tmp_path / "go"
    workers = ["worker-a", "worker-b"]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                str(HERE / "claimer_process.py"),
                db_url,
                worker,
                str(tmp_path / f"{worker}.out"),
                str(tmp_path / f"{worker}.ready"),
                str(go),
            ]
        )
        for worker in workers
    ]
    try:
        deadline = time.monotonic() + 30
        while not all((tmp_path / f"{worker}.ready").exists() for worker in workers):
            assert all(p.poll() is None for p in processes), "a claimer died while starting"
            assert time.monotonic() < deadline, "claimers did not start in 30 s"
            time.sleep(0.01)
        go.touch()
        for process in processes:
            assert process.wait(60) == 0
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    taken = {
        worker: [int(line) for line in (tmp_path / f"{worker}.out").read_text().split()]
        for worker in workers
    }
    counts = Counter(job_id for worker in workers for job_id in taken[worker])
    assert [job_id for job_id, n in counts.items() if n > 1] == []
    assert set(counts) == ids
    assert all(taken[worker] for worker in workers), {w: len(t) for w, t in taken.items()}

    with engine.connect() as conn:
        rows = conn.execute(select(jobs.c.id, jobs.c.status, jobs.c.locked_by)).all()
    owner = {job_id: worker for worker in workers for job_id in taken[worker]}
    assert {row.status for row in rows} == {"done"}
    assert {row.id: row.locked_by for row in rows} == owner
