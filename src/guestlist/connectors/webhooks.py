"""Receiving a webhook: find the connection, verify, store in the inbox, log, answer.

The envelope and the log line are written in one transaction whose commit comes
before the 2xx, so an acknowledged delivery is never lost; a redelivery (same vendor
event id) is answered 200 and stored once. Refusals are logged with the delivery's id
when the request shows one, and answered with a JSON body naming what was wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from sqlalchemy import Engine

from guestlist.connectors.base import (
    CONTEXT_PREFIX,
    Capability,
    Reply,
    WebhookRejected,
    WebhookRequest,
)
from guestlist.connectors.connections import UnknownConnection, load, log_event
from guestlist.connectors.registry import UnknownPlatform, connector_for
from guestlist.inbox.store import accept
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


def receive_webhook(
    engine: Engine, platform: str, connection_id: str, request: WebhookRequest
) -> WebhookAnswer:
    try:
        connector_for(platform)
    except UnknownPlatform as exc:
        return refusal(404, "unknown_platform", str(exc), "platform")
    if not connection_id.isdigit():
        return _unknown(platform, connection_id)
    # Finding the connection and checking the signature need no write lock: only
    # storing does, so the write transaction (one at a time on SQLite) stays short.
    with read_connection(engine) as conn:
        try:
            connector, settings, info = load(conn, int(connection_id))
        except UnknownConnection:
            return _unknown(platform, connection_id)
    if info.platform != platform:
        return _unknown(platform, connection_id)
    if Capability.WEBHOOK not in connector.capabilities:
        return refusal(404, "no_webhooks", f"{platform} sends no webhooks here", "platform")
    request = replace(request, connection_name=info.name)
    try:
        delivery = connector.verify_webhook(settings, request)
    except WebhookRejected as exc:
        log.warning(
            "webhook refused",
            platform=platform,
            connection_id=info.id,
            delivery_id=exc.delivery_id,
            error=exc.error,
            detail=exc.message,
        )
        with engine.begin() as conn:
            log_event(
                conn,
                info.id,
                "webhook",
                "rejected",
                status=exc.status,
                delivery_id=exc.delivery_id,
                detail=f"{exc.error}: {exc.message}",
            )
        return refusal(exc.status, exc.error, exc.message, exc.field)
    kept = {
        k: v
        for k, v in request.headers.items()
        if k not in UNKEPT_HEADERS and not k.startswith(CONTEXT_PREFIX)
    }
    for name, value in delivery.context.items():
        if not name.startswith(CONTEXT_PREFIX):
            raise ValueError(f"delivery context {name!r} must start with {CONTEXT_PREFIX}")
        kept[name] = value
    with engine.begin() as conn:
        inbox_id = accept(
            conn,
            source_id=info.source_id,
            kind=f"{platform}.{delivery.topic}",
            headers=kept,
            body=request.body if delivery.stored_body is None else delivery.stored_body,
            idempotency_key=delivery.delivery_id,
            received_at=request.received_at,
        )
        outcome = "accepted" if inbox_id is not None else "duplicate"
        reply = connector.reply(conn, settings, request, delivery, info.source_id)
        log_event(
            conn,
            info.id,
            "webhook",
            outcome,
            status=200,
            delivery_id=delivery.delivery_id,
            detail=delivery.topic,
            inbox_id=inbox_id,
        )
    log.info(
        "webhook received",
        platform=platform,
        connection_id=info.id,
        topic=delivery.topic,
        delivery_id=delivery.delivery_id,
        outcome=outcome,
    )
    return WebhookAnswer(200, {"status": outcome, "delivery_id": delivery.delivery_id}, reply=reply)


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
