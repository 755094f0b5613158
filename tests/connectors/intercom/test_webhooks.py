"""Notifications end to end: the real app, a signed body, the pipeline, the database."""

from __future__ import annotations

import json

from guestlist.pipeline import process_all
from tests.connectors.conftest import App
from tests.connectors.helpers import (
    add_connection,
    consent_of,
    count_events,
    events_of,
    inbox_rows,
    live_profiles,
    profile_of,
    traits_of,
)
from tests.connectors.intercom.helpers import (
    connect,
    deliver,
    log_of,
    sample,
    sample_bytes,
)

CONTACT = "contact.user.created__from_spec_example.CONSTRUCTED.json"


def _contact_chat_and_tag(app: App) -> None:
    cid = connect(app)
    for name in (CONTACT, "conversation.user.created__from_spec_example.CONSTRUCTED.json",
                 "conversation.user.replied__from_spec_example.CONSTRUCTED.json",
                 "contact.user.tag.created__CONSTRUCTED.json"):
        r = deliver(app, cid, sample_bytes(name))
        assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
        assert r.json()["delivery_id"] == sample(name)["id"]
    again = deliver(app, cid, sample_bytes(CONTACT))  # Intercom retries: stored once
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert len(inbox_rows(app.engine)) == 4
    process_all(app.engine)

    pid = profile_of(app.engine, "email", "joe@bloggs.com")
    assert pid is not None and live_profiles(app.engine) == 1
    assert profile_of(app.engine, "external", "intercom:contact:6762f0d01bb69f9f2193bb7d") == pid
    assert profile_of(app.engine, "phone", "+353861234567") == pid
    t = traits_of(app.engine, pid)
    assert (t["name"], t["intercom_role"], t["address"]["city"]) == ("Joe Bloggs", "user", "Dublin")
    messages = events_of(app.engine, pid, "Inbound Message")
    assert [m.properties["body"] for m in messages] == [
        "Hi! Do you still have the 12-year Redbreast?\nI'd pick it up Saturday.",
        "Great, see you Saturday & thanks!"]
    assert {m.properties["channel"] for m in messages} == {"chat"}
    (tag,) = events_of(app.engine, pid, "Tag Added")
    assert tag.properties["category"] == "whisky club"
    # An inquiry grounds no implied consent here (C-7: only where the shop configures it).
    assert consent_of(app.engine, pid) == []
    assert [e["outcome"] for e in log_of(app, cid)].count("accepted") == 4


def _unsubscribe(app: App) -> None:  # C-5
    cid = connect(app, name="Unsubscribes")
    body = sample(CONTACT)
    body["id"] = "notif_unsub-1"
    body["topic"] = "contact.user.updated"
    body["data"]["item"]["unsubscribed_from_emails"] = True
    body["data"]["item"]["updated_at"] += 60
    assert deliver(app, cid, json.dumps(body).encode()).status_code == 200
    process_all(app.engine)
    pid = profile_of(app.engine, "email", "joe@bloggs.com")
    assert pid is not None
    (record,) = consent_of(app.engine, pid)
    assert (record.channel, record.status, record.identifier, record.recorded_by) == (
        "email", "withdrawn", "joe@bloggs.com", "intercom")


def _documented_example_and_ping(app: App) -> None:
    cid = connect(app, name="Legacy")
    body = json.dumps(sample("webhook_signed_notification_example.json")["body"]).encode()
    r = deliver(app, cid, body)
    assert r.json() == {"status": "accepted",
                        "delivery_id": "notif_78c122d0-23ba-11e4-9464-79b01267cc2e"}
    ping = json.dumps({"type": "notification_event", "id": "notif_ping_1", "topic": "ping",
                       "data": {"type": "notification_event_data",
                                "item": {"type": "ping", "message": "something"}}}).encode()
    assert deliver(app, cid, ping).status_code == 200
    process_all(app.engine)
    pid = profile_of(app.engine, "external", "intercom:external_id:25")
    assert pid is not None and traits_of(app.engine, pid)["name"] == "Hoban Washburne"
    assert count_events(app.engine, type_="identify") == 1


def _refusals(app: App) -> None:
    cid = connect(app)
    body = sample_bytes(CONTACT)
    assert deliver(app, cid, body, secret="wrong").status_code == 401
    missing = app.client.post(f"/hooks/intercom/{cid}", content=body)
    assert missing.status_code == 400 and missing.json()["error"]["field"] == "x-hub-signature"
    assert deliver(app, 999, body).status_code == 404
    assert deliver(app, "abc", body).status_code == 404
    for raw, field in (
        (b"nope", "body"),
        (b'{"topic":"contact.user.created"}', "id"),
        (b'{"id":"notif_1"}', "topic"),
        (b'{"id":"notif_1","topic":"admin.logged_in","data":{"item":{}}}', "topic"),
        (b'{"id":"notif_1","topic":"contact.user.created","data":{}}', "data.item"),
        (b'{"id":"notif_1","topic":"contact.user.created","data":{"item":{"type":"contact"}}}',
         "data.item.id"),
        (b'{"id":"notif_1","topic":"contact.user.tag.created","data":{"item":{"contact":'
         b'{"id":"c"}}}}', "data.item.tag.name"),
        (b'{"id":"notif_1","topic":"conversation.user.created","data":{"item":{"id":"1"}}}',
         "data.item.source"),
    ):
        r = deliver(app, cid, raw)
        assert r.status_code == 400 and r.json()["error"]["field"] == field, (raw, r.text)
    assert inbox_rows(app.engine) == []
    outcomes = [e["outcome"] for e in log_of(app, cid)]
    assert outcomes.count("rejected") == 10 and "accepted" not in outcomes
    # Intercom checks the URL answers when the webhook is saved.
    assert app.client.get(f"/hooks/intercom/{cid}").status_code == 200


def _without_the_client_secret(app: App) -> None:
    added = add_connection(app.client, app.admin, "intercom", "No secret",
                           {"access_token": "x", "region": "eu"})
    refused = deliver(app, added["id"], sample_bytes(CONTACT))
    assert refused.status_code == 409 and refused.json()["error"]["field"] == "webhook_secret"
    bad = app.client.post(
        "/api/connections",
        json={"platform": "intercom", "name": "Bad region",
              "settings": {"access_token": "x", "region": "mars"}},
        headers=app.admin,
    )
    assert bad.status_code == 422 and "region" in bad.json()["error"]["field"]


def test_contact_chat_tag_then_an_unsubscribe(app: App) -> None:
    _contact_chat_and_tag(app)
    _unsubscribe(app)  # the same person: the withdrawal lands on the same profile


def test_refusals_then_the_documented_example(app: App) -> None:
    _refusals(app)
    _without_the_client_secret(app)
    _documented_example_and_ping(app)
