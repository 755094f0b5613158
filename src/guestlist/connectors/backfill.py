"""Pulls: each stream of a connection page by page, resumable at any moment.

Every page is stored as one inbox envelope (kind `"{slug}.pull.{stream}"`) in the same
transaction that moves the stream's checkpoint past it. A backfill killed between two
pages resumes after the last stored one: no gap, and no page stored twice. The
checkpoint is moved with a compare-and-set on the page count, so two backfills of the
same connection cannot interleave pages (the second stops with `BackfillConflict`).
Events carry ids derived from the vendor's record id and its update time, so a record
that arrives both by webhook and by pull is applied once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import structlog
from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite

from guestlist.connectors._http.client import VendorClient, VendorError
from guestlist.connectors.base import (
    CONTEXT_PREFIX,
    Capability,
    ConnectorError,
    Page,
    pull_kind,
)
from guestlist.connectors.connections import load, log_event
from guestlist.connectors.prefetch import prefetched
from guestlist.inbox.store import accept
from guestlist.jobs.registry import job_handler
from guestlist.store.tables import connection_streams
from guestlist.store.types import utcnow

log = structlog.get_logger(__name__)


class BackfillConflict(RuntimeError):
    """Another backfill moved this stream's checkpoint first."""


@dataclass(slots=True)
class StreamProgress:
    stream: str
    status: str
    run: int
    pages: int
    records: int
    total: int | None


Progress = Callable[[StreamProgress], None]


class Stop(Protocol):
    """A threading or multiprocessing Event: `is_set` ends the run between two pages."""

    def is_set(self) -> bool: ...


