"""`/hooks/{platform}/{connection_id}`: vendor webhooks into the inbox.

The signature is checked against the URL the vendor called as `GUESTLIST_PUBLIC_URL`
says it (a proxy in front changes host, port and scheme), over the raw body bytes.
"""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from guestlist.api.deps import EngineDep
from guestlist.api.group_commit import GroupCommit
from guestlist.connectors.base import WebhookRequest
from guestlist.connectors.webhooks import (
    Incoming,
    WebhookAnswer,
    answer_handshake,
    receive_webhooks,
    refusal,
)
from guestlist.settings import get_settings
from guestlist.store.types import utcnow

router = APIRouter(tags=["webhooks"])

MAX_BODY = 5 << 20  # no vendor we receive from sends more in one delivery


def webhook_receiver(engine: Engine) -> GroupCommit[Incoming, WebhookAnswer]:
    """Deliveries that arrive together share one transaction (see `receive_webhooks`)."""
    return GroupCommit(partial(receive_webhooks, engine))


def public_url(request: Request) -> str:
    base = get_settings().public_url.rstrip("/")
    query = request.url.query
    return f"{base}{request.url.path}" + (f"?{query}" if query else "")


async def _body(request: Request) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/hooks/{platform}/{connection_id}/{token}",
    summary="Receive a webhook from a sender that cannot sign",
    description="The last segment is the connection's webhook secret (SendGrid Inbound "
    "Parse, Zapier…), compared in constant time.",
)
async def webhook_with_token(
    request: Request, platform: str, connection_id: str, token: str
) -> Response:
    return await webhook(request, platform, connection_id, token)


@router.post(
    "/hooks/{platform}/{connection_id}",
    summary="Receive a vendor webhook",
    description="Verifies the vendor's signature over the raw body, stores the delivery "
    "in the inbox (once per vendor event id) and answers 200 once it is stored.",
)
async def webhook(
    request: Request,
    platform: str,
    connection_id: str,
    token: str | None = None,
) -> Response:
    received_at = utcnow()
    body = await _body(request)
    if body is None:
        answer = refusal(413, "payload_too_large", f"a delivery is at most {MAX_BODY} bytes")
        return JSONResponse(answer.body, status_code=answer.status)
    delivery = WebhookRequest(
        method=request.method,
        url=public_url(request),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        received_at=received_at,
        path_token=token,
    )
    receiver: GroupCommit[Incoming, WebhookAnswer] = request.app.state.webhooks
    return _response(await receiver.submit(Incoming(platform, connection_id, delivery)))


def _response(answer: WebhookAnswer) -> Response:
    if answer.reply is not None:
        return Response(
            answer.reply.content,
            status_code=answer.reply.status,
            media_type=answer.reply.media_type,
        )
    return JSONResponse(answer.body, status_code=answer.status)


@router.get(
    "/hooks/{platform}/{connection_id}",
    summary="A vendor's verification handshake",
    description="Meta (Facebook Lead Ads) verifies a webhook URL with a GET carrying "
    "`hub.challenge`; Intercom checks a URL with a HEAD; other platforms answer 405.",
)
async def handshake(
    engine: EngineDep, request: Request, platform: str, connection_id: str
) -> Response:
    delivery = WebhookRequest(
        method=request.method,
        url=public_url(request),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=b"",
        received_at=utcnow(),
    )
    answer = await run_in_threadpool(answer_handshake, engine, platform, connection_id, delivery)
    return _response(answer)


# The same for HEAD, outside the OpenAPI document (one operation per method there).
router.add_api_route(
    "/hooks/{platform}/{connection_id}", handshake, methods=["HEAD"], include_in_schema=False
)
