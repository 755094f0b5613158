"""Inbound Parse posts end to end: the real app, the samples' exact bytes, the pipeline,
the database. Refusals store nothing and are logged."""

from __future__ import annotations

import base64

from sqlalchemy import func, select

from guestlist.api.hooks import MAX_BODY
from guestlist.pipeline import process_all
from guestlist.store.tables import consent_records, events, inbox
from tests.connectors.conftest import App
from tests.connectors.helpers import (
    events_of,
    inbox_rows,
    live_profiles,
    profile_of,
    traits_of,
)
from tests.connectors.sendgrid.helpers import (
    AUTO_REPLY,
    BOUNCE,
    CONTENT_TYPES,
    DEFAULT,
    LATIN1,
    RAW,
    SECRET,
    connect,
    log_of,
    post,
    post_sample,
    sample_bytes,
)


def test_add_generates_the_secret_and_shows_the_url_once(app: App) -> None:
    r = app.client.post(
        "/api/connections",
        json={"platform": "sendgrid", "name": "Parse", "settings": {}},
        headers=app.admin,
    )
    assert r.status_code == 201, r.text
    secret = r.json()["webhook_secret"]
    cid = r.json()["id"]
    assert r.json()["webhook_url"] == f"https://guestlist.example/hooks/sendgrid/{cid}/{secret}"
    shown = app.client.get(f"/api/connections/{cid}", headers=app.read).json()
    assert secret not in str(shown)
    assert post_sample(app, cid, DEFAULT, secret=secret).status_code == 200


def test_the_samples_placeholder_sender_never_identifies(app: App) -> None:
    cid = connect(app)
    for name in (DEFAULT, RAW):
        r = post_sample(app, cid, name)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "accepted"
        assert r.json()["delivery_id"].startswith("sha256:")  # no Message-ID in them
    (first, second) = inbox_rows(app.engine)
    assert first.kind == second.kind == "sendgrid.inbound"
    assert first.body == sample_bytes(DEFAULT)  # stored as posted
    process_all(app.engine)
    # test@example.com is on the identity rules' block list: kept, never matched.
    assert profile_of(app.engine, "email", "test@example.com") is None
    with app.engine.connect() as conn:
        rows = list(conn.execute(select(events.c.name, events.c.issues).order_by(events.c.id)))
    assert [r.name for r in rows] == [None, "Inbound Message", None, "Inbound Message"]
    assert all(r.issues[0]["error"] == "blocked value: never identifies" for r in rows)


def real_sender(body: bytes) -> bytes:
    return body.replace(b"test@example.com", b"dana.okafor@mailbox.example")


def test_default_and_raw_samples_make_one_profile_with_two_messages(app: App) -> None:
    cid = connect(app)
    for name in (DEFAULT, RAW):
        r = post(app, cid, real_sender(sample_bytes(name)), CONTENT_TYPES[name])
        assert r.status_code == 200, r.text
    process_all(app.engine)

    assert live_profiles(app.engine) == 1
    pid = profile_of(app.engine, "email", "dana.okafor@mailbox.example")
    assert pid is not None
    t = traits_of(app.engine, pid)
    assert (t["email"], t["name"], t["first_name"], t["last_name"]) == (
        "dana.okafor@mailbox.example", "Example User", "Example", "User")
    messages = events_of(app.engine, pid, "Inbound Message")
    assert [m.properties["subject"] for m in messages] == [
        "Testing non-raw", "Testing with Request.bin"]
    parsed = messages[0].properties
    assert parsed["channel"] == "email" and parsed["text"] == "Hello Twilio SendGrid!"
    assert parsed["to"] == ["inbound@inbound.example.com"]
    assert (parsed["spf"], parsed["dkim"], parsed["sendgrid_mode"]) == (
        "pass", "{@sendgrid.com : pass}", "parsed")
    assert "html" not in parsed
    assert messages[1].properties["sendgrid_mode"] == "raw"
    assert messages[0].timestamp.isoformat().startswith("2016-08-11T01:10:13")
    assert not messages[0].issues
    # An inquiry records no consent (C-7: implied consent only where the shop says so).
    with app.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(consent_records)) == 0


