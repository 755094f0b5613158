"""What the Intercom tests share: settings, samples, signing, results."""

from __future__ import annotations

from typing import Any

from guestlist.connectors.intercom.signature import SIGNATURE_HEADER, sign
from tests.connectors.conftest import App
from tests.connectors.helpers import add_connection, connection_log, sample_readers, samples_dir
from tests.fakes.intercom import TOKEN

SAMPLES = samples_dir("intercom")
SECRET = "intercom-test-client-secret"
sample_bytes, sample = sample_readers(SAMPLES)


def settings(**overrides: Any) -> dict[str, Any]:
    return {"access_token": TOKEN, "webhook_secret": SECRET, **overrides}


def connect(app: App, name: str = "Cellar chat", **overrides: Any) -> int:
    return int(add_connection(app.client, app.admin, "intercom", name, settings(**overrides))["id"])


def deliver(app: App, cid: int | str, body: bytes, *, secret: str = SECRET) -> Any:
    headers = {SIGNATURE_HEADER: sign(secret, body), "content-type": "application/json",
               "user-agent": "intercom-parrot-service-client/1.0"}
    return app.client.post(f"/hooks/intercom/{cid}", content=body, headers=headers)


def log_of(app: App, cid: int) -> list[dict[str, Any]]:
    return connection_log(app.client, app.read, cid)
