"""Deliveries end to end: the real app, a signed body, the pipeline, the database."""

from __future__ import annotations

from datetime import date
from typing import Any

from guestlist.pipeline import process_all
from tests.connectors.conftest import PUBLIC_URL, App
from tests.connectors.helpers import add_connection, connection_log
from tests.connectors.square.helpers import (
    SECRET,
    age_of,
    consent_of,
    count_events,
    events_of,
    inbox_rows,
    live_profiles,
    profile_of,
    sample_bytes,
    settings,
    signed_headers,
    traits_of,
)

CREATED = "customer.created__from_api_json_example.json"
UNSUBSCRIBED = "customer.updated__unsubscribed_yearless_birthday.CONSTRUCTED.json"


def connect(app: App, **overrides: Any) -> int:
    body = add_connection(app.client, app.admin, "square", "Corner Store", settings(**overrides))
    assert sorted(body["secrets_set"]) == ["access_token", "webhook_secret"]
    assert "access_token" not in body["settings"]
    return int(body["id"])


def hook_url(cid: int | str) -> str:
    return f"{PUBLIC_URL}/hooks/square/{cid}"


def deliver(
    app: App, cid: int | str, body: bytes, *, signed_url: str | None = None,
    secret: str = SECRET, **extra: str,
) -> Any:
    headers = signed_headers(signed_url or hook_url(cid), body, secret=secret, **extra)
    return app.client.post(f"/hooks/square/{cid}", content=body, headers=headers)


def log_of(app: App, cid: int) -> list[dict[str, Any]]:
    return connection_log(app.client, app.read, cid)


def test_test_notification_accepted_and_redelivery_stored_once(app: App) -> None:
    cid = connect(app)
    r = deliver(app, cid, sample_bytes("webhook_test_notification.json"))
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "accepted", "delivery_id": "ac3ac95b-f97d-458c-a6e6-18981597e05f"}
    (row,) = inbox_rows(app.engine)
    assert row.kind == "square.webhooks.test_notification"

    body = sample_bytes(CREATED)
    assert deliver(app, cid, body).json()["status"] == "accepted"
    again = deliver(app, cid, body, **{"square-retry-number": "1",
                                       "square-retry-reason": "http_timeout"})
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert len(inbox_rows(app.engine)) == 2
    process_all(app.engine)
    assert count_events(app.engine, type_="identify") == 1
    assert live_profiles(app.engine) == 1  # the test notification makes none
    assert [e["outcome"] for e in log_of(app, cid)] == ["duplicate", "accepted", "accepted"]


def test_customer_created_then_deleted(app: App) -> None:
    cid = connect(app)
    r = deliver(app, cid, sample_bytes(CREATED))
    assert r.status_code == 200, r.text
    process_all(app.engine)

    pid = profile_of(app.engine, "email", "jenkins@squareup.com")  # its matching key
    assert pid is not None
    assert profile_of(app.engine, "external", "square:customer:QPTXM8PQNX3Q726ZYHPMNP46XC") == pid
    assert profile_of(app.engine, "phone", "+12126668929") == pid
    t = traits_of(app.engine, pid)
    assert (t["first_name"], t["last_name"], t["birthday"]) == ("Jenkins", "Smorly", "1962-03-04")
    assert t["address"]["city"] == "Oakland" and t["square_creation_source"] == "DIRECTORY"
    assert consent_of(app.engine, pid) == []  # email_unsubscribed false: nothing (C-4)
    # The birthday trait is the customer's statement (docs/age.md), recorded once.
    (record,) = age_of(app.engine, pid)
    assert (record.dob, record.level, record.method) == (
        date(1962, 3, 4), "dob_provided", "birthday_trait")

    # Square deleting its record erases nothing here: an event on the timeline.
    deliver(app, cid, sample_bytes("customer.deleted__from_api_json_example.json"))
    process_all(app.engine)
    assert live_profiles(app.engine) == 1
    assert traits_of(app.engine, pid)["email"] == "jenkins+smorly@squareup.com"
    (deleted,) = events_of(app.engine, pid, "Square Customer Deleted")
    assert deleted.properties["version"] == 3


def test_unsubscribe_at_square_reaches_the_ledger(app: App) -> None:  # C-5, C-2
    cid = connect(app)
    assert deliver(app, cid, sample_bytes(UNSUBSCRIBED)).status_code == 200
    process_all(app.engine)
    pid = profile_of(app.engine, "email", "rosa.delgado@example.com")
    assert pid is not None
    (record,) = consent_of(app.engine, pid)
    assert (record.channel, record.status, record.kind, record.recorded_by) == (
        "email", "withdrawn", "express", "square")
    assert record.identifier == "rosa.delgado@example.com"
    assert record.proof["square_preference"] == "email_unsubscribed"
    assert record.text_hash is None  # Square gives no wording; none is invented
    assert age_of(app.engine, pid) == []  # a birthday without a year is no date of birth
    assert traits_of(app.engine, pid)["birthday_month_day"] == "07-14"
    (event,) = events_of(app.engine, pid, "Consent Updated")
    assert not event.issues


MALFORMED = [
    (b"not json", "body"),
    (b"[1]", "body"),
    (b'{"type": "customer.created", "data": {}}', "event_id"),
    (b'{"event_id": "e1", "data": {}}', "type"),
    (b'{"event_id": "e1", "type": "customer.updated", "created_at": "2024-01-01T00:00:00Z"}',
     "data.id"),
    (b'{"event_id": "e1", "type": "customer.updated", "created_at": "2024-01-01T00:00:00Z",'
     b' "data": {"id": "A", "object": {}}}', "data.object.customer"),
    (b'{"event_id": "e1", "type": "customer.deleted", "data": {"id": "A"}}', "created_at"),
    (b'{"event_id": "e1", "type": "payment.created", "data": {"id": "P"}}', "type"),
    (b'{"event_id": "e1", "type": "a b", "data": {"id": "P"}}', "type"),
]


def test_refusals_store_nothing(app: App) -> None:
    registered = "https://hooks.corner-store.example/square?x=1"
    cid = connect(app, notification_url=registered)
    body = sample_bytes(CREATED)
    # Behind a proxy Square signs the URL registered with it, not the one we see.
    r = deliver(app, cid, body)
    assert r.status_code == 401
    assert r.json()["error"]["field"] == "x-square-hmacsha256-signature"
    assert deliver(app, cid, body, signed_url=registered, secret="not-the-key").status_code == 401

    r = app.client.post(f"/hooks/square/{cid}", content=body)
    assert r.status_code == 400
    assert r.json()["error"] == {
        "code": "missing_header",
        "message": "the x-square-hmacsha256-signature header is required",
        "field": "x-square-hmacsha256-signature",
    }
    r = deliver(app, 999, body)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_connection"

    for bad, field in MALFORMED:
        r = deliver(app, cid, bad, signed_url=registered)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["error"]["field"] == field, bad

    r = app.client.post(
        "/api/connections",
        json={"platform": "square", "name": "No Key", "settings": {"access_token": "t"}},
        headers=app.admin,
    )
    assert deliver(app, r.json()["id"], body).status_code == 409

    assert inbox_rows(app.engine) == []
    entries = log_of(app, cid)
    assert len(entries) == 3 + len(MALFORMED)
    assert {e["outcome"] for e in entries} == {"rejected"}
    assert entries[0]["delivery_id"] == "e1"  # named in the log where the body shows it

    assert deliver(app, cid, body, signed_url=registered).status_code == 200
