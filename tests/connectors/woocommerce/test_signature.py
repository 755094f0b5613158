"""X-WC-Webhook-Signature: derived vectors, WordPress's entity decoding, the checks in
their order (signature before anything in the body), the ping, the site."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from guestlist.connectors.base import WebhookRejected, WebhookRequest
from guestlist.connectors.woocommerce.settings import WooCommerceSettings
from guestlist.connectors.woocommerce.signature import (
    same_site,
    verify_delivery,
    webhook_signature,
    wp_specialchars_decode,
)
from tests.connectors.woocommerce.helpers import (
    SAMPLES,
    SECRET,
    SITE,
    customer,
    headers_for,
    order,
)

VECTORS = orjson.loads((SAMPLES / "webhook_signature_vectors.CONSTRUCTED.json").read_bytes())


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_derived_vectors(vector: dict[str, Any]) -> None:
    body = (
        (SAMPLES / vector["body_file"]).read_bytes()
        if "body_file" in vector
        else vector["body"].encode()
    )
    assert wp_specialchars_decode(vector["secret"]) == vector["key"]
    assert webhook_signature(vector["secret"], body) == vector["signature"]


@pytest.mark.parametrize(
    ("stored", "decoded"),
    [
        ("plain", "plain"),
        ("a&amp;b", "a&b"),
        ("&quot;&#034;&#x22;&#X22;", '""""'),
        ("&#039;&#39;&#x27;&#x0027;", "''''"),
        ("&lt;&#060;&#60;&gt;&#062;", "<<<>>"),
        ("&amp;lt;", "&lt;"),  # one pass: what a replacement makes is not read again
        ("&#038;&#38;&#x26;", "&&&"),
        ("&copy;&AMP;&nbsp;", "&copy;&AMP;&nbsp;"),  # only these five characters
        ("&", "&"),
    ],
)
def test_wp_specialchars_decode_ent_quotes(stored: str, decoded: str) -> None:
    assert wp_specialchars_decode(stored) == decoded


def _settings(**kw: Any) -> WooCommerceSettings:
    return WooCommerceSettings(
        site_url=SITE,
        consumer_key=SecretStr("ck"),
        consumer_secret=SecretStr("cs"),
        webhook_secret=SecretStr(kw.pop("secret", SECRET)),
        **kw,
    )


def _request(body: bytes, headers: dict[str, str]) -> WebhookRequest:
    return WebhookRequest(
        method="POST",
        url="https://guestlist.example/hooks/woocommerce/1",
        headers={k.lower(): v for k, v in headers.items()},
        body=body,
        received_at=datetime(2026, 11, 27, tzinfo=UTC),
    )


def _refusal(body: bytes, headers: dict[str, str], **kw: Any) -> WebhookRejected:
    with pytest.raises(WebhookRejected) as caught:
        verify_delivery(_settings(**kw), _request(body, headers))
    return caught.value


def test_a_signed_delivery_names_topic_and_a_key_per_body() -> None:
    body = orjson.dumps(customer())
    other = orjson.dumps(customer(id=26))
    first = verify_delivery(_settings(), _request(body, headers_for(body, SECRET)))
    second = verify_delivery(_settings(), _request(other, headers_for(other, SECRET)))
    again = verify_delivery(_settings(), _request(body, headers_for(body, SECRET)))
    assert first.topic == "customer.created"
    # WooCommerce's delivery id is per webhook per second: two bodies in one second
    # share it, so the body's digest is part of the key; the same bytes again are one.
    assert first.delivery_id != second.delivery_id
    assert first.delivery_id == again.delivery_id
    assert first.delivery_id is not None
    assert first.delivery_id.startswith("d41d8cd98f00b204e9800998ecf8427e:")


def test_a_secret_with_entities_is_decoded_as_wordpress_does() -> None:
    stored = "my&amp;secret&quot;quote&#039;&lt;x&gt;"
    body = b'{"id":727,"status":"processing"}'
    headers = headers_for(body, stored, topic="order.updated")
    headers["X-WC-Webhook-Signature"] = "Pi53GqHTP8SmPn2C8jB1n58cNgJbBFyA+JMrPtLnsB4="
    # The body lacks fields: refused for that, so the signature itself passed.
    refused = _refusal(body, headers, secret=stored)
    assert (refused.status, refused.field) == (400, "body.date_modified_gmt")


def test_bad_signature_is_401_before_the_body_is_read() -> None:
    body = b"not json at all"
    headers = headers_for(body, "another secret")
    refused = _refusal(body, headers)
    assert (refused.status, refused.error, refused.field) == (
        401, "invalid_signature", "X-WC-Webhook-Signature")
    assert refused.delivery_id == "d41d8cd98f00b204e9800998ecf8427e"


