"""What the Drift tests share: settings, samples, delivering, the log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.connectors.conftest import App
from tests.fakes.drift import TOKEN

SAMPLES = Path(__file__).resolve().parents[3] / "src/guestlist/connectors/drift/samples"
VERIFICATION = "drift-verification-token-for-tests"  # the samples carry it


def sample_bytes(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def sample(name: str) -> Any:
    return json.loads(sample_bytes(name))


def settings(**overrides: Any) -> dict[str, Any]:
    return {"access_token": TOKEN, "webhook_secret": VERIFICATION, **overrides}


def connect(app: App, **overrides: Any) -> int:
    r = app.client.post(
        "/api/connections",
        json={"platform": "drift", "name": "Cellar chat", "settings": settings(**overrides)},
        headers=app.admin,
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def deliver(app: App, cid: int | str, body: bytes, *, header: str | None = VERIFICATION) -> Any:
    headers = {"content-type": "application/json"}
    if header is not None:
        headers["x-verification-token"] = header
    return app.client.post(f"/hooks/drift/{cid}", content=body, headers=headers)


def with_(name: str, **changes: Any) -> bytes:
    body = sample(name)
    body.update(changes)
    return json.dumps(body).encode()


def log_of(app: App, cid: int) -> list[dict[str, Any]]:
    r = app.client.get(f"/api/connections/{cid}/log", headers=app.read)
    data: list[dict[str, Any]] = r.json()["data"]
    return data
