"""Magento REST calls: sign-in, the rate limit we keep, and keyset pages of a stream.

Pages are read with searchCriteria filters on `(updated_at, entity_id)` rather than
page numbers (see docs/connectors/magento.md, "Why a keyset and not currentPage"):
a record updated during a pull moves behind the cursor instead of shifting the pages
still to come, so nothing is skipped, and the last cursor is the next run's watermark.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from guestlist.connectors._http.client import VendorClient
from guestlist.connectors._http.paginate import search_criteria_params
from guestlist.connectors._http.ratelimit import TokenBucket, limiter_for
from guestlist.connectors.base import ConnectorError, Page
from guestlist.connectors.magento.settings import MagentoSettings

SLUG = "magento"
PAGE_SIZE = 100
# A run's watermark is moved back by this much: an order saved in a long transaction
# gets its updated_at before it commits, and may become visible after we passed it.
OVERLAP = timedelta(seconds=60)
MAGENTO_TIME = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True, slots=True)
class Stream:
    path: str  # under /rest/{store}/V1
    id_field: str  # the record's id in the answer
    # The id as a searchCriteria field: customers/search refuses `id` ("Invalid
    # attribute name", magento/magento2#7530); the column is entity_id in both.
    filter_field: str = "entity_id"


STREAMS: dict[str, Stream] = {
    "customers": Stream("customers/search", "id"),
    "orders": Stream("orders", "entity_id"),
}


class AdminTokenAuth(httpx.Auth):
    """Bearer admin token from `POST /integration/admin/token`, fetched when first needed
    and once more when the API answers 401 (tokens expire, 4 hours by default)."""

    requires_response_body = True

    def __init__(self, token_url: str, username: str, password: str) -> None:
        self.token_url = token_url
        self._body = orjson.dumps({"username": username, "password": password})
        self._token: str | None = None
        self._lock = threading.Lock()
        self.fetched = 0  # tokens fetched (tests)

    def _token_request(self) -> httpx.Request:
        return httpx.Request(
            "POST",
            self.token_url,
            content=self._body,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )

    def _read_token(self, response: httpx.Response) -> str | None:
        if response.status_code != 200:
            return None
        try:
            token = response.json()
        except ValueError:
            return None
        if not isinstance(token, str) or not token:
            return None
        self.fetched += 1
        return token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        with self._lock:
            token = self._token
        if token is None:
            answer = yield self._token_request()
            token = self._read_token(answer)
            if token is None:
                return  # the token endpoint's refusal is the answer (VendorError)
            with self._lock:
                self._token = token
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        answer = yield self._token_request()
        fresh = self._read_token(answer)
        with self._lock:
            self._token = fresh
        if fresh is None:
            return
        request.headers["Authorization"] = f"Bearer {fresh}"
        yield request


def build_client(
    settings: MagentoSettings,
    *,
    connection_id: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    timeout: float = 30.0,
    attempts: int = 6,
) -> VendorClient:
    rate = settings.requests_per_second
    # Capacity 1: evenly spaced requests, never a burst (no limit is published to burst to).
    limiter = limiter_for(
        SLUG, connection_id, lambda: TokenBucket(1.0, rate, clock=clock, sleep=sleep)
    )
    auth: httpx.Auth | None = None
    headers = {"Accept": "application/json"}
    if settings.access_token is not None:
        headers["Authorization"] = f"Bearer {settings.access_token.get_secret_value()}"
    else:
        assert settings.admin_username is not None and settings.admin_password is not None
        auth = AdminTokenAuth(
            f"{settings.api_root}/integration/admin/token",
            settings.admin_username,
            settings.admin_password.get_secret_value(),
        )
    return VendorClient(
        settings.api_root,
        headers=headers,
        auth=auth,
        limiter=limiter,
        sleep=sleep,
        timeout=timeout,
        attempts=attempts,
    )


# --- Times -----------------------------------------------------------------------------


def parse_time(value: str) -> datetime:
    """A Magento time: `2024-01-15 10:20:30` is UTC (the API writes no zone)."""
    text = value.strip().replace("T", " ")
    if text.endswith("Z"):
        text = text[:-1]
    if len(text) > 19 and text[19] in "+-":
        parsed = datetime.fromisoformat(text.replace(" ", "T"))
        return parsed.astimezone(UTC)
    return datetime.strptime(text[:19], MAGENTO_TIME).replace(tzinfo=UTC)


def magento_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime(MAGENTO_TIME)


# --- Cursor ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cursor:
    """The last record read: `(updated_at, id)`; the next page starts after it."""

    updated_at: str  # Magento's own spelling, UTC
    id: int

    def dump(self) -> str:
        return orjson.dumps({"updated_at": self.updated_at, "id": self.id}).decode()

    @classmethod
    def load(cls, checkpoint: str) -> Cursor:
        try:
            raw = orjson.loads(checkpoint)
            cursor = cls(str(raw["updated_at"]), int(raw["id"]))
            parse_time(cursor.updated_at)
        except (ValueError, KeyError, TypeError) as exc:
            raise ConnectorError(f"unreadable magento checkpoint {checkpoint[:80]!r}") from exc
        return cursor

    def __lt__(self, other: Cursor) -> bool:
        return (parse_time(self.updated_at), self.id) < (parse_time(other.updated_at), other.id)

    def watermark(self) -> Cursor:
        """Where the next run starts: this cursor moved back by OVERLAP."""
        return Cursor(magento_time(parse_time(self.updated_at) - OVERLAP), 0)


def record_cursor(stream: Stream, record: dict[str, Any]) -> Cursor:
    updated, ident = record.get("updated_at"), record.get(stream.id_field)
    if not isinstance(updated, str) or not updated:
        raise ConnectorError(f"a {stream.path} record has no updated_at")
    if isinstance(ident, bool) or not isinstance(ident, int | str) or not str(ident).isdigit():
        raise ConnectorError(f"a {stream.path} record has no numeric {stream.id_field}")
    try:
        parse_time(updated)
    except ValueError:
        raise ConnectorError(f"a {stream.path} record has updated_at {updated[:40]!r}") from None
    return Cursor(updated, int(ident))


def page_params(stream: Stream, after: Cursor | None, page_size: int = PAGE_SIZE) -> dict[str, str]:
    """searchCriteria for the page after `after`: groups are AND'ed, filters in a group
    OR'ed, so `updated_at >= u AND (updated_at > u OR entity_id > id)`."""
    filters: list[list[tuple[str, str, str]]] = []
    if after is not None:
        filters = [
            [("updated_at", after.updated_at, "gteq")],
            [("updated_at", after.updated_at, "gt"), (stream.filter_field, str(after.id), "gt")],
        ]
    sort = [("updated_at", "ASC"), (stream.filter_field, "ASC")]
    return search_criteria_params(filters, page_size=page_size, current_page=1, sort=sort)


