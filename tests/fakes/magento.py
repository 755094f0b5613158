"""A fake Magento 2 REST API: admin tokens, Bearer checks, searchCriteria, faults.

Serves `/rest/{store}/V1/customers/search`, `/rest/{store}/V1/orders` and
`/rest/{store}/V1/integration/admin/token` (also without the store code). Answers
`{items, search_criteria, total_count}` like Magento, including its habit of
answering an out-of-range `currentPage` with the last page again.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)
FMT = "%Y-%m-%d %H:%M:%S"
UNAUTHORIZED = {
    "message": "The consumer isn't authorized to access %resources.",
    "parameters": {"resources": "Magento_Customer::read"},
}
BAD_SIGN_IN = {
    "message": "The account sign-in was incorrect or your account is disabled temporarily. "
    "Please wait and try again later."
}
_KEY = re.compile(r"^searchCriteria\[(\w+)\](.*)$")
_PART = re.compile(r"\[(\w+)\]")


def ts(seconds: float) -> str:
    return (BASE_TIME + timedelta(seconds=seconds)).strftime(FMT)


def make_customer(i: int, updated_s: float | None = None) -> dict[str, Any]:
    """Customer `i`: deterministic; three at a time share an updated_at (a minute apart)."""
    updated = ts(updated_s if updated_s is not None else 1000 + (i // 3) * 60)
    record: dict[str, Any] = {
        "id": i,
        "group_id": 1,
        "created_at": ts(i),
        "updated_at": updated,
        "created_in": "Default Store View",
        "email": f"customer{i}@example.com",
        "firstname": f"First{i}",
        "lastname": f"Last{i}",
        "store_id": 1,
        "website_id": 1,
        "addresses": [
            {
                "id": 10_000 + i,
                "customer_id": i,
                "region": {"region_code": "TX", "region": "Texas", "region_id": 57},
                "region_id": 57,
                "country_id": "US",
                "street": [f"{i} Main St"],
                "telephone": f"+1312{2_000_000 + i}",
                "postcode": "78701",
                "city": "Austin",
                "firstname": f"First{i}",
                "lastname": f"Last{i}",
                "default_billing": True,
                "default_shipping": True,
            }
        ],
        "disable_auto_group_change": 0,
        "extension_attributes": {"is_subscribed": i % 4 == 0},
    }
    if i % 2 == 0:
        record["dob"] = f"19{60 + i % 40:02d}-0{1 + i % 9}-1{i % 10}"
        record["gender"] = 1 + i % 2
    return record


STATES = ("complete", "processing", "canceled", "closed", "pending_payment")


def make_order(j: int, customers: int) -> dict[str, Any]:
    """Order `j`: every fifth a guest; states cycle through STATES."""
    guest = j % 5 == 0
    cid = 1 + j % max(1, customers)
    email = f"guest{j}@example.net" if guest else f"customer{cid}@example.com"
    state = STATES[j % len(STATES)]
    return {
        "entity_id": j,
        "increment_id": f"{100_000_000 + j}",
        "state": state,
        "status": state,
        "created_at": ts(5000 + j),
        "updated_at": ts(6000 + j // 2),
        "customer_id": None if guest else cid,
        "customer_email": email,
        "customer_is_guest": 1 if guest else 0,
        "grand_total": 40 + j % 7,
        "subtotal": 30 + j % 7,
        "tax_amount": 5,
        "shipping_amount": 5,
        "discount_amount": 0,
        "order_currency_code": "USD",
        "store_id": 1,
        "billing_address": {"telephone": f"+1312{3_000_000 + j}", "country_id": "US"},
        "items": [
            {"item_id": j * 10, "product_id": 7, "sku": "WINE-RED", "name": "Red Wine",
             "price": 30 + j % 7, "qty_ordered": 1, "product_type": "configurable"},
            {"item_id": j * 10 + 1, "parent_item_id": j * 10, "product_id": 8,
             "sku": "WINE-RED", "name": "Red Wine", "price": 0, "qty_ordered": 1,
             "product_type": "simple"},
        ],
    }


@dataclass
class MagentoFake:
    customers: int = 0
    orders: int = 0
    store_codes: tuple[str, ...] = ("default",)
    admin_username: str = "api-admin"
    admin_password: str = "s3cret-pass"
    integration_token: str = "int-token-abc123"
    # Faults: request number (per path, 1-based) → status, for `times` answers each.
    fail: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    slow: dict[tuple[str, int], float] = field(default_factory=dict)
    # 429 with Retry-After once the client sends more than this many in one second.
    max_per_second: int | None = None
    retry_after: str = "1"
    # Called after each answered page: (fake, path, request number) — for changes
    # made while a pull is under way.
    after_page: Callable[[MagentoFake, str, int], None] | None = None
    data: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    tokens: dict[str, bool] = field(default_factory=dict)  # admin token → valid
    token_requests: int = 0
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    over_limit: int = 0
    _counts: dict[str, int] = field(default_factory=dict)
    _times: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.data.setdefault(
            "customers", {i: make_customer(i) for i in range(1, self.customers + 1)}
        )
        self.data.setdefault(
            "orders", {j: make_order(j, self.customers) for j in range(1, self.orders + 1)}
        )

    # --- helpers for tests -------------------------------------------------------------

    def expire_tokens(self) -> None:
        for token in self.tokens:
            self.tokens[token] = False

    def touch_customer(self, i: int, seconds: float) -> None:
        """Customer `i` saved (or created) at BASE_TIME + seconds: a new version."""
        record = self.data["customers"].get(i) or make_customer(i)
        self.data["customers"][i] = {**record, "updated_at": ts(seconds),
                                     "lastname": f"Changed{i}"}

    def last_updated(self, stream: str) -> str:
        return max(str(r["updated_at"]) for r in self.data[stream].values())

    def api_requests(self, path: str) -> list[dict[str, str]]:
        return [q for p, q in self.requests if p == path]

    # --- the app -----------------------------------------------------------------------

    def app(self) -> Starlette:
        routes = [
            Route("/rest/V1/integration/admin/token", self._token, methods=["POST"]),
            Route("/rest/{store}/V1/integration/admin/token", self._token, methods=["POST"]),
            Route("/rest/V1/customers/search", self._customers),
            Route("/rest/{store}/V1/customers/search", self._customers),
            Route("/rest/V1/orders", self._orders),
            Route("/rest/{store}/V1/orders", self._orders),
        ]
        return Starlette(routes=routes)

    async def _token(self, request: Request) -> Response:
        self.token_requests += 1
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"message": "Decoding error"}, status_code=400)
        if (
            not isinstance(body, dict)
            or body.get("username") != self.admin_username
            or body.get("password") != self.admin_password
        ):
            return JSONResponse(BAD_SIGN_IN, status_code=401)
        token = secrets.token_hex(16)
        self.tokens[token] = True
        return JSONResponse(token)

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return False
        token = header[len("Bearer "):]
        return token == self.integration_token or self.tokens.get(token, False)

    async def _customers(self, request: Request) -> Response:
        return await self._search(request, "customers", "id")

    async def _orders(self, request: Request) -> Response:
        return await self._search(request, "orders", "entity_id")

    async def _search(self, request: Request, name: str, id_field: str) -> Response:
        store = request.path_params.get("store", "default")
        if store not in self.store_codes:
            return JSONResponse(
                {"message": "The store that was requested wasn't found. Verify the store "
                 "and try again."}, status_code=400)
        if not self._authorized(request):
            body = dict(UNAUTHORIZED)
            if name == "orders":
                body["parameters"] = {"resources": "Magento_Sales::actions_view"}
            return JSONResponse(body, status_code=401)
        with self._lock:
            now = time.monotonic()
            self._times = [t for t in self._times if now - t < 1.0]
            self._times.append(now)
            if self.max_per_second is not None and len(self._times) > self.max_per_second:
                self.over_limit += 1
                return JSONResponse({"message": "Too Many Requests"}, status_code=429,
                                    headers={"Retry-After": self.retry_after})
            n = self._counts[name] = self._counts.get(name, 0) + 1
            params = dict(request.query_params)
            self.requests.append((name, params))
        delay = self.slow.get((name, n))
        if delay:
            await asyncio.sleep(delay)
        fault = self.fail.get((name, n))
        if fault:
            status, times = fault
            if times > 1:
                self.fail[(name, n + 1)] = (status, times - 1)
            return JSONResponse({"message": "Internal Error. Details are available in "
                                 "Magento log file."}, status_code=status,
                                headers={"Retry-After": self.retry_after}
                                if status in (429, 503) else {})
        try:
            answer = search(list(self.data[name].values()), params, id_field, name)
        except ValueError as exc:
            return JSONResponse({"message": "Invalid attribute name: %1",
                                 "parameters": [str(exc)]}, status_code=400)
        if self.after_page is not None:
            self.after_page(self, name, n)
        return JSONResponse(answer)


# --- searchCriteria ---------------------------------------------------------------------


def criteria(params: dict[str, str]) -> dict[str, Any]:
    """searchCriteria[...] query parameters as a nested structure (camel or snake case)."""
    groups: dict[int, dict[int, dict[str, str]]] = {}
    sorts: dict[int, dict[str, str]] = {}
    page_size: int | None = None
    current = 1
    for key, value in params.items():
        m = _KEY.match(key)
        if not m:
            continue
        head, rest = m.group(1), _PART.findall(m.group(2))
        if head in ("filterGroups", "filter_groups") and len(rest) == 4:
            g, _, f, attr = rest
            attr = {"condition_type": "conditionType"}.get(attr, attr)
            groups.setdefault(int(g), {}).setdefault(int(f), {})[attr] = value
        elif head in ("sortOrders", "sort_orders") and len(rest) == 2:
            sorts.setdefault(int(rest[0]), {})[rest[1]] = value
        elif head in ("pageSize", "page_size"):
            page_size = int(value)
        elif head in ("currentPage", "current_page"):
            current = int(value)
    return {
        "filter_groups": [
            [groups[g][f] for f in sorted(groups[g])] for g in sorted(groups)
        ],
        "sort_orders": [sorts[s] for s in sorted(sorts)],
        "page_size": page_size,
        "current_page": current,
    }


def _field(record: dict[str, Any], name: str, id_field: str, stream: str) -> Any:
    if name == "entity_id":
        return record[id_field]
    if stream == "customers" and name == "id":
        raise ValueError("id")  # magento/magento2#7530
    if name not in record and name not in ("email", "updated_at", "created_at", "state"):
        raise ValueError(name)
    return record.get(name)


def _compare(actual: Any, value: str) -> tuple[Any, Any]:
    if isinstance(actual, int) and not isinstance(actual, bool):
        return actual, int(value)
    return ("" if actual is None else str(actual)), value


def _matches(actual: Any, condition: str, value: str) -> bool:
    if condition in ("in", "nin"):
        found = str(actual) in [v.strip() for v in value.split(",")]
        return found if condition == "in" else not found
    if condition == "like":
        pattern = "^" + ".*".join(re.escape(p) for p in value.split("%")) + "$"
        return re.match(pattern, str(actual or ""), re.IGNORECASE) is not None
    if condition == "null":
        return actual is None
    if condition == "notnull":
        return actual is not None
    a, v = _compare(actual, value)
    ops: dict[str, Callable[[Any, Any], bool]] = {
        "eq": lambda x, y: x == y,
        "neq": lambda x, y: x != y,
        "gt": lambda x, y: x > y,
        "gteq": lambda x, y: x >= y,
        "lt": lambda x, y: x < y,
        "lteq": lambda x, y: x <= y,
    }
    return ops[condition](a, v)


def search(
    records: list[dict[str, Any]], params: dict[str, str], id_field: str, stream: str
) -> dict[str, Any]:
    spec = criteria(params)
    found = []
    for record in records:
        # Groups are AND'ed; the filters inside one group are OR'ed.
        if all(
            any(
                _matches(_field(record, f["field"], id_field, stream),
                         f.get("conditionType", "eq"), f.get("value", ""))
                for f in group
            )
            for group in spec["filter_groups"]
        ):
            found.append(record)
    for order in reversed(spec["sort_orders"]):
        name = order["field"]
        found.sort(key=lambda r, n=name: _compare(_field(r, n, id_field, stream), "0")[0],
                   reverse=order.get("direction", "ASC").upper() == "DESC")
    total = len(found)
    size = spec["page_size"]
    page = found
    if size:
        last_page = max(1, -(-total // size))
        current = min(max(1, spec["current_page"]), last_page)  # out of range: the last page
        page = found[(current - 1) * size : current * size]
    return {
        "items": page,
        "search_criteria": {
            "filter_groups": [
                {"filters": [{"field": f["field"], "value": f.get("value"),
                              "condition_type": f.get("conditionType", "eq")} for f in g]}
                for g in spec["filter_groups"]
            ],
            "sort_orders": spec["sort_orders"],
            "page_size": size,
            "current_page": spec["current_page"],
        },
        "total_count": total,
    }
