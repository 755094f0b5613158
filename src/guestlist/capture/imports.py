"""Customer file imports (CSV or JSON Lines) through the inbox.

Each chunk of rows becomes one inbox envelope holding Segment `identify` calls, keyed
by the file's hash and the chunk number, so an import killed half-way can simply be
run again: chunks already stored are not stored twice, and events already applied are
not applied twice. Rows without any usable identifier are reported, never guessed at.
"""

from __future__ import annotations

import csv
import hashlib
import io
import multiprocessing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from queue import Empty
from typing import Any

import orjson
from sqlalchemy import Engine, select

from guestlist.canonical import CanonicalEvent
from guestlist.capture import import_ids
from guestlist.capture.tracking_parse import BATCH_KIND, parse_tracking_envelope
from guestlist.identity.graph import extract_identifiers
from guestlist.identity.normalize import InvalidIdentifier, normalize
from guestlist.identity.rules import compiled, load_rules
from guestlist.inbox.store import InboxEnvelope, accept
from guestlist.keys import ensure_source
from guestlist.pipeline import ParsedEnvelope, process_all
from guestlist.runtime import tune_gc
from guestlist.store.tables import sources
from guestlist.store.types import utcnow

# Columns that name the person rather than describe them.
ID_COLUMNS = {  # column → (Segment field, identifier kind)
    "user_id": ("userId", "user_id"),
    "userid": ("userId", "user_id"),
    "anonymous_id": ("anonymousId", "anonymous_id"),
    "anonymousid": ("anonymousId", "anonymous_id"),
}
EXTERNAL_COLUMNS = ("external_id", "externalid")


@dataclass
class RowProblem:
    line: int
    column: str
    value: str
    error: str
    rejected: bool


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return sum(1 for p in self.problems if p.rejected)

    def write_csv(self, path: Path) -> None:
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["line", "column", "value", "error", "row_rejected"])
            for p in self.problems:
                writer.writerow([p.line, p.column, p.value, p.error, "yes" if p.rejected else "no"])


def _rows(path: Path, fmt: str) -> Iterator[tuple[int, int, dict[str, Any] | str]]:
    """(line number, bytes read, row), with an error text in place of a row that is bad."""
    with path.open("rb") as handle:
        if fmt == "jsonl":
            done = 0
            for number, line in enumerate(handle, start=1):
                done += len(line)
                if not line.strip():
                    continue
                try:
                    row = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    yield number, done, f"invalid JSON: {exc}"
                    continue
                if not isinstance(row, dict):
                    yield number, done, "a line must be a JSON object"
                    continue
                yield number, done, row
            return
        text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
        reader = csv.DictReader(text)
        try:
            for row in reader:
                if None in row:
                    yield reader.line_num, handle.tell(), "more cells than header columns"
                    continue
                yield reader.line_num, handle.tell(), row
        except (csv.Error, UnicodeDecodeError) as exc:
            yield reader.line_num, handle.tell(), f"unreadable CSV: {exc}"


def row_to_identify(
    line: int,
    row: dict[str, Any],
    region: str,
    problems: list[RowProblem],
    file_key: str,
) -> dict[str, Any] | None:
    """One row as a Segment identify call, or None (with a problem) if it names no one.

    `file_key` names the file in the row's `messageId`.
    """
    rules = load_rules()
    message: dict[str, Any] = {"type": "identify", "traits": {}}
    usable = 0
    external: list[dict[str, str]] = []
    for column, raw in row.items():
        if raw is None or raw == "":
            continue
        name = column.strip().lower()
        value = raw.strip() if isinstance(raw, str) else raw
        if name in ID_COLUMNS:
            segment_field, kind = ID_COLUMNS[name]
            message[segment_field] = str(value)
            usable += 0 if rules.is_blocked(kind, str(value)) else 1
            continue
        if name in EXTERNAL_COLUMNS:
            namespace, _, ext_id = str(value).rpartition(":")
            if not namespace or not ext_id:
                problems.append(
                    RowProblem(line, column, str(value), "external_id must be namespace:id", False)
                )
                continue
            external.append({"type": namespace, "id": ext_id, "collection": "users"})
            usable += 1
            continue
        if name in ("email", "phone"):
            try:
                ident = normalize(name, value, region)
            except InvalidIdentifier as exc:
                problems.append(RowProblem(line, column, str(value), str(exc), False))
            else:
                if rules.is_blocked(name, ident.key):
                    problems.append(
                        RowProblem(line, column, str(value), "placeholder value", False)
                    )
                else:
                    usable += 1
        message["traits"][column] = value
    if external:
        message["context"] = {"externalIds": external}
    if usable == 0:
        problems.append(RowProblem(line, "", "", "no usable identifier (email, phone or id)", True))
        return None
    # In file order, ending in the row's hash: a re-import applies nothing twice.
    content = hashlib.sha1(orjson.dumps(row, option=orjson.OPT_SORT_KEYS)).hexdigest()
    message["messageId"] = import_ids.row_message_id(file_key, line, content)
    return message


def file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


@dataclass(frozen=True)
class Destination:
    """Where the rows go: the source, and what its envelopes are parsed with."""

    source_id: int
    source_region: str  # the source's default region, as the pipeline reads it
    file_key: str  # names the file in each row's messageId


@dataclass
class PreparedChunk:
    """Rows read, checked and encoded as one inbox body, ready to be stored."""

    number: int
    body: bytes | None  # None when no row of the chunk was usable
    messages: int
    rows: int
    problems: list[RowProblem]
    done: int  # bytes of the file read so far
    received_at: datetime
    parsed: ParsedEnvelope  # what the pipeline makes of the stored body


