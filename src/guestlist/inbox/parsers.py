"""The parser registry: inbox kind → the function that turns an envelope into events.

Capture and each connector register a parser for the kinds they write (`tracking.`,
`shopify.`, …); the pipeline calls `parse_envelope` without knowing any of them by
name. The longest registered prefix of an envelope's kind wins, and a kind nobody
registered is an error rather than something silently skipped.
"""

from __future__ import annotations

from collections.abc import Callable

from guestlist.canonical import CanonicalEvent
from guestlist.inbox.store import InboxEnvelope

EnvelopeParser = Callable[[InboxEnvelope], list[CanonicalEvent]]

_parsers: dict[str, EnvelopeParser] = {}


class UnknownEnvelopeKind(LookupError):
    """No parser is registered for an envelope's kind."""


class EnvelopeError(ValueError):
    """An envelope's body cannot be read as the kind it claims to be."""


def register_parser(kind_prefix: str, fn: EnvelopeParser) -> None:
    """Route envelopes whose kind starts with `kind_prefix` to `fn`.

    Registering the same function again is harmless; a different function for a
    prefix that is taken is a mistake and raises.
    """
    if not kind_prefix:
        raise ValueError("a parser needs a non-empty kind prefix")
    current = _parsers.get(kind_prefix)
    if current is not None and (current.__module__, current.__qualname__) != (
        fn.__module__,
        fn.__qualname__,
    ):
        raise ValueError(
            f"kind prefix {kind_prefix!r} already has a parser: "
            f"{current.__module__}.{current.__qualname__}"
        )
    _parsers[kind_prefix] = fn


def registered_prefixes() -> list[str]:
    return sorted(_parsers)


def parser_for(kind: str) -> EnvelopeParser:
    matches = [prefix for prefix in _parsers if kind.startswith(prefix)]
    if not matches:
        known = ", ".join(sorted(_parsers)) or "none"
        raise UnknownEnvelopeKind(
            f"no parser registered for inbox kind {kind!r} (registered prefixes: {known})"
        )
    return _parsers[max(matches, key=len)]


def parse_envelope(env: InboxEnvelope) -> list[CanonicalEvent]:
    """The canonical events in one envelope, from the parser registered for its kind."""
    return parser_for(env.kind)(env)
