"""Receiving a webhook: find the connection, verify, store in the inbox, log, answer.

The envelope and the log line are written in one transaction whose commit comes
before the 2xx, so an acknowledged delivery is never lost; a redelivery (same vendor
event id) is answered 200 and stored once. Refusals are logged with the delivery's id
when the request shows one, and answered with a JSON body naming what was wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from sqlalchemy import Connection, Engine

from guestlist.connectors.base import (
    CONTEXT_PREFIX,
    Capability,
    Delivery,
    Reply,
    WebhookRejected,
    WebhookRequest,
)
from guestlist.connectors.connections import (
    ConnectionInfo,
    Loaded,
    UnknownConnection,
    load,
    log_entry,
    log_event,
    log_events,
)
from guestlist.connectors.registry import UnknownPlatform, connector_for
from guestlist.inbox.store import NewEnvelope, accept_many
from guestlist.store.engine import read_connection

log = structlog.get_logger(__name__)

# Headers never kept with an envelope: credentials that some senders put there.
UNKEPT_HEADERS = frozenset(
    {"authorization", "cookie", "proxy-authorization", "x-api-key", "x-verification-token"}
)


@dataclass(frozen=True, slots=True)
class WebhookAnswer:
    status: int
    body: dict[str, Any] = field(default_factory=dict)
    reply: Reply | None = None  # the vendor's own format, instead of `body` as JSON


def refusal(status: int, code: str, message: str, field: str | None = None) -> WebhookAnswer:
    """The API's error shape: `{"success": false, "error": {code, message, field}}`."""
    return WebhookAnswer(
        status,
        {"success": False, "error": {"code": code, "message": message, "field": field}},
    )


def _unknown(platform: str, connection_id: str) -> WebhookAnswer:
    return refusal(
        404, "unknown_connection", f"no {platform} connection {connection_id}", "connection_id"
    )


@dataclass(frozen=True, slots=True)
class Incoming:
    """A delivery as it arrived at `/hooks/{platform}/{connection_id}`."""

    platform: str
    connection_id: str
    request: WebhookRequest


