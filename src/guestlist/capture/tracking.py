"""The Segment-compatible HTTP Tracking API: `/v1/identify`, `/v1/track`, … `/v1/batch`.

Every Segment or RudderStack client can send here unchanged. A request is checked —
write key (HTTP Basic username, or `writeKey` in the body), gzip, sizes (32 KB per
message, 500 KB per request, both measured on the decompressed JSON) and each
message's fields — and then stored as ONE inbox row holding the body exactly as
received. The 200 is sent only after that row is committed; when anything is wrong
nothing is stored and a 4xx names the field (`batch[3].userId`).

This is the hot path: JSON is read with orjson and checked by hand; Pydantic models in
`tracking_schema` only describe the requests for `/docs`.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from guestlist.canonical import EVENT_TYPES, PropertyError
from guestlist.capture import tracking_schema as schema
from guestlist.capture.tracking_parse import BATCH_KIND, parse_timestamp
from guestlist.inbox.store import accept
from guestlist.keys import authenticate
from guestlist.store.types import utcnow

MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
# gzip adds a few bytes to data it cannot shrink; allow for that on the wire.
_WIRE_SLACK = 16 * 1024
_WRITE_KINDS = {"write"}
_OBJECT_FIELDS = ("traits", "properties", "context", "integrations")
_TIME_FIELDS = ("timestamp", "sentAt", "originalTimestamp")
_JSON_TYPES = ("application/json", "text/plain")  # analytics.js beacons send text/plain
_SUCCESS = b'{"success":true}'


class TrackingError(Exception):
    """A refused request: HTTP status, stable code, message, and the field at fault."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def response(self) -> Response:
        error = {"code": self.code, "message": self.message, "field": self.field}
        # `code` and `message` are repeated at the top level, where the Segment and
        # RudderStack Python clients look for them when they report a failure.
        body = {"success": False, "code": self.code, "message": self.message, "error": error}
        headers = {"WWW-Authenticate": 'Basic realm="guestlist"'} if self.status == 401 else None
        return Response(
            orjson.dumps(body), self.status, headers=headers, media_type="application/json"
        )


# --- reading the request -----------------------------------------------------------


def check_content_type(content_type: str | None) -> None:
    if not content_type:
        return
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type in _JSON_TYPES or media_type.endswith("+json"):
        return
    raise TrackingError(
        415, "unsupported_media_type", f"send JSON (application/json), not {media_type}"
    )


