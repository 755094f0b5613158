"""What the WooCommerce tests share: samples, settings, signed deliveries, reading results."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, select

import guestlist.connectors.woocommerce as package
from guestlist.connectors._http.ratelimit import forget_limiter
from guestlist.connectors.woocommerce.signature import webhook_signature
from guestlist.store.tables import age_records
from tests.connectors.conftest import App
from tests.connectors.helpers import (  # the database reads the connector tests share
    add_connection,
    connection_log,
    count_events,
    events_of,
    inbox_rows,
    live_profiles,
    profile_of,
    traits_of,
)

__all__ = [
    "count_events", "events_of", "inbox_rows", "live_profiles", "profile_of", "traits_of",
]

SAMPLES = Path(package.__file__).parent / "samples"
SITE = "https://shop.example"
SECRET = "whsec_generated_by_guestlist"
KEY, CONSUMER_SECRET = "ck_test", "cs_test"


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return copy.deepcopy(data)


def customer(**changes: Any) -> dict[str, Any]:
    return {**sample("customer_v3_create_response.json"), **changes}


def order(**changes: Any) -> dict[str, Any]:
    return {**sample("order_v3_create_response.CONSTRUCTED.json"), **changes}


def settings(**overrides: Any) -> dict[str, Any]:
    return {"site_url": SITE, "consumer_key": KEY, "consumer_secret": CONSUMER_SECRET,
            **overrides}


def connect(app: App, name: str = "Bottle Shop", **overrides: Any) -> tuple[int, str]:
    """A connection over the API; returns its id and the webhook secret we generated."""
    body = add_connection(app.client, app.admin, "woocommerce", name, settings(**overrides))
    assert {"consumer_key", "consumer_secret", "webhook_secret"} <= set(body["secrets_set"])
    assert "consumer_secret" not in body["settings"]
    return int(body["id"]), body.get("webhook_secret") or overrides["webhook_secret"]


def headers_for(
    body: bytes,
    secret: str,
    *,
    topic: str = "customer.created",
    delivery: str = "d41d8cd98f00b204e9800998ecf8427e",
    source: str = SITE + "/",
    **extra: str,
) -> dict[str, str]:
    resource, _, event = topic.partition(".")
    sent = {
        "Content-Type": "application/json",
        "User-Agent": "WooCommerce/9.4.0 Hookshot (WordPress/6.7)",
        "X-WC-Webhook-Source": source,
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-Signature": webhook_signature(secret, body),
        "X-WC-Webhook-ID": "12",
        "X-WC-Webhook-Delivery-ID": delivery,
    }
    return {**sent, **extra}


def deliver(app: App, cid: int, record: dict[str, Any] | bytes, secret: str, **kw: Any) -> Any:
    body = record if isinstance(record, bytes) else orjson.dumps(record)
    return app.client.post(f"/hooks/woocommerce/{cid}", content=body,
                           headers=headers_for(body, secret, **kw))


def log_of(app: App, cid: int) -> list[dict[str, Any]]:
    return connection_log(app.client, app.read, cid, check=True)


def age_of(engine: Engine, profile_id: int) -> list[Any]:
    """The profile's age records, in no set order (the shared one orders by id)."""
    with engine.connect() as conn:
        return list(conn.execute(select(age_records)
                                 .where(age_records.c.profile_id == profile_id)))


def fresh_limiters(ids: Iterator[int] | range = range(1, 20)) -> None:
    for cid in ids:
        forget_limiter("woocommerce", cid)
