"""A fake of the Intercom calls the connector makes, checked against the saved spec.

Every request is first checked against tests/fakes/specs/intercom.api.2.14.yaml (a copy
of Intercom's OpenAPI 3.0 document for 2.14, via tests.fakes.openapi_check): what the
document does not allow is answered 400 and recorded in `violations`, which tests
assert empty. Then, in Intercom's order: Bearer auth (401 `unauthorized`), the
`Intercom-Version` header (a violation unless `version`), the rate limit (`limit`
calls per `window` seconds of `clock`: 429 `rate_limit_exceeded`; every answer carries
`X-RateLimit-Limit`, `-Remaining` and `-Reset` in epoch seconds), injected faults
(`fail_search[k]`: statuses answered to the k-th search call, 0-based, one per try),
and the endpoint.

`POST /contacts/search` takes one `updated_at` filter (`>`, `<`, `=`), sorts on
`updated_at` ascending, pages by `per_page` (at most 150) and an opaque
`starting_after` cursor.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML: a dev dependency (see the report)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.openapi_check import OpenAPIDocument

SPEC = Path(__file__).resolve().parent / "specs" / "intercom.api.2.14.yaml"
TOKEN = "dG9rOmZha2UtaW50ZXJjb20tdG9rZW4="
VERSION = "2.14"
EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z
TAGS = {"101": "whisky club", "102": "wholesale", "103": "vip"}


@cache
def spec() -> OpenAPIDocument:
    """The document; parsing its 0.9 MB of YAML takes seconds, so a JSON copy is kept
    in the temp directory, keyed by the YAML's size and time."""
    stat = SPEC.stat()
    cached = Path(tempfile.gettempdir()) / (
        f"guestlist-intercom-2.14-{stat.st_size}-{int(stat.st_mtime)}.json")
    try:
        return OpenAPIDocument(json.loads(cached.read_text()))
    except (OSError, ValueError):
        pass
    document = yaml.load(SPEC.read_text(), Loader=yaml.CSafeLoader)
    partial = cached.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(document))
    partial.replace(cached)
    return OpenAPIDocument(document)


def error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    body = {"type": "error.list", "request_id": "fake-0001",
            "errors": [{"code": code, "message": message}]}
    return JSONResponse(body, status_code=status, headers=headers)


def contact_id(i: int) -> str:
    return hashlib.sha256(f"contact-{i}".encode()).hexdigest()[:24]


def make_contact(i: int, updated_at: int) -> dict[str, Any]:
    """Contact `i`, in the shape of the spec's Contact example, with variations."""
    tag_ids = [t for n, t in enumerate(TAGS) if (i + n) % 3 == 0]
    return {
        "type": "contact",
        "id": contact_id(i),
        "workspace_id": "a86dr8yl",
        "external_id": f"shop-{i}" if i % 2 == 0 else None,
        "role": "user" if i % 2 == 0 else "lead",
        "email": f"person{i}@example.com",
        "phone": f"+1802555{i % 10000:04d}" if i % 3 else None,
        "name": f"Person {i}",
        "has_hard_bounced": False,
        "marked_email_as_spam": False,
        "unsubscribed_from_emails": i % 5 == 2,
        "created_at": EPOCH + i,
        "updated_at": updated_at,
        "signed_up_at": EPOCH + i if i % 2 == 0 else None,
        "location": {"type": "location", "country": "United States", "region": "Vermont",
                     "city": "Burlington"},
        "custom_attributes": {},
        "tags": {"type": "list", "data": [{"type": "tag", "id": t, "url": f"/tags/{t}"}
                                          for t in tag_ids],
                 "url": f"/contacts/{contact_id(i)}/tags", "total_count": len(tag_ids),
                 "has_more": False},
    }


