"""The Segment-compatible tracking API over HTTP, on SQLite and PostgreSQL.

Every accepted request is exactly one inbox row holding the body as sent; every
refused one stores nothing and names the field at fault.
"""

from __future__ import annotations

import base64
import functools
import gzip
import zlib
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from guestlist.api.app import create_app
from guestlist.capture.tracking import MAX_BATCH_BYTES, MAX_MESSAGE_BYTES
from guestlist.inbox.parsers import parse_envelope
from guestlist.inbox.store import load_envelopes
from guestlist.keys import clear_key_cache, create_key, revoke_key
from guestlist.store.tables import inbox


@pytest.fixture
def client(engine: Engine, db_url: str) -> Iterator[TestClient]:
    clear_key_cache()
    with TestClient(create_app(db_url)) as test_client:
        yield test_client
    clear_key_cache()


@pytest.fixture
def write_key(engine: Engine) -> str:
    with engine.begin() as conn:
        _, plaintext = create_key(conn, "write", "website")
    return plaintext


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(inbox).order_by(inbox.c.id)))


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(inbox)).scalar_one())


def post(
    client: TestClient,
    path: str,
    body: Any,
    key: str | None,
    *,
    gzipped: bool = False,
    headers: dict[str, str] | None = None,
) -> Any:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    sent = {"Content-Type": "application/json", **(basic(key) if key else {}), **(headers or {})}
    if gzipped:
        raw = gzip.compress(raw)
        sent["Content-Encoding"] = "gzip"
    return client.post(path, content=raw, headers=sent)


def assert_refused(
    response: Any, engine: Engine, status: int, code: str, field: str | None
) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert body["error"]["field"] == field
    assert body["error"]["message"]
    assert (body["code"], body["message"]) == (body["error"]["code"], body["error"]["message"])
    assert count(engine) == 0


SINGLE_CALLS = {
    "identify": {"userId": "u1", "traits": {"email": "ann@example.com"}},
    "track": {"userId": "u1", "event": "Order Completed", "properties": {"total": 30}},
    "page": {"anonymousId": "a1", "name": "Home"},
    "screen": {"anonymousId": "a1", "name": "Cart"},
    "group": {"userId": "u1", "groupId": "acme", "traits": {"name": "Acme"}},
    "alias": {"userId": "u1", "previousId": "a1"},
}


@pytest.mark.parametrize("call_type", list(SINGLE_CALLS))
def test_each_single_call_is_stored_as_one_inbox_row(
    client: TestClient, engine: Engine, write_key: str, call_type: str
) -> None:
    body = orjson.dumps(SINGLE_CALLS[call_type])
    response = post(
        client,
        f"/v1/{call_type}",
        body,
        write_key,
        headers={"User-Agent": "shop-backend/2.0", "X-Forwarded-For": "203.0.113.7"},
    )
    assert response.status_code == 200
    assert response.json() == {"success": True}
    [row] = rows(engine)
    assert row.kind == f"tracking.{call_type}"
    assert bytes(row.body) == body
    assert row.status == "pending"
    assert row.headers["content-type"] == "application/json"
    assert row.headers["user-agent"] == "shop-backend/2.0"
    assert row.headers["x-forwarded-for"] == "203.0.113.7"
    assert "client-ip" in row.headers
    assert "authorization" not in row.headers
    with engine.connect() as conn:
        [event] = parse_envelope(load_envelopes(conn, [row.id])[0])
    assert event.type == call_type


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/import"])
def test_a_batch_is_one_inbox_row_and_parses_back_in_order(
    client: TestClient, engine: Engine, write_key: str, path: str
) -> None:
    body = {
        "batch": [{"type": t, **fields} for t, fields in SINGLE_CALLS.items()],
        "context": {"library": {"name": "test"}},
        "sentAt": "2024-05-01T12:00:00Z",
    }
    response = post(client, path, body, write_key)
    assert response.status_code == 200, response.text
    [row] = rows(engine)
    assert row.kind == "tracking.batch"
    assert orjson.loads(row.body) == body
    with engine.connect() as conn:
        events = parse_envelope(load_envelopes(conn, [row.id])[0])
    assert [e.type for e in events] == list(SINGLE_CALLS)


def test_gzip_bodies_are_stored_decompressed(
    client: TestClient, engine: Engine, write_key: str
) -> None:
    body = {"batch": [{"type": "track", "userId": "u", "event": "Zipped"}] * 20}
    response = post(client, "/v1/batch", body, write_key, gzipped=True)
    assert response.status_code == 200, response.text
    [row] = rows(engine)
    assert orjson.loads(row.body) == body


