"""Group commit: requests that arrive together go to the store in one call."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from guestlist.api.group_commit import GroupCommit


class Store:
    """Records each call; the first call is held until `release` so that later items
    gather behind it, as they do while a commit is running."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.release = threading.Event()

    def __call__(self, items: Sequence[int]) -> list[int | Exception]:
        self.calls.append(list(items))
        if len(self.calls) == 1:
            assert self.release.wait(5)
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]


async def _gather(group: GroupCommit[int, int], store: Store, items: list[int]) -> list[object]:
    first = asyncio.ensure_future(group.submit(items[0]))
    while not store.calls:  # the first batch is running, alone
        await asyncio.sleep(0.001)
    rest = [asyncio.ensure_future(group.submit(i)) for i in items[1:]]
    await asyncio.sleep(0.01)
    store.release.set()
    return await asyncio.gather(first, *rest, return_exceptions=True)


def test_items_arriving_during_a_commit_share_the_next_one() -> None:
    store = Store()
    group: GroupCommit[int, int] = GroupCommit(store)
    outcomes = asyncio.run(_gather(group, store, [0, 2, 3, 4, 6]))
    assert store.calls == [[0], [2, 3, 4, 6]]
    assert outcomes[0] == 0 and outcomes[1] == 20 and outcomes[3] == 40 and outcomes[4] == 60
    # An item's own exception is raised in its own request only.
    assert isinstance(outcomes[2], ValueError) and str(outcomes[2]) == "odd 3"


def test_batches_are_capped() -> None:
    store = Store()
    group: GroupCommit[int, int] = GroupCommit(store, max_batch=2)
    asyncio.run(_gather(group, store, [0, 2, 4, 6, 8]))
    assert store.calls == [[0], [2, 4], [6, 8]]


def test_a_failing_store_fails_every_request_of_its_batch_and_the_next_batch_runs() -> None:
    calls: list[list[int]] = []

    def store(items: Sequence[int]) -> list[int | Exception]:
        calls.append(list(items))
        if len(calls) == 1:
            raise RuntimeError("disk full")
        return list(items)

    async def run() -> tuple[list[object], int]:
        group: GroupCommit[int, int] = GroupCommit(store)
        failed = await asyncio.gather(group.submit(1), group.submit(2), return_exceptions=True)
        return list(failed), await group.submit(3)

    failed, later = asyncio.run(run())
    assert [str(f) for f in failed] == ["disk full", "disk full"]
    assert later == 3


def test_a_cancelled_request_does_not_stop_the_others() -> None:
    store = Store()
    group: GroupCommit[int, int] = GroupCommit(store)

    async def run() -> int:
        first = asyncio.ensure_future(group.submit(0))
        while not store.calls:
            await asyncio.sleep(0.001)
        gone = asyncio.ensure_future(group.submit(2))
        kept = asyncio.ensure_future(group.submit(4))
        await asyncio.sleep(0.01)
        gone.cancel()
        store.release.set()
        await first
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await kept

    assert asyncio.run(run()) == 40
    assert store.calls == [[0], [2, 4]]  # stored all the same: the sender will retry


def test_each_event_loop_has_its_own_queue() -> None:
    # A test client may run each request in a new loop; each must be answered.
    group: GroupCommit[int, int] = GroupCommit(lambda items: [i + 1 for i in items])
    assert [asyncio.run(group.submit(i)) for i in range(3)] == [1, 2, 3]
