"""One claiming worker for the two-process test.

`python claimer_process.py DATABASE_URL WORKER_ID OUT_FILE READY_FILE GO_FILE`

Connects, touches READY_FILE, waits for GO_FILE (so both processes start claiming at
the same moment), then claims small batches and runs (a 1 ms pause) and completes
each job until nothing is left, writing every claimed job id to OUT_FILE, one a line.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from sqlalchemy import text

from guestlist.jobs.queue import claim, complete
from guestlist.store.engine import make_engine


def main(url: str, worker_id: str, out: Path, ready: Path, go: Path) -> None:
    engine = make_engine(url)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))  # connect before the start line, not after
    ready.touch()
    deadline = time.monotonic() + 30
    while not go.exists():
        if time.monotonic() > deadline:
            raise SystemExit("never told to go")
        time.sleep(0.001)
    with out.open("w") as lines:
        while jobs := claim(engine, worker_id, limit=3):
            for job in jobs:
                lines.write(f"{job.id}\n")
                # "Run" the job outside any transaction. SQLite does not queue writers
                # fairly, so without such a pause one process could take every job.
                time.sleep(0.001)
                complete(engine, job.id, locked_by=worker_id)
    engine.dispose()


if __name__ == "__main__":
    url, worker_id, out, ready, go = sys.argv[1:6]
    main(url, worker_id, Path(out), Path(ready), Path(go))
