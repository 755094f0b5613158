"""`Age Verified` and the `birthday` trait, through the pipeline and the tracking API
(both databases); rule ids from compliance.md."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from guestlist.age import VerificationLevel
from guestlist.age.records import age_state_of
from guestlist.api.app import create_app
from guestlist.canonical import CanonicalEvent
from guestlist.consent.ledger import append as append_consent
from guestlist.consent.ledger import parse_statement
from guestlist.guard import Restriction, admitted_profiles, guard, load_facts
from guestlist.keys import clear_key_cache, create_key
from guestlist.pipeline import process_events
from guestlist.settings import get_settings
from guestlist.store.tables import age_records, events, identifiers, inbox, traits

L = VerificationLevel
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
PHONE = "+14155550100"


@pytest.fixture(autouse=True)
def no_default_jurisdiction(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("GUESTLIST_DEFAULT_JURISDICTION", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def age_verified(message_id: str, user: str = "u1", minutes: int = 0, **props: Any) -> Any:
    return CanonicalEvent(
        type="track",
        name="Age Verified",
        message_id=message_id,
        timestamp=T0 + timedelta(minutes=minutes),
        received_at=datetime.now(UTC),
        source_id=1,
        user_id=user,
        properties=props,
    )


def identify(message_id: str, user: str = "u1", minutes: int = 0, **traits: Any) -> Any:
    return CanonicalEvent(
        type="identify",
        message_id=message_id,
        timestamp=T0 + timedelta(minutes=minutes),
        received_at=datetime.now(UTC),
        source_id=1,
        user_id=user,
        traits=traits,
    )


def run(engine: Engine, *batch: CanonicalEvent) -> None:
    with engine.begin() as conn:
        process_events(conn, list(batch))


def profile_of(engine: Engine, user: str = "u1") -> int:
    with engine.connect() as conn:
        pid = conn.scalar(
            select(identifiers.c.profile_id).where(
                identifiers.c.kind == "user_id", identifiers.c.key == user
            )
        )
    assert pid is not None
    return int(pid)


def records(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(age_records).order_by(age_records.c.id)))


def issues(engine: Engine, message_id: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        found = conn.scalar(select(events.c.issues).where(events.c.message_id == message_id))
    return list(found or [])


# The signup form's own age gate (SMS-6a): these tests are about age, not about the
# opt-in, so the grant states its gate rather than relying on the age records' dates.
GATED = {"age_gate": {"level": "dob_provided", "method": "dob_form"}}


def grant_sms(engine: Engine, profile_id: int) -> None:
    with engine.begin() as conn:
        append_consent(
            conn,
            profile_id,
            parse_statement(
                {"channel": "sms", "status": "granted", "identifier": PHONE, **GATED},
                event_time=T0,
            ),
        )


# --- Age Verified through the pipeline -----------------------------------------------


def test_age_verified_is_recorded_with_its_evidence(engine: Engine) -> None:
    run(
        engine,
        age_verified(
            "scan-1",
            birthday="2001-04-05",
            level="id_document",
            method="id_scan",
            provider="IDScan.net",
            reference="chk-991",
            country="ca",
            region="qc",
            recorded_by="staff:12",
        ),
    )
    (row,) = records(engine)
    assert row.dob == date(2001, 4, 5)
    assert (row.level, row.method, row.provider, row.reference) == (
        "id_document",
        "id_scan",
        "IDScan.net",
        "chk-991",
    )
    assert (row.country, row.region, row.recorded_by) == ("CA", "CA-QC", "staff:12")
    assert (row.message_id, row.source_id, row.event_time) == ("scan-1", 1, T0)
    s = _state(engine)
    assert (s.dob, s.level, s.jurisdiction) == (date(2001, 4, 5), L.ID_DOCUMENT, "CA-QC")


def test_a_gate_without_a_date_is_recorded_as_evidence_only(engine: Engine) -> None:
    run(engine, age_verified("gate", level="self_declared", method="age_gate", country="US"))
    (row,) = records(engine)
    assert (row.dob, row.level) == (None, "self_declared")
    assert _state(engine).dob is None


@pytest.mark.parametrize(
    ("props", "field"),
    [
        ({"birthday": "2001-04-05"}, "properties.level"),
        ({"birthday": "2001-04-05", "level": "id_scan"}, "properties.level"),
        ({"birthday": "05/04/2001", "level": "id_document"}, "properties.birthday"),
        ({"birthday": "2001-02-29", "level": "id_document"}, "properties.birthday"),
        ({"birthday": "2031-01-01", "level": "id_document"}, "properties.birthday"),
        ({"birthday": 20010405, "level": "id_document"}, "properties.birthday"),
        ({"birthday": "2001-04-05", "level": "id_document", "country": "NZ"}, "properties.country"),
        ({"birthday": "2001-04-05", "level": "id_document", "region": "US-ZZ"},
         "properties.region"),
        ({"birthday": "2001-04-05", "level": "id_document", "country": "US", "region": "CA-QC"},
         "properties.region"),
        ({"level": "id_document", "provider": "x" * 121}, "properties.provider"),
    ],
)
def test_a_bad_statement_becomes_an_issue_on_its_event(
    engine: Engine, props: dict[str, Any], field: str
) -> None:
    run(engine, age_verified("bad", **props))
    assert records(engine) == []
    (issue,) = issues(engine, "bad")
    assert issue["field"] == field and issue["age"] == "not recorded"


def test_age_is_judged_on_the_jurisdictions_local_date(engine: Engine) -> None:
    # Tokyo (UTC+9) reaches the 20th birthday nine hours before UTC does; Hawaii, the
    # US's most western zone, ten hours after.
    run(
        engine,
        identify("i1", "jp", phone=PHONE),
        age_verified("a1", "jp", birthday="2006-03-02", level="id_document", country="JP"),
        identify("i2", "us", phone="+14155550111"),
        age_verified("a2", "us", birthday="2005-03-02", level="id_document", country="US"),
    )
    jp, us = profile_of(engine, "jp"), profile_of(engine, "us")
    grant_sms(engine, jp)
    with engine.begin() as conn:
        append_consent(
            conn,
            us,
            parse_statement(
                {"channel": "sms", "status": "granted", "identifier": "+14155550111", **GATED},
                event_time=T0,
            ),
        )
    alcohol = Restriction("alcohol", channel="sms")

    def admitted(at: str) -> set[int]:
        with engine.connect() as conn:
            return admitted_profiles(conn, [jp, us], alcohol, datetime.fromisoformat(at))

    assert admitted("2026-03-01T14:59:59+00:00") == set()  # 23:59 in Tokyo
    assert admitted("2026-03-01T15:00:00+00:00") == {jp}  # midnight in Tokyo; UTC still 1 Mar
    assert admitted("2026-03-02T09:59:59+00:00") == {jp}  # 2 Mar in UTC, 1 Mar in Honolulu
    assert admitted("2026-03-02T10:00:00+00:00") == {jp, us}


# --- the birthday trait --------------------------------------------------------------


def test_a_birthday_with_an_address_counts_as_dob_provided_there(engine: Engine) -> None:
    # Issue 3, point 4: a Segment `birthday` trait with an address.
    run(
        engine,
        identify(
            "i",
            birthday="2007-06-01",
            address={"street": "1 rue Sainte-Catherine", "city": "Montréal",
                     "state": "Québec", "country": "Canada"},
        ),
    )
    (row,) = records(engine)
    assert (row.dob, row.level, row.method) == (date(2007, 6, 1), "dob_provided", "birthday_trait")
    assert (row.country, row.region, row.message_id) == ("CA", "CA-QC", "i")
    s = _state(engine)
    assert (s.level, s.jurisdiction, s.jurisdiction_from) == (L.DOB_PROVIDED, "CA-QC", "record")
    with engine.connect() as conn:  # the traits are stored as usual
        names = set(conn.scalars(select(traits.c.name)))
    assert {"birthday", "address"} <= names


def test_birthday_and_address_make_a_profile_of_age_for_alcohol_in_quebec(
    engine: Engine,
) -> None:  # dob_provided suffices for alcohol
    run(
        engine,
        identify("i", phone=PHONE, birthday="2007-06-01",
                 address={"country": "CA", "state": "QC"}),
    )
    pid = profile_of(engine)
    grant_sms(engine, pid)
    with engine.connect() as conn:
        facts = load_facts(conn, [pid])[pid]
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert guard(facts, Restriction("alcohol", channel="sms"), now).admitted  # 18 in QC
    cannabis = guard(facts, Restriction("cannabis", channel="sms"), now)
    assert cannabis.reasons == ["under_age", "insufficient_level"]  # 21, database_check


def test_a_birthday_without_an_address_is_judged_by_the_fallback(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUESTLIST_DEFAULT_JURISDICTION", "US-TX")
    get_settings.cache_clear()
    run(engine, identify("i", birthday="1990-01-18"))
    (row,) = records(engine)
    assert (row.country, row.region) == (None, None)
    assert (_state(engine).jurisdiction, _state(engine).jurisdiction_from) == ("US-TX", "default")
    run(engine, identify("j", minutes=1, address={"country": "GB"}))
    assert (_state(engine).jurisdiction, _state(engine).jurisdiction_from) == ("GB", "address")


def test_a_birthday_as_a_javascript_date_at_midnight_utc_is_read(engine: Engine) -> None:
    run(engine, identify("i", birthday="1990-01-18T00:00:00.000Z"))
    assert [r.dob for r in records(engine)] == [date(1990, 1, 18)]


@pytest.mark.parametrize(
    "birthday",
    ["1990-13-01", "18/01/1990", "1990-01-18T22:00:00.000Z", "2031-01-01", "1850-01-01", 1990],
)
def test_a_malformed_birthday_trait_is_an_issue_not_a_refusal(
    engine: Engine, birthday: Any
) -> None:
    run(engine, identify("i", birthday=birthday, email="ann@example.com"))
    assert records(engine) == []
    (issue,) = issues(engine, "i")
    assert issue["field"] == "traits.birthday" and issue["age"] == "not recorded"
    with engine.connect() as conn:  # the rest of the identify is applied
        assert conn.scalar(select(traits.c.value).where(traits.c.name == "birthday")) == birthday


def test_an_unreadable_address_country_is_flagged_on_the_event(engine: Engine) -> None:
    run(engine, identify("i", birthday="1990-01-18", address={"country": "Narnia"}))
    (row,) = records(engine)
    assert row.country is None
    assert _state(engine).jurisdiction is None
    assert issues(engine, "i") == [
        {"field": "traits.address.country",
         "error": "country 'Narnia' not recognised: age cannot be judged"}
    ]


def test_an_address_alone_creates_no_age_state(engine: Engine) -> None:
    run(engine, identify("i", address={"country": "US", "state": "TX"}))
    assert records(engine) == []
    assert _state(engine) is None


def test_a_redelivered_event_is_recorded_once(engine: Engine) -> None:
    event = age_verified("scan", birthday="2001-04-05", level="id_document", country="US")
    run(engine, event)
    run(engine, event, identify("i", birthday="2001-04-05"))
    assert len(records(engine)) == 2


def _state(engine: Engine, user: str = "u1") -> Any:
    with engine.connect() as conn:
        return age_state_of(conn, profile_of(engine, user))


# --- the tracking API ----------------------------------------------------------------


@pytest.fixture
def client(engine: Engine, db_url: str) -> Iterator[TestClient]:
    clear_key_cache()
    with TestClient(create_app(db_url)) as test_client:
        yield test_client
    clear_key_cache()


@pytest.fixture
def write_key(engine: Engine) -> str:
    with engine.begin() as conn:
        _, plaintext = create_key(conn, "write", "pos")
    return plaintext


def post(client: TestClient, path: str, body: Any, key: str) -> Any:
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    return client.post(
        path,
        content=orjson.dumps(body),
        headers={"Content-Type": "application/json", "Authorization": auth},
    )


def inbox_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(inbox)).scalar_one())


def assert_refused(response: Any, engine: Engine, field: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "invalid_property"
    assert body["error"]["field"] == field
    assert body["error"]["message"].startswith("Age Verified: ")
    assert inbox_rows(engine) == 0  # nothing stored half-way


@pytest.mark.parametrize(
    ("properties", "field"),
    [
        ({"birthday": "2001-04-05", "level": "id_scan"}, "properties.level"),
        ({"birthday": "2001-04-05"}, "properties.level"),
        ({"birthday": "5 April 2001", "level": "id_document"}, "properties.birthday"),
        ({"birthday": "2001-04-31", "level": "id_document"}, "properties.birthday"),
        ({"birthday": "2001-04-05", "level": "id_document", "country": "XX"},
         "properties.country"),
        ({"birthday": "2001-04-05", "level": "id_document", "region": "US-ZZ"},
         "properties.region"),
    ],
)
def test_the_tracking_api_refuses_a_bad_age_verified_naming_the_property(
    client: TestClient, engine: Engine, write_key: str, properties: dict[str, Any], field: str
) -> None:
    track = {"userId": "u1", "event": "Age Verified", "properties": properties}
    assert_refused(post(client, "/v1/track", track, write_key), engine, field)
    batch = {"batch": [{"type": "identify", "userId": "u1"}, {"type": "track", **track}]}
    assert_refused(post(client, "/v1/batch", batch, write_key), engine, f"batch[1].{field}")


def test_the_tracking_api_accepts_a_good_age_verified_and_a_bad_birthday_trait(
    client: TestClient, engine: Engine, write_key: str
) -> None:
    track = {
        "userId": "u1",
        "event": "Age Verified",
        "properties": {"birthday": "2001-04-05", "level": "in_person_id", "country": "US",
                       "region": "US-TX", "method": "pos_scan"},
    }
    assert post(client, "/v1/track", track, write_key).status_code == 200
    identify_call = {"userId": "u1", "traits": {"birthday": "someday"}}
    assert post(client, "/v1/identify", identify_call, write_key).status_code == 200
    assert inbox_rows(engine) == 2


def test_a_state_without_a_country_does_not_place_the_statement(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUESTLIST_DEFAULT_JURISDICTION", "US-TX")
    get_settings.cache_clear()
    run(engine, identify("i", birthday="1990-01-18", address={"country": "", "state": "CA"}))
    (row,) = records(engine)
    assert (row.country, row.region) == (None, None)  # the state's fallback reads it instead
    assert (_state(engine).jurisdiction, _state(engine).jurisdiction_from) == ("US-CA", "address")
