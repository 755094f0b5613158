"""The Global Privacy Control signal through the tracking API, on SQLite and PostgreSQL.

P-5: `Sec-GPC: 1` on a call (or `context.gpc` / `context.globalPrivacyControl`) is an
opt-out of sale and sharing for the profile the call resolves to: kept with the inbox
row when the request is accepted, recorded in the ledger when the inbox is processed,
once.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from guestlist.api.app import create_app
from guestlist.consent.ledger import verify_ledger
from guestlist.guard import Restriction, guard, load_facts
from guestlist.keys import clear_key_cache, create_key
from guestlist.pipeline import process_all
from guestlist.store.tables import consent_records, events, identifiers, inbox

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
PAGE = "https://bottleshop.example/checkout"


@pytest.fixture
def write_key(engine: Engine) -> str:
    with engine.begin() as conn:
        _, plaintext = create_key(conn, "write", "website")
    return plaintext


@pytest.fixture
def client(engine: Engine, db_url: str) -> Iterator[TestClient]:
    clear_key_cache()
    with TestClient(create_app(db_url)) as test_client:
        yield test_client
    clear_key_cache()


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def track(
    message_id: str,
    *,
    anonymous_id: str | None = "anon-7",
    user_id: str | None = None,
    event: str = "Product Viewed",
    context: dict[str, Any] | None = None,
    timestamp: str = "2026-05-01T12:00:00Z",
    **fields: Any,
) -> dict[str, Any]:
    call: dict[str, Any] = {
        "type": "track",
        "event": event,
        "messageId": message_id,
        "timestamp": timestamp,
        "context": {"page": {"url": PAGE}, "userAgent": UA, **(context or {})},
        **fields,
    }
    if anonymous_id is not None:
        call["anonymousId"] = anonymous_id
    if user_id is not None:
        call["userId"] = user_id
    return call


def send(
    client: TestClient, key: str, body: dict[str, Any], gpc: str | None = "1", path: str = ""
) -> None:
    headers = {"Content-Type": "application/json", "X-Forwarded-For": "203.0.113.7, 10.0.0.2",
               **basic(key)}
    if gpc is not None:
        headers["Sec-GPC"] = gpc
    path = path or ("/v1/batch" if "batch" in body else f"/v1/{body['type']}")
    response = client.post(path, content=orjson.dumps(body), headers=headers)
    assert response.status_code == 200, response.text


def sharing_records(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(consent_records)
                .where(consent_records.c.purpose == "sale_sharing")
                .order_by(consent_records.c.id)
            )
        )


def profile_of(engine: Engine, kind: str, key: str) -> int:
    with engine.connect() as conn:
        pid = conn.scalar(
            select(identifiers.c.profile_id).where(
                identifiers.c.kind == kind, identifiers.c.key == key
            )
        )
    assert pid is not None
    return int(pid)


def test_sec_gpc_header_on_a_tracked_event_is_recorded_as_a_sale_sharing_opt_out(
    engine: Engine, client: TestClient, write_key: str
) -> None:  # P-5
    send(client, write_key, track("m-1"))
    with engine.connect() as conn:
        (row,) = conn.execute(select(inbox.c.headers)).all()
    assert row.headers["sec-gpc"] == "1"  # kept at acceptance: only the request shows it
    assert sharing_records(engine) == []  # nothing until the inbox is processed

    process_all(engine)
    (record,) = sharing_records(engine)
    profile = profile_of(engine, "anonymous_id", "anon-7")
    assert (record.profile_id, record.channel, record.purpose, record.status, record.kind) == (
        profile, "browser", "sale_sharing", "withdrawn", "express"
    )
    assert record.identifier == "anonymous_id:anon-7"
    assert (record.message_id, record.url, record.user_agent, record.ip) == (
        "m-1", PAGE, UA, "203.0.113.7"
    )
    assert record.legal_basis == "ccpa_opt_out_preference_signal"
    assert record.recorded_by == "global-privacy-control"
    assert record.proof["signals"] == ["header Sec-GPC: 1"]
    with engine.connect() as conn:
        received = conn.scalar(select(inbox.c.received_at))
        assert record.event_time == received  # the header was sent with the request
        assert verify_ledger(conn) == (1, [])


@pytest.mark.slow
def test_a_real_http_request_with_sec_gpc_ends_in_the_ledger(
    engine: Engine, live_server_factory: Any, write_key: str
) -> None:  # P-5
    server = live_server_factory("--no-worker").start()
    body = {"batch": [track("m-live", anonymous_id="anon-live")], "sentAt": "2026-05-01T12:00:00Z"}
    response = httpx.post(
        f"{server.url}/v1/batch",
        content=orjson.dumps(body),
        headers={"Content-Type": "text/plain", "Sec-GPC": "1", "User-Agent": UA,
                 **basic(write_key)},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    process_all(engine)
    (record,) = sharing_records(engine)
    assert (record.identifier, record.status, record.message_id) == (
        "anonymous_id:anon-live", "withdrawn", "m-live"
    )
    assert record.ip == "127.0.0.1" and record.user_agent == UA


def test_a_redelivered_message_with_gpc_is_recorded_once(
    engine: Engine, client: TestClient, write_key: str
) -> None:  # P-5: exactly once
    send(client, write_key, track("m-1"))
    send(client, write_key, track("m-1"))  # the SDK retried: two envelopes, one message
    process_all(engine)
    send(client, write_key, track("m-1"))  # and again, after processing
    process_all(engine)
    assert len(sharing_records(engine)) == 1
    with engine.connect() as conn:
        assert len(conn.execute(select(events.c.id)).all()) == 1


def test_a_browser_sending_gpc_on_every_call_adds_one_record(
    engine: Engine, client: TestClient, write_key: str
) -> None:  # P-5: no flood
    send(client, write_key, {"batch": [track(f"m-{i}") for i in range(5)]})
    process_all(engine)
    for i in range(5, 8):
        send(client, write_key, track(f"m-{i}"))
        process_all(engine)
    assert [r.message_id for r in sharing_records(engine)] == ["m-0"]


def test_after_opting_back_in_the_next_signal_is_recorded_again(
    engine: Engine, client: TestClient, write_key: str
) -> None:  # P-5, C-3
    signup = {"type": "identify", "messageId": "m-1", "userId": "ann",
              "traits": {"email": "ann@example.com"}, "timestamp": "2026-05-01T12:00:00Z"}
    send(client, write_key, signup)
    grant = track(
        "m-2", user_id="ann", event="Consent Updated", timestamp="2099-01-01T00:00:00Z",
        properties={"channel": "email", "purpose": "sale_sharing", "status": "granted",
                    "identifier": "ann@example.com", "text": "Share my data with partners"},
    )
    send(client, write_key, grant, gpc=None)  # opted back in, GPC off, far in the future
    process_all(engine)
    ann = profile_of(engine, "user_id", "ann")
    sharing = Restriction("alcohol", channel="email", sharing=True)
    with engine.connect() as conn:
        facts = load_facts(conn, [ann])[ann]
    assert "sale_sharing_opted_out" not in guard(facts, sharing, datetime.now(UTC)).reasons
    send(client, write_key, track("m-3", user_id="ann", timestamp="2099-01-02T00:00:00Z"),
         gpc=None, path="/v1/track")
    send(client, write_key, track("m-4", user_id="ann", context={"gpc": True},
                                  timestamp="2099-01-02T00:00:00Z"), gpc=None)
    process_all(engine)
    assert sorted((r.message_id, r.status) for r in sharing_records(engine)) == [
        ("m-1", "withdrawn"), ("m-2", "granted"), ("m-4", "withdrawn")
    ]
    with engine.connect() as conn:
        facts = load_facts(conn, [ann])[ann]
    assert "sale_sharing_opted_out" in guard(facts, sharing, datetime.now(UTC)).reasons


@pytest.mark.parametrize("value", ["0", "true", "yes", "11", ""])
def test_a_header_value_other_than_1_is_no_signal(
    engine: Engine, client: TestClient, write_key: str, value: str
) -> None:  # P-5: the spec defines only `1`
    send(client, write_key, track("m-1"), gpc=value)
    process_all(engine)
    assert sharing_records(engine) == []


@pytest.mark.parametrize(
    ("context", "signals"),
    [
        ({"gpc": True}, ["context.gpc"]),
        ({"globalPrivacyControl": True}, ["context.globalPrivacyControl"]),
        ({"gpc": "1"}, ["context.gpc"]),
        ({"gpc": True, "globalPrivacyControl": "1"},
         ["context.gpc", "context.globalPrivacyControl"]),
        ({"gpc": False}, []),
        ({"gpc": 1}, []),
        ({"gpc": "true"}, []),
        ({"globalPrivacyControl": "0"}, []),
        ({"globalPrivacyControl": None}, []),
    ],
)
def test_gpc_in_the_context_from_clients_and_relays(
    engine: Engine, client: TestClient, write_key: str, context: dict[str, Any],
    signals: list[str],
) -> None:  # P-5
    send(client, write_key, track("m-1", anonymous_id=None, user_id="42", context=context),
         gpc=None)
    process_all(engine)
    found = sharing_records(engine)
    assert [r.proof["signals"] for r in found] == ([signals] if signals else [])
    if signals:
        # A context field was set when the event was made: its time is the event's.
        assert found[0].identifier == "user_id:42"
        assert found[0].event_time == datetime(2026, 5, 1, 12, tzinfo=UTC)


def test_a_batch_context_signal_reaches_every_message(
    engine: Engine, client: TestClient, write_key: str
) -> None:  # P-5
    body = {
        "batch": [track("m-1", anonymous_id="a1"), track("m-2", anonymous_id="a2")],
        "context": {"globalPrivacyControl": True},
    }
    send(client, write_key, body, gpc=None)
    process_all(engine)
    assert [r.identifier for r in sharing_records(engine)] == [
        "anonymous_id:a1", "anonymous_id:a2"
    ]


def test_a_visitor_who_signals_before_signing_up_stays_opted_out(
    engine: Engine, client: TestClient, write_key: str
) -> None:  # P-5: the browser's opt-out follows the person
    send(client, write_key, track("m-1", anonymous_id="anon-9"))
    process_all(engine)
    signup = {
        "type": "identify", "messageId": "m-2", "anonymousId": "anon-9", "userId": "bo",
        "traits": {"email": "bo@example.com"}, "timestamp": "2026-05-01T12:05:00Z",
    }
    send(client, write_key, signup, gpc=None)  # e.g. a server-side signup call
    process_all(engine)
    bo = profile_of(engine, "email", "bo@example.com")
    assert bo == profile_of(engine, "anonymous_id", "anon-9")
    with engine.connect() as conn:
        facts = load_facts(conn, [bo])[bo]
    decision = guard(facts, Restriction("alcohol", channel="email", sharing=True),
                     datetime.now(UTC))
    assert "sale_sharing_opted_out" in decision.reasons
