"""Sources and API keys on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, delete, select

from guestlist import keys
from guestlist.keys import (
    KeyInfo,
    authenticate,
    clear_key_cache,
    create_key,
    ensure_source,
    revoke_key,
)
from guestlist.store.tables import api_keys, sources


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    clear_key_cache()
    yield
    clear_key_cache()


def test_ensure_source_gets_or_creates_by_name(engine: Engine) -> None:
    with engine.begin() as conn:
        first = ensure_source(conn, "web", default_region="CA")
        again = ensure_source(conn, "web", kind="import", default_region="US")
        other = ensure_source(conn, "pos", kind="pos")
        rows = conn.execute(select(sources).order_by(sources.c.id)).all()
    assert first == again != other
    assert [(r.name, r.kind, r.default_region) for r in rows] == [
        ("web", "tracking", "CA"),
        ("pos", "pos", "US"),
    ]


def test_create_key_stores_only_a_hash_and_a_prefix(engine: Engine) -> None:
    with engine.begin() as conn:
        key_id, plaintext = create_key(conn, "write", "web")
        row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).one()
        source_name = conn.execute(
            select(sources.c.name).where(sources.c.id == row.source_id)
        ).scalar_one()
    assert plaintext.startswith("gl_write_")
    assert len(plaintext) > 40
    assert row.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert row.prefix == plaintext[:12]
    assert row.kind == "write"
    assert source_name == "web"
    assert row.revoked_at is None


def test_read_and_admin_keys_need_no_source_but_write_keys_do(engine: Engine) -> None:
    with engine.begin() as conn:
        _, read = create_key(conn, "read", None)
        _, admin = create_key(conn, "admin", None)
        with pytest.raises(ValueError, match="source"):
            create_key(conn, "write", None)
        with pytest.raises(ValueError, match="kind"):
            create_key(conn, "root", None)  # type: ignore[arg-type]
    assert read.startswith("gl_read_") and admin.startswith("gl_admin_")


def test_authenticate_checks_kind_and_reports_the_source(engine: Engine) -> None:
    with engine.begin() as conn:
        ensure_source(conn, "till", default_region="AU")
        write_id, write = create_key(conn, "write", "till")
        source_id = ensure_source(conn, "till")
        _, read = create_key(conn, "read", None)
    assert authenticate(engine, write, {"write"}) == KeyInfo(
        key_id=write_id, kind="write", source_id=source_id, default_region="AU"
    )
    assert authenticate(engine, write, {"read", "admin"}) is None
    info = authenticate(engine, read, {"read"})
    assert info is not None and info.source_id is None
    assert authenticate(engine, "gl_write_nope", {"write"}) is None
    assert authenticate(engine, "", {"write"}) is None
    assert authenticate(engine, None, {"write"}) is None
    assert authenticate(engine, "x" * 10_000, {"write"}) is None


def test_a_revoked_key_fails_at_once_in_this_process(engine: Engine) -> None:
    with engine.begin() as conn:
        key_id, plaintext = create_key(conn, "write", "web")
    assert authenticate(engine, plaintext, {"write"}) is not None
    with engine.begin() as conn:
        assert revoke_key(conn, key_id) is True
        assert revoke_key(conn, key_id) is False
    assert authenticate(engine, plaintext, {"write"}) is None
    clear_key_cache()
    assert authenticate(engine, plaintext, {"write"}) is None


def test_authenticate_answers_from_the_cache_until_it_expires(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine.begin() as conn:
        key_id, plaintext = create_key(conn, "write", "web")
    clock = [1000.0]
    monkeypatch.setattr(keys.time, "monotonic", lambda: clock[0])
    assert authenticate(engine, plaintext, {"write"}) is not None
    with engine.begin() as conn:  # behind the cache's back, as another process would
        conn.execute(delete(api_keys).where(api_keys.c.id == key_id))
    clock[0] += keys.CACHE_TTL_SECONDS - 1
    assert authenticate(engine, plaintext, {"write"}) is not None
    clock[0] += 2
    assert authenticate(engine, plaintext, {"write"}) is None
