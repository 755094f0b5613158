"""Sources and API keys: who may send data, and where it is recorded as coming from.

A key is shown once, at creation; only its SHA-256 is stored (keys are 256 random
bits, so a fast hash is safe). `authenticate` is on the tracking API's hot path, so it
answers from a small in-process cache for a few seconds before asking the database
again; a revocation therefore reaches other processes within `CACHE_TTL_SECONDS`.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, Engine, Insert, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite

from guestlist.audit import SYSTEM, audit
from guestlist.store.engine import read_connection
from guestlist.store.tables import api_keys, sources
from guestlist.store.types import utcnow

KeyKind = Literal["write", "read", "admin"]
KEY_KINDS: tuple[str, ...] = ("write", "read", "admin")
CACHE_TTL_SECONDS = 5.0
_CACHE_MAX_ENTRIES = 10_000
_MAX_KEY_LENGTH = 200


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What a valid key grants: its kind, and for write keys the source it writes as."""

    key_id: int
    kind: str
    source_id: int | None
    default_region: str


def _insert(conn: Connection, table: Table) -> Any:
    """INSERT for the connection's dialect, so `on_conflict_do_nothing` is available."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def ensure_source(
    conn: Connection, name: str, kind: str = "tracking", default_region: str = "US"
) -> int:
    """The id of the source called `name`, creating it when it does not exist yet."""
    existing = conn.execute(select(sources.c.id).where(sources.c.name == name)).scalar()
    if existing is not None:
        return int(existing)
    stmt: Insert = (
        _insert(conn, sources)
        .values(name=name, kind=kind, default_region=default_region, created_at=utcnow())
        .on_conflict_do_nothing()
        .returning(sources.c.id)
    )
    created = conn.execute(stmt).scalar()
    if created is None:  # created concurrently by another transaction
        created = conn.execute(select(sources.c.id).where(sources.c.name == name)).scalar_one()
    return int(created)


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def create_key(
    conn: Connection,
    kind: KeyKind,
    source_name: str | None,
    note: str | None = None,
    *,
    actor: str = SYSTEM,
) -> tuple[int, str]:
    """Create a key and return `(id, plaintext)`; the plaintext is not stored anywhere.

    A write key always belongs to a source (created here when missing); read and admin
    keys may have none. The creation is audited (`key.created`, P-6) without the key.
    """
    if kind not in KEY_KINDS:
        raise ValueError(f"unknown key kind {kind!r}; expected one of {', '.join(KEY_KINDS)}")
    if kind == "write" and not source_name:
        raise ValueError("a write key needs a source")
    source_id = ensure_source(conn, source_name) if source_name else None
    plaintext = f"gl_{kind}_{secrets.token_urlsafe(32)}"
    key_id = conn.execute(
        api_keys.insert()
        .values(
            kind=kind,
            key_hash=hash_key(plaintext),
            prefix=plaintext[:12],
            source_id=source_id,
            note=note,
            created_at=utcnow(),
        )
        .returning(api_keys.c.id)
    ).scalar_one()
    audit(
        conn,
        "key.created",
        actor=actor,
        detail={"key_id": int(key_id), "kind": kind, "source": source_name},
    )
    return int(key_id), plaintext


def revoke_key(conn: Connection, key_id: int, *, actor: str = SYSTEM) -> bool:
    """Revoke a key (audited as `key.revoked`); True when it was live. This process
    forgets it at once."""
    result = conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    if result.rowcount:
        audit(conn, "key.revoked", actor=actor, detail={"key_id": key_id})
    for cache_key, (_, info) in list(_cache.items()):
        if info is not None and info.key_id == key_id:
            _cache.pop(cache_key, None)
    return bool(result.rowcount)


# (database url, key hash) → (expires at, monotonic clock; KeyInfo or None for "no such key")
_cache: dict[tuple[str, str], tuple[float, KeyInfo | None]] = {}


def clear_key_cache() -> None:
    _cache.clear()


def _lookup(engine: Engine, key_hash: str) -> KeyInfo | None:
    stmt = (
        select(
            api_keys.c.id,
            api_keys.c.kind,
            api_keys.c.source_id,
            api_keys.c.revoked_at,
            sources.c.default_region,
        )
        .select_from(api_keys.outerjoin(sources, sources.c.id == api_keys.c.source_id))
        .where(api_keys.c.key_hash == key_hash)
    )
    with read_connection(engine) as conn:
        row = conn.execute(stmt).first()
    if row is None or row.revoked_at is not None:
        return None
    return KeyInfo(
        key_id=int(row.id),
        kind=str(row.kind),
        source_id=None if row.source_id is None else int(row.source_id),
        default_region=str(row.default_region or "US"),
    )


def authenticate(engine: Engine, plaintext: str | None, kinds: set[str]) -> KeyInfo | None:
    """The key's grant when `plaintext` is a live key of one of `kinds`, else None."""
    if not plaintext or len(plaintext) > _MAX_KEY_LENGTH:
        return None
    cache_key = (str(engine.url), hash_key(plaintext))
    now = time.monotonic()
    cached = _cache.get(cache_key)
    if cached is not None and cached[0] > now:
        info = cached[1]
    else:
        info = _lookup(engine, cache_key[1])
        if len(_cache) >= _CACHE_MAX_ENTRIES:
            _cache.clear()
        _cache[cache_key] = (now + CACHE_TTL_SECONDS, info)
    if info is None or info.kind not in kinds:
        return None
    return info
