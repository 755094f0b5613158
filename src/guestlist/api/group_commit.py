"""Group commit for request handlers: calls that arrive together are stored together.

A handler awaits `GroupCommit.submit(item)`. While one batch is being stored (in a
worker thread, one batch at a time per event loop), the items that arrive meanwhile
wait, and go together in the next call of the batch function. Under load a commit
serves dozens of requests; alone, a request waits for nobody. Each request still gets
its answer only after the commit that holds its item.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class _Queue(Generic[Item, Result]):
    waiting: list[tuple[Item, asyncio.Future[Result]]] = field(default_factory=list)
    draining: asyncio.Task[None] | None = None


class GroupCommit(Generic[Item, Result]):
    """Batches calls to `store`, which takes items and returns, in their order, each
    one's result or the exception to raise in its request."""

    def __init__(
        self,
        store: Callable[[Sequence[Item]], Sequence[Result | Exception]],
        *,
        max_batch: int = 200,
    ) -> None:
        self._store = store
        self._max_batch = max_batch
        # Per event loop: a test client may run each request in a loop of its own.
        self._queues: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, _Queue[Item, Result]
        ] = weakref.WeakKeyDictionary()

    async def submit(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _Queue()
        future: asyncio.Future[Result] = loop.create_future()
        queue.waiting.append((item, future))
        if queue.draining is None:  # one batch at a time: the rest gather meanwhile
            queue.draining = loop.create_task(self._drain(queue))
        return await future

    async def _drain(self, queue: _Queue[Item, Result]) -> None:
        try:
            while queue.waiting:
                batch = queue.waiting[: self._max_batch]
                del queue.waiting[: self._max_batch]
                outcomes: Sequence[Result | Exception]
                try:
                    outcomes = await run_in_threadpool(self._store, [item for item, _ in batch])
                except Exception as exc:
                    outcomes = [exc] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():  # the request was cancelled (client went away)
                        continue
                    if isinstance(outcome, Exception):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            # Here, not in a done-callback: that would run later, and an item that
            # arrived in between would find no room for a drain and wait for ever.
            queue.draining = None
