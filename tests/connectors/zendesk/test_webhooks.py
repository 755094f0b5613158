"""Webhooks end to end: the real app, a signed body, the pipeline, the database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from guestlist.connectors.zendesk.signature import SIGNATURE_HEADER, TEST_SECRET, TIMESTAMP_HEADER
from guestlist.pipeline import process_all
from tests.connectors.conftest import App
from tests.connectors.helpers import (
    add_connection,
    age_of,
    consent_of,
    count_events,
    events_of,
    inbox_rows,
    live_profiles,
    profile_of,
    traits_of,
)
from tests.connectors.zendesk.helpers import connect, deliver, log_of, sample_bytes

CREATED = "user_created.CONSTRUCTED.json"
TICKET = "trigger_ticket_default_template.CONSTRUCTED.json"


def test_user_event_and_ticket_land_on_one_profile(app: App) -> None:
    cid = connect(app)
    r = deliver(app, cid, sample_bytes(CREATED), invocation="inv-user-1")
    assert r.status_code == 200 and r.json() == {"status": "accepted",
                                                  "delivery_id": "inv-user-1"}
    # The body as the published example signs it (BODY + TIMESTAMP) is accepted too.
    r = deliver(app, cid, sample_bytes(TICKET), invocation="inv-ticket-1",
                order="body+timestamp")
    assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
    again = deliver(app, cid, sample_bytes(TICKET), invocation="inv-ticket-1")
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert len(inbox_rows(app.engine)) == 2
    process_all(app.engine)

    pid = profile_of(app.engine, "email", "marco.bianchi@example.com")
    assert pid is not None and live_profiles(app.engine) == 1
    assert profile_of(app.engine, "external", "zendesk:user:7001234567890") == pid
    assert profile_of(app.engine, "external", "zendesk:external_id:shop-4411") == pid
    assert profile_of(app.engine, "phone", "+18025550147") == pid
    assert traits_of(app.engine, pid)["zendesk_role"] == "end-user"
    (message,) = events_of(app.engine, pid, "Inbound Message")
    assert message.properties["subject"] == "Is the 18-year Highland Park back in stock?"
    assert message.properties["store_location"] == "Burlington"  # unknown field kept
    assert consent_of(app.engine, pid) == []  # C-7: an inquiry grounds no implied consent
    assert age_of(app.engine, pid) == []
    outcomes = [e["outcome"] for e in log_of(app, cid)]
    assert outcomes.count("accepted") == 2 and outcomes.count("duplicate") == 1


def test_without_an_invocation_id_the_event_id_deduplicates(app: App) -> None:
    cid = connect(app)
    body = sample_bytes("user_active_changed__docs_example.CONSTRUCTED.json")
    first = deliver(app, cid, body, invocation=None)
    assert first.json() == {"status": "accepted",
                            "delivery_id": "event:2b24ef10-19d4-4740-93cf-8f98ec4776c0"}
    assert deliver(app, cid, body, invocation=None).json()["status"] == "duplicate"
    process_all(app.engine)
    pid = profile_of(app.engine, "email", "dana.reyes@example.com")
    assert pid is not None and traits_of(app.engine, pid)["zendesk_active"] is False


def test_a_ticket_without_an_invocation_id_is_stored_once(app: App) -> None:
    cid = connect(app)
    body = sample_bytes(TICKET)
    first = deliver(app, cid, body, invocation=None)
    assert first.json() == {"status": "accepted",
                            "delivery_id": "ticket:35436:2026-03-02T15:06:40Z"}
    assert deliver(app, cid, body, invocation=None).json()["status"] == "duplicate"


def test_another_account_and_an_oversize_body_are_refused(app: App) -> None:
    cid = connect(app, account_id=12514403)
    assert deliver(app, cid, sample_bytes(CREATED)).status_code == 200
    other = json.loads(sample_bytes(CREATED))
    other["account_id"] = 999
    r = deliver(app, cid, json.dumps(other).encode(), invocation="inv-other")
    assert r.status_code == 403 and r.json()["error"]["field"] == "account_id"
    big = json.dumps({**other, "padding": "x" * (6 << 20)}).encode()
    assert deliver(app, cid, big, invocation="inv-big").status_code == 413
    assert len(inbox_rows(app.engine)) == 1


def test_the_builders_test_request_is_answered_and_maps_to_nothing(app: App) -> None:
    cid = connect(app)
    r = deliver(app, cid, b'{"say": "hello"}', secret=TEST_SECRET, invocation=None)
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    (row,) = inbox_rows(app.engine)
    assert row.kind == "zendesk.test"
    process_all(app.engine)
    assert live_profiles(app.engine) == 0 and count_events(app.engine) == 0


def test_refusals_store_nothing_and_are_logged(app: App) -> None:
    cid = connect(app)
    body = sample_bytes(CREATED)
    assert deliver(app, cid, body, secret="wrong").status_code == 401
    stale = (datetime.now(UTC) - timedelta(minutes=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = deliver(app, cid, body, stamp=stale)
    assert r.status_code == 401 and r.json()["error"]["field"] == TIMESTAMP_HEADER
    # Signed too far ahead is refused as well.
    future = (datetime.now(UTC) + timedelta(minutes=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert deliver(app, cid, body, stamp=future).status_code == 401
    missing = app.client.post(f"/hooks/zendesk/{cid}", content=body)
    assert missing.status_code == 400 and missing.json()["error"]["field"] == SIGNATURE_HEADER
    no_stamp = app.client.post(f"/hooks/zendesk/{cid}", content=body,
                               headers={SIGNATURE_HEADER: "x"})
    assert no_stamp.status_code == 400 and no_stamp.json()["error"]["field"] == TIMESTAMP_HEADER
    assert deliver(app, 999, body).status_code == 404
    assert deliver(app, "abc", body).status_code == 404
    user = json.loads(body)
    for raw, field in (
        (b"nope", "body"),
        (b"[1]", "body"),
        (b'{"hello": 1}', "type"),
        (json.dumps({**user, "type": "zen:event-type:organization.created"}).encode(), "type"),
        (json.dumps({**user, "type": "zen:event-type:bad topic!"}).encode(), "type"),
        (json.dumps({**user, "id": None}).encode(), "id"),
        (json.dumps({k: v for k, v in user.items() if k != "detail"}).encode(), "detail"),
        (json.dumps({**user, "detail": {"email": "x@y.z"}}).encode(), "detail.id"),
        (json.dumps({**user, "time": None}).encode(), "time"),
        (b'{"ticket_id": "1"}', "requester"),
        (b'{"ticket_id": "", "requester": {"email": "a@b.c"}}', "ticket_id"),
        (b'{"ticket_id": "1", "requester": {"name": "A"}}', "requester.email"),
        (b'{"ticket_id": "1", "requester": {"email": "a@b.c"}, "updated_at": "soon"}',
         "updated_at"),
    ):
        r = deliver(app, cid, raw)
        assert r.status_code == 400 and r.json()["error"]["field"] == field, (raw, r.text)
    assert inbox_rows(app.engine) == []
    outcomes = [e["outcome"] for e in log_of(app, cid)]
    assert outcomes.count("rejected") == 18 and "accepted" not in outcomes


def test_a_connection_without_the_signing_secret_refuses(app: App) -> None:
    added = add_connection(app.client, app.admin, "zendesk", "No secret",
                           {"subdomain": "cellarco", "oauth_token": "t"})
    refused = deliver(app, added["id"], sample_bytes(CREATED))
    assert refused.status_code == 409 and refused.json()["error"]["field"] == "webhook_secret"
    for bad in ({"subdomain": "cellarco"}, {"subdomain": "cellarco", "api_token": "t"},
                {"subdomain": "Cellar Co", "oauth_token": "t"}):
        r = app.client.post("/api/connections", json={
            "platform": "zendesk", "name": "Bad", "settings": bad}, headers=app.admin)
        assert r.status_code == 422, (bad, r.text)
