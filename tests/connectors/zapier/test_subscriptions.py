"""REST Hook subscribe/list/unsubscribe for a Zapier app, with the user's API key."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from guestlist.connectors.zapier.subscriptions import forget_gone, subscribers
from guestlist.keys import create_key
from guestlist.store.tables import audit_log
from guestlist.store.tables.zapier import zapier_subscriptions
from tests.connectors.conftest import App
from tests.connectors.zapier.helpers import connect

HOOK = "https://hooks.zapier.com/hooks/standard/1234567/abcdef0123456789/"


def segment(app: App, slug: str) -> None:
    r = app.client.post(
        "/api/segments",
        json={"name": slug.title(), "slug": slug, "rule": 'trait.tier = "gold"'},
        headers=app.admin,
    )
    assert r.status_code == 201, r.text


def subscribe(app: App, cid: int, body: dict[str, Any], key: dict[str, str]) -> Any:
    return app.client.post(f"/api/zapier/{cid}/subscriptions", json=body, headers=key)


def count(app: App) -> int:
    with app.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(zapier_subscriptions)) or 0)


def test_subscribe_list_unsubscribe(zapier_app: App) -> None:
    app = zapier_app
    cid = connect(app)
    segment(app, "gold")
    assert app.client.get(f"/api/zapier/{cid}", headers=app.read).json()["name"] == "Zaps"

    r = subscribe(app, cid, {"hookUrl": HOOK, "event": "segment.entered", "segment": "gold"},
                  app.read)
    assert r.status_code == 201, r.text
    sub = r.json()
    assert (sub["event"], sub["segment"], sub["hookUrl"]) == ("segment.entered", "gold", HOOK)
    # Zapier retrying the subscribe (or the older `targetUrl` name): the same one.
    again = subscribe(app, cid, {"targetUrl": HOOK, "segment": "gold"}, app.admin)
    assert again.status_code == 200 and again.json()["id"] == sub["id"]
    other = subscribe(app, cid, {"hookUrl": HOOK + "2", "segment": "gold"}, app.admin)
    assert other.status_code == 201

    listed = app.client.get(f"/api/zapier/{cid}/subscriptions", headers=app.read).json()
    assert [s["id"] for s in listed["data"]] == [sub["id"], other.json()["id"]]
    with app.engine.connect() as conn:
        assert [s.target_url for s in subscribers(conn, "segment.entered", "gold")] == [
            HOOK, HOOK + "2"]
        actions = list(conn.execute(select(audit_log.c.action, audit_log.c.actor)))
    assert sum(a.action == "zapier.subscribe" for a in actions) == 2

    gone = app.client.delete(f"/api/zapier/{cid}/subscriptions/{sub['id']}", headers=app.read)
    assert gone.status_code == 204
    missing = app.client.delete(f"/api/zapier/{cid}/subscriptions/{sub['id']}",
                                headers=app.read)
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "subscription_id"
    assert count(app) == 1

    # A 410 Gone from Zapier later (the activation side's post): the row goes.
    with app.engine.begin() as conn:
        assert forget_gone(conn, other.json()["id"]) is True
        assert forget_gone(conn, other.json()["id"]) is False
    assert count(app) == 0

    # Deleting the segment removes the subscriptions to it.
    assert subscribe(app, cid, {"hookUrl": HOOK, "segment": "gold"}, app.read).status_code == 201
    assert app.client.delete("/api/segments/gold", headers=app.admin).status_code in (200, 204)
    assert count(app) == 0


def test_refusals(zapier_app: App) -> None:
    app = zapier_app
    cid = connect(app)
    segment(app, "gold")
    sq = app.client.post(
        "/api/connections",
        json={"platform": "square", "name": "Sq", "settings": {"access_token": "t"}},
        headers=app.admin,
    ).json()["id"]
    with app.engine.begin() as conn:
        write = {"Authorization": f"Bearer {create_key(conn, 'write', 'website')[1]}"}
    body = {"hookUrl": HOOK, "segment": "gold"}
    cases = [
        (cid, body, {}, 401, None),
        (cid, body, {"Authorization": "Bearer nope"}, 401, None),
        (cid, body, write, 403, None),  # write keys ship inside websites
        (cid, {"hookUrl": "http://hooks.zapier.com/x", "segment": "gold"}, app.read, 422,
         "hookUrl"),
        (cid, {"segment": "gold"}, app.read, 422, "hookUrl"),
        (cid, {"hookUrl": HOOK, "segment": "nope"}, app.read, 422, "segment"),
        (cid, {"hookUrl": HOOK, "segment": "gold", "event": "profile.updated"}, app.read, 422,
         "event"),
        (sq, body, app.read, 404, "connection_id"),
        (999, body, app.read, 404, "connection_id"),
    ]
    for target, sent, headers, status, field in cases:
        r = subscribe(app, target, sent, headers)
        assert r.status_code == status, (sent, r.text)
        if field is not None:
            assert r.json()["error"]["field"] == field, r.text
    assert count(app) == 0
    assert app.client.get(f"/api/zapier/{sq}", headers=app.read).status_code == 404
    assert app.client.get(f"/api/zapier/{sq}/subscriptions", headers=app.read).status_code == 404

    r = subscribe(app, cid, body, app.read)
    assert r.status_code == 201
    clash = subscribe(app, cid, {"hookUrl": HOOK, "segment": "gold",
                                 "event": "segment.entered"}, app.read)
    assert clash.status_code == 200  # the same subscription, not a clash
    # Removing the connection removes its subscriptions.
    assert app.client.delete(f"/api/connections/{cid}", headers=app.admin).status_code in (
        200, 204)
    assert count(app) == 0
