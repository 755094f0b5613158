"""X-Twilio-Signature: every official vector, and agreement with the official SDK."""

from __future__ import annotations

import random
import string
from typing import Any

import pytest
from twilio.request_validator import RequestValidator

from guestlist.connectors.twilio.signature import (
    algorithm_of,
    compute_signature,
    is_valid,
    url_variants,
)
from tests.connectors.twilio.helpers import sample

VECTORS = sample("signature_vectors.json")
TOKEN = VECTORS["auth_token"]
BASE_PARAMS = VECTORS["vectors"][0]["params"]


def _params(vector: dict[str, Any]) -> list[tuple[str, str]]:
    if "params" in vector:
        return list(vector["params"].items())
    if "params_list" in vector:
        return [(k, v) for k, v in vector["params_list"]]
    if "params_ref" in vector:
        return list(BASE_PARAMS.items())
    return []


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_official_vectors_pass(vector: dict[str, Any]) -> None:
    body = vector["body"].encode() if "body" in vector else None
    assert is_valid(TOKEN, vector["url"], _params(vector), vector["expected"], body=body)


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_a_changed_byte_fails(vector: dict[str, Any]) -> None:
    body = vector["body"].encode() if "body" in vector else None
    params = _params(vector)
    assert not is_valid("12346", vector["url"], params, vector["expected"], body=body)
    assert not is_valid(TOKEN, vector["url"] + "0", params, vector["expected"], body=body)
    if params and body is None:
        changed = [(k, v + "0") if i == 0 else (k, v) for i, (k, v) in enumerate(params)]
        assert not is_valid(TOKEN, vector["url"], changed, vector["expected"])


def test_json_body_is_checked_against_body_sha256() -> None:
    (vector,) = [v for v in VECTORS["vectors"] if "body" in v]
    assert not is_valid(TOKEN, vector["url"], [], vector["expected"], body=b'{"property": 1}')


def test_port_tolerance_is_the_sdks() -> None:
    """A signature over the URL with its default port, or without a port, passes either
    way, as RequestValidator.validate accepts it; another host or scheme does not."""
    params = list(BASE_PARAMS.items())
    plain = "https://mycompany.com/myapp.php?foo=1&bar=2"
    for signed_url, checked_url in [
        (plain, "https://mycompany.com:443/myapp.php?foo=1&bar=2"),
        ("https://mycompany.com:443/myapp.php?foo=1&bar=2", plain),
        ("http://mycompany.com:80/x", "http://mycompany.com/x"),
        ("http://mycompany.com/x", "http://mycompany.com:1234/x"),  # SDK: any port drops
    ]:
        signature = compute_signature(TOKEN, signed_url, params)
        assert is_valid(TOKEN, checked_url, params, signature)
        assert RequestValidator(TOKEN).validate(checked_url, dict(params), signature)
    signature = compute_signature(TOKEN, plain, params)
    assert not is_valid(TOKEN, plain.replace("https", "http"), params, signature)
    assert not is_valid(TOKEN, plain.replace("mycompany", "mycompany2"), params, signature)
    assert url_variants("https://a.example/p") == ("https://a.example/p", "https://a.example:443/p")


def test_agrees_with_the_sdk_on_random_requests() -> None:
    rng = random.Random(6)
    alphabet = string.ascii_letters + string.digits + " +:/?&=%é😀<>"
    validator = RequestValidator("tok")
    for _ in range(300):
        params = {
            "".join(rng.choices(string.ascii_letters, k=rng.randint(1, 12))): "".join(
                rng.choices(alphabet, k=rng.randint(0, 20))
            )
            for _ in range(rng.randint(0, 12))
        }
        url = f"https://shop.example/hooks/twilio/{rng.randint(1, 99)}"
        expected = validator.compute_signature(url, params)
        assert compute_signature("tok", url, list(params.items())) == expected
        assert is_valid("tok", url, list(params.items()), expected)


def test_shared_key_header_names_the_algorithm() -> None:
    params = list(BASE_PARAMS.items())
    url = "https://shop.example/hooks/twilio/1"
    header = "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"
    assert algorithm_of(header) == "HMAC_SHA256"
    assert algorithm_of(None) == algorithm_of("key=x") == "HMAC_SHA1"
    sha256 = RequestValidator("k").compute_signature(url, dict(params), algorithm="HMAC_SHA256")
    assert is_valid("k", url, params, sha256, algorithm="HMAC_SHA256")
    assert not is_valid("k", url, params, sha256)  # not as SHA-1
    assert not is_valid("k", url, params, sha256, algorithm="HMAC_MD5")
