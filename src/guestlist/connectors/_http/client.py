"""The HTTP client every connector uses: retries with backoff, `Retry-After`, rate limits.

A request is retried on a connection error, a timeout, a 429 and a 5xx, with
exponential backoff and jitter (tenacity); a `Retry-After` header (seconds or an HTTP
date) sets the wait instead, and pauses the connection's rate limiter so other
requests wait too. Other 4xx answers are not retried: `VendorError` says what the
vendor said. Credentials go in headers or auth given by the connector and are never
part of an error message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from guestlist.connectors._http.ratelimit import RateLimiter, TokenBucket, Unlimited

log = structlog.get_logger(__name__)

RETRIED_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 120.0  # seconds; a vendor asking for longer is treated as down


class VendorError(Exception):
    """A vendor answer we cannot use: a 4xx, or a 5xx/429 still there after retries."""

    def __init__(
        self, method: str, url: str, status: int | None, detail: str, body: Any = None
    ) -> None:
        where = f"{method} {_without_query(url)}"
        super().__init__(f"{where}: {status or 'no answer'}: {detail}")
        self.method = method
        self.url = _without_query(url)  # some vendors take credentials in the query
        self.status = status
        self.detail = detail
        self.body = body  # the vendor's answer as JSON, when it was JSON (error codes)


class _Retryable(Exception):
    def __init__(self, response: httpx.Response | None, cause: Exception | None = None) -> None:
        status = response.status_code if response is not None else "?"
        super().__init__(str(cause) if cause else f"HTTP {status}")
        self.response = response
        self.cause = cause


def _without_query(url: str) -> str:
    return url.split("?", 1)[0]


def retry_after_seconds(response: httpx.Response, now: datetime | None = None) -> float | None:
    """The wait a response asks for in `Retry-After`, if any (RFC 9110: seconds or a date)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _excerpt(response: httpx.Response) -> str:
    text = response.text if response.content else ""
    return " ".join(text.split())[:300] or response.reason_phrase


class VendorClient:
    """An httpx client bound to one connection: base URL, auth, limiter, retries."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        limiter: RateLimiter | None = None,
        attempts: int = 6,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.http = httpx.Client(
            base_url=base_url,
            headers=dict(headers or {}),
            auth=auth,
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )
        self.limiter = limiter or Unlimited()
        self.attempts = attempts
        self.backoff = wait_exponential_jitter(multiplier=backoff_initial, max=backoff_max)
        self.sleep = sleep
        self.requests = 0  # sent, retries included (progress, tests)
        # Told of each retry before its wait: (method, url, status or None, seconds,
        # what went wrong). Backfills log them on the connection.
        self.on_retry: Callable[[str, str, int | None, float, str], None] | None = None

    def __enter__(self) -> VendorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.response is not None:
            asked = retry_after_seconds(exc.response)
            if asked is not None:
                return min(asked, MAX_RETRY_AFTER)
        return float(self.backoff(state))

    def _send_once(self, method: str, url: str, kwargs: dict[str, Any]) -> httpx.Response:
        self.limiter.acquire()
        self.requests += 1
        try:
            response = self.http.request(method, url, **kwargs)
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            log.warning(
                "vendor request failed", method=method, url=_without_query(url), error=str(exc)
            )
            raise _Retryable(None, exc) from exc
        self.limiter.observe(response)
        if response.status_code in RETRIED_STATUSES:
            asked = retry_after_seconds(response)
            if asked is not None and isinstance(self.limiter, TokenBucket):
                self.limiter.pause(min(asked, MAX_RETRY_AFTER))
            log.info(
                "vendor asked to retry",
                method=method,
                url=_without_query(url),
                status=response.status_code,
                retry_after=asked,
            )
            raise _Retryable(response)
        return response

    def _before_sleep(self, method: str, url: str) -> Callable[[RetryCallState], None]:
        def tell(state: RetryCallState) -> None:
            if self.on_retry is None or state.outcome is None:
                return
            exc = state.outcome.exception()
            response = exc.response if isinstance(exc, _Retryable) else None
            seconds = state.next_action.sleep if state.next_action else 0.0
            self.on_retry(
                method,
                _without_query(str(self.http.base_url.join(url))),
                response.status_code if response is not None else None,
                float(seconds),
                str(exc),
            )

        return tell

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send with retries; a 2xx/3xx response, else `VendorError`."""
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, _Retryable)),
            sleep=self.sleep,
            before_sleep=self._before_sleep(method, url),
            reraise=True,
        )
        try:
            response = retrying(self._send_once, method, url, kwargs)
        except _Retryable as exc:
            full = str(self.http.base_url.join(url))
            if exc.response is not None:
                raise VendorError(
                    method,
                    full,
                    exc.response.status_code,
                    _excerpt(exc.response),
                    _json_or_none(exc.response),
                ) from None
            raise VendorError(method, full, None, str(exc.cause)) from None
        if response.status_code >= 400:
            raise VendorError(
                method,
                str(response.url),
                response.status_code,
                _excerpt(response),
                _json_or_none(response),
            )
        return response

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)
