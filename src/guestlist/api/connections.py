"""Connections over HTTP: add, list, show (with backfill progress), test, backfill,
log, remove. Credentials go in and never come out. See docs/connectors.md."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from guestlist.api.deps import AdminKey, ConnectionDep, EngineDep, ReadKey
from guestlist.connectors.backfill import BackfillConflict  # noqa: F401  (registers the job)
from guestlist.connectors.base import Capability
from guestlist.connectors.connections import (
    NameTaken,
    SettingsInvalid,
    UnknownConnection,
    add,
    check_connection,
    get,
    list_all,
    load,
    log_entries,
    remove,
    secret_fields,
)
from guestlist.connectors.registry import PLATFORMS, UnknownPlatform, available, connector_for
from guestlist.inbox.store import failed_envelopes, requeue_failed
from guestlist.jobs.queue import enqueue
from guestlist.keys import KeyInfo

router = APIRouter(prefix="/api", tags=["connections"])


def _actor(key: KeyInfo) -> str:
    return f"key:{key.key_id}"


def _bad(status: int, field: str, message: str) -> HTTPException:
    return HTTPException(status, {"field": field, "message": message})


class ConnectionBody(BaseModel):
    platform: str = Field(description="a platform slug, e.g. `shopify`")
    name: str = Field(description="unique name, e.g. `Main Street shop`")
    settings: dict[str, Any] = Field(default_factory=dict)


class BackfillBody(BaseModel):
    streams: list[str] | None = Field(default=None, description="default: all, in order")
    restart: bool = Field(default=False, description="start over instead of resuming")


@router.get("/platforms", summary="Platforms, what each can do and the settings it takes")
def platforms(_key: ReadKey) -> dict[str, Any]:
    ready = {c.slug: c for c in available()}
    data = []
    for slug in PLATFORMS:
        connector = ready.get(slug)
        if connector is None:
            data.append({"platform": slug, "available": False})
            continue
        data.append(
            {
                "platform": slug,
                "available": True,
                "title": connector.title,
                "capabilities": sorted(c.value for c in connector.capabilities),
                "streams": list(connector.streams),
                "settings": connector.settings_model.model_json_schema(),
                "secret_settings": secret_fields(connector.settings_model),
            }
        )
    return {"data": data}


@router.get("/connections", summary="All connections")
def index(conn: ConnectionDep, _key: ReadKey) -> dict[str, Any]:
    return {"data": [c.as_json() for c in list_all(conn)]}


@router.post("/connections", status_code=201, summary="Add a connection")
def create(engine: EngineDep, key: AdminKey, body: ConnectionBody) -> dict[str, Any]:
    try:
        info, generated = add(engine, body.platform, body.name, body.settings, actor=_actor(key))
    except UnknownPlatform as exc:
        raise _bad(422, "platform", str(exc)) from None
    except SettingsInvalid as exc:
        field = exc.field if exc.field == "name" else f"settings.{exc.field}"
        raise _bad(422, field, exc.message) from None
    except NameTaken as exc:
        raise _bad(409, "name", str(exc)) from None
    out = info.as_json()
    if generated:
        out["webhook_secret"] = generated  # shown once, to paste into the vendor
    return out


def _found(conn: Any, ref: str) -> Any:
    try:
        return get(conn, ref)
    except UnknownConnection:
        raise _bad(404, "connection", f"no connection {ref!r}") from None


@router.get("/connections/{ref}", summary="One connection, with its streams' progress")
def show(conn: ConnectionDep, _key: ReadKey, ref: str) -> dict[str, Any]:
    out: dict[str, Any] = _found(conn, ref).as_json()
    return out


@router.delete("/connections/{ref}", status_code=204, summary="Remove a connection")
def delete(engine: EngineDep, key: AdminKey, ref: str) -> Response:
    try:
        remove(engine, ref, actor=_actor(key))
    except UnknownConnection:
        raise _bad(404, "connection", f"no connection {ref!r}") from None
    return Response(status_code=204)


@router.post("/connections/{ref}/test", summary="Call the vendor once with the credentials")
async def test(engine: EngineDep, _key: AdminKey, ref: str) -> dict[str, Any]:
    try:
        ok, message = await run_in_threadpool(check_connection, engine, ref)
    except UnknownConnection:
        raise _bad(404, "connection", f"no connection {ref!r}") from None
    return {"ok": ok, "message": message}


@router.post(
    "/connections/{ref}/backfill",
    status_code=202,
    summary="Start a backfill (a job); follow it on GET /api/connections/{ref}",
)
def start_backfill(
    engine: EngineDep, _key: AdminKey, ref: str, body: BackfillBody | None = None
) -> dict[str, Any]:
    body = body or BackfillBody()
    with engine.begin() as conn:
        try:
            connector, _settings, info = load(conn, ref)
        except UnknownConnection:
            raise _bad(404, "connection", f"no connection {ref!r}") from None
        if Capability.PULL not in connector.capabilities:
            raise _bad(422, "connection", f"{info.platform} connections cannot be pulled")
        for i, stream in enumerate(body.streams or []):
            if stream not in connector.streams:
                raise _bad(
                    422,
                    f"streams[{i}]",
                    f"unknown stream {stream!r} (streams: {', '.join(connector.streams)})",
                )
        job_id = enqueue(
            conn,
            "connections.backfill",
            {"connection_id": info.id, "streams": body.streams, "restart": body.restart},
            unique_key=f"connections.backfill:{info.id}",
        )
    if job_id is None:
        raise _bad(409, "connection", "a backfill of this connection is already queued or running")
    return {"job_id": job_id, "connection_id": info.id,
            "streams": body.streams or list(connector.streams)}


@router.get("/connections/{ref}/log", summary="Deliveries, pulls and tests, newest first")
def read_log(
    conn: ConnectionDep,
    _key: ReadKey,
    ref: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    info = _found(conn, ref)
    return {"data": log_entries(conn, info.id, limit=limit, before_id=before)}


@router.get(
    "/connections/{ref}/failures",
    summary="Deliveries and pages that could not be read into events, and why",
)
def failures(
    conn: ConnectionDep,
    _key: ReadKey,
    ref: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    info = _found(conn, ref)
    return {"data": failed_envelopes(conn, info.source_id, limit=limit)}


@router.post(
    "/connections/{ref}/retry",
    summary="Put the connection's failed deliveries back in line for the worker",
)
def retry(engine: EngineDep, _key: AdminKey, ref: str) -> dict[str, Any]:
    with engine.begin() as conn:
        info = _found(conn, ref)
        return {"requeued": requeue_failed(conn, info.source_id)}


__all__ = ["connector_for", "router"]
