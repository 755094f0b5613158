"""A fake WooCommerce REST API v3 (customers, orders) for connector tests.

What it enforces, as WooCommerce does:

- **Auth** (WC_REST_Authentication): when the request counts as HTTPS (`https=True`, or
  an `https://` URL through an in-process transport), Basic auth or the
  `consumer_key`/`consumer_secret` query parameters; otherwise, or when those are
  absent, OAuth 1.0a one-legged in the query string, verified the way
  `check_oauth_signature` does it (written here step by step after the PHP, not with
  the connector's own code): keys sorted with strcmp, each key and value
  rawurlencoded, `key=value` encoded again and joined with `%26`, HMAC keyed by
  `secret&`; a timestamp within 15 minutes; a nonce used once.
- **Errors** in WordPress's envelope `{"code", "message", "data": {"status"}}`:
  `woocommerce_rest_cannot_view` (401) without credentials,
  `woocommerce_rest_authentication_error` (401) for wrong ones, `rest_invalid_param`
  (400) for `per_page` over 100.
- **Paging**: `page`/`per_page` (default 10), `orderby` id/date, `order` asc/desc,
  `X-WP-Total`, `X-WP-TotalPages` and a `Link` header; customers filtered by `role`
  (default `customer`), orders by `modified_after` (+ `dates_are_gmt`).
- **Rate limit** (optional): a token bucket; over it, 429 with `Retry-After`.
- **Faults**: a status (with `Retry-After`) or a delay on a given stream and page.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

API = "/wp-json/wc/v3"


@dataclass
class Fault:
    stream: str
    page: int
    status: int | None = 503
    times: int = 1  # -1: every time
    retry_after: str | None = None
    delay: float = 0.0


@dataclass
class Seen:
    stream: str
    params: dict[str, str]
    auth: str  # basic, query, oauth1, none
    at: float


def _wc_urlencode(value: str) -> str:
    """wc_rest_urlencode_rfc3986: rawurlencode, then '+' → ' ' and '%7E' → '~'."""
    return quote(value, safe="").replace("+", " ").replace("%7E", "~")


def wc_oauth_signature(method: str, base_uri: str, params: dict[str, str], secret: str) -> str:
    """check_oauth_signature, step by step."""
    ordered = dict(sorted(params.items(), key=lambda kv: kv[0].encode()))  # uksort strcmp
    normalized = {_wc_urlencode(k): _wc_urlencode(v) for k, v in ordered.items()}
    query_string = "%26".join(_wc_urlencode(f"{k}={v}") for k, v in normalized.items())
    string_to_sign = f"{method}&{quote(base_uri, safe='')}&{query_string}"
    algorithm = params["oauth_signature_method"].replace("HMAC-", "").lower()
    digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode(), algorithm).digest()
    return base64.b64encode(digest).decode()


def _error(status: int, code: str, message: str, **data: Any) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "data": {"status": status, **data}},
                        status_code=status)


def _gmt(when: datetime) -> str:
    return when.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat()


def make_customer(i: int, *, modified: datetime | None = None) -> dict[str, Any]:
    """The i-th customer, shaped like samples/customer_v3_create_response.json."""
    created = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=i)
    changed = modified or created + timedelta(minutes=5)
    cid = 100 + 3 * i
    first, last = f"Ada{i}", f"Lovelace{i}"
    address = {
        "first_name": first,
        "last_name": last,
        "company": "",
        "address_1": f"{i} Market St",
        "address_2": "",
        "city": "San Francisco",
        "state": "CA",
        "postcode": "94103",
        "country": "US",
    }
    return {
        "id": cid,
        "date_created": _gmt(created - timedelta(hours=8)),
        "date_created_gmt": _gmt(created),
        "date_modified": _gmt(changed - timedelta(hours=8)),
        "date_modified_gmt": _gmt(changed),
        "email": f"ada{i}@example.com",
        "first_name": first,
        "last_name": last,
        "role": "customer",
        "username": f"ada{i}",
        "billing": {**address, "email": f"ada{i}@example.com", "phone": ""},
        "shipping": dict(address),
        "is_paying_customer": i % 2 == 0,
        "avatar_url": "https://secure.gravatar.com/avatar/0?s=96",
        "meta_data": (
            [{"id": 9000 + i, "key": "billing_birth_date", "value": f"{1970 + i % 30}-04-05"}]
            if i % 5 == 0
            else []
        ),
        "_links": {
            "self": [{"href": f"https://shop.example/wp-json/wc/v3/customers/{cid}"}],
            "collection": [{"href": "https://shop.example/wp-json/wc/v3/customers"}],
        },
    }


ORDER_STATUSES = ("processing", "completed", "pending", "completed", "cancelled", "refunded",
                  "on-hold", "failed")


def make_order(
    j: int, customers: list[dict[str, Any]], *, modified: datetime | None = None
) -> dict[str, Any]:
    """The j-th order (after the REST docs' order example); every 4th is a guest's."""
    created = datetime(2024, 6, 1, tzinfo=UTC) + timedelta(hours=j)
    changed = modified or created + timedelta(minutes=10)
    status = ORDER_STATUSES[j % len(ORDER_STATUSES)]
    guest = j % 4 == 3 or not customers
    customer = None if guest else customers[j % len(customers)]
    billing = (
        dict(customer["billing"])
        if customer
        else {
            "first_name": f"Guest{j}", "last_name": "Buyer", "company": "",
            "address_1": f"{j} Pine St", "address_2": "", "city": "Portland", "state": "OR",
            "postcode": "97201", "country": "US", "email": f"guest{j}@example.com",
            "phone": "",
        }
    )
    paid = status in ("processing", "completed", "refunded")
    price = 10 + j % 7
    return {
        "id": 5000 + j,
        "parent_id": 0,
        "number": str(5000 + j),
        "order_key": f"wc_order_{j:08d}",
        "created_via": "pos-rest-api" if j % 6 == 1 else "checkout",
        "version": "9.4.0",
        "status": status,
        "currency": "USD",
        "date_created": _gmt(created - timedelta(hours=8)),
        "date_created_gmt": _gmt(created),
        "date_modified": _gmt(changed - timedelta(hours=8)),
        "date_modified_gmt": _gmt(changed),
        "discount_total": "0.00",
        "discount_tax": "0.00",
        "shipping_total": "5.00",
        "shipping_tax": "0.00",
        "cart_tax": "0.00",
        "total": f"{2 * price + 5}.00",
        "total_tax": "0.00",
        "prices_include_tax": False,
        "customer_id": 0 if customer is None else customer["id"],
        "billing": billing,
        "shipping": {k: v for k, v in billing.items() if k not in ("email", "phone")},
        "payment_method": "bacs",
        "payment_method_title": "Direct Bank Transfer",
        "transaction_id": "",
        "date_paid": _gmt(created) if paid else None,
        "date_paid_gmt": _gmt(created + timedelta(minutes=1)) if paid else None,
        "date_completed": None,
        "date_completed_gmt": None,
        "meta_data": [],
        "line_items": [
            {
                "id": 70000 + j,
                "name": f"Rye Whiskey {j % 3}",
                "product_id": 90 + j % 3,
                "variation_id": 0,
                "quantity": 2,
                "tax_class": "",
                "subtotal": f"{2 * price}.00",
                "subtotal_tax": "0.00",
                "total": f"{2 * price}.00",
                "total_tax": "0.00",
                "taxes": [],
                "meta_data": [],
                "sku": f"RYE-{j % 3}",
                "price": price,
            }
        ],
        "tax_lines": [],
        "shipping_lines": [],
        "fee_lines": [],
        "coupon_lines": [],
        "refunds": [],
    }


@dataclass
class FakeShop:
    customers: list[dict[str, Any]]
    orders: list[dict[str, Any]]
    consumer_key: str = "ck_test"
    consumer_secret: str = "cs_test"
    https: bool = False  # what WordPress's is_ssl() says behind its proxy
    rate: float | None = None  # requests per second allowed, then 429
    burst: int = 2
    retry_after: str = "1"
    faults: list[Fault] = field(default_factory=list)
    clock: Callable[[], float] = time.time
    seen: list[Seen] = field(default_factory=list)
    throttled: int = 0
    refused: int = 0

    def __post_init__(self) -> None:
        self._nonces: set[str] = set()
        self._tokens = float(self.burst)
        self._at = time.monotonic()
        self._lock = threading.Lock()

    @classmethod
    def generated(cls, customers: int, orders: int, **kwargs: Any) -> FakeShop:
        people = [make_customer(i) for i in range(customers)]
        return cls(people, [make_order(j, people) for j in range(orders)], **kwargs)

    # -- what the shop holds -------------------------------------------------------------

    def paid_orders(self) -> list[dict[str, Any]]:
        return [o for o in self.orders if o["status"] in ("processing", "completed")]

    def touch_order(self, index: int, when: datetime) -> None:
        order = self.orders[index]
        order["date_modified_gmt"] = _gmt(when)

    # -- the ASGI app ----------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(f"{API}/customers", self._list("customers")),
                Route(f"{API}/orders", self._list("orders")),
            ]
        )

    def _throttle(self) -> bool:
        if self.rate is None:
            return False
        with self._lock:
            now = time.monotonic()
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return False
            self.throttled += 1
            return True

    def _authenticate(self, request: Request) -> tuple[str, JSONResponse | None]:
        params = dict(request.query_params)
        ssl = self.https or request.url.scheme == "https"
        if ssl:
            key: str | None = None
            secret = kind = ""
            if params.get("consumer_key") and params.get("consumer_secret"):
                key, secret, kind = params["consumer_key"], params["consumer_secret"], "query"
            elif request.headers.get("authorization", "").startswith("Basic "):
                raw = base64.b64decode(request.headers["authorization"][6:]).decode()
                key, _, secret = raw.partition(":")
                kind = "basic"
            if key is not None:
                if key != self.consumer_key:
                    return kind, _error(
                        401, "woocommerce_rest_authentication_error", "Consumer key is invalid."
                    )
                if not hmac.compare_digest(secret, self.consumer_secret):
                    return kind, _error(
                        401, "woocommerce_rest_authentication_error", "Consumer secret is invalid."
                    )
                return kind, None
        names = ("oauth_consumer_key", "oauth_timestamp", "oauth_nonce", "oauth_signature",
                 "oauth_signature_method")
        if not any(params.get(n) for n in names):
            return "none", _error(
                401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources."
            )
        missing = [n for n in names if not params.get(n)]
        if missing:
            return "oauth1", _error(
                401,
                "woocommerce_rest_authentication_missing_parameter",
                f"Missing OAuth parameter {', '.join(missing)}",
            )
        if params["oauth_consumer_key"] != self.consumer_key:
            return "oauth1", _error(
                401, "woocommerce_rest_authentication_error", "Consumer key is invalid."
            )
        given = params.pop("oauth_signature").replace(" ", "+")
        if params["oauth_signature_method"] not in ("HMAC-SHA1", "HMAC-SHA256"):
            return "oauth1", _error(
                401,
                "woocommerce_rest_authentication_error",
                "Invalid signature - signature method is invalid.",
            )
        base_uri = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
        expected = wc_oauth_signature(request.method, base_uri, params, self.consumer_secret)
        if not hmac.compare_digest(expected, given):
            return "oauth1", _error(
                401,
                "woocommerce_rest_authentication_error",
                "Invalid signature - provided signature does not match.",
            )
        stamp = int(params["oauth_timestamp"])
        if abs(stamp - self.clock()) > 15 * 60:
            return "oauth1", _error(
                401, "woocommerce_rest_authentication_error", "Invalid timestamp."
            )
        with self._lock:
            if params["oauth_nonce"] in self._nonces:
                return "oauth1", _error(
                    401,
                    "woocommerce_rest_authentication_error",
                    "Invalid nonce - nonce has already been used.",
                )
            self._nonces.add(params["oauth_nonce"])
        return "oauth1", None

    def _list(self, stream: str) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            if self._throttle():
                return JSONResponse(
                    {"code": "too_many_requests", "message": "Slow down.", "data": {"status": 429}},
                    status_code=429,
                    headers={"Retry-After": self.retry_after},
                )
            kind, refusal = self._authenticate(request)
            params = {k: v for k, v in request.query_params.items() if not k.startswith("oauth_")}
            params.pop("consumer_secret", None)
            self.seen.append(Seen(stream, params, kind, time.monotonic()))
            if refusal is not None:
                self.refused += 1
                return refusal
            try:
                per_page = int(params.get("per_page", "10"))
                page = int(params.get("page", "1"))
            except ValueError:
                return _error(400, "rest_invalid_param", "Invalid parameter(s): page")
            if not 1 <= per_page <= 100:
                return _error(
                    400,
                    "rest_invalid_param",
                    "Invalid parameter(s): per_page",
                    params={"per_page": "per_page must be between 1 (inclusive) and 100 "
                            "(inclusive)"},
                )
            for fault in self.faults:
                if fault.stream == stream and fault.page == page and fault.times != 0:
                    if fault.times > 0:
                        fault.times -= 1
                    if fault.delay:
                        await asyncio.sleep(fault.delay)
                    if fault.status:
                        refusal = _error(fault.status, "fault", "injected fault")
                        if fault.retry_after:
                            refusal.headers["Retry-After"] = fault.retry_after
                        return refusal
            records = self._select(stream, params)
            total = len(records)
            pages = math.ceil(total / per_page) if total else 0
            chunk = records[(page - 1) * per_page : page * per_page]
            url = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
            links = []
            kept = {k: v for k, v in params.items() if k not in ("page", "consumer_key")}
            if page > 1:
                links.append(f'<{url}?{urlencode({**kept, "page": page - 1})}>; rel="prev"')
            if page < pages:
                links.append(f'<{url}?{urlencode({**kept, "page": page + 1})}>; rel="next"')
            headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)}
            if links:
                headers["Link"] = ", ".join(links)
            return JSONResponse(chunk, headers=headers)

        return endpoint

    def _select(self, stream: str, params: dict[str, str]) -> list[dict[str, Any]]:
        if stream == "customers":
            role = params.get("role", "customer")
            rows = [c for c in self.customers if role == "all" or c["role"] == role]
        else:
            rows = list(self.orders)
            after = params.get("modified_after")
            if after:
                since = datetime.fromisoformat(after).replace(tzinfo=None)
                rows = [
                    o for o in rows
                    if datetime.fromisoformat(o["date_modified_gmt"]) > since
                ]
        key = params.get("orderby", "date")
        rows.sort(key=(lambda r: r["id"]) if key == "id" else (lambda r: r["date_created_gmt"]))
        if params.get("order", "desc") == "desc":
            rows.reverse()
        return rows