@pytest.mark.parametrize(
    "header", ["X-WC-Webhook-Topic", "X-WC-Webhook-Source", "X-WC-Webhook-Delivery-ID"]
)
def test_missing_headers_are_400(header: str) -> None:
    body = orjson.dumps(customer())
    headers = headers_for(body, SECRET)
    del headers[header]
    refused = _refusal(body, headers)
    assert (refused.status, refused.error, refused.field) == (400, "missing_header", header)


def test_missing_signature_is_400() -> None:
    body = orjson.dumps(customer())
    headers = headers_for(body, SECRET)
    del headers["X-WC-Webhook-Signature"]
    assert _refusal(body, headers).status == 400


def test_the_unsigned_ping_is_acknowledged_as_a_ping() -> None:
    # WC_Webhook::deliver_ping: body `webhook_id=N`, only a User-Agent header.
    delivery = verify_delivery(_settings(), _request(b"webhook_id=12", {"User-Agent": "WC"}))
    assert (delivery.topic, delivery.delivery_id) == ("ping", "ping:12")


def test_a_ping_body_with_a_wrong_signature_is_refused() -> None:
    headers = {"X-WC-Webhook-Signature": "AAAA"}
    assert _refusal(b"webhook_id=12", headers).status == 401


def test_other_unsigned_bodies_are_not_pings() -> None:
    assert _refusal(b"webhook_id=12&x=1", {}).status == 400
    assert _refusal(b"webhook_id=12", {"X-WC-Webhook-Topic": "order.created"}).status == 400


def test_another_site_is_refused_even_when_signed() -> None:
    body = orjson.dumps(customer())
    headers = headers_for(body, SECRET, source="https://other-shop.example/")
    refused = _refusal(body, headers)
    assert (refused.status, refused.error, refused.field) == (
        403, "wrong_site", "X-WC-Webhook-Source")


@pytest.mark.parametrize(
    ("header", "site", "same"),
    [
        ("https://shop.example/", "https://shop.example", True),
        ("http://shop.example/", "https://shop.example", True),  # scheme not compared
        ("https://SHOP.example:443/", "https://shop.example", True),
        ("https://shop.example/store/", "https://shop.example/store", True),
        ("https://shop.example/", "https://shop.example/store", False),
        ("https://shop.example:8443/", "https://shop.example", False),
        ("https://www.shop.example/", "https://shop.example", False),
    ],
)
def test_site_comparison(header: str, site: str, same: bool) -> None:
    assert same_site(header, site) is same


@pytest.mark.parametrize(
    "topic", ["product.created", "coupon.updated", "action.woocommerce_add_to_cart",
              "customer.teleported"]
)
def test_topics_we_do_not_map_are_refused(topic: str) -> None:
    body = orjson.dumps(customer())
    refused = _refusal(body, headers_for(body, SECRET, topic=topic))
    assert (refused.status, refused.error) == (400, "unsupported_topic")


@pytest.mark.parametrize(
    ("record", "topic", "field"),
    [
        (b"[1, 2]", "customer.created", "body.id"),
        (b"{oops", "customer.created", "body"),
        (orjson.dumps({**customer(), "id": "25"}), "customer.created", "body.id"),
        (orjson.dumps({**customer(), "date_modified_gmt": None, "date_created_gmt": None}),
         "customer.updated", "body.date_modified_gmt"),
        (orjson.dumps({"id": 727, "date_created_gmt": "2017-03-22T19:28:02"}),
         "order.created", "body.status"),
        (orjson.dumps({"id": 727, "status": "processing", "customer_id": 0,
                       "date_created_gmt": "2017-03-22T19:28:02", "currency": "USD",
                       "total": "lots", "line_items": []}),
         "order.updated", "body.total"),
        (orjson.dumps({**order(), "line_items": [{"name": "Rye", "total": "12,50"}]}),
         "order.updated", "body.line_items[0].total"),
    ],
)
def test_malformed_bodies_are_400_naming_the_field(record: bytes, topic: str, field: str) -> None:
    refused = _refusal(record, headers_for(record, SECRET, topic=topic))
    assert (refused.status, refused.error, refused.field) == (400, "invalid_body", field)


def test_a_deletion_needs_only_the_id() -> None:
    body = b'{"id":25}'
    delivery = verify_delivery(
        _settings(), _request(body, headers_for(body, SECRET, topic="customer.deleted"))
    )
    assert delivery.topic == "customer.deleted"


def test_no_secret_is_409() -> None:
    settings = WooCommerceSettings(site_url=SITE, consumer_key=SecretStr("ck"),
                                   consumer_secret=SecretStr("cs"))
    body = orjson.dumps(customer())
    with pytest.raises(WebhookRejected) as caught:
        verify_delivery(settings, _request(body, headers_for(body, SECRET)))
    assert caught.value.status == 409
