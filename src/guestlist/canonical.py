"""Canonical events: the Segment spec, as every stage after capture sees it.

Capture parsers and connector mappings turn raw envelopes into these; identity
resolution and the apply step consume them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from operator import attrgetter
from typing import Any

EVENT_TYPES = ("identify", "track", "page", "screen", "group", "alias")


class PropertyError(ValueError):
    """A reserved event's property is invalid; `field` names it (e.g. `channel`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(slots=True)
class ExternalId:
    """A per-source id such as `shopify:customer:123` (namespace `shopify:customer`)."""

    namespace: str
    id: str

    @property
    def key(self) -> str:
        return f"{self.namespace}:{self.id}"

    def __reduce__(self) -> tuple[type[ExternalId], tuple[str, str]]:
        return (ExternalId, (self.namespace, self.id))  # see CanonicalEvent.__reduce__


@dataclass(slots=True)
class CanonicalEvent:
    type: str
    message_id: str
    timestamp: datetime  # event time (UTC), corrected for client clock skew
    received_at: datetime
    source_id: int
    user_id: str | None = None
    anonymous_id: str | None = None
    name: str | None = None  # track event name; page/screen name
    traits: dict[str, Any] = field(default_factory=dict)  # identify traits → profile traits
    properties: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    previous_id: str | None = None  # alias
    group_id: str | None = None  # group
    external_ids: list[ExternalId] = field(default_factory=list)
    inbox_id: int | None = None
    default_region: str = "US"  # for phone numbers written without a country code

    def identity_traits(self) -> dict[str, Any]:
        """Traits that may carry identifiers: the call's own, or `context.traits`."""
        if self.type == "identify":
            return self.traits
        ctx_traits = self.context.get("traits")
        return ctx_traits if isinstance(ctx_traits, dict) else {}

    def __reduce__(self) -> tuple[Callable[..., CanonicalEvent], tuple[Any, ...]]:
        # An import's reader process sends these by the thousand: the slots dataclass
        # default (a state list from `fields()`, set back one attribute at a time)
        # took 2.6 times as long to pickle and load.
        return (CanonicalEvent, _event_fields(self))


_event_fields = attrgetter(*(f.name for f in fields(CanonicalEvent)))
