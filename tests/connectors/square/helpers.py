"""What the Square tests share: settings, samples, signing, and reading the results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from guestlist.connectors.square.signature import SIGNATURE_HEADER, sign
from guestlist.store.tables import (
    age_records,
    consent_records,
    events,
    identifiers,
    inbox,
    profiles,
    traits,
)
from tests.fakes.square import TOKEN

SAMPLES = Path(__file__).resolve().parents[3] / "src/guestlist/connectors/square/samples"
SECRET = "square-test-signature-key"


def sample_bytes(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def sample(name: str) -> Any:
    return json.loads(sample_bytes(name))


def settings(**overrides: Any) -> dict[str, Any]:
    return {"access_token": TOKEN, "webhook_secret": SECRET, **overrides}


def signed_headers(url: str, body: bytes, *, secret: str = SECRET, **extra: str) -> dict[str, str]:
    return {
        SIGNATURE_HEADER: sign(secret, url, body),
        "content-type": "application/json",
        "square-environment": "Production",
        **extra,
    }


def live_profiles(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.scalar(
                select(func.count())
                .select_from(profiles)
                .where(profiles.c.merged_into.is_(None))
            )
            or 0
        )


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
        return list(
            conn.execute(
                select(consent_records)
                .where(consent_records.c.profile_id == profile_id)
                .order_by(consent_records.c.seq)
            )
        )


def age_of(engine: Engine, profile_id: int) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(age_records)
                .where(age_records.c.profile_id == profile_id)
                .order_by(age_records.c.id)
            )
        )


def events_of(engine: Engine, profile_id: int, name: str | None = None) -> list[Any]:
    query = select(events).where(events.c.profile_id == profile_id).order_by(events.c.id)
    if name is not None:
        query = query.where(events.c.name == name)
    with engine.connect() as conn:
        return list(conn.execute(query))
