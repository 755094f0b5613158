"""Square's API: the client, the customers stream, and writing customers and groups.

Square publishes no numeric rate limit (https://developer.squareup.com/docs/build-basics/
common-api-patterns/rate-limits: "a 429 RATE_LIMITED … back off"), so we keep each
connection to a conservative 10 requests a second (bursts of 10); a 429 with or
without `Retry-After` is retried with backoff by the shared client.

Search is eventually consistent (a change shows after well under 30 s, sometimes a
minute or more), so an incremental run starts `OVERLAP` before the newest change the
previous run saw; what it sees again has the same message ids and is applied once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from guestlist.capture.tracking_parse import parse_timestamp
from guestlist.connectors._http.client import VendorClient, VendorError
from guestlist.connectors._http.paginate import cursor_pages
from guestlist.connectors._http.ratelimit import RateLimiter, TokenBucket, limiter_for
from guestlist.connectors.base import ConnectorError, Page
from guestlist.connectors.square.settings import SquareSettings

RATE_PER_SECOND = 10.0
BURST = 10.0
PAGE_LIMIT = 100  # Square's maximum for customers (1-100)
GROUP_PAGE_LIMIT = 50  # and for customer groups (1-50)
OVERLAP = timedelta(minutes=10)
CUSTOMERS = "/v2/customers"
SEARCH_CUSTOMERS = "/v2/customers/search"
GROUPS = "/v2/customers/groups"
LOCATIONS = "/v2/locations"
SEARCH_ORDERS = "/v2/orders/search"
ORDER_PAGE_LIMIT = 100  # SearchOrders takes up to 1000; full orders make big pages
LOCATIONS_PER_SEARCH = 10  # SearchOrders takes at most 10 location ids
# Keys of a customer we may write (CreateCustomerRequest / UpdateCustomerRequest).
CUSTOMER_FIELDS = frozenset(
    {
        "given_name", "family_name", "company_name", "nickname", "email_address",
        "address", "phone_number", "reference_id", "note", "birthday", "tax_ids",
    }
)
_KEYS = uuid.UUID("6c1f4b52-7f0e-4d53-9a57-3d8f4a0b2c11")  # namespace of our idempotency keys


def make_client(
    settings: SquareSettings,
    *,
    connection_id: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    limiter: RateLimiter | None = None,
    transport: httpx.BaseTransport | None = None,
) -> VendorClient:
    """The connection's client; `sleep` and `limiter` are for tests (no real waits)."""
    return VendorClient(
        settings.api_url,
        headers={
            "Authorization": f"Bearer {settings.access_token.get_secret_value()}",
            "Square-Version": settings.square_version,
            "Accept": "application/json",
        },
        limiter=limiter
        or limiter_for(
            "square", connection_id, lambda: TokenBucket(BURST, RATE_PER_SECOND, sleep=sleep)
        ),
        sleep=sleep,
        transport=transport,
    )


def _cursor(body: Any) -> str | None:
    cursor = body.get("cursor") if isinstance(body, dict) else None
    return str(cursor) if cursor else None