def decode_body(raw: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The request body as JSON bytes, inflating gzip; refuses more than `limit` bytes."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("identity", ""):
        data = raw
    elif encoding in ("gzip", "x-gzip"):
        data = _gunzip(raw, limit)
    else:
        raise TrackingError(
            415, "unsupported_content_encoding", f"Content-Encoding {encoding!r}; use gzip"
        )
    if len(data) > limit:
        raise _too_large(limit)
    return data


def _gunzip(raw: bytes, limit: int) -> bytes:
    if not raw:
        raise TrackingError(400, "invalid_gzip", "the gzip body is empty")
    out = bytearray()
    pending = raw
    try:
        while pending:  # concatenated gzip members are one stream (RFC 1952)
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out += inflater.decompress(pending, limit + 1 - len(out))
            if len(out) > limit:
                # Stopped early on purpose: a small body that inflates without end
                # (a "gzip bomb") costs at most `limit` bytes of memory.
                raise _too_large(limit)
            if not inflater.eof:
                raise TrackingError(400, "invalid_gzip", "the gzip body is truncated")
            pending = inflater.unused_data
    except zlib.error as exc:
        raise TrackingError(400, "invalid_gzip", f"the body is not valid gzip: {exc}") from exc
    return bytes(out)


def _too_large(limit: int, field: str | None = None) -> TrackingError:
    return TrackingError(
        413, "payload_too_large", f"the decompressed body is over {limit // 1024} KB", field
    )


def basic_auth_username(authorization: str | None) -> str | None:
    """The username of an HTTP Basic `Authorization` header (Segment's write key)."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise TrackingError(
            401, "invalid_authorization", "the Basic Authorization header is malformed",
            "Authorization",
        ) from exc
    return decoded.partition(":")[0] or None


# --- validating messages -----------------------------------------------------------


def _has_id(message: dict[str, Any], name: str, prefix: str) -> bool:
    value = message.get(name)
    if value is None or value == "":
        return False
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TrackingError(
            400, "invalid_type", f"{name} must be a string or a number", prefix + name
        )
    return True


def _missing(name: str, prefix: str, message: str | None = None) -> TrackingError:
    return TrackingError(400, "missing_field", message or f"{name} is required", prefix + name)


def _check_optional_string(message: dict[str, Any], name: str, prefix: str) -> None:
    value = message.get(name)
    if value is not None and not isinstance(value, str):
        raise TrackingError(400, "invalid_type", f"{name} must be a string", prefix + name)


def _check_time(value: Any, field: str) -> None:
    if value is None:
        return
    if isinstance(value, str):
        try:
            parse_timestamp(value)
            return
        except ValueError:
            pass
    raise TrackingError(
        400, "invalid_timestamp", f"{field.rpartition('.')[2]} must be an ISO-8601 date-time",
        field,
    )


def _check_external_ids(context: dict[str, Any], prefix: str) -> None:
    entries = context.get("externalIds")
    if entries is None:
        return
    field = f"{prefix}context.externalIds"
    if not isinstance(entries, list):
        raise TrackingError(400, "invalid_type", "context.externalIds must be an array", field)
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise TrackingError(400, "invalid_type", "an external id must be an object",
                                f"{field}[{i}]")
        if not isinstance(entry.get("type"), str) or not entry["type"]:
            raise _missing("type", f"{field}[{i}].")
        if not _has_id(entry, "id", f"{field}[{i}]."):
            raise _missing("id", f"{field}[{i}].")


# Reserved track events whose properties must be valid to be accepted (`Consent
# Updated`, `Age Verified`), registered by the packages that apply them.
EVENT_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {}


def register_event_check(event: str, check: Callable[[dict[str, Any]], None]) -> None:
    EVENT_CHECKS[event] = check


def validate_message(message: Any, path: str, call_type: str | None) -> str:
    """Check one Segment call and return its type; `path` is `""` or `batch[i]`.

    `call_type` comes from the URL for single calls; in a batch it is the message's
    own `type`.
    """
    if not isinstance(message, dict):
        raise TrackingError(400, "invalid_message", "a message must be a JSON object",
                            path or None)
    prefix = f"{path}." if path else ""
    if call_type is None:
        call_type = message.get("type")
        if call_type is None:
            raise _missing("type", prefix)
        if call_type not in EVENT_TYPES:
            raise TrackingError(
                400, "invalid_value", f"type must be one of {', '.join(EVENT_TYPES)}",
                prefix + "type",
            )
    if call_type == "alias":
        if not _has_id(message, "userId", prefix):
            raise _missing("userId", prefix, "alias needs userId (the new id)")
        if not _has_id(message, "previousId", prefix):
            raise _missing("previousId", prefix, "alias needs previousId (the old id)")
        _has_id(message, "anonymousId", prefix)
    else:
        has_user_id = _has_id(message, "userId", prefix)
        if not _has_id(message, "anonymousId", prefix) and not has_user_id:
            raise TrackingError(
                400, "missing_identity", "userId or anonymousId is required", prefix + "userId"
            )
        if call_type == "track":
            event = message.get("event")
            if event is None or event == "":
                raise _missing("event", prefix, "track needs an event name")
            if not isinstance(event, str):
                raise TrackingError(400, "invalid_type", "event must be a string",
                                    prefix + "event")
            check = EVENT_CHECKS.get(event)
            properties = message.get("properties")
            if check is not None and isinstance(properties, dict):
                try:
                    check(properties)
                except PropertyError as exc:
                    raise TrackingError(
                        400, "invalid_property", f"{event}: {exc.message}",
                        f"{prefix}properties.{exc.field}",
                    ) from None
        elif call_type == "group":
            if not _has_id(message, "groupId", prefix):
                raise _missing("groupId", prefix)
        elif call_type in ("page", "screen"):
            _check_optional_string(message, "name", prefix)
            _check_optional_string(message, "category", prefix)
    for name in _OBJECT_FIELDS:
        value = message.get(name)
        if value is not None and not isinstance(value, dict):
            raise TrackingError(400, "invalid_type", f"{name} must be an object", prefix + name)
    for name in _TIME_FIELDS:
        _check_time(message.get(name), prefix + name)
    _check_optional_string(message, "messageId", prefix)
    context = message.get("context")
    if context:
        _check_external_ids(context, prefix)
    return str(call_type)


def validate_batch(body: dict[str, Any], size: int) -> list[Any]:
    """Check a `/v1/batch` body (all-or-nothing) and return its messages."""
    messages = body.get("batch")
    if messages is None:
        raise _missing("batch", "")
    if not isinstance(messages, list):
        raise TrackingError(400, "invalid_type", "batch must be an array", "batch")
    for name in ("context", "integrations"):
        value = body.get(name)
        if value is not None and not isinstance(value, dict):
            raise TrackingError(400, "invalid_type", f"{name} must be an object", name)
    _check_time(body.get("sentAt"), "sentAt")
    if size > MAX_MESSAGE_BYTES:  # only then can one message be over the limit
        for i, message in enumerate(messages):
            if len(orjson.dumps(message)) > MAX_MESSAGE_BYTES:
                raise TrackingError(
                    413, "message_too_large",
                    f"a message may be at most {MAX_MESSAGE_BYTES // 1024} KB", f"batch[{i}]",
                )
    for i, message in enumerate(messages):
        validate_message(message, f"batch[{i}]", None)
    return messages


# --- handling one request ----------------------------------------------------------


def handle_tracking_request(
    engine: Engine,
    call_type: str | None,
    raw: bytes,
    headers: dict[str, str],
    stored_headers: dict[str, str],
    received_at: datetime,
) -> Response:
    """Everything after the body is read: check, authenticate, store, answer.

    `call_type` is None for `/v1/batch`; `headers` are the request's (lower-case
    names) and `stored_headers` the ones kept with the envelope.
    """
    try:
        check_content_type(headers.get("content-type"))
        header_key = basic_auth_username(headers.get("authorization"))
        key = None
        if header_key is not None:
            key = authenticate(engine, header_key, _WRITE_KINDS)
            if key is None:
                raise TrackingError(401, "invalid_write_key", "unknown or revoked write key",
                                    "Authorization")
        limit = MAX_BATCH_BYTES if call_type is None else MAX_MESSAGE_BYTES
        data = decode_body(raw, headers.get("content-encoding"), limit)
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise TrackingError(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise TrackingError(400, "invalid_body", "the body must be a JSON object")
        if key is None:
            body_key = body.get("writeKey")
            if body_key is None or body_key == "":
                raise TrackingError(
                    401, "missing_write_key",
                    "send the write key as the Basic auth username or as writeKey",
                    "writeKey",
                )
            if isinstance(body_key, str):
                key = authenticate(engine, body_key, _WRITE_KINDS)
            if key is None:
                raise TrackingError(401, "invalid_write_key", "unknown or revoked write key",
                                    "writeKey")
        if call_type is None:
            if not validate_batch(body, len(data)):
                return Response(_SUCCESS, media_type="application/json")  # nothing to keep
            kind = BATCH_KIND
        else:
            kind = f"tracking.{validate_message(body, '', call_type)}"
        assert key.source_id is not None  # write keys always have a source
        with engine.begin() as conn:
            accept(
                conn,
                source_id=key.source_id,
                kind=kind,
                headers=stored_headers,
                body=data,
                received_at=received_at,
            )
    except TrackingError as error:
        return error.response()
    return Response(_SUCCESS, media_type="application/json")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit - _WIRE_SLACK)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit - _WIRE_SLACK)
        chunks.append(chunk)
    return b"".join(chunks)


# Kept with the envelope: proof of where a call came from, and `sec-gpc`, the Global
# Privacy Control signal, which only the HTTP request shows (P-5, consent/gpc.py).
STORED_HEADERS = ("content-type", "user-agent", "x-forwarded-for", "sec-gpc")


def _stored_headers(request: Request) -> dict[str, str]:
    kept = {
        name: value
        for name in STORED_HEADERS
        if (value := request.headers.get(name)) is not None
    }
    if request.client is not None:
        kept["client-ip"] = request.client.host
    return kept


async def receive(request: Request, call_type: str | None) -> Response:
    received_at = utcnow()
    limit = (MAX_BATCH_BYTES if call_type is None else MAX_MESSAGE_BYTES) + _WIRE_SLACK
    try:
        raw = await _read_body(request, limit)
    except TrackingError as error:
        return error.response()
    headers = {name: request.headers[name] for name in
               ("content-type", "content-encoding", "authorization") if name in request.headers}
    return await run_in_threadpool(
        handle_tracking_request,
        request.app.state.engine,
        call_type,
        raw,
        headers,
        _stored_headers(request),
        received_at,
    )


# --- routes ------------------------------------------------------------------------

router = APIRouter(tags=["tracking"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": schema.Accepted, "description": "Stored; it will be processed shortly."},
    400: {"model": schema.Rejected, "description": "Malformed JSON or gzip, or a bad field."},
    401: {"model": schema.Rejected, "description": "Missing, unknown or revoked write key."},
    413: {"model": schema.Rejected, "description": "Over 32 KB per message or 500 KB in all."},
    415: {"model": schema.Rejected, "description": "Not JSON, or an unknown Content-Encoding."},
}


def _add_route(path: str, call_type: str | None, model: type[BaseModel], summary: str) -> None:
    async def endpoint(request: Request) -> Response:
        return await receive(request, call_type)

    router.add_api_route(
        path,
        endpoint,
        methods=["POST"],
        name=f"tracking_{path.rpartition('/')[2]}",
        summary=summary,
        response_model=None,
        responses=_RESPONSES,
        openapi_extra=schema.request_body(model),
    )


_add_route("/v1/identify", "identify", schema.IdentifyCall, "Identify a person and set traits")
_add_route("/v1/track", "track", schema.TrackCall, "Record an action a person took")
_add_route("/v1/page", "page", schema.PageCall, "Record a page view")
_add_route("/v1/screen", "screen", schema.ScreenCall, "Record an app screen view")
_add_route("/v1/group", "group", schema.GroupCall, "Associate a person with a group")
_add_route("/v1/alias", "alias", schema.AliasCall, "Merge a previous id into a user id")
_add_route("/v1/batch", None, schema.BatchCall, "Send many calls at once (all or none)")
_add_route("/v1/import", None, schema.BatchCall, "Segment's name for batch (historical data)")
