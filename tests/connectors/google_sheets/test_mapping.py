"""Rows → events without the app: the mapping's choices one by one."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest

from guestlist.connectors.google_sheets.mapping import (
    SHEET_HEADER,
    SheetPayloadError,
    parse_envelope,
)
from guestlist.inbox.store import InboxEnvelope
from tests.connectors.google_sheets.helpers import GRANT_TEXT, MAPPING
from tests.fakes.google_sheets import HEADERS, serial

RECEIVED = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def page(rows: list[list[Any]], mapping: dict[str, Any] | None = None,
         headers: list[str] | None = None) -> InboxEnvelope:
    head = {"spreadsheet_id": "sheet1", "sheet": "Customers",
            "headers": headers or HEADERS, "mapping": mapping or MAPPING}
    records = [{"row": i + 2, "values": r} for i, r in enumerate(rows)]
    body = orjson.dumps({"stream": "rows", "records": records})
    return InboxEnvelope(id=1, source_id=2, kind="google_sheets.pull.rows",
                         headers={SHEET_HEADER: orjson.dumps(head).decode()},
                         body=body, received_at=RECEIVED)


ROW = ["ava@example.com", "Ava", "Shaw", 4155550100, serial(date(1990, 4, 5)), "Yes",
       serial(date(2020, 6, 1)), "likes mezcal", 1042]


def test_a_row_is_an_identify_with_its_consent() -> None:  # C-2, C-3
    identify, consent = parse_envelope(page([ROW]))
    assert identify.type == "identify"
    assert identify.traits == {"email": "ava@example.com", "first_name": "Ava",
                               "last_name": "Shaw", "phone": "4155550100",
                               "birthday": "1990-04-05"}
    assert [e.key for e in identify.external_ids] == ["google_sheets:customer:sheet1:1042"]
    assert identify.context["google_sheets"]["columns"] == {
        "Notes": "likes mezcal", "Signed up": serial(date(2020, 6, 1))}
    assert identify.timestamp == RECEIVED  # no updated_column, no as_of: the import
    assert consent.properties["status"] == "granted"
    assert consent.properties["text"] == GRANT_TEXT
    assert consent.properties["identifier"] == "ava@example.com"
    assert consent.timestamp == datetime(2020, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(("cell", "status"), [
    (True, "granted"), ("x", "granted"), ("Opted in", "granted"),
    ("Unsubscribed", "withdrawn"), ("opted out", "withdrawn"),  # C-5
    ("no", None), ("", None), (False, None), ("maybe", None), (None, None),  # C-4
])
def test_consent_cells(cell: Any, status: str | None) -> None:
    row = [*ROW]
    row[5] = cell
    events = parse_envelope(page([row]))
    statuses = [e.properties["status"] for e in events if e.name == "Consent Updated"]
    assert statuses == ([status] if status else [])


def test_a_consent_without_its_date_is_noted_not_invented() -> None:  # C-3
    row = [*ROW]
    row[6] = "sometime in 2019"
    [identify] = parse_envelope(page([row]))
    assert "no date" in identify.context["google_sheets"]["notes"][0]


def test_as_of_and_updated_column() -> None:
    mapping = {**MAPPING, "updated_column": "Signed up", "as_of": "2021-01-01T00:00:00Z"}
    identify = parse_envelope(page([ROW], mapping))[0]
    assert identify.timestamp == datetime(2020, 6, 1, tzinfo=UTC)
    row = [*ROW]
    row[6] = ""
    identify = parse_envelope(page([row], mapping))[0]
    assert identify.timestamp == datetime(2021, 1, 1, tzinfo=UTC)


def test_blank_rows_are_skipped_and_ids_follow_the_cells() -> None:
    first = parse_envelope(page([ROW, [], ["", "  "]]))
    assert [e.type for e in first] == ["identify", "track"]
    same = parse_envelope(page([ROW]))
    assert same[0].message_id == first[0].message_id  # unchanged: applied once
    changed = [*ROW]
    changed[1] = "Avery"
    assert parse_envelope(page([changed]))[0].message_id != first[0].message_id
    remapped = {"columns": {**MAPPING["columns"], "Notes": "notes"}}
    assert parse_envelope(page([ROW], remapped))[0].message_id != first[0].message_id


def test_a_row_without_identifiers_is_anonymous() -> None:
    row = ["", "Nameless", "", "", "", "", "", "note"]
    [identify] = parse_envelope(page([row]))
    assert identify.anonymous_id and identify.anonymous_id.startswith("google_sheets:row:")


def test_text_dates_and_locale_strings() -> None:
    row = [*ROW]
    row[4] = "1990-04-05"
    assert parse_envelope(page([row]))[0].traits["birthday"] == "1990-04-05"
    row[4] = "5/4/1990"  # ambiguous: kept as typed; the pipeline flags it
    assert parse_envelope(page([row]))[0].traits["birthday"] == "5/4/1990"


def test_a_page_without_its_header_record_fails_clearly() -> None:
    body = orjson.dumps({"stream": "rows", "records": [{"row": 2, "values": ROW}]})
    env = InboxEnvelope(id=1, source_id=2, kind="google_sheets.pull.rows", headers={},
                        body=body, received_at=RECEIVED)
    with pytest.raises(SheetPayloadError) as caught:
        parse_envelope(env)
    assert caught.value.field == SHEET_HEADER


def test_the_sample_value_range() -> None:
    import json
    from pathlib import Path

    import guestlist.connectors.google_sheets as package

    sample = json.loads((Path(package.__file__).parent / "samples"
                         / "values_get_response.CONSTRUCTED.json").read_text())
    headers, *rows = sample["values"]
    events = parse_envelope(page(rows, headers=headers))
    identifies = [e for e in events if e.type == "identify"]
    assert [e.traits.get("birthday") for e in identifies] == ["1990-04-05", "1982-02-18"]
    assert [e.properties["status"] for e in events if e.name == "Consent Updated"] == [
        "granted", "withdrawn"]
