"""The Typeform Responses API: the form definition, then its responses page by page.

`GET /forms/{id}` gives the fields (ref → title: the consent wording) and the form's
public URL; `GET /forms/{id}/responses` lists completed responses, newest first. We
page backwards with `before=<token of the last response seen>` (exclusive), which
Typeform documents as the way to traverse every response without repeats; a response
submitted during the backfill lands above the first page and is left to the next run.

The checkpoint (JSON) names the form being read, the token to continue `before` (and
its response's second, to continue `until` if that response is deleted meanwhile), the
newest `submitted_at` seen per form and the `since` each form started from. On the
last page, `next_run` carries `since` per form: the newest submission seen minus an
hour, because Typeform may hold very recent responses back for a while (its docs say
up to about 30 minutes); the overlap is applied once (message ids are the response
tokens).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import orjson
import structlog

from guestlist.capture.tracking_parse import parse_timestamp
from guestlist.connectors._http.client import VendorClient, VendorError
from guestlist.connectors._http.ratelimit import TokenBucket, limiter_for
from guestlist.connectors.base import ConnectorError, Page
from guestlist.connectors.typeform.mapping import FORM_HEADER, SLUG
from guestlist.connectors.typeform.settings import TypeformSettings

log = structlog.get_logger(__name__)

OVERLAP = timedelta(hours=1)


def make_client(settings: TypeformSettings, *, connection_id: int | None = None) -> VendorClient:
    if settings.access_token is None:
        raise ConnectorError("this Typeform connection has no access_token; pulls need one")
    # Evenly spaced, a tenth under the limit and never in a burst, so the jitter
    # between our clock and Typeform's never makes two requests look closer than 0.5 s.
    rate = settings.requests_per_second * 0.9
    limiter = limiter_for(SLUG, connection_id, lambda: TokenBucket(1, rate))
    return VendorClient(
        settings.api_url,
        headers={
            "Authorization": f"Bearer {settings.access_token.get_secret_value()}",
            "Accept": "application/json",
        },
        limiter=limiter,
    )


def form_definition(
    client: VendorClient, settings: TypeformSettings, form_id: str
) -> dict[str, Any]:
    """The parts of a form the mapping needs: id, title, public URL, fields by ref."""
    body = client.get(f"/forms/{form_id}").json()
    if not isinstance(body, dict):
        raise ConnectorError(f"Typeform form {form_id}: unexpected answer")
    raw_links = body.get("_links")
    links: dict[str, Any] = raw_links if isinstance(raw_links, dict) else {}
    mapping = settings.forms.get(form_id)
    fields = []
    for field in _all_fields(body.get("fields") or []):
        fields.append({k: field.get(k) for k in ("id", "ref", "title", "type")})
    return {
        "id": body.get("id") or form_id,
        "title": body.get("title"),
        "url": (mapping.url if mapping else None) or links.get("display"),
        "fields": fields,
    }


def _all_fields(fields: list[Any]) -> Iterator[dict[str, Any]]:
    """Fields, including those inside question groups."""
    for field in fields:
        if not isinstance(field, dict):
            continue
        yield field
        inner = (field.get("properties") or {}).get("fields")
        if isinstance(inner, list):
            yield from _all_fields(inner)


def _state(checkpoint: str | None) -> dict[str, Any]:
    if not checkpoint:
        return {}
    try:
        state = orjson.loads(checkpoint)
    except orjson.JSONDecodeError:
        raise ConnectorError(f"unreadable Typeform checkpoint {checkpoint[:80]!r}") from None
    if not isinstance(state, dict):
        raise ConnectorError("unreadable Typeform checkpoint")
    return state


def response_pages(
    client: VendorClient, settings: TypeformSettings, checkpoint: str | None
) -> Iterator[Page]:
    forms = settings.pulled_forms()
    if not forms:
        raise ConnectorError("no form to pull: set forms (with pull true) on the connection")
    state = _state(checkpoint)
    since: dict[str, str] = dict(state.get("since") or {})  # where this run starts, per form
    marks: dict[str, str] = dict(state.get("marks") or {})  # newest seen this run
    current = state.get("form")
    start = forms.index(current) if current in forms else 0
    before: str | None = state.get("before") if current in forms else None
    until: str | None = state.get("until") if current in forms else None
    mapping_of = {f: settings.forms[f].model_dump(mode="json") for f in forms}
    for index in range(start, len(forms)):
        form_id = forms[index]
        form = form_definition(client, settings, form_id)
        while True:
            params: dict[str, Any] = {
                "page_size": settings.page_size,
                "response_type": "completed",
            }
            if since.get(form_id):
                params["since"] = since[form_id]
            if before:
                params["before"] = before
            try:
                body = client.get(f"/forms/{form_id}/responses", params=params).json()
            except VendorError as exc:
                if not before or not until or exc.status not in (400, 404):
                    raise
                # The response we continue from was deleted since (an erasure at
                # Typeform): go on from its submission time instead; the few responses
                # of that same second come again and are applied once.
                log.warning("typeform before-token gone; continuing by time",
                            form_id=form_id, until=until)
                params.pop("before")
                params["until"] = until
                body = client.get(f"/forms/{form_id}/responses", params=params).json()
            items = [i for i in body.get("items") or [] if isinstance(i, dict)]
            for item in items:
                at = item.get("submitted_at")
                if isinstance(at, str) and at and (
                    form_id not in marks or parse_timestamp(at) > parse_timestamp(marks[form_id])
                ):
                    marks[form_id] = at
            more = len(items) >= settings.page_size and bool(items[-1].get("token"))
            last_form = index == len(forms) - 1
            records = items
            context = {FORM_HEADER: orjson.dumps(
                {"form": form, "mapping": mapping_of[form_id]}).decode()}
            total = body.get("total_items") if isinstance(body.get("total_items"), int) else None
            if more:
                before = str(items[-1]["token"])
                until = _second(items[-1].get("submitted_at"))
                nxt: dict[str, Any] = {
                    "form": form_id, "before": before, "until": until, "since": since,
                    "marks": marks,
                }
                yield Page(records, orjson.dumps(nxt).decode(), total=total, context=context)
                continue
            before = until = None
            if not last_form:
                nxt = {"form": forms[index + 1], "before": None, "since": since, "marks": marks}
                yield Page(records, orjson.dumps(nxt).decode(), total=total, context=context)
                break
            yield Page(records, None, total=total, next_run=_next_run(since, marks),
                       context=context)
            return


def _second(value: Any) -> str | None:
    """A response's `submitted_at` as Typeform's `since`/`until` take it (UTC, seconds)."""
    if not isinstance(value, str) or not value:
        return None
    return parse_timestamp(value).strftime("%Y-%m-%dT%H:%M:%S")


def _next_run(since: dict[str, str], marks: dict[str, str]) -> str:
    after = dict(since)
    for form_id, mark in marks.items():
        at = parse_timestamp(mark) - OVERLAP
        after[form_id] = at.strftime("%Y-%m-%dT%H:%M:%S")  # Typeform: UTC, to the second
    return orjson.dumps({"since": after}).decode()


def check(client: VendorClient, settings: TypeformSettings) -> str:
    body = client.get("/me").json()
    alias = "the account"
    if isinstance(body, dict):
        alias = str(body.get("alias") or body.get("email") or alias)
    return f"token accepted for {alias}; {len(settings.pulled_forms())} form(s) to pull"
