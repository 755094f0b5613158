"""The API client without a database: OAuth 1.0a signing (a known answer, and the
fake's own PHP-shaped verification), Basic and query keys over https, errors, paging
that survives deletions, the pace, Retry-After."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from guestlist.connectors._http.client import VendorError
from guestlist.connectors._http.ratelimit import forget_limiter
from guestlist.connectors.woocommerce.auth import OAuth1Query, base_string_uri, oauth_signature
from guestlist.connectors.woocommerce.client import check, make_client, pull_stream
from guestlist.connectors.woocommerce.settings import WooCommerceSettings
from tests.fakes import serve
from tests.fakes.woocommerce import FakeShop, Fault, wc_oauth_signature

ORDERS_PARAMS = {
    "per_page": "10",
    "page": "2",
    "modified_after": "2026-01-01T00:00:00",
    "dates_are_gmt": "true",
    "oauth_consumer_key": "ck_test",
    "oauth_nonce": "abc",
    "oauth_timestamp": "1700000000",
}
URI = "http://127.0.0.1:8080/wp-json/wc/v3/orders"


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        # openssl dgst over the base string written out by hand:
        # GET&http%3A%2F%2F127.0.0.1%3A8080%2Fwp-json%2Fwc%2Fv3%2Forders&dates_are_gmt%3Dtrue
        # %26modified_after%3D2026-01-01T00%253A00%253A00%26oauth_consumer_key%3Dck_test
        # %26oauth_nonce%3Dabc%26oauth_signature_method%3DHMAC-SHA1
        # %26oauth_timestamp%3D1700000000%26page%3D2%26per_page%3D10, key "cs_test&"
        ("HMAC-SHA1", "QOiOqYzzhtTBQbjd6U9Nb43afr0="),
        ("HMAC-SHA256", "AoplgsuG8VTsP3tFcKxXx2ClNb85xoM+QtWUSC+QJHY="),
    ],
)
def test_oauth_signature_known_answer(method: Any, expected: str) -> None:
    params = {**ORDERS_PARAMS, "oauth_signature_method": method}
    assert oauth_signature("GET", URI, params, "cs_test", method) == expected
    # The fake's verification, written after the PHP, agrees.
    assert wc_oauth_signature("GET", URI, params, "cs_test") == expected


def test_base_string_uri_drops_default_ports_and_query() -> None:
    assert base_string_uri(httpx.URL("HTTP://Shop.Example:80/wp-json/wc/v3/orders?page=2")) == (
        "http://shop.example/wp-json/wc/v3/orders")
    assert base_string_uri(httpx.URL("http://127.0.0.1:8080/x")) == "http://127.0.0.1:8080/x"


def test_each_attempt_is_signed_with_a_fresh_nonce() -> None:
    nonces = iter(["n1", "n2"])
    auth = OAuth1Query("ck", "cs", nonce=lambda: next(nonces), clock=lambda: 1700000000.0)
    sent: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url)
        return httpx.Response(200, json=[])

    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client:
        client.get("http://shop.example/wp-json/wc/v3/customers", params={"page": 1})
        client.get("http://shop.example/wp-json/wc/v3/customers", params={"page": 1})
    assert [u.params["oauth_nonce"] for u in sent] == ["n1", "n2"]
    assert sent[0].params["oauth_signature"] != sent[1].params["oauth_signature"]


def settings(url: str, **kw: Any) -> WooCommerceSettings:
    return WooCommerceSettings(
        site_url=url,
        consumer_key=SecretStr(kw.pop("key", "ck_test")),
        consumer_secret=SecretStr(kw.pop("secret", "cs_test")),
        **{"requests_per_second": 100.0, **kw},
    )


@pytest.fixture
def shop() -> FakeShop:
    return FakeShop.generated(23, 30)


@pytest.fixture
def shop_url(shop: FakeShop) -> Iterator[str]:
    with serve(shop.app()) as url:
        yield url


def pulled(url: str, stream: str, **kw: Any) -> tuple[list[int], list[Any]]:
    s = settings(url, per_page=10, **kw)
    ids: list[int] = []
    pages = []
    with make_client(s, sleep=lambda _: None) as client:
        for page in pull_stream(client, s, stream, None):
            ids.extend(r["id"] for r in page.records)
            pages.append(page)
    return ids, pages


def test_over_http_every_request_is_oauth_signed(shop: FakeShop, shop_url: str) -> None:
    ids, pages = pulled(shop_url, "customers")
    assert ids == sorted(c["id"] for c in shop.customers)
    assert [p.total for p in pages] == [23, 23, 23]
    assert pages[-1].checkpoint is None and pages[-1].next_run is None  # customers: all again
    assert {s.auth for s in shop.seen} == {"oauth1"}
    assert shop.seen[0].params == {"per_page": "10", "orderby": "id", "order": "asc",
                                   "role": "customer", "page": "1"}


class InProcess(httpx.BaseTransport):
    """The fake app behind an https URL, in this process (WordPress's is_ssl() true)."""

    def __init__(self, shop: FakeShop) -> None:
        self.client = TestClient(shop.app(), base_url="https://shop.example")

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        r = self.client.request(request.method, str(request.url),
                                headers=dict(request.headers), content=request.read())
        return httpx.Response(r.status_code, headers=r.headers, content=r.content,
                              request=request)


@pytest.mark.parametrize(("mode", "seen"), [("auto", "basic"), ("basic", "basic"),
                                            ("query", "query")])
def test_over_https_basic_or_query_keys(shop: FakeShop, mode: str, seen: str) -> None:
    s = settings("https://shop.example", auth=mode)
    with make_client(s, transport=InProcess(shop)) as client:
        assert check(client, s) == "https://shop.example: 23 customers (role customer)"
    assert [x.auth for x in shop.seen] == [seen]


def test_keys_in_clear_are_refused_for_an_http_shop() -> None:
    with pytest.raises(ValueError, match="only over https"):
        settings("http://shop.example", auth="basic")


def test_wrong_secret_is_wordpress_error_envelope_and_not_retried(
    shop: FakeShop, shop_url: str
) -> None:
    s = settings(shop_url, secret="cs_wrong")
    with make_client(s, sleep=lambda _: None) as client, pytest.raises(VendorError) as caught:
        check(client, s)
    assert caught.value.status == 401
    assert "woocommerce_rest_authentication_error" in caught.value.detail
    assert "cs_wrong" not in str(caught.value)
    assert len(shop.seen) == 1
    https = FakeShop.generated(1, 0)
    s = settings("https://shop.example", auth="basic", secret="cs_wrong")
    with make_client(s, transport=InProcess(https)) as client, pytest.raises(VendorError):
        check(client, s)
    no_keys = httpx.get(f"{shop_url}/wp-json/wc/v3/customers")
    assert no_keys.status_code == 401
    assert no_keys.json() == {"code": "woocommerce_rest_cannot_view",
                              "message": "Sorry, you cannot list resources.",
                              "data": {"status": 401}}


def test_the_fake_refuses_more_than_100_per_page(shop: FakeShop, shop_url: str) -> None:
    s = settings(shop_url)
    with make_client(s) as client, pytest.raises(VendorError) as caught:
        client.get("customers", params={"per_page": 101})
    assert caught.value.status == 400 and "rest_invalid_param" in caught.value.detail


def test_a_deletion_during_the_pull_skips_nothing(shop: FakeShop, shop_url: str) -> None:
    s = settings(shop_url, per_page=10)
    expected = sorted(o["id"] for o in shop.orders)
    seen: list[int] = []
    with make_client(s) as client:
        for n, page in enumerate(pull_stream(client, s, "orders", None)):
            seen.extend(r["id"] for r in page.records)
            if n == 0:  # two orders already read go to the bin
                shop.orders = [o for o in shop.orders if o["id"] not in expected[:2]]
    assert set(expected[2:]) <= set(seen)  # nothing skipped (some read twice)
    assert len([s for s in shop.seen if s.stream == "orders"]) == 5  # one page re-read


def test_retry_after_is_honoured(shop: FakeShop, shop_url: str) -> None:
    shop.faults.append(Fault("customers", 2, status=429, retry_after="1"))
    shop.faults.append(Fault("customers", 3, status=503))  # no Retry-After: backoff
    waits: list[float] = []
    s = settings(shop_url, per_page=10)
    forget_limiter("woocommerce", 901)
    with make_client(s, connection_id=901, sleep=waits.append) as client:
        ids = [r["id"] for p in pull_stream(client, s, "customers", None) for r in p.records]
    assert ids == sorted(c["id"] for c in shop.customers)
    assert waits[0] == 1.0 and len(waits) == 2 and 0 < waits[1] <= 30
    forget_limiter("woocommerce", 901)


def test_the_pace_keeps_under_the_shops_limit(shop: FakeShop, shop_url: str) -> None:
    shop.rate, shop.burst = 20.0, 2
    s = settings(shop_url, per_page=3, requests_per_second=20.0)
    forget_limiter("woocommerce", 902)
    with make_client(s, connection_id=902) as client:
        ids = [r["id"] for p in pull_stream(client, s, "customers", None) for r in p.records]
    assert len(ids) == 23 and len(shop.seen) == 8
    assert shop.throttled == 0
    # A client without the pace is refused by the same shop.
    shop.seen.clear()
    with httpx.Client() as raw:
        answers = [raw.get(f"{shop_url}/wp-json/wc/v3/customers").status_code
                   for _ in range(6)]
    assert 429 in answers
    forget_limiter("woocommerce", 902)
