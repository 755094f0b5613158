"""Paginators against a real server: Link headers, cursors, numbered pages, Magento."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from guestlist.connectors._http.client import VendorClient
from guestlist.connectors._http.paginate import (
    cursor_pages,
    link_pages,
    numbered_pages,
    search_criteria_pages,
    search_criteria_params,
)
from tests.fakes import serve

ITEMS = list(range(1, 24))  # 23 items


async def linked(request: Request) -> Response:
    size = int(request.query_params.get("limit", "10"))
    start = int(request.query_params.get("page_info", "0"))
    page = ITEMS[start : start + size]
    headers = {}
    if start + size < len(ITEMS):
        nxt = f"{request.url_for('linked')}?limit={size}&page_info={start + size}"
        headers["Link"] = f'<{nxt}>; rel="next"'
    return JSONResponse(page, headers=headers)


async def cursored(request: Request) -> Response:
    body = await request.json() if request.method == "POST" else {}
    start = int(body.get("cursor") or request.query_params.get("cursor") or 0)
    page = ITEMS[start : start + 10]
    more = start + 10 < len(ITEMS)
    return JSONResponse({"items": page, **({"cursor": str(start + 10)} if more else {})})


async def numbered(request: Request) -> Response:
    size = int(request.query_params["per_page"])
    page = int(request.query_params["page"])
    pages = math.ceil(len(ITEMS) / size)
    return JSONResponse(
        ITEMS[(page - 1) * size : page * size], headers={"X-WP-TotalPages": str(pages)}
    )


async def magento(request: Request) -> Response:
    q = request.query_params
    size = int(q["searchCriteria[pageSize]"])
    page = int(q["searchCriteria[currentPage]"])
    last = math.ceil(len(ITEMS) / size)
    page = min(page, last)  # Magento answers an out-of-range page with the last one
    return JSONResponse(
        {"items": ITEMS[(page - 1) * size : page * size], "total_count": len(ITEMS)}
    )


@pytest.fixture(scope="module")
def http() -> Iterator[VendorClient]:
    app = Starlette(
        routes=[
            Route("/linked", linked, name="linked"),
            Route("/cursored", cursored, methods=["GET", "POST"]),
            Route("/numbered", numbered),
            Route("/magento", magento),
        ]
    )
    with serve(app) as url, VendorClient(url) as client:
        yield client


def test_link_pages_follow_next_and_resume_from_a_saved_link(http: VendorClient) -> None:
    seen, resumes = [], []
    for response, resume in link_pages(http, "/linked", params={"limit": 10}):
        seen += response.json()
        resumes.append(resume)
    assert seen == ITEMS and resumes[-1] is None
    rest = [x for r, _ in link_pages(http, "/linked", start=resumes[0]) for x in r.json()]
    assert rest == ITEMS[10:]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_cursor_pages_in_query_or_body(http: VendorClient, method: str) -> None:
    body = {} if method == "POST" else None
    pages = list(
        cursor_pages(http, method, "/cursored", body=body, next_cursor=lambda j: j.get("cursor"))
    )
    assert [x for r, _ in pages for x in r.json()["items"]] == ITEMS
    assert [c for _, c in pages] == ["10", "20", None]
    resumed = cursor_pages(
        http, method, "/cursored", body=body, start="20", next_cursor=lambda j: j.get("cursor")
    )
    assert [x for r, _ in resumed for x in r.json()["items"]] == ITEMS[20:]


def test_numbered_pages_stop_at_the_reported_last_page(http: VendorClient) -> None:
    pages = list(numbered_pages(http, "/numbered", params={"per_page": 5}))
    assert [x for r, _ in pages for x in r.json()] == ITEMS
    assert [c for _, c in pages] == ["2", "3", "4", "5", None]


def test_search_criteria_pages_stop_on_total_count_not_on_a_repeated_page(
    http: VendorClient,
) -> None:
    pages = list(search_criteria_pages(http, "/magento", page_size=10))
    assert [x for r, _ in pages for x in r.json()["items"]] == ITEMS
    assert [c for _, c in pages] == ["2", "3", None]


def test_search_criteria_params_groups_and_filters() -> None:
    params = search_criteria_params(
        [
            [("updated_at", "2026-01-01 00:00:00", "gteq")],
            [("email", "a@x", "eq"), ("email", "b@x", "eq")],
        ],
        page_size=100,
        current_page=2,
        sort=[("updated_at", "ASC")],
    )
    assert params["searchCriteria[filterGroups][0][filters][0][field]"] == "updated_at"
    assert params["searchCriteria[filterGroups][1][filters][1][value]"] == "b@x"
    assert params["searchCriteria[sortOrders][0][direction]"] == "ASC"
    assert params["searchCriteria[currentPage]"] == "2"
