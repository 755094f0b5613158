"""A fake of Drift's contacts API (driftapi.com).

In Drift's order: Bearer auth (401), the leaky bucket (`capacity` calls, leaking
`leak` a second of `clock`: 429 when full; no `Retry-After` unless `retry_after` is
set, as Drift documents none), then the endpoint:

- `GET /contacts?email=` → `{"data": [contacts]}` (an unknown email: `[]`);
- `GET /contacts/{id}` → `{"data": contact}`, 404 when unknown;
- `POST /contacts` `{"attributes": {...}}`: an email is required (400); an email
  already held is refused (409) unless the `externalId` differs;
- `PATCH /contacts/{id}` `{"attributes": {...}}` merges the attributes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TOKEN = "drift-fake-access-token-3Zr8"
EPOCH_MS = 1_767_225_600_000


class DriftFake:
    def __init__(self, *, clock: Callable[[], float] = time.time, capacity: float = 10,
                 leak: float = 5.0, retry_after: int | None = None) -> None:
        self.clock = clock
        self.capacity = capacity
        self.leak = leak
        self.retry_after = retry_after
        self.level = 0.0
        self.at = clock()
        self.highest = 0.0
        self.throttled = 0
        self.contacts: dict[int, dict[str, Any]] = {}
        self.next_id = 16_000_000_000
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self.app = Starlette(routes=[
            Route("/contacts", self.contacts_root, methods=["GET", "POST"]),
            Route("/contacts/{id:int}", self.contact, methods=["GET", "PATCH"]),
        ])

    def add(self, attributes: dict[str, Any]) -> dict[str, Any]:
        contact = {"id": self.next_id, "createdAt": EPOCH_MS + len(self.contacts),
                   "attributes": {"socialProfiles": {}, "events": {}, "tags": [], **attributes}}
        self.contacts[self.next_id] = contact
        self.next_id += 1
        return contact

    def _gate(self, request: Request) -> JSONResponse | None:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"error": {"type": "authentication_error",
                                           "message": "Invalid token"}}, status_code=401)
        with self._lock:
            now = self.clock()
            self.level = max(0.0, self.level - (now - self.at) * self.leak)
            self.at = now
            if self.level + 1 > self.capacity:
                self.throttled += 1
                headers = {"Retry-After": str(self.retry_after)} if self.retry_after else {}
                return JSONResponse({"error": {"type": "rate_limit_exceeded",
                                               "message": "API rate limit exceeded"}},
                                    status_code=429, headers=headers)
            self.level += 1
            self.highest = max(self.highest, self.level)
        self.requests.append((request.method, request.url.path))
        return None

    async def contacts_root(self, request: Request) -> JSONResponse:
        refused = self._gate(request)
        if refused is not None:
            return refused
        if request.method == "GET":
            email = request.query_params.get("email")
            if not email:
                return JSONResponse({"error": {"message": "email is required"}}, 400)
            found = [c for c in self.contacts.values()
                     if str(c["attributes"].get("email", "")).lower() == email.lower()]
            return JSONResponse({"data": found})
        body = await request.json()
        attributes = body.get("attributes") if isinstance(body, dict) else None
        if not isinstance(attributes, dict) or not attributes.get("email"):
            return JSONResponse({"error": {"message": "attributes.email is required"}}, 400)
        for c in self.contacts.values():
            same = str(c["attributes"].get("email", "")).lower() == attributes["email"].lower()
            if same and c["attributes"].get("externalId") == attributes.get("externalId"):
                return JSONResponse({"error": {"type": "conflict",
                                               "message": "contact already exists"}}, 409)
        return JSONResponse({"data": self.add(attributes)})

    async def contact(self, request: Request) -> JSONResponse:
        refused = self._gate(request)
        if refused is not None:
            return refused
        found = self.contacts.get(int(request.path_params["id"]))
        if found is None:
            return JSONResponse({"error": {"message": "Contact not found"}}, 404)
        if request.method == "PATCH":
            body = await request.json()
            attributes = body.get("attributes") if isinstance(body, dict) else None
            if not isinstance(attributes, dict):
                return JSONResponse({"error": {"message": "attributes is required"}}, 400)
            found["attributes"].update(attributes)
        return JSONResponse({"data": found})