def _insert(conn: Connection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _begin_stream(engine: Engine, connection_id: int, stream: str, restart: bool) -> StreamProgress:
    """The stream's row, moved to a new run unless one is under way (then it resumes)."""
    now = utcnow()
    with engine.begin() as conn:
        stmt = _insert(conn)(connection_streams).values(
            connection_id=connection_id,
            stream=stream,
            status="running",
            run=1,
            started_at=now,
            updated_at=now,
        )
        conn.execute(stmt.on_conflict_do_nothing())
        row = conn.execute(
            select(connection_streams).where(
                connection_streams.c.connection_id == connection_id,
                connection_streams.c.stream == stream,
            )
        ).one()
        values: dict[str, Any] = {}
        if restart:
            values = {"checkpoint": None}
        if row.status == "done" or restart:
            # A new run: from the watermark the last one left (or from the start).
            values |= {"run": row.run + 1, "pages": 0, "records": 0, "total": None,
                       "started_at": now}
        values |= {"status": "running", "error": None, "finished_at": None, "updated_at": now}
        conn.execute(
            update(connection_streams)
            .where(
                connection_streams.c.connection_id == connection_id,
                connection_streams.c.stream == stream,
            )
            .values(values)
        )
        row = conn.execute(
            select(connection_streams).where(
                connection_streams.c.connection_id == connection_id,
                connection_streams.c.stream == stream,
            )
        ).one()
    return StreamProgress(stream, row.status, row.run, row.pages, row.records, row.total)


def _checkpoint(engine: Engine, connection_id: int, stream: str) -> str | None:
    with engine.connect() as conn:
        return conn.scalar(
            select(connection_streams.c.checkpoint).where(
                connection_streams.c.connection_id == connection_id,
                connection_streams.c.stream == stream,
            )
        )


def _context(page: Page) -> dict[str, str]:
    for name in page.context:
        if not name.startswith(CONTEXT_PREFIX):
            raise ValueError(f"page context {name!r} must start with {CONTEXT_PREFIX}")
    return dict(page.context)


def _store_page(
    engine: Engine,
    *,
    connection_id: int,
    source_id: int,
    slug: str,
    state: StreamProgress,
    page: Page,
) -> None:
    done = page.checkpoint is None
    with engine.begin() as conn:
        if page.records:
            accept(
                conn,
                source_id=source_id,
                kind=pull_kind(slug, state.stream),
                headers=_context(page),
                body=orjson.dumps({"stream": state.stream, "records": page.records}),
                idempotency_key=f"pull:{state.stream}:{state.run}:{state.pages}",
            )
        moved = conn.execute(
            update(connection_streams)
            .where(
                connection_streams.c.connection_id == connection_id,
                connection_streams.c.stream == state.stream,
                connection_streams.c.run == state.run,
                connection_streams.c.pages == state.pages,
            )
            .values(
                checkpoint=page.next_run if done else page.checkpoint,
                pages=state.pages + 1,
                records=state.records + len(page.records),
                total=page.total if page.total is not None else connection_streams.c.total,
                status="done" if done else "running",
                finished_at=utcnow() if done else None,
                updated_at=utcnow(),
            )
        ).rowcount
        if moved != 1:
            raise BackfillConflict(
                f"stream {state.stream!r} of connection {connection_id} was moved by another "
                "backfill; this one stops"
            )
    state.pages += 1
    state.records += len(page.records)
    state.total = page.total if page.total is not None else state.total
    state.status = "done" if done else "running"


def _fail_stream(engine: Engine, connection_id: int, stream: str, error: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(connection_streams)
            .where(
                connection_streams.c.connection_id == connection_id,
                connection_streams.c.stream == stream,
            )
            .values(status="failed", error=error[:2000], updated_at=utcnow())
        )
        log_event(conn, connection_id, "pull", "failed", detail=f"{stream}: {error}")


def backfill(
    engine: Engine,
    ref: int | str,
    *,
    streams: Iterable[str] | None = None,
    restart: bool = False,
    progress: Progress | None = None,
    client: VendorClient | None = None,
    stop: Stop | None = None,
) -> list[StreamProgress]:
    """Pull the connection's streams into the inbox; returns where each one ended.

    Resumes each stream from its checkpoint; `restart` starts them over. `stop` ends
    the run between two pages (what was stored stays, and the next run resumes).
    """
    with engine.connect() as conn:
        connector, settings, info = load(conn, ref)
    if Capability.PULL not in connector.capabilities:
        raise ConnectorError(f"{info.platform} connections cannot be pulled")
    wanted = list(streams) if streams is not None else list(connector.streams)
    unknown = [s for s in wanted if s not in connector.streams]
    if unknown:
        raise ConnectorError(
            f"unknown stream {unknown[0]!r} for {info.platform} "
            f"(streams: {', '.join(connector.streams)})"
        )
    own_client = client is None
    http = client or connector.client(settings, connection_id=info.id)

    def log_retry(method: str, url: str, status: int | None, seconds: float, why: str) -> None:
        with engine.begin() as conn:
            log_event(
                conn, info.id, "pull", "retried", status=status,
                detail=f"{method} {url}: {why}; retrying in {seconds:.1f} s",
            )

    http.on_retry = log_retry
    done: list[StreamProgress] = []
    try:
        for stream in wanted:
            state = _begin_stream(engine, info.id, stream, restart)
            if progress:
                progress(state)
            start = _checkpoint(engine, info.id, stream)
            try:
                with prefetched(connector.pull(http, settings, stream, start)) as pages:
                    for page in pages:
                        _store_page(
                            engine,
                            connection_id=info.id,
                            source_id=info.source_id,
                            slug=info.platform,
                            state=state,
                            page=page,
                        )
                        if progress:
                            progress(state)
                        if stop is not None and stop.is_set():
                            return [*done, state]
            except (VendorError, ConnectorError) as exc:
                _fail_stream(engine, info.id, stream, str(exc))
                raise
            with engine.begin() as conn:
                log_event(
                    conn, info.id, "pull", "done",
                    detail=f"{stream}: {state.records} records in {state.pages} pages "
                    f"(run {state.run})",
                )
            done.append(state)
    finally:
        if own_client:
            http.close()
    return done


@job_handler("connections.backfill")
def run_backfill_job(engine: Engine, args: dict[str, Any]) -> None:
    """A backfill enqueued by the API; the worker's pipeline processes what it stores."""
    backfill(
        engine,
        int(args["connection_id"]),
        streams=args.get("streams"),
        restart=bool(args.get("restart", False)),
    )
