"""Fixtures for connector tests: the app with keys, and the public URL vendors sign."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from guestlist.api.app import create_app
from guestlist.keys import clear_key_cache, create_key
from guestlist.settings import get_settings

PUBLIC_URL = "https://guestlist.example"


@dataclass
class App:
    client: TestClient
    engine: Engine
    admin: dict[str, str]  # headers with the admin key
    read: dict[str, str]  # headers with the read key


@pytest.fixture
def public_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`GUESTLIST_PUBLIC_URL` for the test: what signed URLs are checked against."""
    monkeypatch.setenv("GUESTLIST_PUBLIC_URL", PUBLIC_URL)
    get_settings.cache_clear()
    yield PUBLIC_URL
    get_settings.cache_clear()


@pytest.fixture
def app(engine: Engine, db_url: str, public_url: str) -> Iterator[App]:
    clear_key_cache()
    with engine.begin() as conn:
        admin = create_key(conn, "admin", None)[1]
        read = create_key(conn, "read", None)[1]
    with TestClient(create_app(db_url), base_url=public_url) as client:
        yield App(
            client=client,
            engine=engine,
            admin={"Authorization": f"Bearer {admin}"},
            read={"Authorization": f"Bearer {read}"},
        )
