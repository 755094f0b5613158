"""The worker: drains the inbox, then runs due jobs, in a loop.

`guestlist worker` runs `Worker.run_forever` in the main thread, where SIGTERM and
SIGINT ask it to stop: it finishes the unit of work in hand (the inbox batch or the
job being run), hands jobs it claimed but did not start back to the queue, and
returns. A second signal acts as it would have without the worker (SIGINT raises
KeyboardInterrupt); a job interrupted that way is recovered as stale later.

`guestlist serve` can run one in a thread instead (`start_in_thread`).

While it runs, the worker refreshes the lease (`locked_at`) on the jobs it holds from
a small heartbeat thread, now and then requeues jobs whose lease ran out because
their worker died (`recover_stale`), and when it starts and then about once a minute
enqueues the recurring jobs whose period has begun (`guestlist.jobs.schedule`).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from types import FrameType

import structlog
from sqlalchemy import Engine

from guestlist.jobs.queue import (
    ClaimedJob,
    claim,
    complete,
    fail,
    heartbeat,
    recover_stale,
    release,
)
from guestlist.jobs.registry import UnknownJobKind, get_handler
from guestlist.jobs.schedule import enqueue_due
from guestlist.store.types import utcnow

log = structlog.get_logger(__name__)

InboxProcessor = Callable[[Engine, int], int]
"""`process_inbox(engine, batch_size)` handles up to one batch and returns how many."""

# Upper bound of the pause after consecutive errors of the loop itself (database down).
MAX_ERROR_PAUSE_SECONDS = 30.0
# How often a running worker enqueues recurring jobs whose period has begun.
SCHEDULE_EVERY = timedelta(minutes=1)


def default_worker_id() -> str:
    """`hostname:pid:random`, unique per worker process or thread."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


class Worker:
    """One worker: a loop of inbox batches and claimed jobs over one engine."""

    def __init__(
        self,
        engine: Engine,
        *,
        worker_id: str | None = None,
        process_inbox: InboxProcessor | None = None,
        batch_size: int = 200,
        poll_seconds: float = 0.2,
        job_batch: int = 10,
        kinds: Sequence[str] | None = None,
        stale_after: timedelta = timedelta(minutes=5),
        schedule_every: timedelta | None = SCHEDULE_EVERY,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """Set up a worker; nothing runs until `run_once` or `run_forever`.

        `job_batch` is how many jobs one claim takes, `kinds` limits the job kinds
        this worker takes (None: all), and a running job whose lease is older than
        `stale_after` is taken to belong to a dead worker. `run_forever` enqueues due
        recurring jobs at start and then every `schedule_every` (None: never).
        """
        self.engine = engine
        self.worker_id = worker_id or default_worker_id()
        self.process_inbox = process_inbox
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.job_batch = job_batch
        self.kinds = list(kinds) if kinds is not None else None
        self.stale_after = stale_after
        self.schedule_every = schedule_every
        self.clock = clock
        self._stop: threading.Event | None = None
        self._log = log.bind(worker_id=self.worker_id)

    def run_once(self) -> int:
        """Process one inbox batch, then claim and run due jobs; return how many.

        Errors from `process_inbox` are logged and do not stop the jobs; a failing job
        is recorded on the job. Errors reaching the database propagate.
        """
        done = 0
        if self.process_inbox is not None:
            try:
                done += self.process_inbox(self.engine, self.batch_size)
            except Exception:
                self._log.exception("worker.inbox_failed")
        if self._stopping():
            return done
        claimed = claim(
            self.engine, self.worker_id, self.job_batch, self.kinds, now=self.clock()
        )
        for index, job in enumerate(claimed):
            if self._stopping():
                for unstarted in claimed[index:]:
                    release(self.engine, unstarted)
                break
            self._run_job(job)
            done += 1
        return done

    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    def _run_job(self, job: ClaimedJob) -> None:
        job_log = self._log.bind(job_id=job.id, kind=job.kind, attempt=job.attempts + 1)
        started = time.monotonic()
        try:
            handler = get_handler(job.kind)
            handler(self.engine, job.args)
        except UnknownJobKind as exc:
            error = f"UnknownJobKind: {exc}"
        except Exception:
            error = traceback.format_exc()
        else:
            complete(self.engine, job.id, locked_by=job.locked_by, now=self.clock())
            job_log.info("job.done", seconds=round(time.monotonic() - started, 3))
            return
        status = fail(self.engine, job, error, now=self.clock())
        job_log.warning(
            "job.failed",
            status=status,
            error=error.strip().splitlines()[-1],
            seconds=round(time.monotonic() - started, 3),
        )

    def run_forever(self, stop: threading.Event | None = None) -> None:
        """Loop until `stop` is set (or SIGTERM/SIGINT, in the main thread).

        Sleeps `poll_seconds` only when a round found nothing to do.
        """
        stop = stop or threading.Event()
        self._stop = stop
        restore_signals = _stop_on_signals(stop, self._log)
        lease_interval = max(self.stale_after.total_seconds() / 4, 0.01)
        beat_stop = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat_loop,
            args=(beat_stop, lease_interval),
            name=f"guestlist-heartbeat-{self.worker_id}",
            daemon=True,
        )
        beat.start()
        self._log.info("worker.started")
        next_recovery = next_schedule = time.monotonic()
        errors = 0
        try:
            while not stop.is_set():
                try:
                    if time.monotonic() >= next_recovery:
                        recover_stale(self.engine, self.stale_after, now=self.clock())
                        next_recovery = time.monotonic() + lease_interval
                    if self.schedule_every is not None and time.monotonic() >= next_schedule:
                        for job in enqueue_due(self.engine, self.clock()):
                            self._log.info("job.scheduled", kind=job.kind, job_id=job.job_id)
                        next_schedule = time.monotonic() + self.schedule_every.total_seconds()
                    done = self.run_once()
                    errors = 0
                except Exception:
                    errors += 1
                    self._log.exception("worker.round_failed", consecutive=errors)
                    pause = self.poll_seconds * 2 ** min(errors, 10)
                    stop.wait(min(pause, MAX_ERROR_PAUSE_SECONDS))
                    continue
                if done == 0:
                    stop.wait(self.poll_seconds)
        finally:
            beat_stop.set()
            beat.join()
            restore_signals()
            self._stop = None
            self._log.info("worker.stopped")

    def _heartbeat_loop(self, beat_stop: threading.Event, interval: float) -> None:
        while not beat_stop.wait(interval):
            try:
                heartbeat(self.engine, self.worker_id, now=self.clock())
            except Exception:
                self._log.exception("worker.heartbeat_failed")

    def start_in_thread(self) -> tuple[threading.Thread, threading.Event]:
        """Run `run_forever` in a daemon thread; set the event to stop it, then join."""
        stop = threading.Event()
        thread = threading.Thread(
            target=self.run_forever,
            kwargs={"stop": stop},
            name=f"guestlist-worker-{self.worker_id}",
            daemon=True,
        )
        thread.start()
        return thread, stop


def _stop_on_signals(
    stop: threading.Event, worker_log: structlog.typing.FilteringBoundLogger
) -> Callable[[], None]:
    """Make SIGTERM/SIGINT set `stop` (main thread only); return the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        worker_log.info("worker.stopping", signal=signal.Signals(signum).name)
        stop.set()
        restore()  # a second signal acts as it would have without the worker

    for sig in previous:
        signal.signal(sig, on_signal)
    return restore
