"""A fake of Square's Customers and Customer Groups APIs, checked against api.json.

Every request is first checked against the official OpenAPI document
(tests/fakes/specs/square.api.json, copied from ../shared/vendor-specs) with objects
closed, as Square refuses unknown body fields: what the document does not allow is
answered 400 and recorded in `violations`, which the tests assert empty. Then, in
Square's order: Bearer auth (401 `AUTHENTICATION_ERROR`/`UNAUTHORIZED`), the `Square-
Version` header (recorded as a violation when missing or not the expected one), the rate
limit (429 `RATE_LIMITED`, with `Retry-After` only when `retry_after` is set: Square
does not promise one), injected faults, and the endpoint itself.

Search is eventually consistent at Square: ids in `hidden_from_search` are left out
of SearchCustomers (and customers created with `search_lag=True` start there).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.openapi_check import OpenAPIDocument

SPEC = Path(__file__).resolve().parent / "specs" / "square.api.json"
TOKEN = "EAAAl-fake-square-token"
VERSION = "2025-08-20"
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def square_id(seed: str) -> str:
    """A 26-character id in Square's style, the same for the same seed."""
    digest = hashlib.sha256(seed.encode()).digest()
    return "".join(_ALPHABET[b % 32] for b in digest[:26])


def error(status: int, category: str, code: str, detail: str, **headers: str) -> JSONResponse:
    body = {"errors": [{"category": category, "code": code, "detail": detail}]}
    return JSONResponse(body, status_code=status, headers=headers)


def make_customer(i: int, at: datetime) -> dict[str, Any]:
    """Customer `i`, after the shape of the api.json examples, with variations."""
    customer: dict[str, Any] = {
        "id": square_id(f"customer-{i}"),
        "created_at": iso(at),
        "updated_at": iso(at),
        "given_name": f"Given{i}",
        "family_name": f"Family{i}",
        "email_address": f"customer{i}@example.com",
        "phone_number": f"+1212555{i % 10000:04d}",
        "address": {
            "address_line_1": f"{i} Electric Ave",
            "locality": "New York",
            "administrative_district_level_1": "NY",
            "postal_code": "10003",
            "country": "US",
        },
        "preferences": {"email_unsubscribed": i % 7 == 3},
        "creation_source": "DIRECTORY" if i % 2 else "THIRD_PARTY",
        "group_ids": [],
        "segment_ids": ["1KB9JE5EGJXCW.REACHABLE"],
        "version": 0,
    }
    if i % 5 == 0:
        customer["birthday"] = f"{1960 + i % 40}-{1 + i % 12:02d}-{1 + i % 28:02d}"
    elif i % 5 == 1:
        customer["birthday"] = f"0000-{1 + i % 12:02d}-{1 + i % 28:02d}"
    return customer


def make_order(
    i: int, at: datetime, location_id: str, customer_id: str | None, state: str = "COMPLETED"
) -> dict[str, Any]:
    """Order `i`, after the shape of api.json's PayOrderResponse example."""
    usd = lambda cents: {"amount": cents, "currency": "USD"}  # noqa: E731
    items = [
        {
            "uid": f"li-{i}-{n}",
            "name": name,
            "quantity": str(quantity),
            "catalog_object_id": square_id(f"variation-{name}"),
            "variation_name": "750 ml",
            "base_price_money": usd(price),
            "gross_sales_money": usd(price * quantity),
            "total_tax_money": usd(0),
            "total_discount_money": usd(0),
            "total_money": usd(price * quantity),
        }
        for n, (name, price, quantity) in enumerate(
            [("Rioja Reserva", 1899, 1 + i % 2), ("Tonic Water", 250, 4)][: 1 + i % 2]
        )
    ]
    total = sum(item["total_money"]["amount"] for item in items)
    order: dict[str, Any] = {
        "id": square_id(f"order-{i}"),
        "location_id": location_id,
        "state": state,
        "created_at": iso(at),
        "updated_at": iso(at + timedelta(seconds=2)),
        "version": 4,
        "line_items": items,
        "total_money": usd(total),
        "total_tax_money": usd(0),
        "total_discount_money": usd(0),
        "source": {"name": "Square Point of Sale"},
    }
    if state == "COMPLETED":
        order["closed_at"] = iso(at + timedelta(seconds=2))
    if customer_id:
        order["customer_id"] = customer_id
    if i % 4 == 3:
        order["fulfillments"] = [{"uid": f"f-{i}", "type": "PICKUP", "state": "COMPLETED"}]
    return order