def pull_stream(
    client: VendorClient, name: str, checkpoint: str | None, *, page_size: int = PAGE_SIZE
) -> Iterator[Page]:
    stream = STREAMS[name]
    start = Cursor.load(checkpoint) if checkpoint else None
    after = start
    seen = 0
    while True:
        answer = client.get(stream.path, params=page_params(stream, after, page_size)).json()
        if not isinstance(answer, dict) or not isinstance(answer.get("items", []), list):
            raise ConnectorError(f"GET {stream.path}: expected {{items, total_count}}")
        items: list[dict[str, Any]] = list(answer.get("items") or [])
        remaining = int(answer.get("total_count") or 0)
        last = after
        for record in items:
            cursor = record_cursor(stream, record)
            if last is not None and not last < cursor:
                raise ConnectorError(
                    f"GET {stream.path}: records out of order after {last.dump()}; "
                    "does the store ignore sortOrders?"
                )
            last = cursor
        seen += len(items)
        # total_count counts every record after the cursor: when this page holds them
        # all, the stream is done (asking further would repeat the last page).
        done = not items or remaining <= len(items)
        if done:
            end = start
            if last is not None and last is not start:
                end = last.watermark() if start is None else max(start, last.watermark())
            yield Page(items, None, seen + max(0, remaining - len(items)),
                       next_run=end.dump() if end else None)
            return
        assert last is not None
        yield Page(items, last.dump(), seen + remaining - len(items))
        after = last
