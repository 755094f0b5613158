"""Sale and sharing (CCPA/CPRA), on SQLite and PostgreSQL: P-5.

The opt-out from a GPC-carrying form, the 12 months before asking again (`may_ask`),
and the consent API that reports both.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from guestlist.api.app import create_app
from guestlist.canonical import CanonicalEvent
from guestlist.consent.ask import add_months, ask_decision, last_opt_out, may_ask
from guestlist.consent.ledger import verify_ledger
from guestlist.guard import load_facts, sale_sharing_opted_out
from guestlist.keys import clear_key_cache, create_key
from guestlist.pipeline import process_events
from guestlist.settings import get_settings
from guestlist.store.tables import consent_records, identifiers

T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)
ANN = "ann@example.com"
PHONE = "+14155550100"


def _event(message_id: str, user: str, at: datetime = T0, **fields: Any) -> CanonicalEvent:
    return CanonicalEvent(
        message_id=message_id,
        timestamp=at,
        received_at=at,
        source_id=1,
        user_id=user,
        **fields,
    )


def run(engine: Engine, *batch: CanonicalEvent) -> None:
    with engine.begin() as conn:
        process_events(conn, list(batch))


def consent(
    message_id: str, user: str, at: datetime, **props: Any
) -> CanonicalEvent:
    return _event(message_id, user, at, type="track", name="Consent Updated",
                  properties=props)


def gpc(message_id: str, user: str, at: datetime) -> CanonicalEvent:
    return _event(message_id, user, at, type="page", context={"gpc": True})


def profile(engine: Engine, user: str) -> int:
    with engine.connect() as conn:
        pid = conn.scalar(
            select(identifiers.c.profile_id).where(
                identifiers.c.kind == "user_id", identifiers.c.key == user
            )
        )
    assert pid is not None
    return int(pid)


@pytest.fixture
def ann(engine: Engine) -> int:
    run(engine, _event("id-ann", "ann", type="identify", traits={"email": ANN, "phone": PHONE}))
    return profile(engine, "ann")


# --- may_ask: not within 12 months after an opt-out ---------------------------------


def test_add_months_never_shortens_the_term() -> None:
    assert add_months(T0, 12) == datetime(2027, 5, 1, 12, tzinfo=UTC)
    assert add_months(datetime(2028, 2, 29, tzinfo=UTC), 12) == datetime(2029, 3, 1, tzinfo=UTC)
    assert add_months(datetime(2026, 1, 31, tzinfo=UTC), 1) == datetime(2026, 3, 1, tzinfo=UTC)
    assert add_months(datetime(2026, 12, 31, tzinfo=UTC), 12) == datetime(2027, 12, 31, tzinfo=UTC)


def test_a_profile_that_never_opted_out_may_be_asked(engine: Engine, ann: int) -> None:  # P-5
    with engine.connect() as conn:
        assert may_ask(conn, ann, "sale_sharing", T0)
        decision = ask_decision(conn, ann, "marketing", T0, "email")
    assert (decision.may_ask, decision.last_opt_out, decision.may_ask_after) == (True, None, None)


def test_no_prompt_for_12_months_after_a_gpc_opt_out(engine: Engine, ann: int) -> None:  # P-5
    run(engine, gpc("g-1", "ann", T0))
    after = datetime(2027, 5, 1, 12, tzinfo=UTC)
    with engine.connect() as conn:
        assert last_opt_out(conn, ann, "sale_sharing") == T0
        for now, expected in [
            (T0, False),
            (T0 + timedelta(days=364), False),
            (after - timedelta(microseconds=1), False),
            (after, True),
        ]:
            assert may_ask(conn, ann, "sale_sharing", now) is expected, now
        decision = ask_decision(conn, ann, "sale_sharing", T0 + timedelta(days=1), "sms")
    # The opt-out is the person's: the channel asked about does not matter.
    assert (decision.channel, decision.may_ask, decision.may_ask_after) == (None, False, after)


def test_the_clock_runs_from_the_latest_opt_out_even_after_opting_back_in(
    engine: Engine, ann: int
) -> None:  # P-5
    later = T0 + timedelta(days=100)
    run(
        engine,
        gpc("g-1", "ann", T0),
        consent("c-1", "ann", T0 + timedelta(days=50), channel="email", purpose="sale_sharing",
                status="granted", text="You may share my data"),
        consent("c-2", "ann", later, channel="email", purpose="sale_sharing", status="denied"),
    )
    with engine.connect() as conn:
        assert last_opt_out(conn, ann, "sale_sharing") == later
        assert not may_ask(conn, ann, "sale_sharing", T0 + timedelta(days=400))
        assert may_ask(conn, ann, "sale_sharing", add_months(later, 12))


def test_marketing_waits_per_channel_sale_sharing_across_channels(
    engine: Engine, ann: int
) -> None:  # P-5; SMS STOP withdraws marketing and sale_sharing for the number
    run(engine, consent("c-1", "ann", T0, channel="sms", purpose="marketing",
                        status="withdrawn", identifier=PHONE))
    soon = T0 + timedelta(days=30)
    with engine.connect() as conn:
        assert not may_ask(conn, ann, "marketing", soon, "sms")
        assert may_ask(conn, ann, "marketing", soon, "email")
        assert not may_ask(conn, ann, "marketing", soon)  # any channel
        assert may_ask(conn, ann, "sale_sharing", soon)  # marketing said no, not sharing
    run(engine, consent("c-2", "ann", T0, channel="sms", purpose="sale_sharing",
                        status="withdrawn", identifier=PHONE))
    with engine.connect() as conn:
        assert not may_ask(conn, ann, "sale_sharing", soon, "email")


def test_may_ask_refuses_unknown_names_and_naive_times(engine: Engine, ann: int) -> None:
    with engine.connect() as conn:
        with pytest.raises(ValueError):
            may_ask(conn, ann, "spam", T0)
        with pytest.raises(ValueError):
            may_ask(conn, ann, "marketing", T0, "fax")
        with pytest.raises(ValueError, match="timezone-aware"):
            may_ask(conn, ann, "marketing", datetime(2026, 5, 1))


# --- the opt-out rule ------------------------------------------------------------------


def test_no_record_is_not_an_opt_out_and_a_later_grant_lifts_one(
    engine: Engine, ann: int
) -> None:  # P-5: CCPA is opt-out; C-3 event time wins
    def opted_out(now: datetime = T0) -> bool:
        with engine.connect() as conn:
            return sale_sharing_opted_out(load_facts(conn, [ann])[ann], now)

    assert not opted_out()
    run(engine, gpc("g-1", "ann", T0))
    assert opted_out()
    # A grant at the same moment does not lift it (a withdrawal wins a tie)…
    run(engine, consent("c-1", "ann", T0, channel="email", purpose="sale_sharing",
                        status="granted", identifier=ANN))
    assert opted_out()
    # …a later one does, on the browser's record too: the person's latest word counts.
    run(engine, consent("c-2", "ann", T0 + timedelta(hours=1), channel="email",
                        purpose="sale_sharing", status="granted", identifier=ANN))
    assert not opted_out()


# --- the consent API ----------------------------------------------------------------------


Api = tuple[TestClient, dict[str, str]]


@pytest.fixture
def api(engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    monkeypatch.setenv("GUESTLIST_PUBLIC_URL", "https://shop.example")
    get_settings.cache_clear()
    clear_key_cache()
    keys: dict[str, str] = {}
    with engine.begin() as conn:
        for kind in ("write", "read", "admin"):
            keys[kind] = create_key(conn, kind, "web" if kind == "write" else None)[1]
    with TestClient(create_app(db_url)) as client:
        yield client, keys
    clear_key_cache()


def test_the_consent_api_reports_the_opt_out_and_when_to_ask_again(
    engine: Engine, ann: int, api: Api
) -> None:  # P-5
    client, keys = api
    now = datetime.now(UTC)
    run(
        engine,
        consent("c-1", "ann", now - timedelta(days=2), channel="email", status="granted",
                text="Email me offers"),
        gpc("g-1", "ann", now - timedelta(days=1)),
    )
    read = {"Authorization": f"Bearer {keys['read']}"}
    response = client.get(f"/api/profiles/{ann}/consent", headers=read)
    assert response.status_code == 200, response.text
    body = response.json()
    after = add_months(now - timedelta(days=1), 12)
    assert body["profile_id"] == ann
    assert body["sale_sharing"]["opted_out"] is True
    assert body["sale_sharing"]["may_ask"] is False
    assert datetime.fromisoformat(body["sale_sharing"]["may_ask_after"]) == after
    rows = {(r["channel"], r["purpose"]): r for r in body["consent"]}
    assert rows[("email", "marketing")]["status"] == "granted"
    assert rows[("email", "marketing")]["may_ask_after"] is None  # never said no
    browser = rows[("browser", "sale_sharing")]
    assert (browser["status"], browser["identifier"]) == ("withdrawn", "user_id:ann")
    assert datetime.fromisoformat(browser["may_ask_after"]) == after

    one = client.get(f"/api/profiles/{ann}/consent/may-ask?purpose=marketing&channel=email",
                     headers=read)
    assert one.json() == {"profile_id": ann, "purpose": "marketing", "channel": "email",
                          "may_ask": True, "last_opt_out": None, "may_ask_after": None}
    assert client.get(f"/api/profiles/{ann}/consent/may-ask?purpose=spam",
                      headers=read).status_code == 400
    assert client.get(f"/api/profiles/{ann}/consent/may-ask?channel=fax",
                      headers=read).status_code == 400
    assert client.get("/api/profiles/999999/consent", headers=read).status_code == 404
    assert client.get(f"/api/profiles/{ann}/consent").status_code == 401
    write = {"Authorization": f"Bearer {keys['write']}"}
    assert client.get(f"/api/profiles/{ann}/consent", headers=write).status_code == 403


def test_a_merged_profile_id_redirects_to_the_survivor(
    engine: Engine, ann: int, api: Api
) -> None:
    client, keys = api
    run(engine, _event("id-bo", "bo", type="identify", traits={}),
        gpc("g-1", "bo", T0))
    bo = profile(engine, "bo")
    run(engine, _event("al-1", "ann", type="alias", previous_id="bo"))
    survivor = profile(engine, "ann")
    gone = bo if survivor == ann else ann
    read = {"Authorization": f"Bearer {keys['read']}"}
    moved = client.get(f"/api/profiles/{gone}/consent/may-ask?purpose=sale_sharing",
                       headers=read, follow_redirects=False)
    assert moved.status_code == 308
    assert moved.headers["location"] == (
        f"/api/profiles/{survivor}/consent/may-ask?purpose=sale_sharing"
    )
    body = client.get(f"/api/profiles/{gone}/consent", headers=read).json()
    assert body["profile_id"] == survivor and body["sale_sharing"]["opted_out"] is True


# --- GPC on guestlist's own form: the double opt-in confirmation --------------------


def test_a_confirmation_sent_with_gpc_opts_the_address_out_once(
    engine: Engine, ann: int, api: Api
) -> None:  # P-5: "the GPC signal on a form submission counts as that opt-out"
    client, keys = api
    started = client.post(
        "/api/consent/double-opt-in",
        headers={"Authorization": f"Bearer {keys['admin']}"},
        json={"profile_id": ann, "text": "Yes, email me offers from Bottle Shop."},
    )
    assert started.status_code == 201, started.text
    path = urlsplit(started.json()["confirm_url"]).path
    for _ in range(2):  # a second click changes nothing
        click = client.post(path, headers={"Sec-GPC": "1", "User-Agent": "GPC Browser"})
        assert click.status_code == 200, click.text
    with engine.connect() as conn:
        rows = list(conn.execute(select(consent_records).order_by(consent_records.c.id)))
        assert verify_ledger(conn)[1] == []
        assert sale_sharing_opted_out(load_facts(conn, [ann])[ann], datetime.now(UTC))
    assert [(r.purpose, r.status) for r in rows] == [
        ("marketing", "pending"), ("marketing", "granted"), ("sale_sharing", "withdrawn")
    ]
    optout = rows[-1]
    assert (optout.channel, optout.identifier, optout.user_agent) == ("email", ANN, "GPC Browser")
    assert optout.message_id == rows[0].message_id  # the link's nonce
    assert optout.proof == {"signals": ["header Sec-GPC: 1"],
                            "form": "double-opt-in confirmation"}


def test_a_confirmation_without_gpc_records_no_opt_out(
    engine: Engine, ann: int, api: Api
) -> None:  # P-5
    client, keys = api
    started = client.post(
        "/api/consent/double-opt-in",
        headers={"Authorization": f"Bearer {keys['admin']}"},
        json={"profile_id": ann, "text": "Yes, email me offers from Bottle Shop."},
    )
    path = urlsplit(started.json()["confirm_url"]).path
    assert client.post(path, headers={"Sec-GPC": "0"}).status_code == 200
    with engine.connect() as conn:
        purposes = list(conn.scalars(select(consent_records.c.purpose)))
    assert purposes == ["marketing", "marketing"]
