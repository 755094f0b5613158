"""Deliveries end to end: the real app, a signed body, the pipeline, the database."""

from __future__ import annotations

from typing import Any

import orjson

from guestlist.pipeline import process_all
from tests.connectors.conftest import App
from tests.connectors.helpers import add_connection, connection_log
from tests.connectors.shopify.helpers import (
    SECRET,
    consent_of,
    count_events,
    events_of,
    inbox_rows,
    profile_of,
    settings,
    traits_of,
)
from tests.fakes.shopify import sample, webhook_headers


def connect(app: App, **overrides: Any) -> int:
    body = add_connection(app.client, app.admin, "shopify", "Bottle Shop", settings(**overrides))
    assert "access_token" in body["secrets_set"]
    assert "access_token" not in body["settings"]
    return int(body["id"])


def deliver(app: App, cid: int | str, body: bytes, **headers: Any) -> Any:
    sent = webhook_headers(body, secret=SECRET, topic=headers.pop("topic", "customers/create"),
                           **headers)
    return app.client.post(f"/hooks/shopify/{cid}", content=body, headers=sent)


def log_of(app: App, cid: int) -> list[dict[str, Any]]:
    return connection_log(app.client, app.read, cid)


def customer_body(**changes: Any) -> bytes:
    c = sample("rest_2023-01_get_customers.json")["customers"][0]
    c.update(changes)
    return orjson.dumps(c)


def test_customer_and_paid_order_build_one_profile(app: App) -> None:  # C-2, C-6
    cid = connect(app)
    consent = {"state": "subscribed", "opt_in_level": "confirmed_opt_in",
               "consent_updated_at": "2024-01-02T09:15:20-05:00"}
    r = deliver(app, cid, customer_body(email_marketing_consent=consent), event_id="ev-1")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "accepted", "delivery_id": "ev-1"}
    order = sample("rest_2023-01_get_order.json")["order"]
    order["financial_status"] = "paid"
    r = deliver(app, cid, orjson.dumps(order), topic="orders/paid", event_id="ev-2")
    assert r.status_code == 200
    process_all(app.engine)

    pid = profile_of(app.engine, "email", "bob.norman@mail.example.com")
    assert pid is not None
    assert profile_of(app.engine, "external", "shopify:customer:207119551") == pid
    assert profile_of(app.engine, "phone", "+16136120707") == pid
    t = traits_of(app.engine, pid)
    assert t["first_name"] == "Bob" and t["tags"] == ["Léon", "Noël"]
    assert t["total_spent"] == 199.65 and t["address"]["state"] == "KY"
    (record,) = consent_of(app.engine, pid)
    assert (record.channel, record.status, record.kind, record.recorded_by) == (
        "email", "granted", "express", "shopify")
    assert record.identifier == "bob.norman@mail.example.com"
    assert record.proof["opt_in_level"] == "confirmed_opt_in"
    assert record.text_hash is None  # C-2: Shopify gives no wording, none is invented
    (purchase,) = events_of(app.engine, pid, "Order Completed")
    assert purchase.properties["total"] == 598.94
    assert [p["sku"] for p in purchase.properties["products"]] == [
        "IPOD2008GREEN", "IPOD2008RED", "IPOD2008BLACK"]


def test_redelivery_and_orders_create_then_paid_count_once(app: App) -> None:
    cid = connect(app)
    assert deliver(app, cid, customer_body(), event_id="ev-9").json()["status"] == "accepted"
    assert deliver(app, cid, customer_body(), event_id="ev-9").json()["status"] == "duplicate"
    # No Event-Id: the Webhook-Id is the key.
    body = customer_body(first_name="Robert", updated_at="2024-02-01T00:00:00-05:00")
    sent = webhook_headers(body, secret=SECRET, topic="customers/update", webhook_id="wh-3")
    del sent["X-Shopify-Event-Id"]
    r = app.client.post(f"/hooks/shopify/{cid}", content=body, headers=sent)
    assert r.json() == {"status": "accepted", "delivery_id": "wh-3"}
    order = sample("rest_2023-01_get_order.json")["order"]
    order["financial_status"] = "paid"
    deliver(app, cid, orjson.dumps(order), topic="orders/create", event_id="ev-10")
    order["updated_at"] = "2008-01-10T11:05:00-05:00"
    deliver(app, cid, orjson.dumps(order), topic="orders/paid", event_id="ev-11")
    assert len(inbox_rows(app.engine)) == 4
    process_all(app.engine)
    assert count_events(app.engine, "Order Completed") == 1
    pid = profile_of(app.engine, "email", "bob.norman@mail.example.com")
    assert pid is not None and traits_of(app.engine, pid)["first_name"] == "Robert"