@dataclass
class Fault:
    method: str
    path: str  # a prefix of the request path
    status: int
    times: int = 1
    after: int = 0  # let this many matching requests through first
    retry_after: str | None = None
    delay: float = 0.0
    seen: int = 0


@dataclass
class SquareFake:
    token: str = TOKEN
    version: str = VERSION
    # The rate limit: at most `limit` requests in any `window` seconds.
    limit: int | None = None
    window: float = 1.0
    retry_after: str | None = None
    search_lag: bool = False
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    locations: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    hidden_from_search: set[str] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    rate_limited: int = 0
    faults: list[Fault] = field(default_factory=list)
    # Another writer changes the customer before each of our next N updates.
    concurrent_edits: int = 0
    clock: datetime = EPOCH
    # Called after each SearchCustomers answer with how many have been answered.
    after_search: Callable[[int], None] | None = None
    searches: int = 0
    _times: deque[float] = field(default_factory=deque)
    _keys: dict[str, tuple[str, str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.spec = OpenAPIDocument.load(SPEC, closed_objects=True)
        methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=methods)])

    # -- set-up ----------------------------------------------------------------------

    def tick(self, seconds: float = 1.0) -> datetime:
        self.clock += timedelta(seconds=seconds)
        return self.clock

    def seed(self, n: int) -> list[dict[str, Any]]:
        """`n` customers, created one minute apart from EPOCH."""
        made = []
        for i in range(n):
            customer = make_customer(len(self.customers), EPOCH + timedelta(minutes=i))
            self.customers[customer["id"]] = customer
            made.append(customer)
        self.clock = max(self.clock, EPOCH + timedelta(minutes=n))
        return made

    def seed_locations(self, n: int) -> list[str]:
        for i in range(n):
            self.locations.append(
                {"id": square_id(f"location-{i}")[:13], "name": f"Store {i}", "status": "ACTIVE"}
            )
        return [loc["id"] for loc in self.locations]

    def add_order(self, order: dict[str, Any]) -> dict[str, Any]:
        self.orders[order["id"]] = order
        return order

    def touch(self, customer_id: str, **changes: Any) -> dict[str, Any]:
        """Another app changes a customer: a new version, updated now."""
        customer = self.customers[customer_id]
        customer.update(changes)
        customer["version"] += 1
        customer["updated_at"] = iso(self.tick())
        return customer

    def fail(self, method: str, path: str, status: int, **options: Any) -> Fault:
        fault = Fault(method.upper(), path, status, **options)
        self.faults.append(fault)
        return fault

    def calls(self, method: str, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method and r["path"] == path]

    # -- the server ------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        path = request.url.path
        record = {
            "method": request.method,
            "path": path,
            "query": list(request.query_params.multi_items()),
            "json": json.loads(body) if body.strip().startswith(b"{") else None,
            "at": time.monotonic(),
        }
        self.requests.append(record)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return error(
                401, "AUTHENTICATION_ERROR", "UNAUTHORIZED",
                "This request could not be authorized.",
            )
        problems = self.spec.check_request(
            request.method,
            path,
            query=request.query_params.multi_items(),
            body=body or None,
            content_type=request.headers.get("content-type"),
        )
        if request.headers.get("square-version") != self.version:
            problems.append(
                f"Square-Version header is {request.headers.get('square-version')!r}, "
                f"expected {self.version!r}"
            )
        if problems:
            self.violations.extend(problems)
            return error(400, "INVALID_REQUEST_ERROR", "BAD_REQUEST", "; ".join(problems))
        if self.limit is not None:
            now = time.monotonic()
            while self._times and now - self._times[0] >= self.window:
                self._times.popleft()
            if len(self._times) >= self.limit:
                self.rate_limited += 1
                headers = {"Retry-After": self.retry_after} if self.retry_after else {}
                return error(
                    429, "RATE_LIMIT_ERROR", "RATE_LIMITED", "Rate limit exceeded.", **headers
                )
            self._times.append(now)
        for fault in self.faults:
            if fault.method == request.method and path.startswith(fault.path):
                fault.seen += 1
                if fault.after < fault.seen <= fault.after + fault.times:
                    if fault.delay:
                        await asyncio.sleep(fault.delay)
                    if fault.status < 400:
                        break  # only slow
                    headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                    if fault.status == 429:
                        return error(
                            429, "RATE_LIMIT_ERROR", "RATE_LIMITED", "Rate limit exceeded.",
                            **headers,
                        )
                    return error(
                        fault.status, "API_ERROR", "INTERNAL_SERVER_ERROR", "injected fault",
                        **headers,
                    )
        op = self.spec.operation(request.method, path)
        assert op is not None
        handler = getattr(self, f"_op_{op.operation_id}", None)
        if handler is None:
            return error(501, "API_ERROR", "NOT_IMPLEMENTED", f"the fake has no {op.operation_id}")
        with self._lock:
            result: Response = handler(request, record["json"] or {}, **op.path_params)
        return result

    # -- customers -------------------------------------------------------------------

    @staticmethod
    def _cursor(offset: int, query: Any) -> str:
        raw = json.dumps({"o": offset, "q": query}, sort_keys=True).encode()
        return base64.urlsafe_b64encode(raw).decode()

    @staticmethod
    def _offset(cursor: str | None, query: Any) -> int | None:
        if not cursor:
            return 0
        try:
            raw = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        except ValueError:
            return None
        return int(raw["o"]) if raw.get("q") == query else None

    def _page(
        self, items: list[dict[str, Any]], key: str, cursor: str | None, limit: int, query: Any,
        count: bool,
    ) -> Response:
        offset = self._offset(cursor, query)
        if offset is None:
            return error(400, "INVALID_REQUEST_ERROR", "INVALID_CURSOR", "The cursor is invalid.")
        page = items[offset : offset + limit]
        body: dict[str, Any] = {key: page} if page else {}
        if offset + limit < len(items):
            body["cursor"] = self._cursor(offset + limit, query)
        if count:
            body["count"] = len(items)
        return JSONResponse(body)

    @staticmethod
    def _limit(raw: Any, maximum: int) -> int | Response:
        limit = int(raw) if raw is not None else maximum
        if limit < 1:
            return error(400, "INVALID_REQUEST_ERROR", "VALUE_TOO_LOW", "limit is below 1")
        if limit > maximum:
            return error(
                400, "INVALID_REQUEST_ERROR", "VALUE_TOO_HIGH", f"limit is above {maximum}"
            )
        return limit

    def _sorted(self, items: list[dict[str, Any]], field_: str, order: str) -> list[dict[str, Any]]:
        if field_ == "CREATED_AT":
            keyed = sorted(items, key=lambda c: (c["created_at"], c["id"]))
        else:
            keyed = sorted(items, key=lambda c: (c.get("given_name", ""), c.get("family_name", "")))
        return list(reversed(keyed)) if order == "DESC" else keyed

    def _op_ListCustomers(self, request: Request, body: dict[str, Any]) -> Response:
        q = request.query_params
        limit = self._limit(q.get("limit"), 100)
        if isinstance(limit, Response):
            return limit
        items = self._sorted(
            list(self.customers.values()), q.get("sort_field", "DEFAULT"),
            q.get("sort_order", "ASC"),
        )
        query = [q.get("sort_field"), q.get("sort_order")]
        return self._page(
            items, "customers", q.get("cursor"), limit, query, q.get("count") == "true"
        )

    def _op_SearchCustomers(self, request: Request, body: dict[str, Any]) -> Response:
        limit = self._limit(body.get("limit"), 100)
        if isinstance(limit, Response):
            return limit
        query = body.get("query") or {}
        wanted = query.get("filter") or {}
        items = [c for c in self.customers.values() if c["id"] not in self.hidden_from_search]
        for name in ("updated_at", "created_at"):
            span = wanted.get(name) or {}
            if span.get("start_at"):
                start = datetime.fromisoformat(span["start_at"])
                items = [c for c in items if datetime.fromisoformat(c[name]) >= start]
            if span.get("end_at"):
                end = datetime.fromisoformat(span["end_at"])
                items = [c for c in items if datetime.fromisoformat(c[name]) < end]
        exact = (wanted.get("email_address") or {}).get("exact")
        if exact is not None:
            items = [c for c in items if c.get("email_address", "").lower() == exact.lower()]
        sort = query.get("sort") or {}
        items = self._sorted(items, sort.get("field", "DEFAULT"), sort.get("order", "ASC"))
        answer = self._page(
            items, "customers", body.get("cursor"), limit, query, bool(body.get("count"))
        )
        self.searches += 1
        if self.after_search is not None:
            self.after_search(self.searches)
        return answer

    def _found(self, customer_id: str) -> dict[str, Any] | Response:
        customer = self.customers.get(customer_id)
        if customer is None:
            return error(404, "INVALID_REQUEST_ERROR", "NOT_FOUND", f"no customer {customer_id}")
        return customer

    def _op_RetrieveCustomer(
        self, request: Request, body: dict[str, Any], customer_id: str
    ) -> Response:
        found = self._found(customer_id)
        return found if isinstance(found, Response) else JSONResponse({"customer": found})

    def _idempotent(self, key: str | None, body: dict[str, Any]) -> str | Response | None:
        """The id made earlier with this key and body; a Response when the key was used
        for another body."""
        if not key:
            return None
        digest = json.dumps(body, sort_keys=True)
        made = self._keys.get(key)
        if made is None:
            return None
        if made[0] != digest:
            return error(
                400, "INVALID_REQUEST_ERROR", "IDEMPOTENCY_KEY_REUSED",
                "The idempotency key was used for another request.",
            )
        return made[1]

    def _op_CreateCustomer(self, request: Request, body: dict[str, Any]) -> Response:
        earlier = self._idempotent(body.get("idempotency_key"), body)
        if isinstance(earlier, Response):
            return earlier
        if earlier is not None:
            return JSONResponse({"customer": self.customers[earlier]})
        names = ("given_name", "family_name", "company_name", "email_address", "phone_number")
        if not any(body.get(n) for n in names):
            return error(
                400, "INVALID_REQUEST_ERROR", "MISSING_REQUIRED_PARAMETER",
                f"at least one of {', '.join(names)} is required",
            )
        now = iso(self.tick())
        fields = {k: v for k, v in body.items() if k != "idempotency_key"}
        customer = {
            "id": square_id(f"created-{len(self.customers)}-{now}"),
            "created_at": now,
            "updated_at": now,
            **fields,
            "preferences": {"email_unsubscribed": False},
            "creation_source": "THIRD_PARTY",
            "version": 0,
        }
        self.customers[customer["id"]] = customer
        if body.get("idempotency_key"):
            self._keys[body["idempotency_key"]] = (json.dumps(body, sort_keys=True), customer["id"])
        if self.search_lag:
            self.hidden_from_search.add(customer["id"])
        return JSONResponse({"customer": customer})

    def _op_UpdateCustomer(
        self, request: Request, body: dict[str, Any], customer_id: str
    ) -> Response:
        found = self._found(customer_id)
        if isinstance(found, Response):
            return found
        if self.concurrent_edits:
            self.concurrent_edits -= 1
            self.touch(customer_id, note="edited at the till meanwhile")
        if "version" in body and body["version"] != found["version"]:
            return error(
                409, "INVALID_REQUEST_ERROR", "CONFLICT",
                f"VERSION_MISMATCH: version {body['version']} is not the current "
                f"version {found['version']}",
            )
        for name, value in body.items():
            if name == "version":
                continue
            if value is None:
                found.pop(name, None)
            else:
                found[name] = value
        found["version"] += 1
        found["updated_at"] = iso(self.tick())
        return JSONResponse({"customer": found})

    # -- locations and orders ----------------------------------------------------------

    def _op_ListLocations(self, request: Request, body: dict[str, Any]) -> Response:
        return JSONResponse({"locations": self.locations})

    def _op_SearchOrders(self, request: Request, body: dict[str, Any]) -> Response:
        locations = body.get("location_ids") or []
        if not locations or len(locations) > 10:
            return error(
                400, "INVALID_REQUEST_ERROR", "INVALID_VALUE",
                "location_ids must name 1 to 10 locations",
            )
        limit = self._limit(body.get("limit"), 1000)
        if isinstance(limit, Response):
            return limit
        query = body.get("query") or {}
        wanted = query.get("filter") or {}
        items = [o for o in self.orders.values() if o["location_id"] in locations]
        states = (wanted.get("state_filter") or {}).get("states")
        if states:
            items = [o for o in items if o["state"] in states]
        times = wanted.get("date_time_filter") or {}
        sort = query.get("sort") or {"sort_field": "CREATED_AT"}
        for name, span in times.items():
            if sort["sort_field"].lower() != name:
                return error(
                    400, "INVALID_REQUEST_ERROR", "INVALID_VALUE",
                    "the sort field must be the date_time_filter field",
                )
            if span.get("start_at"):
                start = datetime.fromisoformat(span["start_at"])
                items = [o for o in items if datetime.fromisoformat(o[name]) >= start]
        key = sort["sort_field"].lower()
        items.sort(key=lambda o: (o.get(key, ""), o["id"]),
                   reverse=sort.get("sort_order") == "DESC")
        return self._page(
            items, "orders", body.get("cursor"), limit, [locations, query], False
        )

    # -- groups ----------------------------------------------------------------------

    def _op_ListCustomerGroups(self, request: Request, body: dict[str, Any]) -> Response:
        limit = self._limit(request.query_params.get("limit"), 50)
        if isinstance(limit, Response):
            return limit
        items = sorted(self.groups.values(), key=lambda g: (g["created_at"], g["id"]))
        return self._page(items, "groups", request.query_params.get("cursor"), limit, None, False)

    def _op_CreateCustomerGroup(self, request: Request, body: dict[str, Any]) -> Response:
        earlier = self._idempotent(body.get("idempotency_key"), body)
        if isinstance(earlier, Response):
            return earlier
        if earlier is not None:
            return JSONResponse({"group": self.groups[earlier]})
        now = iso(self.tick())
        group = {
            "id": square_id(f"group-{len(self.groups)}-{body['group']['name']}"),
            "name": body["group"]["name"],
            "created_at": now,
            "updated_at": now,
        }
        self.groups[group["id"]] = group
        if body.get("idempotency_key"):
            self._keys[body["idempotency_key"]] = (json.dumps(body, sort_keys=True), group["id"])
        return JSONResponse({"group": group})

    def _membership(self, customer_id: str, group_id: str) -> dict[str, Any] | Response:
        found = self._found(customer_id)
        if isinstance(found, Response):
            return found
        if group_id not in self.groups:
            return error(404, "INVALID_REQUEST_ERROR", "NOT_FOUND", f"no group {group_id}")
        return found

    def _op_AddGroupToCustomer(
        self, request: Request, body: dict[str, Any], customer_id: str, group_id: str
    ) -> Response:
        found = self._membership(customer_id, group_id)
        if isinstance(found, Response):
            return found
        ids = found.setdefault("group_ids", [])
        if group_id not in ids:
            ids.append(group_id)
        return JSONResponse({})

    def _op_RemoveGroupFromCustomer(
        self, request: Request, body: dict[str, Any], customer_id: str, group_id: str
    ) -> Response:
        found = self._membership(customer_id, group_id)
        if isinstance(found, Response):
            return found
        ids = found.get("group_ids") or []
        if group_id in ids:
            ids.remove(group_id)
        return JSONResponse({})
