"""Paginators: the four ways our vendors page through a list, written once.

Each yields `(response, resume)` per page, where `resume` is what a later run passes
back as `start` to continue after that page (a string, so it can be a checkpoint), or
None after the last page.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from guestlist.connectors._http.client import VendorClient

PageOut = Iterator[tuple[httpx.Response, str | None]]


def next_link(response: httpx.Response) -> str | None:
    """The `rel="next"` URL of a `Link` header (RFC 8288), if any."""
    link = response.links.get("next")
    return link.get("url") if link else None


def query_value(url: str, name: str) -> str | None:
    values = parse_qs(urlsplit(url).query).get(name)
    return values[0] if values else None


def link_pages(
    client: VendorClient,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    start: str | None = None,
) -> PageOut:
    """Follow `Link: <…>; rel="next"` (Shopify `page_info`, WordPress); resume = next URL."""
    response = client.get(start) if start else client.get(url, params=dict(params or {}))
    while True:
        following = next_link(response)
        yield response, following
        if following is None:
            return
        response = client.get(following)


def cursor_pages(
    client: VendorClient,
    method: str,
    url: str,
    *,
    next_cursor: Callable[[Any], str | None],
    cursor_param: str = "cursor",
    params: Mapping[str, Any] | None = None,
    body: Mapping[str, Any] | None = None,
    start: str | None = None,
) -> PageOut:
    """Cursor in the body of each answer (Square, HubSpot, Intercom); resume = the cursor.

    With `body`, the cursor goes in the JSON body (a search call), else in the query.
    """
    cursor = start
    while True:
        query = dict(params or {})
        payload = dict(body) if body is not None else None
        if cursor:
            if payload is not None:
                payload[cursor_param] = cursor
            else:
                query[cursor_param] = cursor
        response = client.request(method, url, params=query or None, json=payload)
        cursor = next_cursor(response.json())
        yield response, cursor
        if not cursor:
            return


def total_pages_header(name: str = "X-WP-TotalPages") -> Callable[[httpx.Response], int | None]:
    def read(response: httpx.Response) -> int | None:
        value = response.headers.get(name)
        return int(value) if value and value.isdigit() else None

    return read


def numbered_pages(
    client: VendorClient,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    page_param: str = "page",
    start: str | None = None,
    total_pages: Callable[[httpx.Response], int | None] = total_pages_header(),
    is_empty: Callable[[httpx.Response], bool] = lambda r: not r.json(),
) -> PageOut:
    """`page`/`per_page` (WooCommerce); stops at the reported last page or an empty one.

    Resume = the next page's number.
    """
    page = int(start) if start else 1
    while True:
        response = client.get(url, params={**dict(params or {}), page_param: page})
        last = total_pages(response)
        done = is_empty(response) or (last is not None and page >= last)
        yield response, None if done else str(page + 1)
        if done:
            return
        page += 1


def search_criteria_params(
    filters: Sequence[Sequence[tuple[str, str, str]]],
    *,
    page_size: int,
    current_page: int,
    sort: Sequence[tuple[str, str]] = (),
) -> dict[str, str]:
    """Magento `searchCriteria` query parameters.

    `filters` is a list of groups (AND'ed), each a list of `(field, value, condition)`
    (OR'ed within the group); `sort` is `(field, ASC|DESC)`.
    """
    out: dict[str, str] = {}
    for g, group in enumerate(filters):
        for f, (field, value, condition) in enumerate(group):
            prefix = f"searchCriteria[filterGroups][{g}][filters][{f}]"
            out[f"{prefix}[field]"] = field
            out[f"{prefix}[value]"] = value
            out[f"{prefix}[conditionType]"] = condition
    for s, (field, direction) in enumerate(sort):
        out[f"searchCriteria[sortOrders][{s}][field]"] = field
        out[f"searchCriteria[sortOrders][{s}][direction]"] = direction
    out["searchCriteria[pageSize]"] = str(page_size)
    out["searchCriteria[currentPage]"] = str(current_page)
    return out


def search_criteria_pages(
    client: VendorClient,
    url: str,
    *,
    filters: Sequence[Sequence[tuple[str, str, str]]] = (),
    sort: Sequence[tuple[str, str]] = (),
    page_size: int = 100,
    start: str | None = None,
) -> PageOut:
    """Magento searchCriteria pages; stops on `total_count` (an out-of-range page would
    repeat the last one). Resume = the next page's number."""
    page = int(start) if start else 1
    while True:
        params = search_criteria_params(filters, page_size=page_size, current_page=page, sort=sort)
        response = client.get(url, params=params)
        total = int(response.json().get("total_count") or 0)
        done = page >= max(1, math.ceil(total / page_size))
        yield response, None if done else str(page + 1)
        if done:
            return
        page += 1
