"""Process-wide settings for guestlist's long-running commands."""

from __future__ import annotations

import gc

# The worker allocates millions of short-lived objects per minute while holding large
# long-lived caches; with Python's default (700, 10, 10) the cyclic collector's full
# passes over those caches took 40 % of processing time. Rarer passes keep the garbage
# of a batch bounded (a few tens of MB) and give that time back.
GC_THRESHOLDS = (50_000, 20, 10)


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)