def test_latin1_mail_with_attachment_retried_and_unknown_fields(app: App) -> None:
    cid = connect(app)
    r = post_sample(app, cid, LATIN1)
    assert r.json() == {"status": "accepted", "delivery_id": "CAF3xY9q2-7b1e4d@mail.example.net"}
    again = post_sample(app, cid, LATIN1)  # SendGrid retrying: the Message-ID is the key
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    # A field SendGrid does not document is kept as a property.
    body = sample_bytes(DEFAULT).replace(b"test@example.com", b"kim@mailbox.example").replace(
        b"--xYzZY--",
        b"--xYzZY\nContent-Disposition: form-data; name=\"x-shop-note\"\n\nvip\n--xYzZY--",
    )
    assert post(app, cid, body, CONTENT_TYPES[DEFAULT]).json()["status"] == "accepted"
    assert post(app, cid, body, CONTENT_TYPES[DEFAULT]).json()["status"] == "duplicate"
    assert len(inbox_rows(app.engine)) == 2
    process_all(app.engine)
    kim = profile_of(app.engine, "email", "kim@mailbox.example")
    assert kim is not None
    (note,) = events_of(app.engine, kim, "Inbound Message")
    assert note.properties["x-shop-note"] == "vip"

    pid = profile_of(app.engine, "email", "jose.martinez@example.net")
    assert pid is not None
    t = traits_of(app.engine, pid)
    assert (t["first_name"], t["last_name"]) == ("José", "Martínez")
    (message,) = events_of(app.engine, pid, "Inbound Message")
    p = message.properties
    assert p["subject"] == "¿Tenéis mezcal añejo?"
    assert p["message_id"] == "CAF3xY9q2-7b1e4d@mail.example.net"
    assert p["cc"] == ["ana.ruiz@example.net"] and p["spam_score"] == 0.011
    assert p["attachments"] == [{"filename": "label.png", "type": "image/png", "size": 66,
                                 "content_id": "ii_lk3"}]  # measured, content not kept
    assert message.timestamp.isoformat().startswith("2026-11-10T16:02:05")
    # The Cc'd person is not the sender: no profile for her.
    assert profile_of(app.engine, "email", "ana.ruiz@example.net") is None


def test_auto_replies_and_bounces_are_kept_but_are_no_customer(app: App) -> None:
    cid = connect(app)
    for name in (AUTO_REPLY, BOUNCE):
        r = post_sample(app, cid, name)
        assert r.status_code == 200, r.text  # SendGrid stops retrying
    assert [row.kind for row in inbox_rows(app.engine)] == [
        "sendgrid.auto_reply", "sendgrid.bounce"]
    process_all(app.engine)
    assert live_profiles(app.engine) == 0
    assert profile_of(app.engine, "email", "priya@example.org") is None
    assert [e["detail"] for e in log_of(app, cid)] == ["bounce", "auto_reply"]
    with app.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(events)) == 0
        statuses = list(conn.execute(select(inbox.c.status)).scalars())
    assert statuses == ["processed", "processed"]


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


MALFORMED = [
    (None, sample_bytes(DEFAULT), "content-type"),
    ("application/json", b'{"from": "a@b.c"}', "content-type"),
    ("multipart/form-data; boundary=wrong", sample_bytes(DEFAULT), "body"),
    ("multipart/form-data; boundary=b",
     b"--b\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nhi\r\n--b--\r\n", "from"),
    ("multipart/form-data; boundary=b",
     b"--b\r\nContent-Disposition: form-data; name=\"from\"\r\n\r\na@b.c\r\n"
     b"--b\r\nContent-Disposition: form-data; name=\"envelope\"\r\n\r\n{\r\n--b--\r\n",
     "envelope"),
]


