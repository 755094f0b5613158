"""`/api/zapier/{connection_id}/…`: what a Zapier app calls with the user's API key.

- `GET /api/zapier/{id}`: the app's authentication test;
- `POST …/subscriptions` `{"hookUrl", "event": "segment.entered", "segment": slug}` →
  201 with the subscription's `id` (REST Hook subscribe);
- `GET …/subscriptions`; `DELETE …/subscriptions/{sid}` → 204 (unsubscribe).

A read or admin key (`Authorization: Bearer`) is accepted: a subscription sends a Zap
the people entering a segment, which a read key can already list (`GET
/api/segments/{slug}/members`). Write keys, which ship inside websites, are refused.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from guestlist.api.deps import EngineDep, ReadKey
from guestlist.connectors.zapier.subscriptions import (
    SubscriptionError,
    list_subscriptions,
    subscribe,
    unsubscribe,
)
from guestlist.keys import KeyInfo
from guestlist.store.tables import connections

router = APIRouter(prefix="/api/zapier", tags=["zapier"])


class SubscribeBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    hook_url: str = Field(
        validation_alias=AliasChoices("hookUrl", "targetUrl", "hook_url", "target_url"),
        pattern=r"^https://[^\s/]+(/\S*)?$",
        max_length=2000,
        description="the URL Zapier gave the app to post to (`bundle.targetUrl`); https only",
    )
    event: str = Field(default="segment.entered", description="`segment.entered`")
    segment: str = Field(min_length=1, max_length=100, description="the segment's slug")


def _actor(key: KeyInfo) -> str:
    return f"key:{key.key_id}"


def _refused(exc: SubscriptionError) -> HTTPException:
    return HTTPException(exc.status, {"field": exc.field, "message": exc.message})


@router.get("/{connection_id}", summary="Authentication test for a Zapier app")
def me(engine: EngineDep, key: ReadKey, connection_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(
            connections.select().where(
                connections.c.id == connection_id, connections.c.platform == "zapier"
            )
        ).first()
    if row is None:
        raise HTTPException(404, {"field": "connection_id",
                                  "message": f"no zapier connection {connection_id}"})
    return {"connection_id": int(row.id), "name": row.name, "key": key.kind}


@router.post(
    "/{connection_id}/subscriptions",
    status_code=201,
    summary="REST Hook subscribe: a Zap wants to hear when profiles enter a segment",
)
def create_subscription(
    engine: EngineDep, key: ReadKey, connection_id: int, body: SubscribeBody, response: Response
) -> dict[str, Any]:
    try:
        with engine.begin() as conn:
            found, new = subscribe(
                conn, connection_id, event=body.event, segment=body.segment,
                target_url=body.hook_url, actor=_actor(key),
            )
    except SubscriptionError as exc:
        raise _refused(exc) from None
    if not new:
        response.status_code = 200
    return found.as_json()


@router.get("/{connection_id}/subscriptions", summary="The connection's REST Hook subscriptions")
def subscriptions(engine: EngineDep, _key: ReadKey, connection_id: int) -> dict[str, Any]:
    try:
        with engine.connect() as conn:
            found = list_subscriptions(conn, connection_id)
    except SubscriptionError as exc:
        raise _refused(exc) from None
    return {"data": [s.as_json() for s in found]}


@router.delete(
    "/{connection_id}/subscriptions/{subscription_id}",
    status_code=204,
    summary="REST Hook unsubscribe: the Zap was turned off",
)
def delete_subscription(
    engine: EngineDep, key: ReadKey, connection_id: int, subscription_id: int
) -> Response:
    try:
        with engine.begin() as conn:
            unsubscribe(conn, connection_id, subscription_id, actor=_actor(key))
    except SubscriptionError as exc:
        raise _refused(exc) from None
    return Response(status_code=204)
