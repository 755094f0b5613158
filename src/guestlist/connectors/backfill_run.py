"""A backfill that builds profiles as it goes: pages fetched in a child process, the
inbox processed in this one.

Fetching (HTTP, JSON, inbox inserts) and processing (identity, traits, events) are
both Python; in one process they share one core through the GIL. The fetch runs in a
spawned process with its own engine, so on a machine with two cores each gets one. The
two meet only in the database: the child stores pages with their checkpoints (SQLite
queues the writers with `BEGIN IMMEDIATE`), this process takes them from the inbox.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import astuple
from typing import Any

from sqlalchemy import Engine

from guestlist.connectors.backfill import StreamProgress, backfill
from guestlist.connectors.base import ConnectorError

Processor = Callable[[Engine, int], int]


class BackfillFailed(ConnectorError):
    """The fetching process stopped on an error; what it stored stays, and a new run resumes."""


def _report(
    engine: Engine,
    ref: int | str,
    streams: list[str] | None,
    restart: bool,
    out: Any,
    stop: Any,
) -> None:
    """One backfill, reporting progress and its end on `out`."""
    try:
        backfill(
            engine,
            ref,
            streams=streams,
            restart=restart,
            progress=lambda s: out.put(("progress", astuple(s))),
            stop=stop,
        )
        out.put(("done", None))
    except Exception as exc:  # reported to the caller, which raises it
        out.put(("error", f"{exc}"))


def _fetch(
    url: str,
    ref: int | str,
    streams: list[str] | None,
    restart: bool,
    out: Any,
    stop: Any,
) -> None:
    """The child process: its own engine, the platforms loaded, one backfill."""
    from guestlist.connectors import load_all
    from guestlist.store.engine import make_engine

    load_all()
    engine = make_engine(url)
    try:
        _report(engine, ref, streams, restart, out, stop)
    finally:
        engine.dispose()


def backfill_and_process(
    engine: Engine,
    ref: int | str,
    *,
    process: Processor | None,
    streams: Iterable[str] | None = None,
    restart: bool = False,
    batch_size: int = 200,
    on_progress: Callable[[StreamProgress], None] | None = None,
    on_processed: Callable[[int], None] | None = None,
    fetch_process: bool = True,
) -> int:
    """Run a backfill in a child process (or, `fetch_process=False`, a thread) while
    `process` drains the inbox here.

    Returns the number of envelopes processed; raises `BackfillFailed` if the fetch
    failed (after processing what it stored). Ctrl-C stops the fetch between pages.
    """
    wanted = list(streams) if streams is not None else None
    child: Any
    if fetch_process:
        context = multiprocessing.get_context("spawn")
        out: Any = context.Queue()
        stop: Any = context.Event()
        url = engine.url.render_as_string(hide_password=False)
        child = context.Process(
            target=_fetch,
            args=(url, ref, wanted, restart, out, stop),
            name="guestlist-backfill",
        )
    else:
        out, stop = queue.Queue(), threading.Event()
        child = threading.Thread(
            target=_report,
            args=(engine, ref, wanted, restart, out, stop),
            name="guestlist-backfill",
            daemon=True,
        )
    child.start()
    done = 0
    error: str | None = None
    finished = False
    try:
        while True:
            while True:  # every message waiting, without blocking
                try:
                    kind, payload = out.get_nowait()
                except queue.Empty:
                    break
                if kind == "progress" and on_progress is not None:
                    on_progress(StreamProgress(*payload))
                elif kind == "error":
                    error, finished = payload, True
                elif kind == "done":
                    finished = True
            taken = process(engine, batch_size) if process is not None else 0
            done += taken
            if on_processed is not None and taken:
                on_processed(done)
            if taken == 0:
                if finished or (not child.is_alive() and out.empty()):
                    break  # fetched and processed, or the child died (said below)
                time.sleep(0.1)
    except KeyboardInterrupt:
        stop.set()
        child.join()
        raise
    child.join()
    if error is None and not finished:
        error = f"the backfill process ended with exit code {getattr(child, 'exitcode', '?')}"
    if error is not None:
        raise BackfillFailed(error)
    return done
