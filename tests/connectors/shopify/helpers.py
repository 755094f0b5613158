"""What the Shopify tests share: settings, the samples, and reading the results."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from guestlist.store.tables import consent_records, events, identifiers, inbox, profiles, traits
from tests.fakes.shopify import SHOP, TOKEN

SECRET = "shpss_test_client_secret"


def settings(**overrides: Any) -> dict[str, Any]:
    return {"shop_domain": SHOP, "access_token": TOKEN, "webhook_secret": SECRET, **overrides}


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


def inbox_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(inbox).order_by(inbox.c.id)))


def profile_of(engine: Engine, kind: str, key: str) -> int | None:
    with engine.connect() as conn:
        pid = conn.scalar(
            select(identifiers.c.profile_id).where(
                identifiers.c.kind == kind, identifiers.c.key == key
            )
        )
    return int(pid) if pid is not None else None


def traits_of(engine: Engine, profile_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(traits.c.name, traits.c.value).where(traits.c.profile_id == profile_id)
        )
        return {r.name: r.value for r in rows}


def consent_of(engine: Engine, profile_id: int) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(
            select(consent_records)
            .where(consent_records.c.profile_id == profile_id)
            .order_by(consent_records.c.seq)
        ))


def events_of(engine: Engine, profile_id: int, name: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(
            select(events).where(events.c.profile_id == profile_id, events.c.name == name)
        ))
