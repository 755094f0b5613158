"""Fetch the next pages of a pull while the current one is being stored.

A pull is a chain: ask the vendor, wait, parse, store the page with its checkpoint,
ask again. Storing waits for the database (on SQLite, for whoever holds the write
lock) and asking waits for the vendor; run one after the other, each waits for the
other too. `prefetched` runs the connector's page generator in a thread of its own, a
few pages ahead, so the two waits overlap. Pages still reach the caller in order, so
checkpoints move exactly as before; pages fetched but not stored when the run ends are
fetched again by the next one, from the last stored checkpoint.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

# Pages held ahead of the one being stored: enough to cover a storing pause, little
# memory (a Shopify page of 250 orders is about a megabyte).
AHEAD = 4

JOIN_SECONDS = 5.0

_END = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


@contextmanager
def prefetched(pages: Iterator[T], ahead: int = AHEAD) -> Iterator[Iterator[T]]:
    """Iterate `pages` through a bounded queue filled by a thread.

    An error raised by the generator reaches the caller after the pages fetched
    before it. Leaving the block early (an error while storing, a stop) closes the
    generator in its own thread and waits for it.
    """
    handoff: queue.Queue[object] = queue.Queue(maxsize=ahead)
    leaving = threading.Event()

    def put(item: object) -> bool:
        while not leaving.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for page in pages:
                if not put(page):
                    break
            else:
                put(_END)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(_Failed(exc))
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()

    def consume() -> Iterator[T]:
        while True:
            item = handoff.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]

    worker = threading.Thread(target=produce, name="guestlist-prefetch", daemon=True)
    worker.start()
    try:
        yield consume()
    finally:
        leaving.set()
        # A request under way (or a rate-limit pause) ends on its own; the thread then
        # sees `leaving` and stops without handing anything on.
        worker.join(timeout=JOIN_SECONDS)
