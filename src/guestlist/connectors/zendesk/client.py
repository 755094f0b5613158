"""Zendesk's API: the client, the users stream (cursor-based incremental export), the
test call.

`GET /api/v2/incremental/users/cursor.json?start_time=…` starts an export; each answer
gives `after_cursor` and `end_of_stream`, and the next request passes `cursor=`
(https://developer.zendesk.com/api-reference/ticketing/ticket-management/incremental_exports/).
The cursor is the checkpoint; at the end of the stream the last `after_cursor` is where
the next run starts, which is how the incremental export is meant to be used: a later
run asks only for what changed since.

Limits: the incremental exports allow 10 requests a minute (per account, whatever the
plan); a 429 carries `Retry-After`. A connection's bucket holds 5 and refills at 5 a
minute, so no 60-second window ever sees more than 5 + 5 = 10 of its requests (a bucket
of 10 would allow 11: 10 at once, one more 6 s later). The client honours `Retry-After`
when another app spent the account's budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson

from guestlist.connectors._http.client import VendorClient
from guestlist.connectors._http.ratelimit import RateLimiter, TokenBucket, limiter_for
from guestlist.connectors.base import ConnectorError, Page
from guestlist.connectors.zendesk.mapping import BIRTHDATE_KEY, is_customer
from guestlist.connectors.zendesk.settings import ZendeskSettings

EXPORT = "/api/v2/incremental/users/cursor.json"
PER_PAGE = 1000  # the most the export gives
EXPORT_BURST = 5.0
EXPORT_RATE = 5.0 / 60.0  # per second


def make_client(
    settings: ZendeskSettings,
    *,
    connection_id: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    limiter: RateLimiter | None = None,
    transport: httpx.BaseTransport | None = None,
) -> VendorClient:
    headers = {"Accept": "application/json"}
    auth: tuple[str, str] | None = None
    if settings.oauth_token is not None:
        headers["Authorization"] = f"Bearer {settings.oauth_token.get_secret_value()}"
    else:
        assert settings.api_token is not None and settings.email
        auth = (f"{settings.email}/token", settings.api_token.get_secret_value())
    return VendorClient(
        settings.api_url,
        headers=headers,
        auth=auth,
        limiter=limiter
        or limiter_for(
            "zendesk", connection_id,
            lambda: TokenBucket(EXPORT_BURST, EXPORT_RATE, sleep=sleep),
        ),
        sleep=sleep,
        transport=transport,
    )


def _cursor_of(checkpoint: str | None) -> str | None:
    if not checkpoint:
        return None
    try:
        saved = orjson.loads(checkpoint)
        cursor = saved["cursor"]
    except (orjson.JSONDecodeError, TypeError, KeyError):
        raise ConnectorError(f"unreadable Zendesk checkpoint {checkpoint[:80]!r}") from None
    if not isinstance(cursor, str) or not cursor:
        raise ConnectorError(f"unreadable Zendesk checkpoint {checkpoint[:80]!r}")
    return cursor


def user_pages(
    client: VendorClient,
    settings: ZendeskSettings,
    checkpoint: str | None,
    *,
    per_page: int | None = None,
) -> Iterator[Page]:
    """The users stream from a saved cursor, or from `start_time` on a first run.

    Agents and admins are dropped before storing (staff, not customers: no reason to
    keep their personal data); end users are stored as Zendesk gave them, with the
    configured birthdate field's key beside them for the mapping.
    """
    cursor = _cursor_of(checkpoint)
    per_page = per_page or PER_PAGE
    while True:
        params: dict[str, Any] = {"per_page": per_page}
        if cursor:
            params["cursor"] = cursor
        else:
            params["start_time"] = settings.start_time
        answer = client.get(EXPORT, params=params).json()
        users = answer.get("users")
        if not isinstance(users, list):
            raise ConnectorError("the Zendesk users export answered without `users`")
        records = []
        for user in users:
            if not isinstance(user, dict) or not is_customer(user):
                continue
            if settings.birthdate_field:
                user[BIRTHDATE_KEY] = settings.birthdate_field
            records.append(user)
        after = answer.get("after_cursor")
        if isinstance(after, str) and after:
            cursor = after
        saved = orjson.dumps({"cursor": cursor}).decode() if cursor else None
        if answer.get("end_of_stream") is True or not after:
            yield Page(records, None, next_run=saved)
            return
        yield Page(records, saved)


def check(client: VendorClient) -> str:
    me = client.get("/api/v2/users/me.json").json().get("user") or {}
    return f"signed in as {me.get('email')!r} ({me.get('role')})"
