"""Process-wide settings for guestlist's long-running commands."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# The worker allocates millions of short-lived objects per minute while holding large
# long-lived caches; with Python's default (700, 10, 10) the cyclic collector's full
# passes over those caches took 40 % of processing time. Rarer passes keep the garbage
# of a batch bounded (a few tens of MB) and give that time back.
GC_THRESHOLDS = (50_000, 20, 10)


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collection inside: for a pipeline batch, whose hundreds of thousands of
    objects all live until it commits, so that every young collection in it scanned
    them in vain (6 % of an import's storing process; 200,000 customers imported in
    12 % less time with the pause, six interleaved runs). Reference counting still
    frees what the batch drops; the collector runs again, on what is left, once it is
    over.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
