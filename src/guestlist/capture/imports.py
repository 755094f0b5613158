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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine

from guestlist.identity.normalize import InvalidIdentifier, normalize
from guestlist.identity.rules import load_rules
from guestlist.inbox.store import accept
from guestlist.keys import ensure_source
from guestlist.pipeline import process_all
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
    line: int, row: dict[str, Any], region: str, problems: list[RowProblem]
) -> dict[str, Any] | None:
    """One row as a Segment identify call, or None (with a problem) if it names no one."""
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
    # The same row content is the same message: a re-import applies nothing twice.
    message["messageId"] = (
        "import-" + hashlib.sha1(orjson.dumps(row, option=orjson.OPT_SORT_KEYS)).hexdigest()
    )
    return message


def file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def import_file(
    engine: Engine,
    path: Path,
    source_name: str,
    *,
    fmt: str | None = None,
    region: str = "US",
    chunk_size: int = 2000,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a customer file; `progress` is called with the bytes read so far."""
    fmt = fmt or ("jsonl" if path.suffix.lower() in (".jsonl", ".ndjson") else "csv")
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"unknown format {fmt!r}: use csv or jsonl")
    digest = file_digest(path)
    with engine.begin() as conn:
        source_id = ensure_source(conn, source_name, kind="import", default_region=region)
    report = ImportReport()
    chunk: list[dict[str, Any]] = []
    chunk_number = 0

    def flush() -> None:
        nonlocal chunk, chunk_number
        if not chunk:
            return
        body = orjson.dumps({"batch": chunk, "sentAt": utcnow().isoformat()})
        with engine.begin() as conn:
            accept(
                conn,
                source_id=source_id,
                kind="tracking.batch",
                headers={"x-guestlist-import": path.name},
                body=body,
                idempotency_key=f"import:{digest}:{chunk_number}",
            )
        process_all(engine)
        report.imported += len(chunk)
        chunk_number += 1
        chunk = []

    for line, done, row in _rows(path, fmt):
        report.rows += 1
        if isinstance(row, str):
            report.problems.append(RowProblem(line, "", "", row, True))
            continue
        message = row_to_identify(line, row, region, report.problems)
        if message is not None:
            chunk.append(message)
        if len(chunk) >= chunk_size:
            flush()
            if progress is not None:
                progress(done)
    flush()
    if progress is not None:
        progress(path.stat().st_size)
    return report
