"""Client-side rate limits: a token bucket per connection, kept in step with the
vendor's own budget headers.

Vendors publish their limits as a bucket (Shopify: 40 calls, leaking 2 per second) or
a budget per window (HubSpot: 100 per 10 s). Both are a token bucket here: `capacity`
tokens, refilled at `rate` per second, one taken per request. After each response,
`observe` reads what the vendor says is left (a `read_budget` function per vendor) and
takes it as the truth: a bucket shared with other apps or processes never runs ahead of
the server, and one the server drains faster than the published rate is not held back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

Clock = Callable[[], float]
Sleep = Callable[[float], None]


@dataclass(frozen=True, slots=True)
class Budget:
    """What a response says is left of the vendor's budget."""

    remaining: float
    capacity: float | None = None
    resets_in: float | None = None  # seconds until the window starts again
    rate: float | None = None  # refill per second, where the plan sets it (Shopify Plus)


BudgetReader = Callable[[httpx.Response], Budget | None]


class RateLimiter:
    """The interface the client calls around each request."""

    def acquire(self) -> None:
        """Block until a request may go."""

    def observe(self, response: httpx.Response) -> None:
        """Learn from a response's rate-limit headers."""


class Unlimited(RateLimiter):
    pass


class TokenBucket(RateLimiter):
    def __init__(
        self,
        capacity: float,
        rate: float,
        *,
        read_budget: BudgetReader | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        if capacity < 1 or rate <= 0:
            raise ValueError("a token bucket needs capacity >= 1 and rate > 0")
        self.capacity = float(capacity)
        self.rate = float(rate)
        self.read_budget = read_budget
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(capacity)
        self._at = clock()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                self._refill(now)
                wait = max(0.0, self._paused_until - now)
                if wait == 0.0:
                    # Within rounding of a whole token is a token: a wait of 1e-17 s
                    # would not move a coarse (or fake) clock, and the loop would spin.
                    if self._tokens >= 1.0 - 1e-9:
                        self._tokens = max(0.0, self._tokens - 1.0)
                        return
                    wait = max((1.0 - self._tokens) / self.rate, 1e-6)
            self._sleep(wait)

    def observe(self, response: httpx.Response) -> None:
        budget = self.read_budget(response) if self.read_budget else None
        if budget is None:
            return
        with self._lock:
            self._refill(self._clock())
            if budget.capacity is not None and budget.capacity >= 1:
                self.capacity = budget.capacity
            if budget.rate is not None and budget.rate > 0:
                self.rate = budget.rate
            # The server's count is the truth, both ways: less left when another app
            # shares the budget, more when the server leaks faster than we assumed
            # (or does not limit at all).
            self._tokens = min(self.capacity, max(0.0, budget.remaining))
            if budget.remaining < 1 and budget.resets_in is not None:
                self._paused_until = max(self._paused_until, self._clock() + budget.resets_in)

    def pause(self, seconds: float) -> None:
        """Send nothing for `seconds` (after a 429 with `Retry-After`)."""
        with self._lock:
            self._tokens = 0.0
            self._at = self._clock()
            self._paused_until = max(self._paused_until, self._at + seconds)


_limiters: dict[tuple[str, int], RateLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(
    slug: str, connection_id: int | None, make: Callable[[], RateLimiter]
) -> RateLimiter:
    """One limiter per connection in this process, so all its clients share the budget."""
    if connection_id is None:
        return make()
    with _limiters_lock:
        key = (slug, connection_id)
        if key not in _limiters:
            _limiters[key] = make()
        return _limiters[key]


def forget_limiter(slug: str, connection_id: int) -> None:
    with _limiters_lock:
        _limiters.pop((slug, connection_id), None)
