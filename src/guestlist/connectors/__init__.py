"""Connectors: one folder per platform, and the machinery they share.

`load_all()` imports every platform folder so that each registers its connector and
its inbox parser; callers (the pipeline, the API, the CLI) import this package, never
a platform by name.
"""

from __future__ import annotations

import importlib
import pkgutil

_loaded = False


def load_all() -> None:
    """Import each platform folder (those not starting with `_`) once."""
    global _loaded
    if _loaded:
        return
    importlib.import_module(f"{__name__}.backfill")  # registers the backfill job
    for module in pkgutil.iter_modules(__path__):
        if module.ispkg and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    _loaded = True
