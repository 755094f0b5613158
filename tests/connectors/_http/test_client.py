"""The shared vendor client against a real HTTP server: retries, Retry-After, errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from guestlist.connectors._http.client import VendorClient, VendorError, retry_after_seconds
from guestlist.connectors._http.ratelimit import TokenBucket
from tests.fakes import serve


class Script:
    """Answers each call with the next scripted response, then 200s."""

    def __init__(self) -> None:
        self.answers: list[Response] = []
        self.calls = 0

    async def endpoint(self, request: Request) -> Response:
        self.calls += 1
        if self.answers:
            return self.answers.pop(0)
        return JSONResponse({"ok": True, "call": self.calls})


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Script]]:
    script = Script()
    app = Starlette(routes=[Route("/thing", script.endpoint, methods=["GET", "POST"])])
    with serve(app) as url:
        yield url, script


@pytest.fixture
def script(server: tuple[str, Script]) -> Script:
    server[1].answers.clear()
    server[1].calls = 0
    return server[1]


def client(url: str, waits: list[float], **kwargs: object) -> VendorClient:
    return VendorClient(url, sleep=waits.append, **kwargs)  # type: ignore[arg-type]


def test_retry_after_in_seconds_is_honoured(server: tuple[str, Script], script: Script) -> None:
    script.answers = [Response(status_code=429, headers={"Retry-After": "7"})]
    waits: list[float] = []
    with client(server[0], waits) as http:
        assert http.get("/thing").json() == {"ok": True, "call": 2}
    assert waits == [7.0]


def test_retry_after_as_http_date() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    response = httpx.Response(
        503, headers={"Retry-After": format_datetime(now + timedelta(seconds=30), usegmt=True)}
    )
    assert retry_after_seconds(response, now) == 30.0
    assert retry_after_seconds(httpx.Response(503, headers={"Retry-After": "soon"})) is None


def test_5xx_backs_off_exponentially_then_succeeds(
    server: tuple[str, Script], script: Script
) -> None:
    script.answers = [
        Response(status_code=502),
        Response(status_code=503),
        Response(status_code=500),
    ]
    waits: list[float] = []
    with client(server[0], waits, backoff_initial=1.0, backoff_max=60.0) as http:
        assert http.get("/thing").status_code == 200
    assert len(waits) == 3
    # Exponential with up to 1 s of jitter: 1, 2, 4 (+ jitter).
    for wait, base in zip(waits, [1.0, 2.0, 4.0], strict=True):
        assert base <= wait <= base + 1.0


def test_gives_up_after_the_attempts(server: tuple[str, Script], script: Script) -> None:
    script.answers = [Response("down", status_code=503) for _ in range(3)]
    waits: list[float] = []
    with client(server[0], waits, attempts=3) as http, pytest.raises(VendorError) as failed:
        http.get("/thing")
    assert failed.value.status == 503
    assert "down" in str(failed.value)
    assert script.calls == 3


def test_a_4xx_is_not_retried_and_says_what_the_vendor_said(
    server: tuple[str, Script], script: Script
) -> None:
    script.answers = [JSONResponse({"errors": "Not Found"}, status_code=404)]
    waits: list[float] = []
    with client(server[0], waits) as http, pytest.raises(VendorError) as failed:
        http.get("/thing?access_token=secret")
    assert failed.value.status == 404
    assert "Not Found" in str(failed.value)
    assert "secret" not in str(failed.value)  # never a credential in an error
    assert waits == [] and script.calls == 1


def test_connection_refused_is_retried_then_reported() -> None:
    waits: list[float] = []
    with (
        VendorClient("http://127.0.0.1:9", sleep=waits.append, attempts=2) as http,
        pytest.raises(VendorError) as failed,
    ):
        http.get("/thing")
    assert failed.value.status is None
    assert len(waits) == 1


def test_a_429_pauses_the_connections_limiter(server: tuple[str, Script], script: Script) -> None:
    clock = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    bucket = TokenBucket(10, 1, clock=lambda: clock[0], sleep=sleep)
    script.answers = [Response(status_code=429, headers={"Retry-After": "5"})]
    with VendorClient(server[0], limiter=bucket, sleep=sleep) as http:
        http.get("/thing")
    # The client waited 5 s for the retry; the bucket was emptied, so the retry also
    # waited for a token to come back.
    assert slept[0] == 5.0
    assert sum(slept) >= 5.0
