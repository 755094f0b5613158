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
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import httpx
import orjson

from guestlist.connectors._http.client import VendorClient
from guestlist.connectors._http.ratelimit import Budget, RateLimiter, TokenBucket, limiter_for
from guestlist.connectors.base import ConnectorError, Page
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


# -- the leads stream (bulk read) -----------------------------------------------------

PAGE_LIMIT = 100
OVERLAP = 600  # seconds: a lead written just before a run's newest may show late


@dataclass(frozen=True, slots=True)
class LeadsCheckpoint:
    """Where a leads pull is: the Page's forms, which one, its cursor, the filter."""

    forms: list[str] | None = None  # the Page's form ids, read at the run's start
    index: int = 0  # the form being read
    after: str | None = None  # Graph's `paging.cursors.after` within that form
    since: int | None = None  # the run's `time_created >` filter (epoch seconds)
    seen_max: int | None = None  # the newest `created_time` this run has seen

    def dumps(self) -> str:
        raw = {k: v for k, v in asdict(self).items() if v is not None and v != 0}
        return orjson.dumps(raw).decode()

    @classmethod
    def loads(cls, text: str | None) -> LeadsCheckpoint:
        if not text:
            return cls()
        try:
            raw = orjson.loads(text)
            return cls(
                forms=raw.get("forms"), index=int(raw.get("index", 0)), after=raw.get("after"),
                since=raw.get("since"), seen_max=raw.get("seen_max"),
            )
        except (orjson.JSONDecodeError, TypeError, AttributeError, ValueError):
            raise ConnectorError(f"unreadable Facebook checkpoint {text[:80]!r}") from None


def _next_after(body: dict[str, Any]) -> str | None:
    paging = body.get("paging")
    if not isinstance(paging, dict) or not paging.get("next"):
        return None  # Graph leaves `next` out on the last page
    cursors = paging.get("cursors")
    after = cursors.get("after") if isinstance(cursors, dict) else None
    return str(after) if after else None


def form_ids(client: VendorClient, page_id: str) -> list[str]:
    ids: list[str] = []
    after: str | None = None
    while True:
        params = {"fields": "id", "limit": str(PAGE_LIMIT)}
        if after:
            params["after"] = after
        body = _object(client.get(f"/{page_id}/leadgen_forms", params=params))
        ids.extend(str(f["id"]) for f in body.get("data") or [] if isinstance(f, dict))
        after = _next_after(body)
        if not after:
            return ids


def _epoch(created: Any) -> int | None:
    if not isinstance(created, str):
        return None
    try:
        return int(datetime.fromisoformat(created).timestamp())
    except ValueError:
        return None


def lead_pages(
    client: VendorClient, settings: FacebookLeadAdsSettings, checkpoint: str | None,
    *, limit: int | None = None,
) -> Iterator[Page]:
    """Every lead of the Page's forms (bulk read), form by form, newer than the watermark.

    Each record has the shape the fetch job stores (`leadgen`, `lead`, `form`,
    `consent_checkboxes`), so a lead read here and by webhook maps to the same events.
    """
    if not settings.page_id:
        raise ConnectorError("set page_id to pull the Page's leads")
    state = LeadsCheckpoint.loads(checkpoint)
    forms = state.forms if state.forms is not None else form_ids(client, settings.page_id)
    index, after, newest = state.index, state.after, state.seen_max
    boxes = {k: v.model_dump(exclude_none=True) for k, v in settings.consent_checkboxes.items()}
    definitions: dict[str, dict[str, Any]] = {}
    while index < len(forms):
        form_id = forms[index]
        if form_id not in definitions:  # the wording of its checkboxes (C-2)
            definitions[form_id] = fetch_form(client, form_id)
        form = definitions[form_id]
        params = {"fields": LEAD_FIELDS, "limit": str(limit or PAGE_LIMIT)}
        if state.since is not None:
            params["filtering"] = orjson.dumps([{
                "field": "time_created", "operator": "GREATER_THAN", "value": state.since,
            }]).decode()
        if after:
            params["after"] = after
        body = _object(client.get(f"/{form_id}/leads", params=params))
        records = []
        for lead in body.get("data") or []:
            if not isinstance(lead, dict):
                continue
            stamp = _epoch(lead.get("created_time"))
            if stamp is not None:
                newest = stamp if newest is None else max(newest, stamp)
            leadgen = {"leadgen_id": str(lead.get("id")), "form_id": form_id,
                       "page_id": settings.page_id}
            records.append({"leadgen": leadgen, "lead": lead, "form": form,
                            "consent_checkboxes": boxes})
        after = _next_after(body)
        if not after:
            index, after = index + 1, None
        if index < len(forms):
            yield Page(records, LeadsCheckpoint(forms, index, after, state.since, newest).dumps())
            continue
        since = newest - OVERLAP if newest is not None else state.since
        yield Page(records, None, next_run=LeadsCheckpoint(since=since).dumps())
        return
    # A Page without forms: nothing to read, the next run starts over.
    yield Page([], None, next_run=LeadsCheckpoint(since=state.since).dumps())
