"""Which function runs which kind of job.

A module that defines work registers it where it is written:

```
@job_handler("sync.run")
def run_sync(engine: Engine, args: dict[str, Any]) -> None: ...
```

The handler must be imported before a worker meets the kind. A job whose kind has no
handler is not dropped: running it fails with `UnknownJobKind`, so it is retried
with backoff (a newer worker may know the kind) and finally stays visible as `dead`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine

JobHandler = Callable[[Engine, dict[str, Any]], None]
H = TypeVar("H", bound=JobHandler)

_handlers: dict[str, JobHandler] = {}


class UnknownJobKind(LookupError):
    """No handler is registered for a job's kind."""

    def __init__(self, kind: str) -> None:
        super().__init__(
            f"no handler is registered for job kind {kind!r} "
            f"(known kinds: {', '.join(sorted(_handlers)) or 'none'}); "
            "is the module that defines it imported by the worker?"
        )
        self.kind = kind


def _qualified_name(handler: JobHandler) -> str:
    return f"{getattr(handler, '__module__', '?')}.{getattr(handler, '__qualname__', handler)!s}"


def register(kind: str, handler: JobHandler) -> None:
    """Register `handler` for `kind`; a second, different handler for it is an error."""
    existing = _handlers.get(kind)
    # The same function seen again (a module imported twice) replaces itself.
    if existing is not None and _qualified_name(existing) != _qualified_name(handler):
        raise ValueError(
            f"job kind {kind!r} already has handler {_qualified_name(existing)}"
        )
    _handlers[kind] = handler


def job_handler(kind: str) -> Callable[[H], H]:
    """Decorator: register the function as the handler of `kind` jobs."""

    def decorate(handler: H) -> H:
        register(kind, handler)
        return handler

    return decorate


def get_handler(kind: str) -> JobHandler:
    try:
        return _handlers[kind]
    except KeyError:
        raise UnknownJobKind(kind) from None


def registered_kinds() -> frozenset[str]:
    return frozenset(_handlers)


def unregister(kind: str) -> None:
    """Forget the handler of `kind` (for tests and plug-ins being unloaded)."""
    _handlers.pop(kind, None)