def test_unpaid_order_waits_for_orders_paid(app: App) -> None:
    cid = connect(app)
    order = sample("rest_2023-01_get_order.json")["order"]
    order["financial_status"] = "pending"
    deliver(app, cid, orjson.dumps(order), topic="orders/create", event_id="ev-20")
    process_all(app.engine)
    assert count_events(app.engine, "Order Completed") == 0
    order["financial_status"] = "paid"
    deliver(app, cid, orjson.dumps(order), topic="orders/paid", event_id="ev-21")
    process_all(app.engine)
    assert count_events(app.engine, "Order Completed") == 1


def test_unsubscribe_withdraws(app: App) -> None:  # C-3, C-5
    cid = connect(app)
    sub = {"state": "subscribed", "opt_in_level": "single_opt_in",
           "consent_updated_at": "2024-01-02T09:15:20-05:00"}
    deliver(app, cid, customer_body(email_marketing_consent=sub), event_id="ev-30")
    unsub = {"state": "unsubscribed", "opt_in_level": "single_opt_in",
             "consent_updated_at": "2024-05-02T09:15:20-05:00"}
    deliver(app, cid, customer_body(email_marketing_consent=unsub,
                                    updated_at="2024-05-02T09:15:20-05:00"),
            topic="customers/update", event_id="ev-31")
    process_all(app.engine)
    pid = profile_of(app.engine, "email", "bob.norman@mail.example.com")
    assert pid is not None
    assert [r.status for r in consent_of(app.engine, pid)] == ["granted", "withdrawn"]


def refused(app: App, cid: int, r: Any, status: int, code: str, field: str | None) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert r.json()["error"]["field"] == field
    assert inbox_rows(app.engine) == []
    assert log_of(app, cid)[0]["outcome"] == "rejected"


def without(headers: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in names}


def test_refused_deliveries_store_nothing(app: App) -> None:
    cid = connect(app)
    body = customer_body()
    good = webhook_headers(body, secret=SECRET, topic="customers/create")
    cases: list[tuple[bytes, dict[str, str], int, str, str]] = [
        (body, webhook_headers(body, secret="another secret", topic="customers/create"),
         401, "invalid_signature", "X-Shopify-Hmac-Sha256"),
        *[(body, without(good, h), 400, "missing_header", h)
          for h in ("X-Shopify-Hmac-Sha256", "X-Shopify-Topic", "X-Shopify-Shop-Domain")],
        (body, without(good, "X-Shopify-Event-Id", "X-Shopify-Webhook-Id"),
         400, "missing_header", "X-Shopify-Webhook-Id"),
        # Same app, same client secret, another store: the domain is outside the HMAC.
        (body, {**good, "X-Shopify-Shop-Domain": "other-shop.myshopify.com"},
         403, "wrong_shop", "X-Shopify-Shop-Domain"),
        (body, {**good, "X-Shopify-Topic": "products/create"},
         400, "unsupported_topic", "X-Shopify-Topic"),
    ]
    for topic, bad, field in [
        ("customers/create", b"not json", "body"),
        ("customers/create", b"[1, 2]", "body"),
        ("customers/create", b'{"email": "x@example.com"}', "body.id"),
        ("orders/paid", b'{"id": 5, "currency": "USD", "total_price": "1.00"}',
         "body.financial_status"),
    ]:
        cases.append((bad, webhook_headers(bad, secret=SECRET, topic=topic),
                      400, "invalid_body", field))
    for sent, headers, status, code, field in cases:
        r = app.client.post(f"/hooks/shopify/{cid}", content=sent, headers=headers)
        refused(app, cid, r, status, code, field)
    assert log_of(app, cid)[-1]["delivery_id"] == "e1b2c3d4-0001"  # the bad signature's
    assert len(log_of(app, cid)) == len(cases)

    r = deliver(app, 999, body)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_connection"
    r = app.client.post(
        "/api/connections",
        json={"platform": "shopify", "name": "No secret",
              "settings": {"shop_domain": "bottle-shop.myshopify.com", "access_token": "t"}},
        headers=app.admin,
    )
    unsigned = r.json()["id"]
    refused(app, unsigned, deliver(app, unsigned, body), 409, "webhook_secret_not_set",
            "webhook_secret")


def test_settings_are_validated(app: App) -> None:
    for changes, field in [
        ({"shop_domain": "bottle-shop.example.com"}, "settings.shop_domain"),
        ({"api_version": "2023-02"}, "settings.api_version"),
        ({"access_token": None}, "settings.access_token"),
    ]:
        s = {k: v for k, v in {**settings(), **changes}.items() if v is not None}
        r = app.client.post(
            "/api/connections",
            json={"platform": "shopify", "name": "Bad", "settings": s},
            headers=app.admin,
        )
        assert r.status_code == 422
        assert r.json()["detail"]["field"] == field
    r = app.client.post(
        "/api/connections",
        json={"platform": "shopify", "name": "Old",
              "settings": settings(shop_domain="https://Bottle-Shop.myshopify.com/",
                                   api_version="2023-01")},
        headers=app.admin,
    )
    assert r.status_code == 201, r.text
    assert r.json()["settings"]["shop_domain"] == "bottle-shop.myshopify.com"
    assert r.json()["settings"]["api_version"] == "2023-01"