def test_the_write_key_may_come_in_the_body(
    client: TestClient, engine: Engine, write_key: str
) -> None:
    body = {"writeKey": write_key, "userId": "u", "event": "Keyed in body"}
    assert post(client, "/v1/track", body, None).status_code == 200
    batch = {"writeKey": write_key, "batch": [{"type": "identify", "anonymousId": "a"}]}
    assert post(client, "/v1/batch", batch, None, gzipped=True).status_code == 200
    assert [r.kind for r in rows(engine)] == ["tracking.track", "tracking.batch"]


def test_an_empty_batch_is_accepted_and_stores_nothing(
    client: TestClient, engine: Engine, write_key: str
) -> None:
    response = post(client, "/v1/batch", {"batch": []}, write_key)
    assert response.status_code == 200
    assert count(engine) == 0


def test_numbers_are_accepted_as_ids(client: TestClient, engine: Engine, write_key: str) -> None:
    body = {
        "batch": [
            {"type": "identify", "userId": 123},
            {"type": "alias", "userId": 124, "previousId": 123.0},
            {"type": "group", "anonymousId": "a", "groupId": 9},
        ]
    }
    assert post(client, "/v1/batch", body, write_key).status_code == 200
    with engine.connect() as conn:
        events = parse_envelope(load_envelopes(conn, [rows(engine)[0].id])[0])
    assert [(e.user_id, e.previous_id, e.group_id) for e in events] == [
        ("123", None, None),
        ("124", "123", None),
        (None, None, "9"),
    ]


def test_text_plain_is_accepted_like_json(
    client: TestClient, engine: Engine, write_key: str
) -> None:
    # analytics.js sends beacons as text/plain to avoid a CORS preflight.
    response = post(
        client,
        "/v1/track",
        {"userId": "u", "event": "Beacon"},
        write_key,
        headers={"Content-Type": "text/plain;charset=UTF-8"},
    )
    assert response.status_code == 200
    assert count(engine) == 1


# --- authentication ----------------------------------------------------------------


def test_a_missing_write_key_is_401(client: TestClient, engine: Engine) -> None:
    response = post(client, "/v1/track", {"userId": "u", "event": "x"}, None)
    assert_refused(response, engine, 401, "missing_write_key", "writeKey")
    assert response.headers["www-authenticate"].startswith("Basic")


def test_an_unknown_write_key_is_401(client: TestClient, engine: Engine, write_key: str) -> None:
    response = post(client, "/v1/track", {"userId": "u", "event": "x"}, write_key + "x")
    assert_refused(response, engine, 401, "invalid_write_key", "Authorization")
    body = {"writeKey": "gl_write_unknown", "batch": [{"type": "page", "userId": "u"}]}
    assert_refused(
        post(client, "/v1/batch", body, None), engine, 401, "invalid_write_key", "writeKey"
    )
    body = {"writeKey": 12345, "batch": []}
    assert_refused(
        post(client, "/v1/batch", body, None), engine, 401, "invalid_write_key", "writeKey"
    )


def test_a_malformed_basic_header_is_401(client: TestClient, engine: Engine) -> None:
    response = client.post(
        "/v1/track", content=b"{}", headers={"Authorization": "Basic ***not-base64***"}
    )
    assert_refused(response, engine, 401, "invalid_authorization", "Authorization")


def test_a_revoked_write_key_is_401(client: TestClient, engine: Engine) -> None:
    with engine.begin() as conn:
        key_id, key = create_key(conn, "write", "website")
    assert post(client, "/v1/track", {"userId": "u", "event": "x"}, key).status_code == 200
    with engine.begin() as conn:
        revoke_key(conn, key_id)
        conn.execute(inbox.delete())
    response = post(client, "/v1/track", {"userId": "u", "event": "x"}, key)
    assert_refused(response, engine, 401, "invalid_write_key", "Authorization")


def test_a_read_key_cannot_write(client: TestClient, engine: Engine) -> None:
    with engine.begin() as conn:
        _, read_key = create_key(conn, "read", None)
    response = post(client, "/v1/track", {"userId": "u", "event": "x"}, read_key)
    assert_refused(response, engine, 401, "invalid_write_key", "Authorization")


# --- refusals ----------------------------------------------------------------------

