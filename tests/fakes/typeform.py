"""A fake Typeform API (forms, responses, me) for connector tests.

What it enforces, as the Typeform reference documents it:

- **Auth**: `Authorization: Bearer <token>`; otherwise 401 `AUTHENTICATION_FAILED`.
- **Retrieve responses** (`GET /forms/{id}/responses`): only the documented query
  parameters; `page_size` 1-1000 (default 25); `since`/`until` inclusive, as ISO 8601
  to the second or Unix seconds; `before`/`after` a response token, exclusive, and
  refused together with `sort`; newest first; `response_type` (`completed` by
  default); answer `{total_items, page_count, items}`.
- **Rate limit**: 2 requests a second per token (a token bucket of 2); over it, 429
  with `Retry-After`.
- **Faults**: a status (with `Retry-After`) on the k-th responses request, a number of
  times or every time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

FORM_ID = "Bt1Club"
RESPONSE_PARAMS = frozenset({
    "page_size", "since", "until", "after", "before", "included_response_ids",
    "excluded_response_ids", "response_type", "completed", "sort", "query", "fields",
    "answered_fields",
})
TITLES = {
    "email": "Your email address",
    "first_name": "What's your first name?",
    "dob": "Date of birth",
    "email_optin": "Yes, email me tasting invitations and offers from Bottle Shop.",
    "note": "Anything else?",
}


@dataclass
class Fault:
    request: int  # the k-th distinct responses request (1-based; retries are the same)
    status: int = 503
    times: int = 1  # -1: every time
    retry_after: str | None = None


@dataclass
class FakeTypeform:
    token: str = "tfp_test"
    responses: list[dict[str, Any]] = field(default_factory=list)
    rate: float = 2.0
    burst: float = 2.0
    faults: list[Fault] = field(default_factory=list)
    seen: list[dict[str, str]] = field(default_factory=list)  # responses requests' params
    distinct: list[tuple[tuple[str, str], ...]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # when each request came
    throttled: int = 0
    _tokens: float = 2.0
    _at: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def generated(cls, n: int, start: datetime | None = None) -> FakeTypeform:
        fake = cls()
        begin = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        for i in range(n):
            fake.add(i, begin + timedelta(minutes=7 * i))
        return fake

    def add(self, i: int, submitted: datetime) -> dict[str, Any]:
        answers: list[dict[str, Any]] = [
            _answer("email", "email", email=f"member{i}@example.com"),
            _answer("first_name", "short_text", "text", text=f"Member {i}"),
            _answer("dob", "date", date=f"{1970 + i % 30}-0{1 + i % 9}-1{i % 10}"),
            _answer("email_optin", "yes_no", "boolean", boolean=i % 3 != 0),
        ]
        if i % 4 == 0:
            answers.append(_answer("note", "long_text", "text", text=f"note {i}"))
        item = {
            "landing_id": f"land{i:06d}",
            "token": f"tok{i:06d}",
            "response_id": f"tok{i:06d}",
            "response_type": "completed",
            "landed_at": _iso(submitted - timedelta(minutes=2)),
            "submitted_at": _iso(submitted),
            "metadata": {"user_agent": "Mozilla/5.0", "platform": "other", "referer":
                         f"https://shop.typeform.com/to/{FORM_ID}", "network_id": "n1",
                         "browser": "default"},
            "hidden": {"store": "queen-st"},
            "calculated": {"score": 0},
            "answers": answers,
        }
        self.responses.append(item)
        return item

    def definition(self) -> dict[str, Any]:
        types = {"email": "email", "first_name": "short_text", "dob": "date",
                 "email_optin": "yes_no", "note": "long_text"}
        return {
            "id": FORM_ID,
            "title": "Bottle Shop Tasting Club",
            "fields": [{"id": f"id_{ref}", "ref": ref, "title": TITLES[ref], "type": kind}
                       for ref, kind in types.items()],
            "_links": {"display": f"https://shop.typeform.com/to/{FORM_ID}"},
        }

    # -- the HTTP side --------------------------------------------------------------

    def _throttle(self) -> JSONResponse | None:
        with self._lock:
            now = time.monotonic()
            self.times.append(now)
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens < 1:
                self.throttled += 1
                return JSONResponse({"code": "TOO_MANY_REQUESTS",
                                     "description": "Too many requests"},
                                    status_code=429, headers={"Retry-After": "1"})
            self._tokens -= 1
            return None

    def _auth(self, request: Request) -> JSONResponse | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"code": "AUTHENTICATION_FAILED",
                                 "description": "Authentication credentials not found"},
                                status_code=401)
        return None

    async def form(self, request: Request) -> JSONResponse:
        refused = self._auth(request) or self._throttle()
        if refused:
            return refused
        if request.path_params["form_id"] != FORM_ID:
            return JSONResponse({"code": "FORM_NOT_FOUND"}, status_code=404)
        return JSONResponse(self.definition())

    async def me(self, request: Request) -> JSONResponse:
        refused = self._auth(request) or self._throttle()
        if refused:
            return refused
        return JSONResponse({"alias": "bottleshop", "email": "owner@bottleshop.example",
                             "language": "en"})

    async def list_responses(self, request: Request) -> JSONResponse:
        refused = self._auth(request) or self._throttle()
        if refused:
            return refused
        params = dict(request.query_params)
        self.seen.append(params)
        key = tuple(sorted(params.items()))
        if key not in self.distinct:
            self.distinct.append(key)
        number = self.distinct.index(key) + 1
        for fault in self.faults:
            if fault.request == number and fault.times != 0:
                fault.times -= 1 if fault.times > 0 else 0
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                return JSONResponse({"code": "SERVER_ERROR"}, status_code=fault.status,
                                    headers=headers)
        unknown = set(params) - RESPONSE_PARAMS
        if unknown:
            return _bad(f"unknown parameter(s) {sorted(unknown)}")
        if request.path_params["form_id"] != FORM_ID:
            return JSONResponse({"code": "FORM_NOT_FOUND"}, status_code=404)
        try:
            size = int(params.get("page_size", "25"))
        except ValueError:
            return _bad("page_size must be an integer")
        if not 1 <= size <= 1000:
            return _bad("page_size must be between 1 and 1000")
        if "sort" in params and ("before" in params or "after" in params):
            return _bad("before/after cannot be used together with sort")
        kinds = set((params.get("response_type") or "completed").split(","))
        items = [r for r in self.responses if r["response_type"] in kinds]
        try:
            if "since" in params:
                since = _when(params["since"])
                items = [r for r in items if _when(r["submitted_at"]) >= since]
            if "until" in params:
                until = _when(params["until"])
                items = [r for r in items if _when(r["submitted_at"]) <= until]
        except ValueError as exc:
            return _bad(str(exc))
        items.sort(key=lambda r: (r["submitted_at"], r["token"]), reverse=True)
        total = len(items)
        if "before" in params:
            tokens = [r["token"] for r in items]
            if params["before"] not in tokens:
                return _bad("before: unknown token")
            items = items[tokens.index(params["before"]) + 1:]
        if "after" in params:
            tokens = [r["token"] for r in items]
            if params["after"] not in tokens:
                return _bad("after: unknown token")
            items = list(reversed(items[: tokens.index(params["after"])]))
        return JSONResponse({"total_items": total, "page_count": -(-total // size),
                             "items": items[:size]})

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/me", self.me),
            Route("/forms/{form_id}", self.form),
            Route("/forms/{form_id}/responses", self.list_responses),
        ])


def _answer(ref: str, field_type: str, kind: str | None = None, **value: Any) -> dict[str, Any]:
    return {"type": kind or field_type, **value,
            "field": {"id": f"id_{ref}", "type": field_type, "ref": ref}}


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _when(value: str) -> datetime:
    if value.isdigit():
        return datetime.fromtimestamp(int(value), UTC)
    text = value.rstrip("Z")
    try:
        at = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise ValueError(f"{value!r}: ISO 8601 UTC to the second, or Unix seconds") from None
    return at.replace(tzinfo=UTC)


def _bad(message: str) -> JSONResponse:
    return JSONResponse({"code": "VALIDATION_ERROR", "description": message}, status_code=400)