def _cursor(offset: int, query: Any) -> str:
    raw = json.dumps({"o": offset, "q": query}, sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode()


@dataclass
class IntercomFake:
    count: int = 0
    limit: int = 1000
    window: float = 10.0
    clock: Callable[[], float] = time.time
    version: str = VERSION
    fail_search: dict[int, list[int]] = field(default_factory=dict)
    contacts: list[dict[str, Any]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    searches: list[dict[str, Any]] = field(default_factory=list)
    throttled: int = 0
    most_in_window: int = 0
    _window_start: float = 0.0
    _in_window: int = 0

    def __post_init__(self) -> None:
        self.contacts = self.contacts or [
            make_contact(i, EPOCH + 1000 + i * 60) for i in range(self.count)]
        self._lock = threading.Lock()
        self.app = Starlette(routes=[
            Route("/contacts/search", self.search, methods=["POST"]),
            Route("/tags", self.tags, methods=["GET"]),
            Route("/me", self.me, methods=["GET"]),
        ])

    def touch(self, index: int, at: int) -> None:
        self.contacts[index] = make_contact(index, at)

    async def _gate(self, request: Request) -> tuple[Response | None, dict[str, str]]:
        body = await request.body()
        problems = spec().check_request(
            request.method, request.url.path, query=list(request.query_params.multi_items()),
            headers=dict(request.headers), body=body or None,
            content_type=request.headers.get("content-type"),
        )
        if problems:
            self.violations.extend(problems)
            return error(400, "parameter_invalid", "; ".join(problems)), {}
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return error(401, "unauthorized", "Access Token Invalid"), {}
        if request.headers.get("intercom-version") != self.version:
            self.violations.append(
                f"Intercom-Version {request.headers.get('intercom-version')!r}")
        with self._lock:
            now = self.clock()
            if now - self._window_start >= self.window:
                self._window_start, self._in_window = now, 0
            reset = int(self._window_start + self.window) + 1
            over = self._in_window >= self.limit
            if not over:
                self._in_window += 1
                self.most_in_window = max(self.most_in_window, self._in_window)
            headers = {
                "X-RateLimit-Limit": str(self.limit),
                "X-RateLimit-Remaining": str(max(0, self.limit - self._in_window)),
                "X-RateLimit-Reset": str(reset),
            }
        if over:
            self.throttled += 1
            return error(429, "rate_limit_exceeded", "Exceeded rate limit", **headers), headers
        return None, headers

    async def me(self, request: Request) -> Response:
        refused, headers = await self._gate(request)
        if refused:
            return refused
        return JSONResponse({"type": "admin", "id": "991267459", "email": "owner@cellar.example",
                             "name": "Owner", "app": {"type": "app", "id_code": "a86dr8yl",
                                                      "name": "Cellar & Co"}}, headers=headers)

    async def tags(self, request: Request) -> Response:
        refused, headers = await self._gate(request)
        if refused:
            return refused
        data = [{"type": "tag", "id": k, "name": v} for k, v in TAGS.items()]
        return JSONResponse({"type": "list", "data": data}, headers=headers)

    async def search(self, request: Request) -> Response:
        refused, headers = await self._gate(request)
        if refused:
            return refused
        call = len(self.searches)
        body = json.loads(await request.body())
        self.searches.append(body)
        pending = self.fail_search.get(call)
        if pending:
            status = pending.pop(0)
            if not pending:
                self.fail_search.pop(call)
            self.searches.pop()  # the same call is tried again
            return error(status, "server_error", "injected fault", **headers)
        query = body["query"]
        if query.get("field") != "updated_at" or query.get("operator") not in (">", "<", "="):
            self.violations.append(f"unsupported query {query}")
            return error(400, "parameter_invalid", "unsupported query")
        pagination = body.get("pagination") or {}
        per_page = int(pagination.get("per_page", 50))
        if per_page > 150:
            self.violations.append(f"per_page {per_page} > 150")
            return error(400, "parameter_invalid", "per_page is at most 150")
        value = int(query["value"])
        ops: dict[str, Callable[[int], bool]] = {
            ">": lambda v: v > value, "<": lambda v: v < value, "=": lambda v: v == value}
        matching = sorted((c for c in self.contacts if ops[query["operator"]](c["updated_at"])),
                          key=lambda c: (c["updated_at"], c["id"]))
        offset = 0
        if pagination.get("starting_after"):
            state = json.loads(base64.urlsafe_b64decode(pagination["starting_after"]))
            if state["q"] != query:
                self.violations.append("a cursor used with another query")
            offset = state["o"]
        page = matching[offset: offset + per_page]
        pages: dict[str, Any] = {
            "type": "pages", "page": offset // per_page + 1, "per_page": per_page,
            "total_pages": -(-len(matching) // per_page)}
        if offset + per_page < len(matching):
            pages["next"] = {"per_page": per_page,
                             "starting_after": _cursor(offset + per_page, query)}
        return JSONResponse({"type": "list", "data": page, "total_count": len(matching),
                             "pages": pages}, headers=headers)