BAD_MESSAGES: list[tuple[str, Any, str, str | None]] = [
    # (path, body, error code, field)
    ("/v1/track", b"{not json", "invalid_json", None),
    ("/v1/track", b"", "invalid_json", None),
    ("/v1/track", b"[1, 2]", "invalid_body", None),
    ("/v1/batch", {"batch": {"type": "track"}}, "invalid_type", "batch"),
    ("/v1/batch", {"sentAt": "now"}, "missing_field", "batch"),
    ("/v1/batch", {"batch": [], "sentAt": "yesterday"}, "invalid_timestamp", "sentAt"),
    ("/v1/batch", {"batch": [], "context": []}, "invalid_type", "context"),
    ("/v1/track", {"event": "x"}, "missing_identity", "userId"),
    ("/v1/track", {"userId": "", "anonymousId": None, "event": "x"}, "missing_identity", "userId"),
    ("/v1/track", {"userId": "u"}, "missing_field", "event"),
    ("/v1/track", {"userId": "u", "event": ["x"]}, "invalid_type", "event"),
    ("/v1/track", {"userId": True, "event": "x"}, "invalid_type", "userId"),
    ("/v1/track", {"userId": {"id": 1}, "event": "x"}, "invalid_type", "userId"),
    ("/v1/track", {"userId": "u", "event": "x", "properties": []}, "invalid_type", "properties"),
    ("/v1/identify", {"userId": "u", "traits": "gold"}, "invalid_type", "traits"),
    ("/v1/identify", {"userId": "u", "context": 5}, "invalid_type", "context"),
    ("/v1/identify", {"userId": "u", "timestamp": "01/05/2024"}, "invalid_timestamp", "timestamp"),
    ("/v1/identify", {"userId": "u", "sentAt": 1714564800}, "invalid_timestamp", "sentAt"),
    (
        "/v1/identify",
        {"userId": "u", "originalTimestamp": "soon"},
        "invalid_timestamp",
        "originalTimestamp",
    ),
    ("/v1/identify", {"userId": "u", "messageId": 5}, "invalid_type", "messageId"),
    (
        "/v1/identify",
        {"userId": "u", "context": {"externalIds": {"id": "1"}}},
        "invalid_type",
        "context.externalIds",
    ),
    (
        "/v1/identify",
        {"userId": "u", "context": {"externalIds": [{"id": "1"}]}},
        "missing_field",
        "context.externalIds[0].type",
    ),
    ("/v1/group", {"userId": "u"}, "missing_field", "groupId"),
    ("/v1/alias", {"userId": "u"}, "missing_field", "previousId"),
    ("/v1/alias", {"anonymousId": "a", "previousId": "p"}, "missing_field", "userId"),
    ("/v1/page", {"userId": "u", "name": 5}, "invalid_type", "name"),
    (
        "/v1/batch",
        {"batch": [{"type": "track", "userId": "u", "event": "ok"}, "junk"]},
        "invalid_message",
        "batch[1]",
    ),
    (
        "/v1/batch",
        {"batch": [{"userId": "u", "event": "no type"}]},
        "missing_field",
        "batch[0].type",
    ),
    (
        "/v1/batch",
        {"batch": [{"type": "purchase", "userId": "u"}]},
        "invalid_value",
        "batch[0].type",
    ),
]


@pytest.mark.parametrize(("path", "body", "code", "field"), BAD_MESSAGES)
def test_a_bad_request_is_400_naming_the_field(
    client: TestClient,
    engine: Engine,
    write_key: str,
    path: str,
    body: Any,
    code: str,
    field: str | None,
) -> None:
    assert_refused(post(client, path, body, write_key), engine, 400, code, field)


def test_one_bad_message_refuses_the_whole_batch(
    client: TestClient, engine: Engine, write_key: str
) -> None:
    good = [{"type": "track", "userId": f"u{i}", "event": "Fine"} for i in range(5)]
    bad = {"type": "track", "anonymousId": "a"}  # no event
    response = post(client, "/v1/batch", {"batch": [*good[:3], bad, *good[3:]]}, write_key)
    assert_refused(response, engine, 400, "missing_field", "batch[3].event")


def test_bad_gzip_is_400(client: TestClient, engine: Engine, write_key: str) -> None:
    headers = {**basic(write_key), "Content-Encoding": "gzip", "Content-Type": "application/json"}
    for raw in (b"this is not gzip", gzip.compress(b'{"batch": []}')[:-6], b""):
        response = client.post("/v1/batch", content=raw, headers=headers)
        assert_refused(response, engine, 400, "invalid_gzip", None)