def _rfc3339(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _record_key(record: Any) -> tuple[str, str]:
    """What tells one version of a record from another, never raising on a bad one."""
    if not isinstance(record, dict):
        return ("", orjson.dumps(record).decode())
    version = record.get("version")
    return (str(record.get("id")), f"v{version}" if version is not None else
            str(record.get("updated_at")))


def _newer(newest: datetime | None, value: Any) -> datetime | None:
    if not isinstance(value, str):
        return newest
    try:
        at = parse_timestamp(value)
    except ValueError:
        return newest
    return at if newest is None or at > newest else newest


@dataclass(frozen=True, slots=True)
class CustomersCheckpoint:
    """Where a customers pull is: the page cursor, the run's filter and watermark."""

    cursor: str | None = None  # Square's cursor for the next page of this run
    since: str | None = None  # the run's `updated_at.start_at`; None: everything
    seen_max: str | None = None  # the newest `updated_at` this run has seen

    def dumps(self) -> str:
        return orjson.dumps({k: v for k, v in asdict(self).items() if v is not None}).decode()

    @classmethod
    def loads(cls, text: str | None) -> CustomersCheckpoint:
        if not text:
            return cls()
        try:
            raw = orjson.loads(text)
            return cls(**{k: raw.get(k) for k in ("cursor", "since", "seen_max")})
        except (orjson.JSONDecodeError, TypeError, AttributeError):
            raise ConnectorError(f"unreadable Square checkpoint {text[:80]!r}") from None


def search_body(since: str | None, limit: int = PAGE_LIMIT) -> dict[str, Any]:
    query: dict[str, Any] = {"sort": {"field": "CREATED_AT", "order": "ASC"}}
    if since:
        query["filter"] = {"updated_at": {"start_at": since}}
    return {"limit": limit, "query": query, "count": True}


def customer_pages(
    client: VendorClient, checkpoint: str | None, *, limit: int | None = None
) -> Iterator[Page]:
    """The customers stream: SearchCustomers, oldest first, changed since the last run."""
    state = CustomersCheckpoint.loads(checkpoint)
    limit = limit or PAGE_LIMIT
    newest = parse_timestamp(state.seen_max) if state.seen_max else None
    seen: set[tuple[str, str]] = set()  # search may show a record twice in one run
    pages = cursor_pages(
        client,
        "POST",
        SEARCH_CUSTOMERS,
        next_cursor=_cursor,
        body=search_body(state.since, limit),
        start=state.cursor,
    )
    for response, cursor in pages:
        answer = response.json()
        records = []
        for customer in answer.get("customers") or []:
            key = _record_key(customer)
            if key in seen:
                continue
            seen.add(key)
            records.append(customer)  # a malformed one is stored, and fails its parse
            newest = _newer(newest, customer.get("updated_at"))
        total = answer.get("count") if isinstance(answer.get("count"), int) else None
        seen_max = _rfc3339(newest) if newest else None
        if cursor:
            after = CustomersCheckpoint(cursor, state.since, seen_max)
            yield Page(records, after.dumps(), total)
        else:
            since = _rfc3339(newest - OVERLAP) if newest else state.since
            yield Page(records, None, total, next_run=CustomersCheckpoint(since=since).dumps())


# -- the orders stream -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrdersCheckpoint:
    """Where an orders pull is: the run's locations, which group of them, the cursor."""

    locations: list[str] | None = None  # every location id, fetched at the run's start
    group: int = 0  # which LOCATIONS_PER_SEARCH-sized group is being searched
    cursor: str | None = None
    since: str | None = None
    seen_max: str | None = None

    def dumps(self) -> str:
        raw = {k: v for k, v in asdict(self).items() if v is not None and v != 0}
        return orjson.dumps(raw).decode()

    @classmethod
    def loads(cls, text: str | None) -> OrdersCheckpoint:
        if not text:
            return cls()
        try:
            raw = orjson.loads(text)
            return cls(**{k: raw.get(k, 0 if k == "group" else None) for k in (
                "locations", "group", "cursor", "since", "seen_max")})
        except (orjson.JSONDecodeError, TypeError, AttributeError):
            raise ConnectorError(f"unreadable Square checkpoint {text[:80]!r}") from None


def location_ids(client: VendorClient) -> list[str]:
    """Every location of the seller, closed ones too (their orders are history)."""
    return [str(loc["id"]) for loc in client.get(LOCATIONS).json().get("locations") or []]


def orders_body(locations: list[str], since: str | None, limit: int) -> dict[str, Any]:
    wanted: dict[str, Any] = {"state_filter": {"states": ["COMPLETED"]}}
    if since:
        wanted["date_time_filter"] = {"updated_at": {"start_at": since}}
    return {
        "location_ids": locations,
        "limit": limit,
        # Square asks that the sort field be the one the time filter uses.
        "query": {"filter": wanted, "sort": {"sort_field": "UPDATED_AT", "sort_order": "ASC"}},
    }


def order_pages(
    client: VendorClient, checkpoint: str | None, *, limit: int | None = None
) -> Iterator[Page]:
    """The orders stream: completed orders of every location, changed since the last run."""
    state = OrdersCheckpoint.loads(checkpoint)
    limit = limit or ORDER_PAGE_LIMIT
    locations = state.locations if state.locations is not None else location_ids(client)
    groups = [
        locations[i : i + LOCATIONS_PER_SEARCH]
        for i in range(0, len(locations), LOCATIONS_PER_SEARCH)
    ]
    newest = parse_timestamp(state.seen_max) if state.seen_max else None
    seen: set[tuple[str, str]] = set()
    cursor = state.cursor
    for number in range(state.group, len(groups)):
        pages = cursor_pages(
            client,
            "POST",
            SEARCH_ORDERS,
            next_cursor=_cursor,
            body=orders_body(groups[number], state.since, limit),
            start=cursor,
        )
        cursor = None
        for response, following in pages:
            records = []
            for order in response.json().get("orders") or []:
                key = _record_key(order)
                if key in seen:
                    continue
                seen.add(key)
                records.append(order)
                newest = _newer(newest, order.get("updated_at"))
            seen_max = _rfc3339(newest) if newest else None
            if following or number + 1 < len(groups):
                after = OrdersCheckpoint(
                    locations,
                    number if following else number + 1,
                    following,
                    state.since,
                    seen_max,
                )
                yield Page(records, after.dumps())
            else:
                since = _rfc3339(newest - OVERLAP) if newest else state.since
                yield Page(records, None, next_run=OrdersCheckpoint(since=since).dumps())
    if not groups:  # a seller without locations has no orders
        yield Page([], None, next_run=OrdersCheckpoint(since=state.since).dumps())


def check(client: VendorClient) -> str:
    answer = client.get(CUSTOMERS, params={"limit": 1}).json()
    shown = len(answer.get("customers") or [])
    return f"Square answered: customers readable ({shown} on a first page of 1)"


# -- writing: customers ---------------------------------------------------------------


def idempotency_key(*parts: object) -> str:
    """A key derived from what is sent: a retry of the same request reuses it."""
    return str(uuid.uuid5(_KEYS, orjson.dumps(parts, option=orjson.OPT_SORT_KEYS).decode()))


def find_customer_by_email(client: VendorClient, email: str) -> dict[str, Any] | None:
    """The oldest customer with exactly this email (Square allows several), if any.

    Search lags writes by up to a minute or more: a customer created just now may not
    be found yet.
    """
    body = {
        "limit": 1,
        "query": {
            "filter": {"email_address": {"exact": email.strip()}},
            "sort": {"field": "CREATED_AT", "order": "ASC"},
        },
    }
    customers = client.post(SEARCH_CUSTOMERS, json=body).json().get("customers") or []
    return dict(customers[0]) if customers else None


def retrieve_customer(client: VendorClient, customer_id: str) -> dict[str, Any]:
    return dict(client.get(f"{CUSTOMERS}/{quote(customer_id, safe='')}").json()["customer"])


def is_version_conflict(exc: VendorError) -> bool:
    """Square's answer to a stale `version` (a 409/400 CONFLICT or VERSION_MISMATCH)."""
    return exc.status in (400, 409) and any(
        code in exc.detail for code in ('"CONFLICT"', "VERSION_MISMATCH")
    )


@dataclass(frozen=True, slots=True)
class Upserted:
    customer: dict[str, Any]
    created: bool


def _writable(fields: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(fields) - CUSTOMER_FIELDS)
    if unknown:
        raise ValueError(f"not a writable Square customer field: {', '.join(unknown)}")
    return dict(fields)


def create_customer(client: VendorClient, fields: Mapping[str, Any]) -> dict[str, Any]:
    body = _writable(fields)
    body["idempotency_key"] = idempotency_key("create_customer", body)
    return dict(client.post(CUSTOMERS, json=body).json()["customer"])


def update_customer(
    client: VendorClient,
    customer: Mapping[str, Any],
    fields: Mapping[str, Any],
    *,
    attempts: int = 3,
) -> dict[str, Any]:
    """Update with optimistic concurrency: a stale version is re-read and retried."""
    body = _writable(fields)
    current = dict(customer)
    for attempt in range(1, attempts + 1):
        url = f"{CUSTOMERS}/{quote(str(current['id']), safe='')}"
        try:
            answer = client.put(url, json={**body, "version": current["version"]})
            return dict(answer.json()["customer"])
        except VendorError as exc:
            if attempt == attempts or not is_version_conflict(exc):
                raise
            current = retrieve_customer(client, str(current["id"]))
    raise AssertionError("unreachable")  # pragma: no cover


def upsert_customer(client: VendorClient, fields: Mapping[str, Any]) -> Upserted:
    """Square has no upsert: find by exact `email_address`, then update or create."""
    email = fields.get("email_address")
    if not isinstance(email, str) or not email.strip():
        raise ValueError("upsert_customer needs an email_address")
    existing = find_customer_by_email(client, email)
    if existing is None:
        return Upserted(create_customer(client, fields), created=True)
    return Upserted(update_customer(client, existing, fields), created=False)


# -- writing: customer groups (our tags) ----------------------------------------------


def list_groups(client: VendorClient) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for response, _ in cursor_pages(
        client, "GET", GROUPS, next_cursor=_cursor, params={"limit": GROUP_PAGE_LIMIT}
    ):
        groups.extend(response.json().get("groups") or [])
    return groups


def create_group(client: VendorClient, name: str) -> dict[str, Any]:
    body = {"idempotency_key": idempotency_key("create_group", name), "group": {"name": name}}
    return dict(client.post(GROUPS, json=body).json()["group"])


def ensure_group(client: VendorClient, name: str) -> dict[str, Any]:
    """The group called `name`, created when there is none."""
    for group in list_groups(client):
        if group.get("name") == name:
            return group
    return create_group(client, name)


def _membership(customer_id: str, group_id: str) -> str:
    return f"{CUSTOMERS}/{quote(customer_id, safe='')}/groups/{quote(group_id, safe='')}"


def add_to_group(client: VendorClient, customer_id: str, group_id: str) -> None:
    client.put(_membership(customer_id, group_id))


def remove_from_group(client: VendorClient, customer_id: str, group_id: str) -> None:
    client.delete(_membership(customer_id, group_id))