def prepare_chunks(
    path: Path, fmt: str, region: str, chunk_size: int, to: Destination
) -> Iterator[PreparedChunk]:
    """Read the file into chunks of identify calls, and parse them and extract their
    identifiers as the pipeline would; no database involved."""
    rules = compiled(load_rules())
    messages: list[dict[str, Any]] = []
    problems: list[RowProblem] = []
    rows = 0
    number = 0

    def chunk(done: int) -> PreparedChunk:
        body = None
        now = utcnow()
        events: list[CanonicalEvent] = []
        if messages:
            body = orjson.dumps({"batch": messages, "sentAt": now.isoformat()})
            # Stored with `now` as its received time: parsing it later gives these events.
            envelope = InboxEnvelope(0, to.source_id, BATCH_KIND, {}, body, now, to.source_region)
            events = parse_tracking_envelope(envelope)
        identities = [extract_identifiers(event, rules) for event in events]
        parsed = ParsedEnvelope(events, identities)
        return PreparedChunk(number, body, len(messages), rows, problems, done, now, parsed)

    for line, done, row in _rows(path, fmt):
        rows += 1
        if isinstance(row, str):
            problems.append(RowProblem(line, "", "", row, True))
        else:
            message = row_to_identify(line, row, region, problems, to.file_key)
            if message is not None:
                messages.append(message)
        if len(messages) >= chunk_size:
            yield chunk(done)
            messages, problems, rows, number = [], [], 0, number + 1
    yield chunk(path.stat().st_size)


class ImportFailed(RuntimeError):
    """The file could not be read to the end (the rows before were imported)."""


def _reader(
    path: Path, fmt: str, region: str, chunk_size: int, to: Destination, queue: Any
) -> None:
    """The reader process: parse and check rows while the parent stores earlier ones."""
    tune_gc()  # as the parent's: this process too holds a large cache
    try:
        for prepared in prepare_chunks(path, fmt, region, chunk_size, to):
            queue.put(prepared)
    except BaseException as exc:  # reported to the parent, which raises it
        queue.put(f"{type(exc).__name__}: {exc}")
        return
    queue.put(None)


def _read_in_process(
    path: Path, fmt: str, region: str, chunk_size: int, to: Destination
) -> Iterator[PreparedChunk]:
    # `spawn`: the parent may hold database connections and threads a fork would copy.
    context = multiprocessing.get_context("spawn")
    queue = context.Queue(maxsize=4)  # bounds memory: a few chunks ahead at most
    reader = context.Process(
        target=_reader, args=(path, fmt, region, chunk_size, to, queue), daemon=True
    )
    reader.start()
    try:
        while True:
            try:
                item = queue.get(timeout=1)
            except Empty:
                if reader.is_alive():
                    continue
                try:
                    item = queue.get(timeout=1)
                except Empty:
                    exit_code = reader.exitcode
                    raise ImportFailed(f"the reader process died (exit {exit_code})") from None
            if item is None:
                return
            if isinstance(item, str):
                raise ImportFailed(item)
            yield item
    finally:
        if reader.is_alive():
            reader.terminate()
        reader.join()


# Below this size a reader process costs more to start than it saves.
PARALLEL_FROM_BYTES = 4 << 20


def import_file(
    engine: Engine,
    path: Path,
    source_name: str,
    *,
    fmt: str | None = None,
    region: str = "US",
    chunk_size: int = 2000,
    progress: Callable[[int], None] | None = None,
    parallel: bool | None = None,
) -> ImportReport:
    """Import a customer file; `progress` is called with the bytes read so far.

    Large files are read and checked by a second process while this one resolves and
    stores the rows already read, so both cores work (`parallel` forces the choice).
    """
    fmt = fmt or ("jsonl" if path.suffix.lower() in (".jsonl", ".ndjson") else "csv")
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"unknown format {fmt!r}: use csv or jsonl")
    digest = file_digest(path)
    with engine.begin() as conn:
        source_id = ensure_source(conn, source_name, kind="import", default_region=region)
        source_region = conn.execute(
            select(sources.c.default_region).where(sources.c.id == source_id)
        ).scalar_one()
    if parallel is None:
        parallel = path.stat().st_size >= PARALLEL_FROM_BYTES
    to = Destination(source_id, source_region, import_ids.file_key(digest))
    chunks = (
        _read_in_process(path, fmt, region, chunk_size, to)
        if parallel
        else prepare_chunks(path, fmt, region, chunk_size, to)
    )
    report = ImportReport()
    for prepared in chunks:
        report.rows += prepared.rows
        report.problems.extend(prepared.problems)
        if prepared.body is not None:
            with engine.begin() as conn:
                inbox_id = accept(
                    conn,
                    source_id=source_id,
                    kind=BATCH_KIND,
                    headers={"x-guestlist-import": path.name},
                    body=prepared.body,
                    idempotency_key=f"import:{digest}:{prepared.number}",
                    received_at=prepared.received_at,
                )
            parsed: dict[int, ParsedEnvelope] = {}
            if inbox_id is not None:  # None: stored by an earlier run, parsed when taken
                for event in prepared.parsed.events:
                    event.inbox_id = inbox_id
                parsed[inbox_id] = prepared.parsed
            process_all(engine, parsed=parsed)
            report.imported += prepared.messages
        if progress is not None:
            progress(prepared.done)
    return report