def test_an_unknown_content_encoding_or_type_is_415(
    client: TestClient, engine: Engine, write_key: str
) -> None:
    body = {"userId": "u", "event": "x"}
    response = post(client, "/v1/track", body, write_key, headers={"Content-Encoding": "br"})
    assert_refused(response, engine, 415, "unsupported_content_encoding", None)
    response = post(
        client,
        "/v1/track",
        body,
        write_key,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_refused(response, engine, 415, "unsupported_media_type", None)


def test_a_message_over_32_kb_in_a_batch_is_413(
    client: TestClient, engine: Engine, write_key: str
) -> None:
    small = {"type": "track", "userId": "u", "event": "ok"}
    big = {
        "type": "track",
        "userId": "u",
        "event": "big",
        "properties": {"blob": "x" * MAX_MESSAGE_BYTES},
    }
    response = post(client, "/v1/batch", {"batch": [small, small, big]}, write_key)
    assert_refused(response, engine, 413, "message_too_large", "batch[2]")


def test_a_message_just_under_32_kb_is_accepted(
    client: TestClient, engine: Engine, write_key: str
) -> None:
    message = {"type": "track", "userId": "u", "event": "edge", "properties": {"blob": ""}}
    message["properties"] = {"blob": "x" * (MAX_MESSAGE_BYTES - len(orjson.dumps(message)))}
    assert len(orjson.dumps(message)) == MAX_MESSAGE_BYTES
    response = post(client, "/v1/batch", {"batch": [message, message]}, write_key)
    assert response.status_code == 200, response.text
    assert count(engine) == 1


def test_a_single_call_over_32_kb_is_413(
    client: TestClient, engine: Engine, write_key: str
) -> None:
    body = {"userId": "u", "event": "big", "properties": {"blob": "x" * MAX_MESSAGE_BYTES}}
    assert_refused(
        post(client, "/v1/track", body, write_key), engine, 413, "payload_too_large", None
    )


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_batch_over_500_kb_is_413(
    client: TestClient, engine: Engine, write_key: str, gzipped: bool
) -> None:
    message = {
        "type": "track",
        "userId": "u",
        "event": "filler",
        "properties": {"blob": "y" * 20_000},
    }
    messages = [message] * (MAX_BATCH_BYTES // 20_000 + 1)
    response = post(client, "/v1/batch", {"batch": messages}, write_key, gzipped=gzipped)
    assert_refused(response, engine, 413, "payload_too_large", None)


@functools.cache
def gzip_bomb() -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [packer.compress(b'{"batch": ["')]
    zeros = b"0" * 1_000_000
    parts += [packer.compress(zeros) for _ in range(100)]
    parts += [packer.compress(b'"]}'), packer.flush()]
    return b"".join(parts)


def test_a_gzip_bomb_is_refused_without_inflating_it(
    client: TestClient, engine: Engine, write_key: str
) -> None:
    bomb = gzip_bomb()
    assert len(bomb) < 200_000  # inflates to 100 MB
    headers = {**basic(write_key), "Content-Encoding": "gzip", "Content-Type": "application/json"}
    response = client.post("/v1/batch", content=bomb, headers=headers)
    assert_refused(response, engine, 413, "payload_too_large", None)


def test_other_errors_are_json_too(client: TestClient) -> None:
    response = client.get("/v1/nowhere")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    response = client.get("/v1/track")
    assert response.status_code == 405
    assert response.json()["success"] is False


def test_health_and_docs(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    batch = spec["paths"]["/v1/batch"]["post"]
    schema = batch["requestBody"]["content"]["application/json"]["schema"]
    assert "batch" in schema["properties"]
    assert "$defs" not in orjson.dumps(schema).decode()
    track = spec["paths"]["/v1/track"]["post"]["requestBody"]["content"]["application/json"]
    assert "event" in track["schema"]["required"]
    assert batch["tags"] == ["tracking"]


@pytest.mark.parametrize(
    ("properties", "field"),
    [
        ({"channel": "fax", "status": "granted"}, "batch[1].properties.channel"),
        (
            {"channel": "sms", "status": "granted", "identifier": "12"},
            "batch[1].properties.identifier",
        ),
        ({"channel": "sms", "status": "granted", "purpose": "spam"}, "batch[1].properties.purpose"),
        # E-3: implied consent for a UK number without the soft opt-in, and the soft
        # opt-in without proof that an opt-out was offered.
        (
            {"channel": "sms", "status": "granted", "identifier": "+447400123456",
             "kind": "implied", "basis": "purchase"},
            "batch[1].properties.legal_basis",
        ),
        (
            {"channel": "email", "status": "granted", "legal_basis": "soft_opt_in",
             "order_id": "1042"},
            "batch[1].properties.opt_out_offered",
        ),
        # SMS-6a: an age gate that names no known level.
        (
            {"channel": "sms", "status": "granted", "age_gate": {"level": "over_21"}},
            "batch[1].properties.age_gate.level",
        ),
    ],
)
def test_a_consent_event_that_cannot_be_recorded_is_refused(
    client: TestClient, engine: Engine, write_key: str, properties: dict[str, Any], field: str
) -> None:
    batch = [
        SINGLE_CALLS["identify"] | {"type": "identify"},
        {"type": "track", "userId": "u1", "event": "Consent Updated", "properties": properties},
    ]
    response = post(client, "/v1/batch", {"batch": batch}, write_key)
    assert_refused(response, engine, 400, "invalid_property", field)
