"""A worker process for the signal test: `python worker_process.py DATABASE_URL`.

Its one handler, `test.signal_self`, sends the signal in its args to this very process
and then carries on; the worker must finish that job, hand back the rest and exit 0.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from sqlalchemy import Engine

from guestlist.jobs.registry import job_handler
from guestlist.jobs.worker import Worker
from guestlist.store.engine import make_engine


@job_handler("test.signal_self")
def signal_self(engine: Engine, args: dict[str, Any]) -> None:
    os.kill(os.getpid(), args["signum"])
    time.sleep(0.05)  # the signal arrives while the job is still running


def main(url: str) -> None:
    engine = make_engine(url)
    # job_batch=2: both jobs are claimed at once, so the second must be handed back.
    Worker(engine, worker_id="signalled", job_batch=2, poll_seconds=0.01).run_forever()
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1])
