from __future__ import annotations

import threading
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
    with prefetched(iter(source), ahead=3) as pages:
        assert list(pages) == list(range(50))
    assert source.thread_names == {"guestlist-prefetch"}
    assert source.closed.is_set()


def test_an_error_arrives_after_the_pages_fetched_before_it() -> None:
    got: list[int] = []
    with (
        pytest.raises(RuntimeError, match="page 7 failed"),
        prefetched(iter(Pages(20, fail_at=7))) as pages,
    ):
        for page in pages:
            got.append(page)
    assert got == list(range(7))


def test_leaving_early_stops_and_closes_the_generator_within_its_bound() -> None:
    source = Pages(1000)
    with prefetched(iter(source), ahead=4) as pages:
        for page in pages:
            if page == 2:
                break
    assert source.closed.wait(5)
    # Three pages taken, four waiting in the queue, one more held by the blocked put.
    assert source.made <= 3 + 4 + 1


def test_an_error_while_storing_stops_the_fetching() -> None:
    source = Pages(1000)
    with (
        pytest.raises(ValueError, match="store failed"),
        prefetched(iter(source), ahead=2) as pages,
    ):
        for page in pages:
            if page == 1:
                raise ValueError("store failed")
    assert source.closed.wait(5)
    assert source.made < 10
