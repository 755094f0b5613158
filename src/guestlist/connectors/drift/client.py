"""Drift's contacts API: lookup, create, update, the test call.

Drift has no endpoint listing every contact: `GET /contacts?email=` (a lookup by email)
and `GET /contacts/{id}` are all there is to read (https://devdocs.drift.com/docs/
contact-model and *Retrieving Contacts*), so there is no pulled stream. These calls
serve two purposes: enriching an event that names only a contact id (a job may look
the contact up), and writing back (`POST /contacts` needs an email and refuses an email
that exists unless the `externalId` differs; `PATCH /contacts/{id}` changes
attributes), which the activation issue will use.

Limits: Drift meters API calls with a leaky bucket and answers 429 when it overflows;
its size is not published and no `Retry-After` is documented. We keep a connection to
a burst of 5 and 2 calls a second, and retry a 429 with exponential backoff and jitter
(or `Retry-After`, should Drift send one).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from guestlist.connectors._http.client import VendorClient, VendorError
from guestlist.connectors._http.ratelimit import RateLimiter, TokenBucket, limiter_for
from guestlist.connectors.base import ConnectorError
from guestlist.connectors.drift.settings import DriftSettings

BURST = 5.0
RATE_PER_SECOND = 2.0
CHECK_EMAIL = "guestlist-connection-check@example.invalid"


def make_client(
    settings: DriftSettings,
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
            "Accept": "application/json",
        },
        limiter=limiter
        or limiter_for(
            "drift", connection_id, lambda: TokenBucket(BURST, RATE_PER_SECOND, sleep=sleep)
        ),
        sleep=sleep,
        transport=transport,
    )


def _data(response: httpx.Response) -> Any:
    body = response.json()
    if not isinstance(body, dict) or "data" not in body:
        raise ConnectorError(f"Drift answered {response.request.url.path} without `data`")
    return body["data"]


def find_by_email(client: VendorClient, email: str) -> list[dict[str, Any]]:
    """The contacts with this email (Drift may hold several, one per externalId)."""
    found = _data(client.get("/contacts", params={"email": email}))
    return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []


def get_contact(client: VendorClient, contact_id: int | str) -> dict[str, Any] | None:
    """A contact by id; None when Drift has none."""
    try:
        found = _data(client.get(f"/contacts/{int(contact_id)}"))
    except VendorError as exc:
        if exc.status == 404:
            return None
        raise
    return found if isinstance(found, dict) else None


def create_contact(client: VendorClient, attributes: dict[str, Any]) -> dict[str, Any]:
    """`POST /contacts`; the attributes must hold an email. A duplicate email (without
    a different externalId) is Drift's 4xx, raised as `VendorError`."""
    if not attributes.get("email"):
        raise ConnectorError("Drift creates a contact only with an email")
    created = _data(client.post("/contacts", json={"attributes": attributes}))
    if not isinstance(created, dict):
        raise ConnectorError("Drift answered the creation without the contact")
    return created


def update_contact(
    client: VendorClient, contact_id: int | str, attributes: dict[str, Any]
) -> dict[str, Any]:
    updated = _data(client.request("PATCH", f"/contacts/{int(contact_id)}",
                                   json={"attributes": attributes}))
    if not isinstance(updated, dict):
        raise ConnectorError("Drift answered the update without the contact")
    return updated


def check(client: VendorClient) -> str:
    found = find_by_email(client, CHECK_EMAIL)
    return f"the contacts API answered ({len(found)} contacts for a test lookup)"
