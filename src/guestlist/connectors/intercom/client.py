"""Intercom's API: the client, the contacts stream (search), the test call.

Limits (https://developers.intercom.com/docs/references/rest-api/errors/rate-limiting):
private apps 10,000 calls a minute per app and 25,000 per workspace, counted in
10-second windows; each answer carries `X-RateLimit-Limit`, `-Remaining` and `-Reset`
(epoch seconds when the window restarts), which the bucket reads, and a 429 when it is
spent. We keep a connection to 50 calls a second, well under both.

Search is eventually consistent ("a contact … recently created … may not appear …
this delay can take a few minutes"), so an incremental run starts `OVERLAP` before the
newest `updated_at` the previous run saw; what it sees again has the same message ids.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import orjson

from guestlist.connectors._http.client import VendorClient
from guestlist.connectors._http.ratelimit import Budget, RateLimiter, TokenBucket, limiter_for
from guestlist.connectors.base import ConnectorError, Page
from guestlist.connectors.intercom.settings import IntercomSettings

RATE_PER_SECOND = 50.0
BURST = 50.0
PER_PAGE = 150  # the most /contacts/search gives
OVERLAP = 600  # seconds
SEARCH = "/contacts/search"


def rate_budget(
    response: httpx.Response, now: Callable[[], float] = time.time
) -> Budget | None:
    """`X-RateLimit-Remaining` and `-Reset` (epoch seconds) as what is left."""
    remaining = response.headers.get("x-ratelimit-remaining")
    if remaining is None:
        return None
    try:
        left = float(remaining)
        reset = response.headers.get("x-ratelimit-reset")
        resets_in = max(0.0, float(reset) - now()) if reset else None
    except ValueError:
        return None
    return Budget(remaining=left, resets_in=resets_in)


def make_client(
    settings: IntercomSettings,
    *,
    connection_id: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    limiter: RateLimiter | None = None,
    transport: httpx.BaseTransport | None = None,
) -> VendorClient:
    return VendorClient(
        settings.api_url,
        headers={
            "Authorization": f"Bearer {settings.access_token.get_secret_value()}",
            "Intercom-Version": settings.intercom_version,
            "Accept": "application/json",
        },
        limiter=limiter
        or limiter_for(
            "intercom",
            connection_id,
            lambda: TokenBucket(BURST, RATE_PER_SECOND, read_budget=rate_budget, sleep=sleep),
        ),
        sleep=sleep,
        transport=transport,
    )


@dataclass(frozen=True, slots=True)
class ContactsCheckpoint:
    """Where a contacts pull is: Intercom's cursor, the run's filter, its newest change."""

    cursor: str | None = None  # `pages.next.starting_after`
    since: int | None = None  # the run's `updated_at >` filter (epoch seconds)
    seen_max: int | None = None  # the newest `updated_at` this run has seen

    def dumps(self) -> str:
        return orjson.dumps({k: v for k, v in asdict(self).items() if v is not None}).decode()

    @classmethod
    def loads(cls, text: str | None) -> ContactsCheckpoint:
        if not text:
            return cls()
        try:
            raw = orjson.loads(text)
            return cls(**{k: raw.get(k) for k in ("cursor", "since", "seen_max")})
        except (orjson.JSONDecodeError, TypeError, AttributeError):
            raise ConnectorError(f"unreadable Intercom checkpoint {text[:80]!r}") from None


def search_body(since: int | None, cursor: str | None, per_page: int) -> dict[str, Any]:
    pagination: dict[str, Any] = {"per_page": per_page}
    if cursor:
        pagination["starting_after"] = cursor
    return {
        # Dates take `=`, `<` and `>` only; `> 0` is every contact.
        "query": {"field": "updated_at", "operator": ">", "value": since or 0},
        "pagination": pagination,
        "sort": {"field": "updated_at", "order": "ascending"},
    }


def tag_names(client: VendorClient) -> dict[str, str]:
    """Every tag of the workspace, id → name (a contact's record holds only ids)."""
    data = client.get("/tags").json().get("data") or []
    return {str(t["id"]): str(t["name"]) for t in data if isinstance(t, dict) and "id" in t}


def contact_pages(
    client: VendorClient, checkpoint: str | None, *, per_page: int | None = None
) -> Iterator[Page]:
    """The contacts stream: search on `updated_at`, oldest change first."""
    state = ContactsCheckpoint.loads(checkpoint)
    per_page = per_page or PER_PAGE
    newest = state.seen_max
    cursor = state.cursor
    names = tag_names(client)
    seen: set[tuple[str, int]] = set()
    while True:
        answer = client.post(SEARCH, json=search_body(state.since, cursor, per_page)).json()
        records = []
        for contact in answer.get("data") or []:
            updated = contact.get("updated_at")
            key = (str(contact.get("id")), updated if isinstance(updated, int) else 0)
            if key in seen:
                continue
            seen.add(key)
            tags = contact.get("tags")
            if isinstance(tags, dict) and isinstance(tags.get("data"), list):
                # The names, for the `tags` trait: kept beside Intercom's own fields.
                contact["tag_names"] = [
                    names[str(t.get("id"))] for t in tags["data"]
                    if isinstance(t, dict) and str(t.get("id")) in names
                ]
            records.append(contact)
            if isinstance(updated, int):
                newest = updated if newest is None else max(newest, updated)
        nxt = (answer.get("pages") or {}).get("next") or {}
        cursor = nxt.get("starting_after") if isinstance(nxt, dict) else None
        total = answer.get("total_count") if isinstance(answer.get("total_count"), int) else None
        if cursor:
            yield Page(records, ContactsCheckpoint(cursor, state.since, newest).dumps(), total)
            continue
        since = newest - OVERLAP if newest is not None else state.since
        yield Page(records, None, total, next_run=ContactsCheckpoint(since=since).dumps())
        return


def check(client: VendorClient) -> str:
    me = client.get("/me").json()
    app = me.get("app") if isinstance(me.get("app"), dict) else {}
    return f"workspace {app.get('name')!r} ({app.get('id_code')}), as {me.get('email')}"
