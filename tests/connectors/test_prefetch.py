from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from guestlist.connectors.prefetch import prefetched


class Pages:
    """A page generator that records how far it got and whether it was closed."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count = count
        self.fail_at = fail_at
        self.made = 0
        self.closed = threading.Event()
        self.thread_names: set[str] = set()

    def __iter__(self) -> Iterator[int]:
        try:
            for page in range(self.count):
                self.thread_names.add(threading.current_thread().name)
                if page == self.fail_at:
                    raise RuntimeError(f"page {page} failed")
                self.made += 1
                yield page
        finally:
            self.closed.set()


def test_pages_arrive_in_order_fetched_by_another_thread() -> None:
    source = Pages(50)
    with prefetched(iter(source), ahead=3) as batches:
        got = list(batches)
    assert [page for batch in got for page in batch] == list(range(50))
    assert all(1 <= len(batch) <= 3 for batch in got)
    assert source.thread_names == {"guestlist-prefetch"}
    assert source.closed.is_set()


def test_pages_already_fetched_come_together() -> None:
    source = Pages(10)
    with prefetched(iter(source), ahead=4) as batches:
        deadline = time.monotonic() + 5
        while source.made < 5 and time.monotonic() < deadline:  # four queued, one waiting
            time.sleep(0.01)
        first = next(batches)
        rest = list(batches)
    assert first == [0, 1, 2, 3]
    assert [page for batch in [first, *rest] for page in batch] == list(range(10))


def test_an_error_arrives_after_the_pages_fetched_before_it() -> None:
    got: list[int] = []
    with (
        pytest.raises(RuntimeError, match="page 7 failed"),
        prefetched(iter(Pages(20, fail_at=7))) as batches,
    ):
        for batch in batches:
            got.extend(batch)
    assert got == list(range(7))


def test_leaving_early_stops_and_closes_the_generator_within_its_bound() -> None:
    source = Pages(1000)
    with prefetched(iter(source), ahead=4) as batches:
        for batch in batches:
            if 2 in batch:
                break
    assert source.closed.wait(5)
    # At most four pages taken, four waiting in the queue, one held by a blocked put.
    assert source.made <= 4 + 4 + 1


def test_an_error_while_storing_stops_the_fetching() -> None:
    source = Pages(1000)
    with (
        pytest.raises(ValueError, match="store failed"),
        prefetched(iter(source), ahead=2) as batches,
    ):
        for batch in batches:
            if 1 in batch:
                raise ValueError("store failed")
    assert source.closed.wait(5)
    assert source.made < 10
