"""The FastAPI application: tracking API, `/api` routers, docs at `/docs`.

Every error leaves as JSON in one shape, `{"success": false, "error": {"code",
"message", "field"}}` (plus FastAPI's usual `detail`), whether a router raised it,
FastAPI refused the request, or something broke.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

import guestlist.age.events  # registers the `Age Verified` check
import guestlist.consent.events  # noqa: F401  (registers the `Consent Updated` check)
from guestlist.api.connections import router as connections_router
from guestlist.api.consent import router as consent_router
from guestlist.api.hooks import router as hooks_router
from guestlist.api.hooks import webhook_receiver
from guestlist.api.privacy import router as privacy_router
from guestlist.api.profiles import router as profiles_router
from guestlist.api.segments import router as segments_router
from guestlist.api.zapier import router as zapier_router
from guestlist.capture.tracking import router as tracking_router
from guestlist.store.engine import get_engine

log = logging.getLogger(__name__)

# Routers served by the app, in order. Adding an `/api` resource is one line here.
ROUTERS: list[APIRouter] = [
    tracking_router,
    profiles_router,
    consent_router,
    privacy_router,
    segments_router,
    connections_router,
    zapier_router,
    hooks_router,
]


def _error(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    detail: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {
        "success": False,
        "error": {"code": code, "message": message, "field": field},
        "detail": message if detail is None else detail,
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _status_code_name(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


async def _on_http_exception(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    field = None
    # Routers raise `HTTPException(4xx, {"field": …, "message": …})` to name the field.
    if isinstance(exc.detail, dict):
        field = exc.detail.get("field") if isinstance(exc.detail.get("field"), str) else None
        if isinstance(exc.detail.get("message"), str):
            message = exc.detail["message"]
    return _error(
        exc.status_code, _status_code_name(exc.status_code), message, field,
        detail=exc.detail, headers=exc.headers,
    )


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    first = errors[0] if errors else {}
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query")]
    field = ".".join(location) or None
    message = str(first.get("msg", "invalid request"))
    return _error(
        422, "invalid_request", f"{field}: {message}" if field else message, field,
        detail=jsonable_errors(errors),
    )


def jsonable_errors(errors: list[Any]) -> list[dict[str, Any]]:
    return [
        {key: value for key, value in error.items() if key in ("loc", "msg", "type")}
        for error in errors
        if isinstance(error, dict)
    ]


async def _on_unhandled(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal_error", "internal server error")


def create_app(database_url: str | None = None, *, run_worker: bool = False) -> FastAPI:
    """The app on `database_url` (default: settings).

    `run_worker` asks for the inbox worker to run inside the server process; it is
    kept on `app.state.run_worker` for the lifespan below.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The single-machine default: one command serves and processes.
        if not app.state.run_worker:
            yield
            return
        from guestlist.jobs.worker import Worker
        from guestlist.pipeline import process_pending
        from guestlist.settings import get_settings

        settings = get_settings()
        thread, stop = Worker(
            app.state.engine,
            process_inbox=process_pending,
            batch_size=settings.worker_batch_size,
            poll_seconds=settings.worker_poll_seconds,
        ).start_in_thread()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=30)

    app = FastAPI(title="guestlist", docs_url="/docs", lifespan=lifespan)
    app.state.engine = get_engine(database_url)
    app.state.run_worker = run_worker
    app.state.webhooks = webhook_receiver(app.state.engine)

    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(Exception, _on_unhandled)

    @app.get("/health", tags=["health"], summary="Liveness")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    for router in ROUTERS:
        app.include_router(router)
    return app
