"""The Admin REST API: the HTTP client, its leaky-bucket limit, and paged streams.

- Auth: `X-Shopify-Access-Token`.
- Limit: a leaky bucket of 40 requests leaking 2 per second, per app per store
  (https://shopify.dev/docs/api/usage/rate-limits); every answer says how full it is in
  `X-Shopify-Shop-Api-Call-Limit: 32/40`, and a 429 carries `Retry-After`.
- Paging: `Link: <…page_info=…>; rel="next"`; a `page_info` request may carry only
  `limit` and `fields` (https://shopify.dev/docs/api/usage/pagination-rest).
- Versions: `/admin/api/{version}/`; a retired version falls forward to the oldest
  supported one, which the answer names in `X-Shopify-API-Version`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import orjson
import structlog

from guestlist.connectors._http.client import VendorClient
from guestlist.connectors._http.paginate import link_pages
from guestlist.connectors._http.ratelimit import (
    Budget,
    RateLimiter,
    TokenBucket,
    limiter_for,
)
from guestlist.connectors.base import ConnectorError, Page
from guestlist.connectors.shopify import bulk
from guestlist.connectors.shopify.settings import ShopifySettings

log = structlog.get_logger(__name__)

BUCKET_SIZE = 40
LEAK_PER_SECOND = 2.0
PAGE_LIMIT = 250  # Shopify's maximum
CALL_LIMIT_HEADER = "X-Shopify-Shop-Api-Call-Limit"
VERSION_HEADER = "X-Shopify-API-Version"
# A later run asks for records updated since the run began (Shopify's clock, from the
# first answer's Date header) less this much, for writes still in flight then.
WATERMARK_OVERLAP = timedelta(minutes=5)

# Only what the mapping reads (`fields`): an order without its refunds, fulfillments
# and *_set duplicates is a third of the size.
STREAM_FIELDS = {
    "customers": (
        "id,email,phone,first_name,last_name,state,verified_email,tags,orders_count,"
        "total_spent,currency,created_at,updated_at,default_address,accepts_marketing,"
        "accepts_marketing_updated_at,marketing_opt_in_level,email_marketing_consent,"
        "sms_marketing_consent"
    ),
    "orders": (
        "id,name,order_number,email,phone,contact_email,customer,financial_status,"
        "cancelled_at,test,created_at,processed_at,updated_at,currency,total_price,"
        "subtotal_price,total_tax,total_discounts,total_shipping_price_set,shipping_lines,"
        "line_items,source_name,location_id"
    ),
}
STREAM_PARAMS: dict[str, dict[str, str]] = {"customers": {}, "orders": {"status": "any"}}


def call_limit_budget(response: httpx.Response) -> Budget | None:
    """`32/40` → 8 left of 40, leaking 2/s; `320/400` (Shopify Plus) → 80 left, 20/s."""
    value = response.headers.get(CALL_LIMIT_HEADER)
    if not value or "/" not in value:
        return None
    used, _, size = value.partition("/")
    try:
        level, capacity = float(used), float(size)
    except ValueError:
        return None
    remaining = max(0.0, capacity - level)
    # The bucket leaks its size every 20 s: 40 at 2/s, and Shopify Plus's 400 at 20/s.
    leak = capacity / (BUCKET_SIZE / LEAK_PER_SECOND)
    return Budget(
        remaining=remaining,
        capacity=capacity,
        resets_in=(1.0 - remaining) / leak if remaining < 1 else None,
        rate=leak,
    )


def leaky_bucket(sleep: Callable[[float], None] = time.sleep) -> TokenBucket:
    return TokenBucket(BUCKET_SIZE, LEAK_PER_SECOND, read_budget=call_limit_budget, sleep=sleep)


def make_client(
    settings: ShopifySettings,
    *,
    connection_id: int | None = None,
    limiter: RateLimiter | None = None,
    sleep: Callable[[float], None] = time.sleep,
    attempts: int = 6,
) -> VendorClient:
    return VendorClient(
        settings.api_base,
        headers={
            "X-Shopify-Access-Token": settings.access_token.get_secret_value(),
            "Accept": "application/json",
        },
        limiter=limiter or limiter_for("shopify", connection_id, lambda: leaky_bucket(sleep)),
        sleep=sleep,
        attempts=attempts,
    )


_fallen_forward: set[tuple[str, str, str]] = set()


def served_version(response: httpx.Response, settings: ShopifySettings) -> str:
    """The version Shopify answered with; logged (once per shop) when it is not the one
    asked for: a retired version such as 2023-01 falls forward to the oldest supported."""
    served = response.headers.get(VERSION_HEADER) or settings.api_version
    if served != settings.api_version:
        key = (settings.shop_domain, settings.api_version, served)
        if key not in _fallen_forward:
            _fallen_forward.add(key)
            log.warning(
                "shopify api version fell forward",
                shop=settings.shop_domain,
                requested=settings.api_version,
                served=served,
            )
    return served


def api_path(settings: ShopifySettings, resource: str) -> str:
    return f"/admin/api/{settings.api_version}/{resource}.json"


def shop_summary(client: VendorClient, settings: ShopifySettings) -> str:
    response = client.get(api_path(settings, "shop"))
    served = served_version(response, settings)
    shop = orjson.loads(response.content).get("shop") or {}
    line = f"{shop.get('name', '?')} ({shop.get('myshopify_domain', settings.shop_domain)})"
    if served != settings.api_version:
        return f"{line}; API version {settings.api_version} is retired, Shopify answered {served}"
    return f"{line}; API version {served}"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a stream's pull is: mid-run (`next` page, and the run's watermark to hand
    on at its end) or between runs (`updated_at_min` for the next one)."""

    next: str | None = None
    watermark: str | None = None
    updated_at_min: str | None = None
    bulk_url: str | None = None  # a bulk operation's result file, and how far we got
    bulk_done: int = 0

    @classmethod
    def read(cls, value: str | None) -> Checkpoint:
        if not value:
            return cls()
        if value.startswith(("/", "http://", "https://")):  # a bare next-page URL
            return cls(next=value)
        try:
            data = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise ConnectorError(f"unreadable shopify checkpoint {value[:80]!r}") from None
        if not isinstance(data, dict):
            raise ConnectorError(f"unreadable shopify checkpoint {value[:80]!r}")
        return cls(
            next=data.get("next"),
            watermark=data.get("watermark"),
            updated_at_min=data.get("updated_at_min"),
            bulk_url=data.get("bulk_url"),
            bulk_done=int(data.get("bulk_done") or 0),
        )

    def dump(self) -> str:
        fields = (
            ("next", self.next),
            ("watermark", self.watermark),
            ("updated_at_min", self.updated_at_min),
            ("bulk_url", self.bulk_url),
            ("bulk_done", self.bulk_done),
        )
        return orjson.dumps({k: v for k, v in fields if v}).decode()


