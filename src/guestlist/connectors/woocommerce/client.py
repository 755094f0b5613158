"""The WooCommerce REST API v3 client: keys, pace, and the two pulled streams.

Limits: WooCommerce publishes none (each shop is self-hosted), but hosts and security
plugins answer 429 or 503 with `Retry-After`; the shared client honours both. Our own
pace is a token bucket of one token refilled `requests_per_second` times a second
(5 by default): evenly spaced requests, never a burst.

Paging: `page`/`per_page` (at most 100) with `X-WP-Total`/`X-WP-TotalPages`, ordered by
id ascending, so records created during a backfill land after the pages already read.
A page number counts positions, though, so a record deleted (or trashed) before the
current page moves every later record one place back and one would be skipped: when
`X-WP-Total` drops between two pages we step back to re-read the positions that moved
(re-reading costs a duplicate page, which message ids make harmless).

Incremental runs: orders take `modified_after` (WooCommerce 5.8+) with
`dates_are_gmt=true`; the watermark is the shop's own clock (the `Date` header of the
run's first answer) minus a margin for orders being saved while we read. Customers have
no such filter, so each run reads them all again; records that did not change make no
new events (their message ids are already stored), and webhooks carry changes between
runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

from guestlist.connectors._http.client import VendorClient
from guestlist.connectors._http.ratelimit import TokenBucket, forget_limiter, limiter_for
from guestlist.connectors.base import ConnectorError, Page
from guestlist.connectors.woocommerce.auth import OAuth1Query, QueryKeys
from guestlist.connectors.woocommerce.settings import WooCommerceSettings

SLUG = "woocommerce"
STREAMS = ("customers", "orders")
# Orders saved while a run reads are caught by the next run: it starts this long
# before the first answer of this one.
WATERMARK_MARGIN = timedelta(minutes=5)


def auth_for(settings: WooCommerceSettings) -> httpx.Auth:
    key = settings.consumer_key.get_secret_value()
    secret = settings.consumer_secret.get_secret_value()
    mode = settings.auth_mode()
    if mode == "basic":
        return httpx.BasicAuth(key, secret)
    if mode == "query":
        return QueryKeys(key, secret)
    return OAuth1Query(key, secret)


def make_client(
    settings: WooCommerceSettings,
    *,
    connection_id: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    transport: httpx.BaseTransport | None = None,
    attempts: int = 6,
) -> VendorClient:
    rate = settings.requests_per_second

    def bucket() -> TokenBucket:
        return TokenBucket(1, rate)

    limiter = limiter_for(SLUG, connection_id, bucket)
    if isinstance(limiter, TokenBucket) and limiter.rate != rate and connection_id is not None:
        # The per-process limiter outlived a connection with the same id (or its rate).
        forget_limiter(SLUG, connection_id)
        limiter = limiter_for(SLUG, connection_id, bucket)
    return VendorClient(
        settings.api_root(),
        headers={"Accept": "application/json"},
        auth=auth_for(settings),
        limiter=limiter,
        attempts=attempts,
        sleep=sleep,
        transport=transport,
    )


def _header_int(response: httpx.Response, name: str) -> int | None:
    value = response.headers.get(name, "").strip()
    return int(value) if value.isdigit() else None


def _shop_time(response: httpx.Response) -> datetime:
    value = response.headers.get("date")
    if value:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            pass
        else:
            return when if when.tzinfo else when.replace(tzinfo=UTC)
    return datetime.now(UTC)


def _gmt(when: datetime) -> str:
    """The form WooCommerce takes with `dates_are_gmt=true`: no offset, seconds."""
    return when.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat()


def _records(response: httpx.Response, stream: str) -> list[dict[str, Any]]:
    try:
        body = response.json()
    except ValueError:
        raise ConnectorError(f"{stream}: the shop answered something that is not JSON") from None
    if not isinstance(body, list) or not all(isinstance(r, dict) for r in body):
        raise ConnectorError(f"{stream}: expected a JSON list of records")
    return body


def pull_stream(
    client: VendorClient, settings: WooCommerceSettings, stream: str, checkpoint: str | None
) -> Iterator[Page]:
    if stream not in STREAMS:
        raise ConnectorError(f"unknown stream {stream!r} (streams: {', '.join(STREAMS)})")
    state: dict[str, Any] = orjson.loads(checkpoint) if checkpoint else {}
    page = int(state.get("page", 1))
    since: str | None = state.get("modified_after") if stream == "orders" else None
    started = state.get("run_started")
    run_started = datetime.fromisoformat(started) if started else None
    last_total: int | None = state.get("total")
    params: dict[str, str | int] = {"per_page": settings.per_page, "orderby": "id", "order": "asc"}
    if stream == "customers":
        params["role"] = settings.customer_role
    if since:
        params |= {"modified_after": since, "dates_are_gmt": "true"}
    while True:
        response = client.get(stream, params={**params, "page": page})
        if run_started is None:
            run_started = _shop_time(response)
        records = _records(response, stream)
        total = _header_int(response, "X-WP-Total")
        pages = _header_int(response, "X-WP-TotalPages")
        next_page = page + 1
        if last_total is not None and total is not None and total < last_total and page > 1:
            # Records before this page went away: the ones after moved back.
            next_page = max(1, page - math.ceil((last_total - total) / settings.per_page))
        elif not records or (pages is not None and page >= pages):
            next_run = None
            if stream == "orders":
                next_run = orjson.dumps(
                    {"modified_after": _gmt(run_started - WATERMARK_MARGIN)}
                ).decode()
            yield Page(records, None, total, next_run)
            return
        resume = {
            "page": next_page,
            "modified_after": since,
            "run_started": run_started.isoformat(),
            "total": total,
        }
        yield Page(records, orjson.dumps(resume).decode(), total)
        page, last_total = next_page, total


def check(client: VendorClient, settings: WooCommerceSettings) -> str:
    response = client.get(
        "customers", params={"per_page": 1, "role": settings.customer_role}
    )
    _records(response, "customers")
    total = _header_int(response, "X-WP-Total")
    count = f"{total} customers" if total is not None else "customers readable"
    return f"{settings.site_url}: {count} (role {settings.customer_role})"
