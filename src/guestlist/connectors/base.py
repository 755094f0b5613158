"""What a connector is: its capabilities, its settings, and the calls the framework makes.

A platform folder subclasses `Connector`, sets the class attributes and implements
the methods of its capabilities:

- **webhook**: `verify_webhook` checks a delivery (signature over the raw body,
  replay window, shop domain…) and names its topic and the vendor's delivery id; the
  framework then stores it in the inbox as kind `"{slug}.{topic}"`.
- **pull**: `client` builds the HTTP client (auth, base URL, rate limit) and `pull`
  yields pages of one stream from a checkpoint; the framework stores each page in the
  inbox as kind `"{slug}.pull.{stream}"` (body: `{"stream", "records"}`) together with
  the checkpoint after it, in one transaction.
- every connector: `parse` maps its inbox envelopes (both kinds) to canonical events.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from sqlalchemy import Connection

from guestlist.canonical import CanonicalEvent
from guestlist.connectors._http.client import VendorClient
from guestlist.inbox.store import InboxEnvelope

PULL_KIND = "pull"
CONTEXT_PREFIX = "x-guestlist-"  # stored headers only guestlist writes


class Capability(StrEnum):
    WEBHOOK = "webhook"
    PULL = "pull"
    DESTINATION = "destination"


class ConnectorSettings(BaseModel):
    """Settings every connection has; a platform subclasses it with its own.

    Fields typed `SecretStr` are credentials: stored encrypted, never logged, never
    returned by the API.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The shared secret the vendor signs webhooks with.
    webhook_secret: SecretStr | None = None
    # Overrides the vendor's API address (sandboxes, proxies, the fakes in tests).
    base_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$")
    # Region for phone numbers written without a country code.
    default_region: str = Field(default="US", pattern=r"^[A-Z]{2}$")

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One delivery as received: the bytes and the URL exactly as the vendor signed them."""

    method: str
    url: str  # public URL (GUESTLIST_PUBLIC_URL + path + query)
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    received_at: datetime
    # The last segment of `/hooks/{platform}/{id}/{token}`: the secret of senders
    # that cannot sign (compare it with `signatures_match`).
    path_token: str | None = None
    connection_name: str | None = None  # set by the framework once it found the connection

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer in the vendor's own format (TwiML, a handshake's echo) instead of JSON."""

    content: bytes
    media_type: str = "text/plain"
    status: int = 200


@dataclass(frozen=True, slots=True)
class Delivery:
    """A verified delivery: what it is about and the vendor's id for it."""

    topic: str  # e.g. "customers/create"; inbox kind "{slug}.{topic}"
    delivery_id: str | None  # a redelivery with the same id is stored once
    # Kept with the stored delivery for `parse` (which sees only the envelope): the
    # connection's mapping in force when it arrived, say. Names start with
    # `x-guestlist-`; a sender's own headers of that prefix are never stored.
    context: Mapping[str, str] = field(default_factory=dict)
    # What to store instead of the body as received: an unsigned body that carries the
    # sender's secret (Drift's verification token) is stored with the secret blanked.
    stored_body: bytes | None = None


class WebhookRejected(Exception):
    """A delivery we refuse; `status`/`error`/`field` become the JSON answer."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        field: str | None = None,
        delivery_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.field = field
        self.delivery_id = delivery_id  # for the connection's log, when the request shows it


def bad_signature(header: str) -> WebhookRejected:
    return WebhookRejected(
        401, "invalid_signature", f"the {header} header does not match the body", field=header
    )


def bad_body(field: str, message: str, delivery_id: str | None = None) -> WebhookRejected:
    """A delivery whose body lacks what we need, or is not what it claims (400)."""
    return WebhookRejected(400, "invalid_body", message, field=field, delivery_id=delivery_id)


def required_str(
    body: Mapping[str, Any], field: str, message: str, delivery_id: str | None = None
) -> str:
    """`body[field]` when it is a non-empty string, or a 400 naming `field`."""
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise bad_body(field, message, delivery_id)
    return value


def json_object(body: bytes, delivery_id: str | None = None) -> dict[str, Any]:
    """A delivery's body as a JSON object, or a 400 naming `body`."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise bad_body("body", "the body is not JSON", delivery_id) from None
    if not isinstance(value, dict):
        raise bad_body("body", "the body is not a JSON object", delivery_id)
    return value


