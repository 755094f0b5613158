"""What the WooCommerce tests share: samples, settings, signed deliveries, reading results."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, func, select

import guestlist.connectors.woocommerce as package
from guestlist.connectors._http.ratelimit import forget_limiter
from guestlist.connectors.woocommerce.signature import webhook_signature
from guestlist.store.tables import age_records, events, identifiers, inbox, profiles, traits
from tests.connectors.conftest import App

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
    r = app.client.post(
        "/api/connections",
        json={"platform": "woocommerce", "name": name, "settings": settings(**overrides)},
        headers=app.admin,
    )
    assert r.status_code == 201, r.text
    body = r.json()
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
    r = app.client.get(f"/api/connections/{cid}/log", headers=app.read)
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


def inbox_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(inbox).order_by(inbox.c.id)))


def live_profiles(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(
            select(func.count()).select_from(profiles).where(profiles.c.merged_into.is_(None))
        ) or 0)


def count_events(engine: Engine, name: str | None = None, type_: str | None = None) -> int:
    query = select(func.count()).select_from(events)
    if name is not None:
        query = query.where(events.c.name == name)
    if type_ is not None:
        query = query.where(events.c.type == type_)
    with engine.connect() as conn:
        return int(conn.scalar(query) or 0)


def profile_of(engine: Engine, kind: str, key: str) -> int | None:
    with engine.connect() as conn:
        pid = conn.scalar(select(identifiers.c.profile_id).where(
            identifiers.c.kind == kind, identifiers.c.key == key))
    return int(pid) if pid is not None else None


def traits_of(engine: Engine, profile_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(select(traits.c.name, traits.c.value)
                            .where(traits.c.profile_id == profile_id))
        return {r.name: r.value for r in rows}


def events_of(engine: Engine, profile_id: int, name: str | None = None) -> list[Any]:
    query = select(events).where(events.c.profile_id == profile_id)
    if name is not None:
        query = query.where(events.c.name == name)
    with engine.connect() as conn:
        return list(conn.execute(query.order_by(events.c.id)))


def age_of(engine: Engine, profile_id: int) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(age_records)
                                 .where(age_records.c.profile_id == profile_id)))


def fresh_limiters(ids: Iterator[int] | range = range(1, 20)) -> None:
    for cid in ids:
        forget_limiter("woocommerce", cid)
