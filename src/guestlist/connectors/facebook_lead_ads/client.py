"""The Graph API calls of Lead Ads: read a lead, read its form's legal content.

Limits (https://developers.facebook.com/docs/marketing-api/guides/lead-ads/retrieving):
leads of a Page may be read 200 x 24 x (leads of the last 90 days) times a day; the
app's own usage is reported in `X-App-Usage` (percentages of its hourly budget:
`call_count`, `total_time`, `total_cputime`). Meta answers a throttled call with a 400
or 403 carrying error code 4, 17, 32 or 613 rather than a 429, so those are not
retried here: the fetch job fails and the job queue retries it later with backoff.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from guestlist.connectors._http.client import VendorClient
from guestlist.connectors._http.ratelimit import Budget, RateLimiter, TokenBucket, limiter_for
from guestlist.connectors.base import ConnectorError
from guestlist.connectors.facebook_lead_ads.settings import FacebookLeadAdsSettings

RATE_PER_SECOND = 5.0  # leads arrive one webhook at a time; no need to hurry
BURST = 5.0
# Usage (in percent of the app's hourly budget) at which we stop calling for a while.
USAGE_CEILING = 95.0
USAGE_PAUSE = 300.0
LEAD_FIELDS = (
    "id,created_time,field_data,form_id,ad_id,ad_name,adset_id,campaign_id,campaign_name,"
    "is_organic,platform,custom_disclaimer_responses"
)
FORM_FIELDS = "id,name,locale,status,privacy_policy_url,legal_content"


def app_usage(response: httpx.Response) -> Budget | None:
    """`X-App-Usage: {"call_count":28,"total_time":25,"total_cputime":25}` near 100: pause."""
    raw = response.headers.get("x-app-usage")
    if not raw:
        return None
    try:
        usage = orjson.loads(raw)
        used = max(float(v) for v in usage.values())
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return None
    if used < USAGE_CEILING:
        return None
    return Budget(remaining=0.0, resets_in=USAGE_PAUSE)


def make_client(
    settings: FacebookLeadAdsSettings,
    *,
    connection_id: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    limiter: RateLimiter | None = None,
    transport: httpx.BaseTransport | None = None,
) -> VendorClient:
    return VendorClient(
        f"{settings.api_url}/{settings.graph_version}",
        headers={
            "Authorization": f"Bearer {settings.page_access_token.get_secret_value()}",
            "Accept": "application/json",
        },
        limiter=limiter
        or limiter_for(
            "facebook_lead_ads",
            connection_id,
            lambda: TokenBucket(BURST, RATE_PER_SECOND, read_budget=app_usage, sleep=sleep),
        ),
        sleep=sleep,
        transport=transport,
    )


def _object(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError(f"the Graph API answered {str(body)[:80]!r}, not an object")
    return body


def fetch_lead(client: VendorClient, leadgen_id: str) -> dict[str, Any]:
    return _object(client.get(f"/{leadgen_id}", params={"fields": LEAD_FIELDS}))


def fetch_form(client: VendorClient, form_id: str) -> dict[str, Any]:
    return _object(client.get(f"/{form_id}", params={"fields": FORM_FIELDS}))


def check(client: VendorClient, settings: FacebookLeadAdsSettings) -> str:
    page = _object(client.get("/me", params={"fields": "id,name"}))
    if settings.page_id and str(page.get("id")) != settings.page_id:
        raise ConnectorError(
            f"the token is for Page {page.get('name')!r} ({page.get('id')}), "
            f"not page_id {settings.page_id}"
        )
    return f"Page {page.get('name')!r} ({page.get('id')})"
