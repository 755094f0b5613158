"""Token buckets with a fake clock: bursts, steady rate, and the vendor's own count."""

from __future__ import annotations

import httpx

from guestlist.connectors._http.ratelimit import Budget, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_burst_then_steady_rate_never_exceeds_the_bucket() -> None:
    clock = Clock()
    bucket = TokenBucket(40, 2, clock=clock, sleep=clock.sleep)
    sent_at = []
    for _ in range(100):
        bucket.acquire()
        sent_at.append(clock.now)
    assert sent_at[39] == 0.0  # the burst of 40
    # then 2 per second: the 100th request goes at (100 - 40) / 2 = 30 s
    assert abs(sent_at[-1] - 30.0) < 1e-6
    # In every window of length t, at most 40 + 2t requests.
    for i, start in enumerate(sent_at):
        for j in range(i, len(sent_at)):
            assert j - i + 1 <= 40 + 2 * (sent_at[j] - start) + 1e-9


def shopify_style(response: httpx.Response) -> Budget | None:
    used, _, cap = response.headers.get("x-shopify-shop-api-call-limit", "").partition("/")
    if not used.isdigit() or not cap.isdigit():
        return None
    return Budget(remaining=int(cap) - int(used), capacity=int(cap))


def test_the_vendors_count_wins_when_it_is_lower() -> None:
    clock = Clock()
    bucket = TokenBucket(40, 2, read_budget=shopify_style, clock=clock, sleep=clock.sleep)
    bucket.acquire()
    # Another app on the same shop used most of the bucket: 38 of 40 are taken.
    bucket.observe(httpx.Response(200, headers={"X-Shopify-Shop-Api-Call-Limit": "38/40"}))
    bucket.acquire()
    bucket.acquire()
    assert clock.slept == []
    bucket.acquire()  # the third must wait for the leak
    assert abs(sum(clock.slept) - 0.5) < 1e-6


def test_the_vendors_count_wins_when_it_is_higher_too() -> None:
    clock = Clock()
    bucket = TokenBucket(40, 2, read_budget=shopify_style, clock=clock, sleep=clock.sleep)
    for _ in range(200):  # a server that does not limit keeps saying 1 of 40 is used
        bucket.acquire()
        bucket.observe(httpx.Response(200, headers={"X-Shopify-Shop-Api-Call-Limit": "1/40"}))
    assert clock.slept == []


def test_an_exhausted_window_pauses_until_it_resets() -> None:
    clock = Clock()

    def hubspot_style(response: httpx.Response) -> Budget | None:
        return Budget(remaining=float(response.headers["remaining"]), resets_in=10.0)

    bucket = TokenBucket(100, 10, read_budget=hubspot_style, clock=clock, sleep=clock.sleep)
    bucket.observe(httpx.Response(200, headers={"remaining": "0"}))
    bucket.acquire()
    assert sum(clock.slept) >= 10.0