def _server_time(response: httpx.Response) -> datetime:
    value = response.headers.get("date")
    try:
        when = parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError):
        when = None
    if when is None:
        return datetime.now(UTC)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _resumable(url: str, base: str, fields: str) -> str:
    """The next-page URL as we keep it: relative to the base URL (so a changed host or a
    fake on another port still resumes), with `fields` kept (page_info allows it)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if not any(name == "fields" for name, _ in query):
        query.append(("fields", fields))
    full = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
    base_parts = urlsplit(base)
    if (parts.scheme, parts.netloc) == (base_parts.scheme, base_parts.netloc):
        path = parts.path.removeprefix(base_parts.path.rstrip("/"))
        return urlunsplit(("", "", path, urlencode(query), ""))
    return full


def pull_stream(
    client: VendorClient, settings: ShopifySettings, stream: str, checkpoint: str | None
) -> Iterator[Page]:
    """Pages of `customers` or `orders`, 250 at a time; see `Checkpoint`."""
    if stream not in STREAM_FIELDS:
        raise ConnectorError(f"shopify has no stream {stream!r}")
    at = Checkpoint.read(checkpoint)
    if at.bulk_url or (settings.bulk_backfill and checkpoint is None):
        yield from _bulk_stream(client, settings, stream, at)
        return
    fields = STREAM_FIELDS[stream]
    params: dict[str, Any] = {"limit": PAGE_LIMIT, "fields": fields, **STREAM_PARAMS[stream]}
    if at.updated_at_min:
        params["updated_at_min"] = at.updated_at_min
    watermark = at.watermark
    base = str(client.http.base_url)
    for response, following in link_pages(
        client, api_path(settings, stream), params=params, start=at.next
    ):
        served_version(response, settings)
        if watermark is None:
            watermark = (_server_time(response) - WATERMARK_OVERLAP).isoformat()
        body = orjson.loads(response.content)
        records = body.get(stream) if isinstance(body, dict) else None
        if not isinstance(records, list):
            raise ConnectorError(f"shopify {stream}.json answered without a {stream!r} list")
        if following is None:
            yield Page(records, None, next_run=Checkpoint(updated_at_min=watermark).dump())
        else:
            yield Page(
                records,
                Checkpoint(next=_resumable(following, base, fields), watermark=watermark).dump(),
            )


def _bulk_stream(
    client: VendorClient, settings: ShopifySettings, stream: str, at: Checkpoint
) -> Iterator[Page]:
    """The stream through a GraphQL bulk operation; the last page hands on to REST."""
    watermark = at.watermark
    url = at.bulk_url
    if url is None:
        # Our clock, less the overlap: the operation reads a snapshot taken after this.
        watermark = (datetime.now(UTC) - WATERMARK_OVERLAP).isoformat()
        url = bulk.run_bulk_query(client, settings, stream, sleep=client.sleep)
    for page in bulk.bulk_pages(
        client,
        settings,
        stream,
        url=url,
        skip=at.bulk_done,
        page_size=PAGE_LIMIT,
        checkpoint=lambda file, done: Checkpoint(
            watermark=watermark, bulk_url=file, bulk_done=done
        ).dump(),
    ):
        if page.checkpoint is None:
            yield Page(page.records, None, next_run=Checkpoint(updated_at_min=watermark).dump())
        else:
            yield page