def receive_webhook(
    engine: Engine, platform: str, connection_id: str, request: WebhookRequest
) -> WebhookAnswer:
    outcome = receive_webhooks(engine, [Incoming(platform, connection_id, request)])[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def receive_webhooks(
    engine: Engine, incoming: Sequence[Incoming]
) -> list[WebhookAnswer | Exception]:
    """Deliveries that arrived together, each verified and stored in one transaction.

    One commit for the lot (group commit): on SQLite a commit is the write lock and a
    WAL sync, and it was most of a delivery's cost; on PostgreSQL the envelopes and
    log lines go in one statement each instead of a round trip each. Nothing is
    answered before that commit. Should the shared transaction fail, each delivery is
    stored again in its own, so one delivery's error (returned in its place) is never
    another's.
    """
    found = _connections(engine, {item.connection_id for item in incoming})
    steps = [_verify_one(item, found) for item in incoming]
    writes = [step for step in steps if isinstance(step, _Rejected | _Accepted)]
    outcomes: list[WebhookAnswer | Exception]
    try:
        with engine.begin() as conn:
            outcomes = _store(conn, steps)
    except Exception as exc:
        # Each write again on its own, unless it was the only one: then the error is
        # that delivery's.
        alone = len(writes) > 1
        outcomes = [
            (_alone(engine, step) if alone else exc)
            if isinstance(step, _Rejected | _Accepted)
            else step
            for step in steps
        ]
    for step, outcome in zip(steps, outcomes, strict=True):
        if isinstance(step, _Rejected | _Accepted) and isinstance(outcome, WebhookAnswer):
            step.log(outcome)
    return outcomes


def _alone(engine: Engine, step: _Rejected | _Accepted) -> WebhookAnswer | Exception:
    try:
        with engine.begin() as conn:
            return _store(conn, [step])[0]
    except Exception as exc:  # answered as this delivery's 500
        return exc


def _store(conn: Connection, steps: Sequence[_Step]) -> list[WebhookAnswer | Exception]:
    accepted = [step for step in steps if isinstance(step, _Accepted)]
    inbox_ids = iter(accept_many(conn, [step.envelope for step in accepted]))
    answers: list[WebhookAnswer | Exception] = []
    entries: list[dict[str, Any]] = []
    for step in steps:
        if isinstance(step, _Accepted):
            answer, entry = step.answer(conn, next(inbox_ids))
        elif isinstance(step, _Rejected):
            answer, entry = step.answer()
        else:
            answers.append(step)
            continue
        answers.append(answer)
        entries.append(entry)
    log_events(conn, entries)
    return answers


def _connections(engine: Engine, ids: set[str]) -> dict[int, Loaded]:
    """The connections these deliveries name, read once for the batch."""
    found: dict[int, Loaded] = {}
    wanted = sorted(int(ref) for ref in ids if ref.isdigit())
    if not wanted:
        return found
    # Finding connections and checking signatures need no write lock: only storing
    # does, so the write transaction (one at a time on SQLite) stays short.
    with read_connection(engine) as conn:
        for ref in wanted:
            try:
                found[ref] = load(conn, ref)
            except UnknownConnection:
                continue
    return found


def _verify_one(item: Incoming, found: Mapping[int, Loaded]) -> _Step:
    try:
        return _verify(item, found)
    except Exception as exc:  # a connector's error on this delivery: its own 500
        return exc


def _verify(
    item: Incoming, found: Mapping[int, Loaded]
) -> WebhookAnswer | _Rejected | _Accepted:
    """The answer when there is nothing to write, else what to write."""
    platform, connection_id, request = item.platform, item.connection_id, item.request
    try:
        connector_for(platform)
    except UnknownPlatform as exc:
        return refusal(404, "unknown_platform", str(exc), "platform")
    loaded = found.get(int(connection_id)) if connection_id.isdigit() else None
    if loaded is None or loaded[2].platform != platform:
        return _unknown(platform, connection_id)
    connector, settings, info = loaded
    if Capability.WEBHOOK not in connector.capabilities:
        return refusal(404, "no_webhooks", f"{platform} sends no webhooks here", "platform")
    request = replace(request, connection_name=info.name)
    try:
        delivery = connector.verify_webhook(settings, request)
    except WebhookRejected as exc:
        return _Rejected(info, exc)
    kept = {
        k: v
        for k, v in request.headers.items()
        if k not in UNKEPT_HEADERS and not k.startswith(CONTEXT_PREFIX)
    }
    for name, value in delivery.context.items():
        if not name.startswith(CONTEXT_PREFIX):
            raise ValueError(f"delivery context {name!r} must start with {CONTEXT_PREFIX}")
        kept[name] = value
    envelope = NewEnvelope(
        source_id=info.source_id,
        kind=f"{platform}.{delivery.topic}",
        headers=kept,
        body=request.body if delivery.stored_body is None else delivery.stored_body,
        idempotency_key=delivery.delivery_id,
        received_at=request.received_at,
    )
    return _Accepted(loaded, request, delivery, envelope)


@dataclass(frozen=True, slots=True)
class _Rejected:
    """A delivery whose signature or body was refused: logged, then answered 4xx."""

    info: ConnectionInfo
    error: WebhookRejected

    def answer(self) -> tuple[WebhookAnswer, dict[str, Any]]:
        exc = self.error
        entry = log_entry(
            self.info.id,
            "webhook",
            "rejected",
            status=exc.status,
            delivery_id=exc.delivery_id,
            detail=f"{exc.error}: {exc.message}",
        )
        return refusal(exc.status, exc.error, exc.message, exc.field), entry

    def log(self, answer: WebhookAnswer) -> None:
        exc = self.error
        log.warning(
            "webhook refused",
            platform=self.info.platform,
            connection_id=self.info.id,
            delivery_id=exc.delivery_id,
            error=exc.error,
            detail=exc.message,
        )


@dataclass(frozen=True, slots=True)
class _Accepted:
    """A verified delivery: stored in the inbox (once per vendor id), then answered."""

    loaded: Loaded
    request: WebhookRequest
    delivery: Delivery
    envelope: NewEnvelope

    def answer(
        self, conn: Connection, inbox_id: int | None
    ) -> tuple[WebhookAnswer, dict[str, Any]]:
        connector, settings, info = self.loaded
        delivery = self.delivery
        outcome = "accepted" if inbox_id is not None else "duplicate"
        reply = connector.reply(conn, settings, self.request, delivery, info.source_id)
        entry = log_entry(
            info.id,
            "webhook",
            outcome,
            status=200,
            delivery_id=delivery.delivery_id,
            detail=delivery.topic,
            inbox_id=inbox_id,
        )
        body = {"status": outcome, "delivery_id": delivery.delivery_id}
        return WebhookAnswer(200, body, reply=reply), entry

    def log(self, answer: WebhookAnswer) -> None:
        log.info(
            "webhook received",
            platform=self.loaded[2].platform,
            connection_id=self.loaded[2].id,
            topic=self.delivery.topic,
            delivery_id=self.delivery.delivery_id,
            outcome=answer.body["status"],
        )


# What a delivery became once verified: an answer or an error with nothing to write,
# or a refusal or an envelope to write.
_Step = WebhookAnswer | Exception | _Rejected | _Accepted


def answer_handshake(
    engine: Engine, platform: str, connection_id: str, request: WebhookRequest
) -> WebhookAnswer:
    """A GET to a webhook URL: the connector's verification handshake, if it has one."""
    try:
        connector_for(platform)
    except UnknownPlatform as exc:
        return refusal(404, "unknown_platform", str(exc), "platform")
    if not connection_id.isdigit():
        return _unknown(platform, connection_id)
    with engine.begin() as conn:
        try:
            connector, settings, info = load(conn, int(connection_id))
        except UnknownConnection:
            return _unknown(platform, connection_id)
        if info.platform != platform:
            return _unknown(platform, connection_id)
        try:
            reply = connector.handshake(settings, request)
        except WebhookRejected as exc:
            log_event(
                conn,
                info.id,
                "webhook",
                "rejected",
                status=exc.status,
                detail=f"handshake: {exc.error}: {exc.message}",
            )
            return refusal(exc.status, exc.error, exc.message, exc.field)
        log_event(conn, info.id, "webhook", "handshake", status=reply.status)
    return WebhookAnswer(reply.status, reply=reply)
