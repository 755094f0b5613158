"""A fake Shopify Admin REST API: customers and orders generated from the real samples.

Enforces what the connector must cope with:
- `X-Shopify-Access-Token` (401 otherwise);
- `limit` 1..250 (400), `Link` pagination with opaque `page_info` tokens, and a 400 for
  any parameter besides `limit`/`fields` sent with `page_info`;
- the leaky bucket (40 requests, leaking 2/s): `X-Shopify-Shop-Api-Call-Limit` on every
  answer, 429 with `Retry-After` when full (`rate_limit=False` turns it off);
- `X-Shopify-API-Version`, falling forward from a retired version to the oldest
  supported one;
- `updated_at_min` (kept inside the page_info token, like Shopify), `fields`;
- faults: a status or a delay on page k of a stream, n times.

Records are generated from their index (deterministic, nothing held in memory), so the
benchmark can serve 100,000 customers and 500,000 orders.

    python -m tests.fakes.shopify --customers 100000 --orders 500000 --port 8123 --no-limit
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from guestlist.connectors.shopify.signature import sign

SAMPLES = Path(__file__).resolve().parents[2] / "src/guestlist/connectors/shopify/samples"
TOKEN = "shpat_fake_token"
SHOP = "bottle-shop.myshopify.com"
SUPPORTED_VERSIONS = ("2025-01", "2025-04", "2025-07", "2025-10", "2026-01")
CUSTOMER_ID0 = 7_000_000_000
ORDER_ID0 = 5_000_000_000
EST = timezone(timedelta(hours=-5))
EPOCH = datetime(2024, 1, 2, 9, 0, tzinfo=EST)
PRODUCTS = (
    # product_id, sku, title, variant, vendor, price
    (632910392, "RYE-750", "Rye Whiskey", "750 ml", "Old Mill Distillery", "42.00"),
    (632910393, "IPA-6PK", "Hazy IPA", "6-pack", "Harbor Brewing", "14.99"),
    (632910394, "PINOT-22", "Pinot Noir 2022", "750 ml", "Cedar Ridge", "27.50"),
    (632910395, "GIN-700", "London Dry Gin", "700 ml", "Foundry Spirits", "34.00"),
    (632910396, "VAPE-MNT", "Mint Pod", "2 pack", "Cloud Co", "19.95"),
)


def _stamp(when: datetime) -> str:
    return (when if when.tzinfo is EST else when.astimezone(EST)).isoformat()


def _money(amount: str) -> dict[str, Any]:
    money = {"amount": amount, "currency_code": "USD"}
    return {"shop_money": money, "presentment_money": dict(money)}


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((SAMPLES / name).read_bytes())
    return data


_CUSTOMER = _load("rest_2023-01_get_customers.json")["customers"][0]
_ORDER = _load("rest_2023-01_get_order.json")["order"]
_LINE_ITEM = _ORDER["line_items"][0]
# Each product's line item as the sample shapes it; an order sets ids and quantity.
_PRODUCT_LINES = [
    {
        **_LINE_ITEM,
        "name": f"{title} - {variant}",
        "price": price,
        "price_set": _money(price),
        "product_id": pid,
        "properties": [],
        "sku": sku,
        "title": title,
        "variant_title": variant,
        "vendor": vendor,
        "tax_lines": [],
        "discount_allocations": [],
    }
    for pid, sku, title, variant, vendor, price in PRODUCTS
]


@dataclass
class Fault:
    status: int = 500
    times: int = 1
    delay: float = 0.0


@dataclass
class FakeShopify:
    customers: int = 0
    orders: int = 0
    token: str = TOKEN
    shop_domain: str = SHOP
    rate_limit: bool = True
    bucket_size: int = 40
    leak_per_second: float = 2.0
    retry_after: str = "2.0"
    # Every `unpaid_every`-th order is `pending` (0: none), every `refunded_every`-th
    # `refunded`, every `pos_every`-th a POS sale.
    unpaid_every: int = 0
    refunded_every: int = 0
    pos_every: int = 5
    # Counters the tests and the benchmark read.
    requests: int = 0
    throttled: int = 0
    max_level: float = 0.0
    calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    faults: dict[tuple[str, int], Fault] = field(default_factory=dict)
    updated: dict[tuple[str, int], datetime] = field(default_factory=dict)
    bulk_ops: dict[int, dict[str, Any]] = field(default_factory=dict)
    # The bucket leaks by this clock (tests share a fake one with the client).
    clock: Callable[[], float] = time.monotonic
    # Requests other apps of the same store put in the bucket before ours.
    level: float = 0.0

    def __post_init__(self) -> None:
        self._at = self.clock()

    # -- set-up ---------------------------------------------------------------------

    def fail(self, stream: str, page: int, status: int = 500, times: int = 1) -> None:
        """Answer `status` to page `page` (0-based) of `stream`, `times` times."""
        self.faults[(stream, page)] = Fault(status=status, times=times)

    def slow(self, stream: str, page: int, seconds: float, times: int = 1) -> None:
        self.faults[(stream, page)] = Fault(status=200, times=times, delay=seconds)

    def touch(self, stream: str, index: int, when: datetime) -> None:
        """Record `index` of `stream` was updated at `when`."""
        self.updated[(stream, index)] = when

    # -- records --------------------------------------------------------------------

    def customer_updated(self, i: int) -> datetime:
        return self.updated.get(("customers", i)) or EPOCH + timedelta(minutes=i, days=1)

    def order_updated(self, j: int) -> datetime:
        return self.updated.get(("orders", j)) or EPOCH + timedelta(minutes=j, days=2)

    @staticmethod
    def customer_email(i: int) -> str:
        return f"guest{i}@mail.example.com"

    @staticmethod
    def customer_phone(i: int) -> str | None:
        return None if i % 7 == 3 else f"+1415{2_000_000 + i:07d}"

    def customer(self, i: int) -> dict[str, Any]:
        cid = CUSTOMER_ID0 + i
        created = _stamp(EPOCH + timedelta(minutes=i))
        updated = _stamp(self.customer_updated(i))
        address = {
            **_CUSTOMER["default_address"],
            "id": cid,
            "customer_id": cid,
            "address1": f"{100 + i % 900} Chestnut Street",
            "zip": f"{40202 + i % 50:05d}",
        }
        email_state = self.email_state(i)
        sms_state = self.sms_state(i)
        orders = self._orders_of(i)
        return {
            **_CUSTOMER,
            "id": cid,
            "email": self.customer_email(i),
            "created_at": created,
            "updated_at": updated,
            "first_name": f"Guest{i}",
            "last_name": "Norman",
            "orders_count": orders,
            "total_spent": f"{orders * 42:.2f}",
            "last_order_id": None,
            "tags": "vip, newsletter" if i % 3 == 0 else "",
            "phone": self.customer_phone(i),
            "accepts_marketing": email_state == "subscribed",
            "accepts_marketing_updated_at": created,
            "addresses": [address],
            "email_marketing_consent": {
                "state": email_state,
                "opt_in_level": "confirmed_opt_in" if email_state == "subscribed" else None,
                "consent_updated_at": created,
            },
            "sms_marketing_consent": {
                "state": sms_state,
                "opt_in_level": "single_opt_in",
                "consent_updated_at": created,
                "consent_collected_from": "SHOPIFY" if sms_state == "subscribed" else "OTHER",
            },
            "admin_graphql_api_id": f"gid://shopify/Customer/{cid}",
            "default_address": address,
        }

    @staticmethod
    def email_state(i: int) -> str:
        """Most customers never subscribed: 10% subscribed, 5% unsubscribed, 2% pending."""
        if i % 10 == 0:
            return "subscribed"
        if i % 20 == 5:
            return "unsubscribed"
        return "pending" if i % 50 == 7 else "not_subscribed"

    @staticmethod
    def sms_state(i: int) -> str:
        """4% subscribed by SMS, 2% unsubscribed."""
        if i % 25 == 0:
            return "subscribed"
        return "unsubscribed" if i % 50 == 1 else "not_subscribed"

    def _orders_of(self, i: int) -> int:
        if not self.customers:
            return 0
        return self.orders // self.customers + (1 if i < self.orders % self.customers else 0)

    def financial_status(self, j: int) -> str:
        if self.unpaid_every and j % self.unpaid_every == self.unpaid_every - 1:
            return "pending"
        if self.refunded_every and j % self.refunded_every == self.refunded_every - 2:
            return "refunded"
        return "partially_refunded" if j % 10 == 9 else "paid"

    def order(self, j: int) -> dict[str, Any]:
        oid = ORDER_ID0 + j
        i = j % self.customers if self.customers else None
        created = _stamp(EPOCH + timedelta(minutes=j, days=1))
        items = []
        total = 0.0
        for k in range(1 + j % 3):
            line = _PRODUCT_LINES[(j + k) % len(PRODUCTS)]
            quantity = 1 + (j + k) % 2
            total += float(line["price"]) * quantity
            items.append({
                **line,
                "id": oid * 10 + k,
                "admin_graphql_api_id": f"gid://shopify/LineItem/{oid * 10 + k}",
                "quantity": quantity,
                "variant_id": line["product_id"] * 10 + k,
            })
        subtotal = f"{total:.2f}"
        tax = f"{total * 0.06:.2f}"
        grand = f"{total * 1.06:.2f}"
        pos = bool(self.pos_every) and j % self.pos_every == 0
        customer = None
        if i is not None:
            cid = CUSTOMER_ID0 + i
            customer = {
                **_ORDER["customer"],
                "id": cid,
                "email": self.customer_email(i),
                "phone": self.customer_phone(i),
                "first_name": f"Guest{i}",
                "created_at": _stamp(EPOCH + timedelta(minutes=i)),
                "updated_at": _stamp(self.customer_updated(i)),
                "admin_graphql_api_id": f"gid://shopify/Customer/{cid}",
                "default_address": None,
            }
        return {
            **_ORDER,
            "id": oid,
            "admin_graphql_api_id": f"gid://shopify/Order/{oid}",
            "contact_email": customer["email"] if customer else None,
            "email": customer["email"] if customer else "",
            "phone": None,
            "created_at": created,
            "processed_at": created,
            "updated_at": _stamp(self.order_updated(j)),
            "financial_status": self.financial_status(j),
            "name": f"#{1001 + j}",
            "number": 1 + j,
            "order_number": 1001 + j,
            "source_name": "pos" if pos else "web",
            "location_id": 655441491 if pos else None,
            "subtotal_price": subtotal,
            "subtotal_price_set": _money(subtotal),
            "current_subtotal_price": subtotal,
            "total_line_items_price": subtotal,
            "total_price": grand,
            "total_price_set": _money(grand),
            "current_total_price": grand,
            "total_tax": tax,
            "total_tax_set": _money(tax),
            "current_total_tax": tax,
            "total_discounts": "0.00",
            "total_discounts_set": _money("0.00"),
            "discount_codes": [],
            "discount_applications": [],
            "total_outstanding": "0.00",
            "line_items": items,
            "customer": customer,
            "refunds": [],
            "fulfillments": [],
        }

    # -- HTTP -----------------------------------------------------------------------

    def _bucket(self) -> tuple[bool, int]:
        """Take one request; (allowed, level after)."""
        now = self.clock()
        self.level = max(0.0, self.level - (now - self._at) * self.leak_per_second)
        self._at = now
        if not self.rate_limit:
            return True, 1
        if self.level + 1 > self.bucket_size:
            return False, self.bucket_size
        self.level += 1
        self.max_level = max(self.max_level, self.level)
        return True, math.ceil(self.level)

    def _version(self, asked: str) -> str | None:
        if asked in SUPPORTED_VERSIONS or asked == "unstable":
            return asked
        if asked < SUPPORTED_VERSIONS[0]:
            return SUPPORTED_VERSIONS[0]  # retired: falls forward
        return None

    @staticmethod
    def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return Response(
            orjson.dumps(body), status_code=status, media_type="application/json",
            headers=headers,
        )

    async def handle(self, request: Request) -> Response:
        self.requests += 1
        version = self._version(request.path_params["version"])
        if request.headers.get("x-shopify-access-token") != self.token:
            return self._json(
                {"errors": "[API] Invalid API key or access token (unrecognized login or "
                 "wrong password)"}, 401)
        allowed, level = self._bucket()
        headers = {"X-Shopify-Shop-Api-Call-Limit": f"{level}/{self.bucket_size}"}
        if not allowed:
            self.throttled += 1
            headers["Retry-After"] = self.retry_after
            return self._json({"errors": "Exceeded 2 calls per second for api client. "
                               "Reduce request rates to resume uninterrupted service."},
                              429, headers)
        if version is None:
            return self._json({"errors": "Not Found"}, 404, headers)
        headers["X-Shopify-API-Version"] = version
        resource = request.path_params["resource"]
        params = dict(request.query_params)
        self.calls.append((resource, params))
        if resource == "shop":
            return self._json({"shop": {"id": 548380009, "name": "Bottle Shop",
                                        "myshopify_domain": self.shop_domain}}, 200, headers)
        if resource not in ("customers", "orders"):
            return self._json({"errors": "Not Found"}, 404, headers)
        return await self._list(request, resource, params, headers)

    async def _list(
        self, request: Request, stream: str, params: dict[str, str], headers: dict[str, str]
    ) -> Response:
        try:
            limit = int(params.get("limit", "50"))
        except ValueError:
            limit = -1
        if not 1 <= limit <= 250:
            return self._json({"errors": {"limit": "must be between 1 and 250"}}, 400, headers)
        if "page_info" in params:
            extra = sorted(set(params) - {"page_info", "limit", "fields"})
            if extra:
                return self._json(
                    {"errors": {"page_info": f"cannot be combined with {', '.join(extra)}"}},
                    400, headers)
            try:
                state = orjson.loads(base64.urlsafe_b64decode(params["page_info"]))
            except ValueError:
                return self._json({"errors": {"page_info": "Invalid value."}}, 400, headers)
        else:
            state = {"after": 0, "page": 0, "min": params.get("updated_at_min"),
                     "status": params.get("status", "open")}
        fault = self.faults.get((stream, int(state["page"])))
        if fault is not None and fault.times > 0:
            fault.times -= 1
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status == 429:
                return self._json({"errors": "Exceeded 2 calls per second for api client."},
                                  429, {**headers, "Retry-After": self.retry_after})
            if fault.status != 200:
                return self._json({"errors": "Internal Server Error"}, fault.status, headers)
        records, after = self._page(stream, state, limit)
        fields = params.get("fields")
        if fields:
            wanted = [f.strip() for f in fields.split(",")]
            records = [{k: r[k] for k in wanted if k in r} for r in records]
        links = []
        base = f"{request.base_url}".rstrip("/") + request.url.path
        keep = f"&fields={fields}" if fields else ""
        if state["page"] > 0:
            links.append(f'<{base}?limit={limit}{keep}&page_info=prev{state["page"]}>; '
                         'rel="previous"')
        if after is not None:
            token = base64.urlsafe_b64encode(orjson.dumps(
                {**state, "after": after, "page": state["page"] + 1})).decode()
            links.append(f'<{base}?limit={limit}{keep}&page_info={token}>; rel="next"')
        if links:
            headers["Link"] = ", ".join(links)
        return Response(orjson.dumps({stream: records}), media_type="application/json",
                        headers=headers)

    def _page(
        self, stream: str, state: dict[str, Any], limit: int
    ) -> tuple[list[dict[str, Any]], int | None]:
        count = self.customers if stream == "customers" else self.orders
        make = self.customer if stream == "customers" else self.order
        updated = self.customer_updated if stream == "customers" else self.order_updated
        since = datetime.fromisoformat(state["min"]) if state.get("min") else None
        out: list[dict[str, Any]] = []
        index = int(state["after"])
        while index < count and len(out) < limit:
            changed = since is None or updated(index) >= since
            listed = stream != "orders" or state.get("status") == "any" or (
                self.financial_status(index) != "refunded"
            )
            if changed and listed:
                out.append(make(index))
            index += 1
        if since is not None:  # is there another match after this page?
            while index < count and updated(index) < since:
                index += 1
        return out, (index if index < count else None)

    # -- GraphQL bulk operations -----------------------------------------------------

    def _gid(self, kind: str, value: Any) -> str:
        return f"gid://shopify/{kind}/{value}"

    @staticmethod
    def _utc(stamp: str | None) -> str | None:
        if not stamp:
            return stamp
        return datetime.fromisoformat(stamp).astimezone(UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ")

    def customer_node(self, i: int) -> dict[str, Any]:
        """Customer `i` as a bulk operation's JSONL line (GraphQL names, UTC times)."""
        c = self.customer(i)
        a = c["default_address"]

        def consent(value: dict[str, Any], sms: bool) -> dict[str, Any]:
            out = {
                "marketingState": value["state"].upper(),
                "marketingOptInLevel": (value.get("opt_in_level") or "").upper() or None,
                "consentUpdatedAt": self._utc(value.get("consent_updated_at")),
            }
            if sms:
                out["consentCollectedFrom"] = value.get("consent_collected_from")
            return out

        return {
            "id": self._gid("Customer", c["id"]), "email": c["email"], "phone": c["phone"],
            "firstName": c["first_name"], "lastName": c["last_name"],
            "state": c["state"].upper(), "verifiedEmail": c["verified_email"],
            "tags": [t.strip() for t in c["tags"].split(",") if t.strip()],
            "numberOfOrders": str(c["orders_count"]),
            "createdAt": self._utc(c["created_at"]), "updatedAt": self._utc(c["updated_at"]),
            "amountSpent": {"amount": c["total_spent"], "currencyCode": "USD"},
            "defaultAddress": {
                "address1": a["address1"], "address2": a["address2"], "city": a["city"],
                "province": a["province"], "provinceCode": a["province_code"], "zip": a["zip"],
                "country": a["country"], "countryCodeV2": a["country_code"],
            },
            "emailMarketingConsent": consent(c["email_marketing_consent"], False),
            "smsMarketingConsent": consent(c["sms_marketing_consent"], True),
        }

    def order_lines(self, j: int) -> list[dict[str, Any]]:
        """Order `j` and its line items as JSONL lines (children carry `__parentId`)."""
        o = self.order(j)
        gid = self._gid("Order", o["id"])

        def money(amount: str) -> dict[str, Any]:
            return {"shopMoney": {"amount": amount, "currencyCode": "USD"}}

        customer = o["customer"]
        lines: list[dict[str, Any]] = [{
            "id": gid, "name": o["name"], "email": o["email"], "phone": o["phone"],
            "createdAt": self._utc(o["created_at"]),
            "processedAt": self._utc(o["processed_at"]),
            "updatedAt": self._utc(o["updated_at"]), "cancelledAt": None, "test": False,
            "displayFinancialStatus": o["financial_status"].upper(),
            "sourceName": o["source_name"], "currencyCode": "USD",
            "totalPriceSet": money(o["total_price"]),
            "subtotalPriceSet": money(o["subtotal_price"]),
            "totalTaxSet": money(o["total_tax"]),
            "totalDiscountsSet": money(o["total_discounts"]),
            "totalShippingPriceSet": money("0.00"),
            "retailLocation": ({"id": self._gid("Location", o["location_id"])}
                               if o["location_id"] else None),
            "customer": None if customer is None else {
                "id": self._gid("Customer", customer["id"]), "email": customer["email"],
                "phone": customer["phone"]},
        }]
        for item in o["line_items"]:
            lines.append({
                "id": self._gid("LineItem", item["id"]), "title": item["title"],
                "variantTitle": item["variant_title"], "sku": item["sku"],
                "vendor": item["vendor"], "quantity": item["quantity"],
                "originalUnitPriceSet": money(item["price"]),
                "product": {"id": self._gid("Product", item["product_id"])},
                "variant": {"id": self._gid("ProductVariant", item["variant_id"])},
                "__parentId": gid,
            })
        return lines

    async def graphql(self, request: Request) -> Response:
        self.requests += 1
        if request.headers.get("x-shopify-access-token") != self.token:
            return self._json({"errors": "[API] Invalid API key or access token"}, 401)
        body = orjson.loads(await request.body())
        query, variables = body.get("query", ""), body.get("variables") or {}
        self.calls.append(("graphql", {"query": query[:40]}))
        if "bulkOperationRunQuery" in query:
            inner = variables.get("query", "")
            stream = "customers" if "customers" in inner.split("{")[1] else "orders"
            op = len(self.bulk_ops) + 1
            self.bulk_ops[op] = {"stream": stream, "polls": 0}
            return self._json({"data": {"bulkOperationRunQuery": {
                "bulkOperation": {"id": self._gid("BulkOperation", op), "status": "CREATED"},
                "userErrors": []}}})
        if "node(id:" in query:
            op = int(str(variables["id"]).rsplit("/", 1)[-1])
            state = self.bulk_ops[op]
            state["polls"] += 1
            done = state["polls"] > 1  # RUNNING once, then COMPLETED
            base = f"{request.base_url}".rstrip("/")
            return self._json({"data": {"node": {
                "id": variables["id"], "status": "COMPLETED" if done else "RUNNING",
                "errorCode": None, "objectCount": "0",
                "url": f"{base}/_bulk/{op}.jsonl" if done else None}}})
        return self._json({"errors": [{"message": "unsupported query"}]})

    async def bulk_file(self, request: Request) -> Response:
        op = self.bulk_ops[int(request.path_params["op"])]
        out = bytearray()
        if op["stream"] == "customers":
            for i in range(self.customers):
                out += orjson.dumps(self.customer_node(i)) + b"\n"
        else:
            for j in range(self.orders):
                for line in self.order_lines(j):
                    out += orjson.dumps(line) + b"\n"
        return Response(bytes(out), media_type="application/jsonl")

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/admin/api/{version}/graphql.json", self.graphql, methods=["POST"]),
            Route("/admin/api/{version}/{resource}.json", self.handle, methods=["GET"]),
            Route("/_bulk/{op}.jsonl", self.bulk_file, methods=["GET"]),
        ])


def webhook_headers(
    body: bytes,
    *,
    secret: str,
    topic: str,
    shop: str = SHOP,
    event_id: str = "e1b2c3d4-0001",
    webhook_id: str = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
    api_version: str = "2025-10",
) -> dict[str, str]:
    """The headers Shopify sends with a delivery, signed with `secret`."""
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign(secret, body),
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-API-Version": api_version,
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Event-Id": event_id,
        "X-Shopify-Triggered-At": "2026-11-27T12:00:00.000000000Z",
    }


def sample(name: str) -> dict[str, Any]:
    return copy.deepcopy(_load(name))


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--no-limit", action="store_true")
    args = parser.parse_args()
    fake = FakeShopify(args.customers, args.orders, rate_limit=not args.no_limit)
    uvicorn.run(fake.app(), host="127.0.0.1", port=args.port, log_level="warning",
                lifespan="off", access_log=False)


if __name__ == "__main__":
    main()
