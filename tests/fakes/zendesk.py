"""A fake of the Zendesk calls the connector makes: the cursor-based incremental users
export and `users/me`.

In Zendesk's order: auth (Basic `{email}/token:{api_token}` or `Bearer {oauth}`, else
401 `Couldn't authenticate you`), the incremental-export limit (`limit` requests per
`window` seconds of `clock`, default 10 a minute: 429 with `Retry-After`), injected
faults (`fail_at[k]`: statuses answered, one per try, to the request that would serve
export page k; `slow_at[k]`: seconds to wait before answering it), then the endpoint.

The export: `start_time` (epoch seconds, at least a minute in the past) on the first
request, `cursor` afterwards; `per_page` at most 1000. Users are ordered by
(`updated_at`, `id`); a cursor points after a user, so a user changed later comes
again after it. Every answer has `after_cursor` (also at the end: where the next run
continues), `end_of_stream`, and the `users`.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

EMAIL = "owner@cellar.example"
API_TOKEN = "zd-fake-api-token-6wK2"
OAUTH_TOKEN = "zd-fake-oauth-9Qp1"
EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z
EXPORT = "/api/v2/incremental/users/cursor.json"


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_agent(i: int) -> bool:
    return i % 7 == 3


def make_user(i: int, updated_at: int) -> dict[str, Any]:
    """User `i` in the shape of the export's documented example; every 7th an agent."""
    return {
        "id": 9_000_000 + i,
        "url": f"https://cellarco.zendesk.com/api/v2/users/{9_000_000 + i}.json",
        "name": f"Person {i}",
        "email": f"person{i}@example.com",
        "phone": f"+1802555{i % 10000:04d}" if i % 3 else None,
        "external_id": f"shop-{i}" if i % 2 == 0 else None,
        "role": "agent" if is_agent(i) else "end-user",
        "active": True,
        "suspended": False,
        "verified": True,
        "locale": "en-US",
        "time_zone": "Eastern Time (US & Canada)",
        "tags": ["vip"] if i % 4 == 0 else [],
        "organization_id": None,
        "created_at": iso(EPOCH + i),
        "updated_at": iso(updated_at),
        "user_fields": {"birthdate": f"19{70 + i % 30}-0{1 + i % 9}-1{i % 10}T00:00:00Z",
                        "loyalty_tier": "gold" if i % 5 == 0 else None},
    }


def encode(updated_at: int, user_id: int) -> str:
    return base64.urlsafe_b64encode(f"{updated_at}|{user_id}".encode()).decode()


def decode(cursor: str) -> tuple[int, int] | None:
    try:
        ts, uid = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return int(ts), int(uid)
    except (ValueError, UnicodeDecodeError):
        return None


class ZendeskFake:
    def __init__(self, count: int = 30, *, clock: Callable[[], float] = time.time,
                 limit: int = 10, window: float = 60.0) -> None:
        self.clock = clock
        self.limit = limit
        self.window = window
        self.users = [make_user(i, EPOCH + 1000 + i * 60) for i in range(count)]
        self.stamps = {u["id"]: EPOCH + 1000 + i * 60 for i, u in enumerate(self.users)}
        self.calls: deque[float] = deque()
        self.most_in_window = 0
        self.throttled = 0
        self.pages_served = 0
        self.fail_at: dict[int, list[int]] = {}
        self.slow_at: dict[int, float] = {}
        self.exports: list[dict[str, str]] = []  # each export request's query
        self._lock = threading.Lock()
        self.app = Starlette(routes=[
            Route(EXPORT, self.export),
            Route("/api/v2/users/me.json", self.me),
        ])

    @property
    def customers(self) -> int:
        return sum(1 for u in self.users if u["role"] == "end-user")

    def touch(self, i: int, at: int) -> None:
        """User `i` changes at `at` (epoch seconds)."""
        self.users[i]["updated_at"] = iso(at)
        self.users[i]["name"] = f"Person {i} (changed)"
        self.stamps[self.users[i]["id"]] = at

    def _authorized(self, request: Request) -> bool:
        given = request.headers.get("authorization", "")
        basic = base64.b64encode(f"{EMAIL}/token:{API_TOKEN}".encode()).decode()
        return given in (f"Basic {basic}", f"Bearer {OAUTH_TOKEN}")

    def _throttle(self) -> JSONResponse | None:
        now = self.clock()
        with self._lock:
            while self.calls and self.calls[0] <= now - self.window:
                self.calls.popleft()
            if len(self.calls) >= self.limit:
                self.throttled += 1
                wait = max(1, int(self.calls[0] + self.window - now + 0.999))
                return JSONResponse({"error": "APIRateLimitExceeded",
                                     "description": "Number of allowed incremental export "
                                                    "API requests per minute exceeded"},
                                    status_code=429, headers={"Retry-After": str(wait)})
            self.calls.append(now)
            self.most_in_window = max(self.most_in_window, len(self.calls))
        return None

    async def me(self, request: Request) -> JSONResponse:
        if not self._authorized(request):
            return JSONResponse({"error": "Couldn't authenticate you"}, status_code=401)
        return JSONResponse({"user": {"id": 1, "email": EMAIL, "role": "admin"}})

    async def export(self, request: Request) -> JSONResponse:
        if not self._authorized(request):
            return JSONResponse({"error": "Couldn't authenticate you"}, status_code=401)
        refused = self._throttle()
        if refused is not None:
            return refused
        k = self.pages_served
        if self.fail_at.get(k):
            status = self.fail_at[k].pop(0)
            return JSONResponse({"error": "InternalError"}, status_code=status)
        if k in self.slow_at:
            await asyncio.sleep(self.slow_at.pop(k))
        query = dict(request.query_params)
        self.exports.append(query)
        try:
            per_page = int(query.get("per_page", "1000"))
        except ValueError:
            return JSONResponse({"error": "InvalidValue", "description": "per_page"}, 400)
        if not 1 <= per_page <= 1000:
            return JSONResponse({"error": "InvalidValue", "description": "per_page"}, 400)
        order = sorted(self.users, key=lambda u: (self.stamps[u["id"]], u["id"]))
        if "cursor" in query:
            after = decode(query["cursor"])
            if after is None:
                return JSONResponse({"error": "InvalidPaginationParameter"}, 400)
            rest = [u for u in order if (self.stamps[u["id"]], u["id"]) > after]
        elif "start_time" in query:
            try:
                start = int(query["start_time"])
            except ValueError:
                return JSONResponse({"error": "InvalidValue", "description": "start_time"}, 400)
            if start > self.clock() - 60:
                return JSONResponse({"error": "InvalidValue",
                                     "description": "start_time is too recent"}, 400)
            after = None
            rest = [u for u in order if self.stamps[u["id"]] >= start]
        else:
            return JSONResponse({"error": "InvalidValue",
                                 "description": "start_time or cursor is required"}, 400)
        page = rest[:per_page]
        self.pages_served += 1
        if page:
            last = page[-1]
            cursor: str | None = encode(self.stamps[last["id"]], last["id"])
        else:
            cursor = query.get("cursor") or (encode(*after) if after else None)
        return JSONResponse({
            "users": page,
            "after_cursor": cursor,
            "after_url": f"{EXPORT}?cursor={cursor}" if cursor else None,
            "before_cursor": None,
            "before_url": None,
            "end_of_stream": len(rest) <= per_page,
        })
