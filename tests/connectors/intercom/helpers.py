"""What the Intercom tests share: settings, samples, signing, results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from guestlist.connectors.intercom.signature import SIGNATURE_HEADER, sign
from tests.connectors.conftest import App
from tests.fakes.intercom import TOKEN

SAMPLES = Path(__file__).resolve().parents[3] / "src/guestlist/connectors/intercom/samples"
SECRET = "intercom-test-client-secret"


def sample_bytes(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def sample(name: str) -> Any:
    return json.loads(sample_bytes(name))


def settings(**overrides: Any) -> dict[str, Any]:
    return {"access_token": TOKEN, "webhook_secret": SECRET, **overrides}


def connect(app: App, name: str = "Cellar chat", **overrides: Any) -> int:
    r = app.client.post(
        "/api/connections",
        json={"platform": "intercom", "name": name, "settings": settings(**overrides)},
        headers=app.admin,
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def deliver(app: App, cid: int | str, body: bytes, *, secret: str = SECRET) -> Any:
    headers = {SIGNATURE_HEADER: sign(secret, body), "content-type": "application/json",
               "user-agent": "intercom-parrot-service-client/1.0"}
    return app.client.post(f"/hooks/intercom/{cid}", content=body, headers=headers)


def log_of(app: App, cid: int) -> list[dict[str, Any]]:
    r = app.client.get(f"/api/connections/{cid}/log", headers=app.read)
    data: list[dict[str, Any]] = r.json()["data"]
    return data
