"""Deliveries end to end: the real app, a signed body, the pipeline, the database."""

from __future__ import annotations

from datetime import date

import orjson
from sqlalchemy import select

from guestlist.pipeline import process_all
from guestlist.store.tables import connections
from tests.connectors.conftest import App
from tests.connectors.woocommerce.helpers import (
    age_of,
    connect,
    count_events,
    customer,
    deliver,
    events_of,
    inbox_rows,
    live_profiles,
    log_of,
    order,
    profile_of,
    settings,
    traits_of,
)


def test_customer_then_order_build_one_profile_with_age(app: App) -> None:
    cid, secret = connect(app)
    assert len(secret) >= 40  # generated, shown once
    shown = app.client.get(f"/api/connections/{cid}", headers=app.read).json()
    assert "webhook_secret" not in shown and secret not in str(shown)
    assert shown["webhook_url"] == f"https://guestlist.example/hooks/woocommerce/{cid}"
    meta = [{"id": 4, "key": "billing_birth_date", "value": "1990-04-05"}]
    r = deliver(app, cid, customer(meta_data=meta), secret, topic="customer.created")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "accepted"
    r = deliver(app, cid, order(customer_id=25, status="completed"), secret,
                topic="order.updated", delivery="a" * 32)
    assert r.status_code == 200, r.text
    process_all(app.engine)
    pid = profile_of(app.engine, "email", "john.doe@example.com")
    assert pid is not None
    assert live_profiles(app.engine) == 1
    # The site-scoped id: the connection's source id, then WooCommerce's user id.
    assert profile_of(app.engine, "external", f"woocommerce:customer:{_source(app, cid)}:25") == pid
    traits = traits_of(app.engine, pid)
    assert traits["first_name"] == "John"
    assert traits["address"]["city"] == "San Francisco"
    [purchase] = events_of(app.engine, pid, "Order Completed")
    assert purchase.properties["total"] == 29.35
    assert purchase.properties["order_id"] == "727"
    [record] = age_of(app.engine, pid)
    assert (record.dob, record.level, record.method, record.reference) == (
        date(1990, 4, 5), "dob_provided", "woocommerce_meta", "billing_birth_date")


def _source(app: App, cid: int) -> int:
    with app.engine.connect() as conn:
        source = conn.scalar(select(connections.c.source_id).where(connections.c.id == cid))
    assert source is not None
    return int(source)


def test_ping_then_a_redelivery_stored_once_and_counted_once(app: App) -> None:
    cid, secret = connect(app)
    # WooCommerce's ping when the webhook is saved: acknowledged, logged, no events.
    r = app.client.post(f"/hooks/woocommerce/{cid}", content=b"webhook_id=12",
                        headers={"User-Agent": "WooCommerce/9.4.0 Hookshot (WordPress/6.7)"})
    assert r.status_code == 200, r.text
    assert log_of(app, cid)[0]["detail"] == "ping"
    body = orjson.dumps(order())  # a guest's order
    first = deliver(app, cid, body, secret, topic="order.created")
    again = deliver(app, cid, body, secret, topic="order.created")
    assert (first.json()["status"], again.json()["status"]) == ("accepted", "duplicate")
    # Same order under a new delivery id (WooCommerce re-sent it later): stored, but the
    # purchase counts once.
    later = deliver(app, cid, body, secret, topic="order.updated", delivery="b" * 32)
    assert later.json()["status"] == "accepted"
    assert [row.kind for row in inbox_rows(app.engine)] == [
        "woocommerce.ping", "woocommerce.order.created", "woocommerce.order.updated"]
    process_all(app.engine)
    assert {row.status for row in inbox_rows(app.engine)} == {"processed"}
    assert count_events(app.engine, "Order Completed") == 1
    # The guest's billing details made the profile.
    pid = profile_of(app.engine, "email", "john.doe@example.com")
    assert pid is not None
    assert traits_of(app.engine, pid)["last_name"] == "Doe"
    assert len(events_of(app.engine, pid, "Order Completed")) == 1


REFUSALS = [
    ({"secret": "not the secret"}, 401, "invalid_signature"),
    ({"source": "https://elsewhere.example/"}, 403, "wrong_site"),
    ({"topic": "product.created"}, 400, "unsupported_topic"),
]


def test_refusals_store_nothing_and_are_logged(app: App) -> None:
    cid, secret = connect(app)
    for change, status, code in REFUSALS:
        kwargs = dict(change)
        r = deliver(app, cid, customer(), kwargs.pop("secret", secret), **kwargs)
        assert r.status_code == status, r.text
        assert r.json()["error"]["code"] == code
        entry = log_of(app, cid)[0]
        assert (entry["outcome"], entry["status"]) == ("rejected", status)
        assert entry["delivery_id"] == "d41d8cd98f00b204e9800998ecf8427e"
    body = orjson.dumps(customer())
    r = app.client.post(f"/hooks/woocommerce/{cid}", content=body,
                        headers={"X-WC-Webhook-Topic": "customer.created"})
    assert (r.status_code, r.json()["error"]["field"]) == (400, "X-WC-Webhook-Signature")
    r = deliver(app, cid, customer(id="twenty-five"), secret)
    assert (r.status_code, r.json()["error"]["field"]) == (400, "body.id")
    r = deliver(app, 999, customer(), secret)
    assert r.status_code == 404
    assert inbox_rows(app.engine) == []
    assert len(log_of(app, cid)) == len(REFUSALS) + 2
    # Settings are refused naming the setting.
    for bad, field in (({"per_page": 500}, "settings.per_page"),
                       ({"site_url": "http://shop.example", "auth": "basic"}, "settings.auth"),
                       ({"site_url": "shop.example"}, "settings.site_url")):
        r = app.client.post("/api/connections", headers=app.admin, json={
            "platform": "woocommerce", "name": "Bad", "settings": settings(**bad)})
        assert (r.status_code, r.json()["detail"]["field"]) == (422, field), r.text