def test_refusals_store_nothing_and_are_logged(app: App) -> None:
    cid = connect(app)
    expected: list[tuple[int, str]] = []
    # Unsigned or wrongly "signed": the path secret is the signature here.
    for secret, error in [("wrong-secret", "invalid_secret"), (None, "missing_secret"),
                          (SECRET + "x", "invalid_secret")]:
        r = post_sample(app, cid, DEFAULT, secret=secret)
        assert (r.status_code, r.json()["error"]["code"]) == (401, error), r.text
        expected.append((401, error))
    r = post(app, cid, b"junk", None, secret="nope")  # refused before the body is read
    assert r.status_code == 401
    expected.append((401, "invalid_secret"))
    # Malformed bodies (after the secret passed): 400 naming the field.
    for content_type, body, field in MALFORMED:
        r = post(app, cid, body, content_type)
        assert (r.status_code, r.json()["error"]["field"]) == (400, field), r.text
        expected.append((400, "invalid_body"))
    # Oversize: refused before the connection is even looked up (not logged).
    big = sample_bytes(DEFAULT).replace(b"Hello Twilio SendGrid!\n", b"x" * (MAX_BODY + 1), 1)
    assert post(app, cid, big, CONTENT_TYPES[DEFAULT]).status_code == 413
    # Unknown connection, and another platform's connection.
    assert post_sample(app, 999, DEFAULT).status_code == 404
    r = app.client.post(
        "/api/connections",
        json={"platform": "square", "name": "Sq", "settings": {
            "access_token": "t", "webhook_secret": SECRET}},
        headers=app.admin,
    )
    assert post_sample(app, r.json()["id"], DEFAULT).status_code == 404

    process_all(app.engine)
    assert inbox_rows(app.engine) == []
    assert live_profiles(app.engine) == 0
    logged = [(e["status"], e["detail"].split(":")[0]) for e in reversed(log_of(app, cid))]
    assert logged == expected
    assert all(e["outcome"] == "rejected" for e in log_of(app, cid))


def test_basic_auth_when_set(app: App) -> None:
    cid = connect(app, basic_auth_username="parse", basic_auth_password="hunter2-long")
    for headers, error in [
        ({}, "missing_credentials"),
        (basic("parse", "wrong"), "invalid_credentials"),
        (basic("other", "hunter2-long"), "invalid_credentials"),
        ({"authorization": "Bearer hunter2-long"}, "invalid_credentials"),
        ({"authorization": "Basic !!!"}, "invalid_credentials"),
    ]:
        r = post_sample(app, cid, DEFAULT, headers=headers)
        assert (r.status_code, r.json()["error"]["code"]) == (401, error), r.text
        assert r.json()["error"]["field"] == "Authorization"
    assert inbox_rows(app.engine) == []
    assert post_sample(app, cid, DEFAULT, secret="x", headers=basic("parse", "hunter2-long")
                       ).status_code == 401  # Basic alone is not enough

    r = post_sample(app, cid, DEFAULT, headers=basic("parse", "hunter2-long"))
    assert r.status_code == 200, r.text
    (row,) = inbox_rows(app.engine)
    assert "authorization" not in row.headers  # never stored
    shown = app.client.get(f"/api/connections/{cid}", headers=app.read).json()
    assert "hunter2-long" not in str(shown)
    assert sorted(shown["secrets_set"]) == ["basic_auth_password", "webhook_secret"]
    assert [e["outcome"] for e in log_of(app, cid)].count("rejected") == 6


def test_a_post_for_another_hostname_is_403(app: App) -> None:
    cid = connect(app, hostname="Parse.BottleShop.example")
    r = post_sample(app, cid, DEFAULT)  # envelope to inbound@inbound.example.com
    assert r.status_code == 403, r.text
    assert (r.json()["error"]["code"], r.json()["error"]["field"]) == (
        "wrong_hostname", "envelope.to")
    assert post_sample(app, cid, LATIN1).status_code == 200  # to hello@parse.bottleshop…
    assert len(inbox_rows(app.engine)) == 1
    assert [e["outcome"] for e in log_of(app, cid)] == ["accepted", "rejected"]


def test_bad_settings_name_the_field(app: App) -> None:
    for settings, field in [
        ({"basic_auth_password": "x"}, "settings.basic_auth_password"),
        ({"basic_auth_username": "parse"}, "settings.basic_auth_password"),
        ({"basic_auth_username": "a:b", "basic_auth_password": "x"},
         "settings.basic_auth_username"),
        ({"basic_auth_username": "a", "basic_auth_password": "p@ss"},
         "settings.basic_auth_password"),
        ({"signing_key": "x"}, "settings.signing_key"),
        ({"hostname": "not a host"}, "settings.hostname"),
    ]:
        r = app.client.post(
            "/api/connections",
            json={"platform": "sendgrid", "name": "Parse", "settings": settings},
            headers=app.admin,
        )
        assert r.status_code == 422 and r.json()["error"]["field"] == field, r.text
