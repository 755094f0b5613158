"""Deliveries received together (group commit): one transaction, each its own answer.

`receive_webhooks` is what the `/hooks` route calls with the deliveries that arrived
while the previous batch was being stored; these tests hand it such batches directly.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, select

from guestlist.connectors.base import WebhookRequest
from guestlist.connectors.connections import add
from guestlist.connectors.twilio.connector import TwilioConnector
from guestlist.connectors.webhooks import (
    Incoming,
    WebhookAnswer,
    receive_webhook,
    receive_webhooks,
)
from guestlist.store.tables import connection_log, inbox
from guestlist.store.types import utcnow
from tests.connectors.twilio.helpers import form, message, settings, signed


@pytest.fixture
def twilio(engine: Engine, public_url: str) -> int:
    info, _ = add(engine, "twilio", "Shop line", settings())
    return info.id


def incoming(cid: int, sid: str, public_url: str, *, token: str | None = None) -> Incoming:
    url = f"{public_url}/hooks/twilio/{cid}"
    params = message("do you have rye?", sid=sid)
    headers = signed(url, params) if token is None else signed(url, params, token=token)
    request = WebhookRequest(
        method="POST",
        url=url,
        headers={k.lower(): v for k, v in headers.items()},
        body=form(params),
        received_at=utcnow(),
    )
    return Incoming("twilio", str(cid), request)


def answers(outcomes: list[WebhookAnswer | Exception]) -> list[Any]:
    def shown(o: WebhookAnswer | Exception) -> Any:
        if isinstance(o, Exception):
            return repr(o)
        return o.status, o.body.get("status") or o.body["error"]["code"]

    return [shown(o) for o in outcomes]


def stored(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(select(inbox.c.idempotency_key).order_by(inbox.c.id)))


def logged(engine: Engine) -> list[tuple[str | None, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(connection_log.c.delivery_id, connection_log.c.outcome).order_by(
                connection_log.c.id
            )
        )
        return [(r.delivery_id, r.outcome) for r in rows]


def test_a_batch_answers_each_delivery_in_order(
    engine: Engine, twilio: int, public_url: str
) -> None:
    batch = [
        incoming(twilio, "SM1", public_url),
        incoming(twilio, "SM2", public_url, token="not-the-auth-token"),
        incoming(twilio, "SM1", public_url),  # Twilio's retry, in the same batch
        incoming(twilio + 1, "SM3", public_url),
        incoming(twilio, "SM4", public_url),
    ]
    assert answers(receive_webhooks(engine, batch)) == [
        (200, "accepted"),
        (401, "invalid_signature"),
        (200, "duplicate"),
        (404, "unknown_connection"),
        (200, "accepted"),
    ]
    assert stored(engine) == ["SM1", "SM4"]
    assert logged(engine) == [
        ("SM1", "accepted"),
        ("SM2", "rejected"),
        ("SM1", "duplicate"),
        ("SM4", "accepted"),
    ]
    # A later batch sees what the earlier one stored.
    again = receive_webhooks(engine, [incoming(twilio, "SM4", public_url)] * 2)
    assert answers(again) == [(200, "duplicate"), (200, "duplicate")]
    assert stored(engine) == ["SM1", "SM4"]


def test_one_deliverys_failure_is_its_own(
    engine: Engine, twilio: int, public_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = TwilioConnector.reply

    def reply(self: TwilioConnector, conn: Any, s: Any, req: Any, delivery: Any, src: int) -> Any:
        if delivery.delivery_id == "SM2":
            raise RuntimeError("the ledger broke on SM2")
        return real(self, conn, s, req, delivery, src)

    monkeypatch.setattr(TwilioConnector, "reply", reply)
    batch = [incoming(twilio, sid, public_url) for sid in ("SM1", "SM2", "SM3")]
    outcomes = receive_webhooks(engine, batch)
    assert answers(outcomes) == [
        (200, "accepted"),
        "RuntimeError('the ledger broke on SM2')",  # this request's 500
        (200, "accepted"),
    ]
    # Stored again one by one after the shared transaction failed: nothing of SM2.
    assert stored(engine) == ["SM1", "SM3"]
    assert logged(engine) == [("SM1", "accepted"), ("SM3", "accepted")]


def test_a_failure_of_a_lone_write_is_its_own(
    engine: Engine, twilio: int, public_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def reply(*_args: Any) -> Any:
        raise RuntimeError("broken")

    monkeypatch.setattr(TwilioConnector, "reply", reply)
    lone = incoming(twilio, "SM1", public_url)
    outcomes = receive_webhooks(engine, [lone, incoming(twilio + 1, "SM2", public_url)])
    assert answers(outcomes) == ["RuntimeError('broken')", (404, "unknown_connection")]
    assert stored(engine) == []
    with pytest.raises(RuntimeError, match="broken"):  # the route's single delivery
        receive_webhook(engine, "twilio", str(twilio), lone.request)


def test_a_connectors_error_while_verifying_is_that_deliverys_only(
    engine: Engine, twilio: int, public_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = TwilioConnector.verify_webhook

    def verify(self: TwilioConnector, s: Any, request: WebhookRequest) -> Any:
        if b"SM2" in request.body:
            raise KeyError("a bug on SM2")
        return real(self, s, request)

    monkeypatch.setattr(TwilioConnector, "verify_webhook", verify)
    batch = [incoming(twilio, sid, public_url) for sid in ("SM1", "SM2", "SM3")]
    assert answers(receive_webhooks(engine, batch)) == [
        (200, "accepted"),
        "KeyError('a bug on SM2')",
        (200, "accepted"),
    ]
    assert stored(engine) == ["SM1", "SM3"]
