"""What the Zendesk tests share: settings, samples, signing, the log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from guestlist.connectors.zendesk.signature import (
    INVOCATION_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Order,
    sign,
)
from tests.connectors.conftest import App
from tests.connectors.helpers import add_connection, connection_log, sample_readers, samples_dir
from tests.fakes.zendesk import API_TOKEN, EMAIL

SAMPLES = samples_dir("zendesk")
SECRET = "dGhpcyBpcyB0aGUgY2VsbGFyJ3Mgc2lnbmluZyBzZWNyZXQ="
sample_bytes, sample = sample_readers(SAMPLES)


def settings(**overrides: Any) -> dict[str, Any]:
    return {"subdomain": "cellarco", "email": EMAIL, "api_token": API_TOKEN,
            "webhook_secret": SECRET, **overrides}


def connect(app: App, **overrides: Any) -> int:
    return int(add_connection(app.client, app.admin, "zendesk", "Cellar support",
                              settings(**overrides))["id"])


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
    return connection_log(app.client, app.read, cid)
