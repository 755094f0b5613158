"""The platforms guestlist knows, by slug, and the connectors that registered for them.

Each platform folder registers its connector class when imported
(`@register`); `guestlist.connectors.load_all` imports every folder, so nothing in
the core names a platform.
"""

from __future__ import annotations

from typing import TypeVar

from guestlist.connectors.base import Connector
from guestlist.inbox.parsers import register_parser

# The slugs used everywhere: CLI, API, URLs, folders.
PLATFORMS: tuple[str, ...] = (
    "shopify",
    "square",
    "woocommerce",
    "magento",
    "twilio",
    "sendgrid",
    "mailchimp",
    "hubspot",
    "salesforce",
    "activecampaign",
    "intercom",
    "zendesk",
    "zapier",
    "klaviyo",
    "pipedrive",
    "typeform",
    "google_sheets",
    "facebook_lead_ads",
    "drift",
    "freshsales",
)

C = TypeVar("C", bound=type[Connector])

_connectors: dict[str, Connector] = {}


class UnknownPlatform(LookupError):
    """A slug that is not a platform, or a platform without a connector yet."""

    def __init__(self, slug: str) -> None:
        if slug in PLATFORMS:
            message = (
                f"platform {slug!r} has no connector yet "
                f"(available: {', '.join(sorted(_connectors)) or 'none'})"
            )
        else:
            message = f"unknown platform {slug!r} (platforms: {', '.join(PLATFORMS)})"
        super().__init__(message)
        self.slug = slug


def register(cls: C) -> C:
    """Class decorator: make a connector available under its `slug`."""
    if cls.slug not in PLATFORMS:
        raise ValueError(f"{cls.__name__}.slug {cls.slug!r} is not one of {PLATFORMS}")
    existing = _connectors.get(cls.slug)
    if existing is not None and type(existing).__qualname__ != cls.__qualname__:
        raise ValueError(f"platform {cls.slug!r} already has connector {type(existing)!r}")
    instance = cls()
    _connectors[cls.slug] = instance
    # Webhook deliveries ("shopify.orders/paid") and pulled pages ("shopify.pull.orders").
    register_parser(f"{cls.slug}.", instance.parse)
    return cls


def connector_for(slug: str) -> Connector:
    try:
        return _connectors[slug]
    except KeyError:
        raise UnknownPlatform(slug) from None


def available() -> list[Connector]:
    """The registered connectors, in the order of `PLATFORMS`."""
    return [_connectors[s] for s in PLATFORMS if s in _connectors]
