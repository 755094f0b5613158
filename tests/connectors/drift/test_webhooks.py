"""Drift events end to end: the real app, the token, the pipeline, the database."""

from __future__ import annotations

import json

from guestlist.jobs.worker import Worker
from guestlist.pipeline import process_all
from tests.connectors.conftest import App
from tests.connectors.drift.helpers import (
    VERIFICATION,
    connect,
    deliver,
    log_of,
    sample,
    sample_bytes,
    with_,
)
from tests.connectors.square.helpers import (
    age_of,
    consent_of,
    count_events,
    events_of,
    inbox_rows,
    live_profiles,
    profile_of,
    traits_of,
)
from tests.fakes import serve
from tests.fakes.drift import DriftFake

IDENTIFIED = "contact_identified.CONSTRUCTED.json"
MESSAGE = "new_message.CONSTRUCTED.json"
CONVERSATION = "new_conversation.CONSTRUCTED.json"


def test_the_chat_and_the_identified_contact_land_on_one_profile(app: App) -> None:
    cid = connect(app, org_id=1098765)
    # The message first (it names only the contact id), the email a moment later.
    r = deliver(app, cid, sample_bytes(MESSAGE))
    assert r.status_code == 200 and r.json() == {"status": "accepted",
                                                  "delivery_id": "message:4461930872"}
    assert deliver(app, cid, sample_bytes(CONVERSATION), header=None).status_code == 200
    assert deliver(app, cid, sample_bytes(IDENTIFIED)).json()["status"] == "accepted"
    assert deliver(app, cid, sample_bytes(MESSAGE)).json()["status"] == "duplicate"
    rows = inbox_rows(app.engine)
    assert len(rows) == 3
    # The token is Drift's secret and its body is unsigned: neither copy is stored.
    for row in rows:
        assert VERIFICATION.encode() not in bytes(row.body)
        assert "x-verification-token" not in row.headers
    process_all(app.engine)

    pid = profile_of(app.engine, "email", "priya.natarajan@example.com")
    assert pid is not None and live_profiles(app.engine) == 1
    assert profile_of(app.engine, "external", "drift:contact:16344778575") == pid
    assert profile_of(app.engine, "external", "drift:external_id:shop-5120") == pid
    assert profile_of(app.engine, "phone", "+18025550192") == pid
    t = traits_of(app.engine, pid)
    assert (t["name"], t["tags"]) == ("Priya Natarajan", ["bourbon"])
    (message,) = events_of(app.engine, pid, "Inbound Message")
    assert message.properties["channel"] == "chat"
    assert message.properties["body"].startswith("Hi! Do you ship the Blanton's")
    # C-7: a chat grounds no implied consent; C-2: Drift's email capture carries no
    # wording, so it proves no consent either.
    assert consent_of(app.engine, pid) == [] and age_of(app.engine, pid) == []
    assert count_events(app.engine, type_="identify") == 1
    outcomes = [e["outcome"] for e in log_of(app, cid)]
    assert outcomes.count("accepted") == 3 and outcomes.count("duplicate") == 1


def test_refusals_store_nothing_and_are_logged(app: App) -> None:
    cid = connect(app, org_id=1098765)
    body = sample_bytes(MESSAGE)
    wrong_body = with_(MESSAGE, token="guessed")
    assert deliver(app, cid, wrong_body, header=None).status_code == 401
    assert deliver(app, cid, wrong_body).status_code == 401  # every copy must match
    assert deliver(app, cid, body, header="guessed").status_code == 401
    no_token = json.loads(body)
    del no_token["token"]
    r = deliver(app, cid, json.dumps(no_token).encode(), header=None)
    assert r.status_code == 401 and r.json()["error"]["field"] == "token"
    assert deliver(app, cid, b"nope", header=None).status_code == 401  # cannot be checked
    other_org = deliver(app, cid, with_(MESSAGE, orgId=42))
    assert other_org.status_code == 403 and other_org.json()["error"]["field"] == "orgId"
    assert deliver(app, 999, body).status_code == 404
    message = sample(MESSAGE)
    for raw, field in (
        (b"nope", "body"),
        (b"[1]", "body"),
        (with_(MESSAGE, type=None), "type"),
        (with_(MESSAGE, type="bad type!"), "type"),
        (with_(MESSAGE, type="app_installed_somewhere"), "type"),
        (with_(MESSAGE, data=None), "data"),
        (with_(MESSAGE, data={**message["data"], "id": None}), "data.id"),
        (with_(MESSAGE, data={**message["data"], "author": {"type": "contact"}}),
         "data.author.id"),
        (with_(MESSAGE, data={**message["data"], "createdAt": "today"}), "data.createdAt"),
        (with_(IDENTIFIED, data={"id": 5, "attributes": {"name": "No email"}}),
         "data.attributes.email"),
        (with_(IDENTIFIED, data={"attributes": {"email": "a@b.c"}}), "data.id"),
    ):
        r = deliver(app, cid, raw)
        assert r.status_code == 400 and r.json()["error"]["field"] == field, (raw, r.text)
    assert inbox_rows(app.engine) == []
    outcomes = [e["outcome"] for e in log_of(app, cid)]
    assert outcomes.count("rejected") == 17 and "accepted" not in outcomes
    assert VERIFICATION not in json.dumps(log_of(app, cid))


def test_a_connection_without_the_verification_token_refuses(app: App) -> None:
    r = app.client.post("/api/connections", json={
        "platform": "drift", "name": "No token", "settings": {"access_token": "x"}},
        headers=app.admin)
    assert r.status_code == 201, r.text
    refused = deliver(app, r.json()["id"], sample_bytes(MESSAGE))
    assert refused.status_code == 409 and refused.json()["error"]["field"] == "webhook_secret"
    shown = app.client.get(f"/api/connections/{r.json()['id']}", headers=app.admin).text
    assert '"x"' not in shown


def test_a_message_from_an_unidentified_contact_is_looked_up(app: App) -> None:
    fake = DriftFake()
    contact = fake.add({"email": "sam.okafor@example.com", "name": "Sam Okafor"})
    with serve(fake.app) as url:
        cid = connect(app, lookup_contacts=True, base_url=url)
        for n in (1, 2):  # two messages: one lookup queued for the contact
            body = sample(MESSAGE)
            body["data"].update(id=900 + n, createdAt=body["data"]["createdAt"] + n)
            body["data"]["author"]["id"] = contact["id"]
            assert deliver(app, cid, json.dumps(body).encode()).status_code == 200
        agent = sample(MESSAGE)
        agent["data"].update(id=999, author={"id": 7, "type": "user", "bot": False})
        assert deliver(app, cid, json.dumps(agent).encode()).status_code == 200  # no lookup
        Worker(app.engine, process_inbox=lambda e, n: 0).run_once()
    assert fake.requests == [("GET", f"/contacts/{contact['id']}")]
    process_all(app.engine)
    pid = profile_of(app.engine, "email", "sam.okafor@example.com")
    assert pid is not None and live_profiles(app.engine) == 1
    assert len(events_of(app.engine, pid, "Inbound Message")) == 2
    assert traits_of(app.engine, pid)["name"] == "Sam Okafor"