def missing_header(header: str) -> WebhookRejected:
    return WebhookRejected(400, "missing_header", f"the {header} header is required", field=header)


def no_secret() -> WebhookRejected:
    return WebhookRejected(
        409,
        "webhook_secret_not_set",
        "this connection has no webhook_secret; set one to receive webhooks",
        field="webhook_secret",
    )


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a pulled stream."""

    records: list[dict[str, Any]]
    checkpoint: str | None  # where the next page starts; None when the stream is done
    total: int | None = None  # the stream's size, when the vendor reports it
    # On the last page: where the next run starts (an updated-at watermark for an
    # incremental pull); None: the next run starts from the beginning.
    next_run: str | None = None
    # Kept with the stored page for `parse`, as `Delivery.context` (`x-guestlist-…`).
    context: Mapping[str, str] = field(default_factory=dict)


class ConnectorError(Exception):
    """A connection that cannot work as configured (bad credentials, unknown shop…)."""


class Connector:
    slug: ClassVar[str]
    title: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]]
    settings_model: ClassVar[type[ConnectorSettings]] = ConnectorSettings
    # Pull streams in the order a backfill takes them (customers before orders).
    streams: ClassVar[tuple[str, ...]] = ()
    # True where the vendor lets us choose the webhook secret: we generate one.
    generates_webhook_secret: ClassVar[bool] = False
    # True for senders that cannot sign or set a header: the webhook secret is the last
    # segment of the URL to paste, `/hooks/{platform}/{id}/{webhook_secret}`.
    secret_in_path: ClassVar[bool] = False

    def verify_webhook(self, settings: Any, request: WebhookRequest) -> Delivery:
        raise NotImplementedError(f"{self.slug} does not receive webhooks")

    def reply(
        self,
        conn: Connection,
        settings: Any,
        request: WebhookRequest,
        delivery: Delivery,
        source_id: int,
    ) -> Reply | None:
        """What to answer a stored delivery (also a redelivery), in its transaction.

        None: the JSON acknowledgement. A vendor that reads the answer (Twilio's TwiML
        reply to a keyword) gets it from here.
        """
        return None

    def handshake(self, settings: Any, request: WebhookRequest) -> Reply:
        """Answer a GET to the webhook URL (Meta's `hub.challenge` verification)."""
        raise WebhookRejected(
            405, "method_not_allowed", f"{self.slug} webhooks are POSTed", field="method"
        )

    def parse(self, envelope: InboxEnvelope) -> list[CanonicalEvent]:
        raise NotImplementedError

    def client(self, settings: Any, *, connection_id: int | None = None) -> VendorClient:
        raise NotImplementedError(f"{self.slug} has no API client")

    def pull(
        self, client: VendorClient, settings: Any, stream: str, checkpoint: str | None
    ) -> Iterator[Page]:
        raise NotImplementedError(f"{self.slug} cannot pull")

    def check(self, client: VendorClient, settings: Any) -> str:
        """One cheap authenticated call; a line saying what it showed (`connections test`)."""
        raise NotImplementedError(f"{self.slug} has no test call")


def pull_kind(slug: str, stream: str) -> str:
    return f"{slug}.{PULL_KIND}.{stream}"


def pulled_page(envelope: InboxEnvelope) -> tuple[str, list[dict[str, Any]]]:
    """The stream and records of a pull envelope."""
    body = orjson.loads(envelope.body)
    return str(body["stream"]), list(body["records"])


def topic_of(envelope: InboxEnvelope, slug: str) -> str:
    """`customers/create` for kind `shopify.customers/create`; `pull.customers` for a page."""
    return envelope.kind[len(slug) + 1 :]


_SAFE_TOPIC = re.compile(r"^[A-Za-z0-9_./:-]{1,60}$")


def checked_topic(topic: str, field: str, delivery_id: str | None = None) -> str:
    """A topic from a header or body, refused (400) unless it is a plain short name."""
    if not _SAFE_TOPIC.match(topic):
        raise WebhookRejected(
            400,
            "invalid_topic",
            f"unexpected topic {topic[:80]!r}",
            field=field,
            delivery_id=delivery_id,
        )
    return topic
