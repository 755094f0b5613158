"""What the Zendesk tests share: settings, samples, signing, the log."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from guestlist.connectors.zendesk.signature import (
    INVOCATION_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Order,
    sign,
)
from tests.connectors.conftest import App
from tests.fakes.zendesk import API_TOKEN, EMAIL

SAMPLES = Path(__file__).resolve().parents[3] / "src/guestlist/connectors/zendesk/samples"
SECRET = "dGhpcyBpcyB0aGUgY2VsbGFyJ3Mgc2lnbmluZyBzZWNyZXQ="


def sample_bytes(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def sample(name: str) -> Any:
    return json.loads(sample_bytes(name))


def settings(**overrides: Any) -> dict[str, Any]:
    return {"subdomain": "cellarco", "email": EMAIL, "api_token": API_TOKEN,
            "webhook_secret": SECRET, **overrides}


def connect(app: App, **overrides: Any) -> int:
    r = app.client.post(
        "/api/connections",
        json={"platform": "zendesk", "name": "Cellar support", "settings": settings(**overrides)},
        headers=app.admin,
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def now_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def deliver(app: App, cid: int | str, body: bytes, *, secret: str = SECRET,
            stamp: str | None = None, invocation: str | None = "inv-1",
            order: Order = "timestamp+body") -> Any:
    stamp = stamp or now_stamp()
    headers = {SIGNATURE_HEADER: sign(secret, stamp, body, order), TIMESTAMP_HEADER: stamp,
               "content-type": "application/json", "user-agent": "Zendesk Webhook"}
    if invocation:
        headers[INVOCATION_HEADER] = invocation
    return app.client.post(f"/hooks/zendesk/{cid}", content=body, headers=headers)


def log_of(app: App, cid: int) -> list[dict[str, Any]]:
    r = app.client.get(f"/api/connections/{cid}/log", headers=app.read)
    data: list[dict[str, Any]] = r.json()["data"]
    return data
