"""What the Drift tests share: settings, samples, delivering, the log."""

from __future__ import annotations

import json
from typing import Any

from tests.connectors.conftest import App
from tests.connectors.helpers import add_connection, connection_log, sample_readers, samples_dir
from tests.fakes.drift import TOKEN

SAMPLES = samples_dir("drift")
VERIFICATION = "drift-verification-token-for-tests"  # the samples carry it
sample_bytes, sample = sample_readers(SAMPLES)


def settings(**overrides: Any) -> dict[str, Any]:
    return {"access_token": TOKEN, "webhook_secret": VERIFICATION, **overrides}


def connect(app: App, **overrides: Any) -> int:
    return int(add_connection(app.client, app.admin, "drift", "Cellar chat",
                              settings(**overrides))["id"])


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
    return connection_log(app.client, app.read, cid)
