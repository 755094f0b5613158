"""WooCommerce webhook deliveries: the signature, the creation ping, the site, the topic.

WooCommerce signs the raw JSON body (`WC_Webhook::generate_signature`):
`X-WC-Webhook-Signature = base64(HMAC-SHA256(body, wp_specialchars_decode(secret,
ENT_QUOTES)))`. There is no timestamp. Headers sent with every delivery (`deliver`):
`X-WC-Webhook-Source` (`home_url('/')`), `-Topic`, `-Resource`, `-Event`, `-Signature`,
`-ID` (the webhook) and `-Delivery-ID`.

The ping WooCommerce posts when a webhook is saved (`WC_Webhook::deliver_ping`) is a
bare form body `webhook_id=N` with none of those headers and no signature; it only
needs a 200.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit

import orjson

from guestlist.connectors._signing import hmac_base64, signatures_match
from guestlist.connectors.base import (
    Delivery,
    WebhookRejected,
    WebhookRequest,
    bad_signature,
    checked_topic,
    missing_header,
    no_secret,
)
from guestlist.connectors.woocommerce.mapping import RecordError, check_record
from guestlist.connectors.woocommerce.settings import WooCommerceSettings

SIGNATURE = "X-WC-Webhook-Signature"
TOPIC = "X-WC-Webhook-Topic"
SOURCE = "X-WC-Webhook-Source"
DELIVERY_ID = "X-WC-Webhook-Delivery-ID"
WEBHOOK_ID = "X-WC-Webhook-ID"

PING_TOPIC = "ping"
RESOURCES = ("customer", "order")
EVENTS = ("created", "updated", "deleted", "restored")
_PING = re.compile(rb"webhook_id=([0-9]{1,20})")

# wp_specialchars_decode($text, ENT_QUOTES): zero-padded numeric entities are first
# reduced to one spelling each, then the table is applied in one pass (PHP `strtr`:
# longest key first, replaced text never rescanned). Other entities stay as they are.
_ENTITY_SPELLINGS = (
    (re.compile(r"&#0*39;"), "&#039;"),
    (re.compile(r"&#x0*27;", re.IGNORECASE), "&#x27;"),
    (re.compile(r"&#0*34;"), "&#034;"),
    (re.compile(r"&#x0*22;", re.IGNORECASE), "&#x22;"),
    (re.compile(r"&#0*60;"), "&#060;"),
    (re.compile(r"&#0*62;"), "&#062;"),
    (re.compile(r"&#0*38;"), "&#038;"),
    (re.compile(r"&#x0*26;", re.IGNORECASE), "&#x26;"),
)
_ENTITIES = {
    "&#039;": "'",
    "&#x27;": "'",
    "&quot;": '"',
    "&#034;": '"',
    "&#x22;": '"',
    "&lt;": "<",
    "&#060;": "<",
    "&gt;": ">",
    "&#062;": ">",
    "&amp;": "&",
    "&#038;": "&",
    "&#x26;": "&",
}
_ENTITY = re.compile("|".join(re.escape(k) for k in sorted(_ENTITIES, key=len, reverse=True)))


def wp_specialchars_decode(text: str) -> str:
    """WordPress's `wp_specialchars_decode($text, ENT_QUOTES)`."""
    if "&" not in text:
        return text
    for pattern, spelling in _ENTITY_SPELLINGS:
        text = pattern.sub(spelling, text)
    return _ENTITY.sub(lambda m: _ENTITIES[m.group(0)], text)


def webhook_signature(secret: str, body: bytes) -> str:
    """What WooCommerce puts in `X-WC-Webhook-Signature` for `body`."""
    return hmac_base64(wp_specialchars_decode(secret), body)


def _site(url: str) -> tuple[str, str]:
    """Host (with a non-default port) and path of a site URL; the scheme is ignored."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None and port != default:
        host = f"{host}:{port}"
    return host, parts.path.rstrip("/")


def same_site(header: str, site_url: str) -> bool:
    return _site(header) == _site(site_url)


def verify_delivery(settings: WooCommerceSettings, request: WebhookRequest) -> Delivery:
    if settings.webhook_secret is None:
        raise no_secret()
    body = request.body
    ping = _PING.fullmatch(body.strip())
    given = request.header(SIGNATURE)
    if given is None:
        if ping is not None and request.header(TOPIC) is None:
            # Unsigned by WooCommerce: acknowledged, stored once per webhook, no events.
            return Delivery(topic=PING_TOPIC, delivery_id=f"ping:{ping.group(1).decode()}")
        raise missing_header(SIGNATURE)
    delivery = request.header(DELIVERY_ID)
    expected = webhook_signature(settings.webhook_secret.get_secret_value(), body)
    if not signatures_match(expected, given):
        refused = bad_signature(SIGNATURE)
        refused.delivery_id = delivery
        raise refused
    if ping is not None:  # a ping some filter signed: still only a ping
        return Delivery(topic=PING_TOPIC, delivery_id=f"ping:{ping.group(1).decode()}")
    for name in (TOPIC, SOURCE, DELIVERY_ID):
        if not request.header(name):
            refused = missing_header(name)
            refused.delivery_id = delivery
            raise refused
    source = request.header(SOURCE) or ""
    if not same_site(source, settings.site_url):
        # Not covered by the signature; a valid signature with another site means the
        # secret was pasted into a second shop, which must get its own connection.
        raise WebhookRejected(
            403,
            "wrong_site",
            f"delivery from {source[:200]!r}, but this connection is for {settings.site_url}",
            field=SOURCE,
            delivery_id=delivery,
        )
    topic = checked_topic(request.header(TOPIC) or "", TOPIC)
    resource, _, event = topic.partition(".")
    if resource not in RESOURCES or event not in EVENTS:
        raise WebhookRejected(
            400,
            "unsupported_topic",
            f"topic {topic!r} is not received here (customer.* and order.* are)",
            field=TOPIC,
            delivery_id=delivery,
        )
    try:
        record = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise WebhookRejected(
            400, "invalid_body", "the body is not JSON", field="body", delivery_id=delivery
        ) from None
    try:
        check_record(resource, event, record)
    except RecordError as exc:
        raise WebhookRejected(
            400, "invalid_body", exc.message, field=f"body.{exc.field}", delivery_id=delivery
        ) from None
    # WooCommerce's delivery id is wp_hash(webhook id . time()): two deliveries of one
    # webhook in the same second share it. The body's digest keeps them apart; a
    # redelivery of the same bytes under the same id is still stored once.
    digest = hashlib.sha256(body).hexdigest()[:16]
    return Delivery(topic=topic, delivery_id=f"{delivery}:{digest}")
