"""Reading a sheet range with `spreadsheets.values.get`, in row chunks.

The first row of the configured range is the header row; the rows under it are read
`rows_per_request` at a time (`Customers!A2:Z1001`, then `A1002:Z2001`, …), so a
backfill resumes at the row after the last stored chunk (checkpoint `{"row": n}`).
The API leaves trailing empty rows out of an answer, so a short chunk does not prove
the end (rows may follow a gap): the stream ends at an empty chunk, or at the range's
last row when it names one. Every run reads the whole sheet again (`next_run` None);
rows that did not change are applied once (their message ids are the same).

Values are asked for unformatted with dates as serial numbers, so a date reads the
same whatever the spreadsheet's locale (7/4/1991 or 4/7/1991 is the same number).

Google's read quota is 60 requests a minute per user per project: the client sends
them evenly, a tenth under that, never in a burst (a bucket of 1), so no minute ever
holds more than the quota; a 429 is retried with backoff by the shared client.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import orjson

from guestlist.connectors._http.client import VendorClient
from guestlist.connectors._http.ratelimit import TokenBucket, limiter_for
from guestlist.connectors.base import ConnectorError, Page
from guestlist.connectors.google_sheets.auth import ServiceAccountAuth
from guestlist.connectors.google_sheets.mapping import SHEET_HEADER, SLUG
from guestlist.connectors.google_sheets.settings import A1_RANGE, GoogleSheetsSettings

PARAMS = {
    "majorDimension": "ROWS",
    "valueRenderOption": "UNFORMATTED_VALUE",
    "dateTimeRenderOption": "SERIAL_NUMBER",
}


def make_client(
    settings: GoogleSheetsSettings, *, connection_id: int | None = None
) -> VendorClient:
    rate = settings.requests_per_minute / 60.0 * 0.9
    limiter = limiter_for(SLUG, connection_id, lambda: TokenBucket(1, rate))
    auth = ServiceAccountAuth(settings.account(), settings.token_endpoint())
    return VendorClient(settings.api_url, headers={"Accept": "application/json"}, auth=auth,
                        limiter=limiter)


def split_range(a1: str) -> tuple[str, str, int, str, int | None]:
    """(sheet as written, first column, header row, last column, last row or None)."""
    match = A1_RANGE.match(a1)
    if match is None:
        raise ConnectorError(f"range {a1!r} is not A1 notation")
    last = int(match["r2"]) if match["r2"] else None
    return match["sheet"], match["c1"], int(match["r1"] or 1), match["c2"], last


def sheet_name(written: str) -> str:
    if written.startswith("'") and written.endswith("'"):
        return written[1:-1].replace("''", "'")
    return written


def read(client: VendorClient, settings: GoogleSheetsSettings, a1: str) -> list[list[Any]]:
    url = f"/v4/spreadsheets/{settings.spreadsheet_id}/values/{quote(a1, safe='')}"
    body = client.get(url, params=PARAMS).json()
    values = body.get("values") if isinstance(body, dict) else None
    return [v if isinstance(v, list) else [] for v in values or []]


def row_pages(
    client: VendorClient, settings: GoogleSheetsSettings, checkpoint: str | None
) -> Iterator[Page]:
    sheet, first, header_row, last_col, last_row = split_range(settings.range)
    start = header_row + 1
    if checkpoint:
        state = orjson.loads(checkpoint)
        start = int(state["row"]) if isinstance(state, dict) and "row" in state else start
    header = read(client, settings, f"{sheet}!{first}{header_row}:{last_col}{header_row}")
    if not header or not any(str(h).strip() for h in header[0]):
        raise ConnectorError(f"{settings.range}: the first row holds no headers")
    context = {SHEET_HEADER: orjson.dumps({
        "spreadsheet_id": settings.spreadsheet_id,
        "sheet": sheet_name(sheet),
        "headers": header[0],
        "mapping": settings.mapping.model_dump(mode="json"),
    }).decode()}
    row = start
    while True:
        end = row + settings.rows_per_request - 1
        if last_row is not None:
            if row > last_row:
                yield Page([], None)
                return
            end = min(end, last_row)
        values = read(client, settings, f"{sheet}!{first}{row}:{last_col}{end}")
        records: list[dict[str, Any]] = [
            {"row": row + i, "values": v} for i, v in enumerate(values)
        ]
        done = not values or (last_row is not None and end >= last_row)
        if done:
            yield Page(records, None, context=context)
            return
        row = end + 1
        yield Page(records, orjson.dumps({"row": row}).decode(), context=context)


def check(client: VendorClient, settings: GoogleSheetsSettings) -> str:
    sheet, first, header_row, last_col, _ = split_range(settings.range)
    header = read(client, settings, f"{sheet}!{first}{header_row}:{last_col}{header_row}")
    names = [str(h) for h in (header[0] if header else []) if str(h).strip()]
    if not names:
        return f"read {settings.range}: no headers in its first row"
    mapped = {k.casefold() for k in settings.mapping.columns}
    missing = [h for h in settings.mapping.columns if h.casefold() not in
               {n.casefold() for n in names}]
    found = len([n for n in names if n.casefold() in mapped])
    note = f"; not found: {', '.join(missing)}" if missing else ""
    return f"read {settings.range}: {len(names)} columns, {found} mapped{note}"
