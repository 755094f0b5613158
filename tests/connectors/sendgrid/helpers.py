"""What the SendGrid tests share: samples with the Content-Type to post them with."""

from __future__ import annotations

from typing import Any

from tests.connectors.conftest import App
from tests.connectors.helpers import add_connection, connection_log, sample_readers, samples_dir

SAMPLES = samples_dir("sendgrid")
SECRET = "sendgrid-test-path-secret-0123456789"

DEFAULT = "inbound_parse_default_data.multipart.txt"
RAW = "inbound_parse_raw_data.multipart.txt"
LATIN1 = "inbound_parse__latin1_cc_attachment.CONSTRUCTED.multipart.txt"
AUTO_REPLY = "inbound_parse__auto_reply.CONSTRUCTED.multipart.txt"
BOUNCE = "inbound_parse__bounce.CONSTRUCTED.multipart.txt"

# The boundary each sample was posted with (it is not in the file): see samples/README.md.
CONTENT_TYPES = {
    DEFAULT: "multipart/form-data; boundary=xYzZY",
    RAW: "multipart/form-data; boundary=xYzZY",
    LATIN1: "multipart/form-data; boundary=----SGInboundParse7f3a",
    AUTO_REPLY: "multipart/form-data; boundary=----SGInboundParse7f3a",
    BOUNCE: "multipart/form-data; boundary=----SGInboundParse7f3a",
}
sample_bytes = sample_readers(SAMPLES)[0]


def connect(app: App, name: str = "Parse inbox", **settings: Any) -> int:
    return int(add_connection(app.client, app.admin, "sendgrid", name,
                              {"webhook_secret": SECRET, **settings})["id"])


def post(
    app: App, cid: int | str, body: bytes, content_type: str | None, *,
    secret: str | None = SECRET, headers: dict[str, str] | None = None,
) -> Any:
    path = f"/hooks/sendgrid/{cid}" + (f"/{secret}" if secret is not None else "")
    sent = {"user-agent": "Sendlib/1.0"} | (headers or {})
    if content_type is not None:
        sent["content-type"] = content_type
    return app.client.post(path, content=body, headers=sent)


def post_sample(app: App, cid: int | str, name: str, **kwargs: Any) -> Any:
    return post(app, cid, sample_bytes(name), CONTENT_TYPES[name], **kwargs)


def log_of(app: App, cid: int) -> list[dict[str, Any]]:
    return connection_log(app.client, app.read, cid, check=True)
