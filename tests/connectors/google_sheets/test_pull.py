"""Importing a sheet through the fake API: every non-blank row once, consent only
where the mapping gives its wording and date, re-imports applied once, changed rows
updating traits, resumable by row, 429s backed off, and the quota never exceeded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import Engine, func, select

from guestlist.connectors._http.client import VendorClient, VendorError
from guestlist.connectors._http.ratelimit import TokenBucket, forget_limiter
from guestlist.connectors.backfill import backfill
from guestlist.connectors.connections import add, check_connection, load, validate_settings
from guestlist.connectors.google_sheets.auth import ServiceAccountAuth
from guestlist.connectors.google_sheets.client import make_client, row_pages
from guestlist.connectors.google_sheets.connector import GoogleSheetsConnector
from guestlist.connectors.google_sheets.settings import GoogleSheetsSettings
from guestlist.pipeline import process_all
from guestlist.store.tables import (
    age_records,
    consent_records,
    consent_texts,
    events,
    identifiers,
    profiles,
    traits,
)
from tests.connectors.google_sheets.helpers import GRANT_TEXT, settings
from tests.fakes import serve
from tests.fakes.google_sheets import FakeSheets, Fault, generated_rows, serial

N, CHUNK = 40, 15  # 40 rows (5 blank), read 15 at a time


@pytest.fixture
def fake(key: rsa.RSAPrivateKey) -> Iterator[FakeSheets]:
    sheets = FakeSheets(key.public_key(), generated_rows(N))
    with serve(sheets.app()) as url:
        sheets.base = url
        yield sheets
    assert sheets.violations == []  # every request matched the discovery document


def connect(engine: Engine, key: rsa.RSAPrivateKey, fake: FakeSheets, **over: object) -> int:
    chosen = {"rows_per_request": CHUNK, "requests_per_minute": 300, **over}
    info, _ = add(engine, "google_sheets", f"Old customer list {len(over)}",
                  settings(key, fake.base, **chosen))
    forget_limiter("google_sheets", info.id)
    return info.id


def quick_client(engine: Engine, cid: int, waits: list[float]) -> VendorClient:
    with engine.connect() as conn:
        _, raw, _ = load(conn, cid)
    assert isinstance(raw, GoogleSheetsSettings)
    auth = ServiceAccountAuth(raw.account(), raw.token_endpoint())
    return VendorClient(raw.api_url, auth=auth, limiter=TokenBucket(100, 100),
                        sleep=waits.append)


def scalar(engine: Engine, query: object) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(query) or 0)  # type: ignore[call-overload]


def live_profiles(engine: Engine) -> int:
    return scalar(engine, select(func.count()).select_from(profiles)
                  .where(profiles.c.merged_into.is_(None)))


def profile_of(engine: Engine, kind: str, key: str) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(identifiers.c.profile_id).where(
            identifiers.c.kind == kind, identifiers.c.key == key)))


def trait(engine: Engine, pid: int, name: str) -> object:
    with engine.connect() as conn:
        return conn.scalar(select(traits.c.value).where(traits.c.profile_id == pid,
                                                        traits.c.name == name))


ROWS = [i for i in range(N) if i % 7 != 6]  # the non-blank ones
# Row 3's grant names its bad email: the ledger refuses it with an issue (C-6).
GRANTED = [i for i in ROWS if i % 2 and i % 10 != 5 and i != 3]
WITHDRAWN = [i for i in ROWS if i % 10 == 5]


def test_import_then_reimport(engine: Engine, key: rsa.RSAPrivateKey, fake: FakeSheets) -> None:
    cid = connect(engine, key, fake)
    [done] = backfill(engine, cid)
    # The header row, then chunks of 15 rows until an empty one (a short chunk may be
    # followed by rows after a gap).
    assert fake.seen == ["Customers!A1:I1", "Customers!A2:I16", "Customers!A17:I31",
                         "Customers!A32:I46", "Customers!A47:I61"]
    assert done.pages == 4
    process_all(engine)
    assert live_profiles(engine) == len(ROWS)  # blank rows are no one
    pid = profile_of(engine, "email", "guest0@example.com")
    assert trait(engine, pid, "first_name") == "Guest0"
    assert trait(engine, pid, "phone") == "4155550100"  # a number cell, as text
    assert profile_of(engine, "phone", "+14155550100") == pid
    with engine.connect() as conn:
        dob = conn.scalar(select(age_records.c.dob).where(age_records.c.profile_id == pid))
    assert dob == date(1970, 1, 1)  # a serial date, whatever the sheet's locale
    # The bad email of row 5 is an identity issue, not a crash: the row still lands
    # on a profile by its phone and customer number.
    assert profile_of(engine, "phone", "+14155550103")
    # C-2: a yes is a grant with the mapping's wording, dated by its "Signed up" cell
    # (C-3); "Unsubscribed" a withdrawal (C-5); "no" and blanks nothing (C-4).
    with engine.connect() as conn:
        rows = list(conn.execute(select(consent_records)))
        texts = {t.hash: t.text for t in conn.execute(select(consent_texts))}
    assert sorted(r.status for r in rows) == sorted(
        ["granted"] * len(GRANTED) + ["withdrawn"] * len(WITHDRAWN))
    with engine.connect() as conn:
        consent_events = conn.execute(select(events).where(events.c.name == "Consent Updated"))
        [bad] = [e for e in consent_events if e.properties.get("identifier") == "not-an-email"]
    assert {i["field"] for i in bad.issues} == {"context.traits.email", "properties.identifier"}
    grant = next(r for r in rows if r.identifier == "guest1@example.com")
    assert texts[grant.text_hash] == GRANT_TEXT
    assert grant.event_time.date() == date(2019, 2, 2)
    assert grant.legal_basis == "gdpr_consent"
    identifies = scalar(engine, select(func.count()).select_from(events)
                        .where(events.c.type == "identify"))

    # Re-importing the unchanged sheet applies nothing new; a changed row updates.
    fake.rows[1 + 2][1] = "Georgina"
    fake.seen.clear()
    backfill(engine, cid)
    assert fake.seen[1] == "Customers!A2:I16"  # every run reads the whole sheet
    process_all(engine)
    assert live_profiles(engine) == len(ROWS)
    assert scalar(engine, select(func.count()).select_from(events)
                  .where(events.c.type == "identify")) == identifies + 1
    assert trait(engine, profile_of(engine, "email", "guest2@example.com"),
                 "first_name") == "Georgina"
    assert scalar(engine, select(func.count()).select_from(consent_records)) == len(rows)
    assert check_connection(engine, cid) == (True, "read Customers!A1:I: 9 columns, 7 mapped")


def test_a_failed_import_resumes_at_its_row(
    engine: Engine, key: rsa.RSAPrivateKey, fake: FakeSheets
) -> None:
    cid = connect(engine, key, fake)
    fake.faults.append(Fault(request=3, status=503, times=-1))  # rows 17-31
    waits: list[float] = []
    with pytest.raises(VendorError):
        backfill(engine, cid, client=quick_client(engine, cid, waits))
    assert len(waits) == 5
    fake.faults.clear()
    fake.seen.clear()
    backfill(engine, cid, client=quick_client(engine, cid, waits))
    assert fake.seen[:2] == ["Customers!A1:I1", "Customers!A17:I31"]  # from the failed row
    process_all(engine)
    assert live_profiles(engine) == len(ROWS)
    assert scalar(engine, select(func.count()).select_from(events)
                  .where(events.c.type == "identify")) == len(ROWS)


def test_quota_429_is_backed_off_and_the_pace_keeps_under_it(
    engine: Engine, key: rsa.RSAPrivateKey, fake: FakeSheets
) -> None:
    cid = connect(engine, key, fake)
    fake.faults.append(Fault(request=2, status=429, times=2))
    waits: list[float] = []
    backfill(engine, cid, client=quick_client(engine, cid, waits))
    assert len(waits) == 2 and all(w > 0 for w in waits)  # no Retry-After: backoff
    process_all(engine)
    assert live_profiles(engine) == len(ROWS)


def test_the_pace_never_trips_the_quota(key: rsa.RSAPrivateKey, fake: FakeSheets) -> None:
    # Google counts read requests per minute; at 60 a minute, our even pace a tenth
    # under it (1 + 0.9 x 60 = 55 in any minute) leaves 5 requests for clock jitter.
    # The same ratio, faster: 20 requests per 4 s against a client at 300 a minute.
    fake.quota, fake.window = 20, 4.0
    raw = validate_settings(GoogleSheetsConnector(), settings(
        key, fake.base, rows_per_request=2, requests_per_minute=300))
    assert isinstance(raw, GoogleSheetsSettings)
    with make_client(raw) as client:
        pages = list(row_pages(client, raw, None))
    assert len(fake.seen) == 22 and len(pages) == 21
    assert fake.throttled == 0


def test_row_range_with_an_end_stops_there(
    engine: Engine, key: rsa.RSAPrivateKey, fake: FakeSheets
) -> None:
    cid = connect(engine, key, fake, range="Customers!A1:I20")
    backfill(engine, cid)
    assert fake.seen == ["Customers!A1:I1", "Customers!A2:I16", "Customers!A17:I20"]
    process_all(engine)
    assert live_profiles(engine) == len([i for i in ROWS if i < 19])


def test_serial_helper() -> None:
    assert serial(date(1900, 1, 1)) == 2.0
