"""How requests carry the REST API keys.

- `basic` (https): `Authorization: Basic base64(ck:cs)`.
- `query` (https): `?consumer_key=…&consumer_secret=…`, for servers that drop the
  Authorization header (WooCommerce's documented fallback).
- `oauth1` (http): OAuth 1.0a one-legged, parameters in the query string, as
  `WC_REST_Authentication::check_oauth_signature` verifies it: the base string is
  `METHOD&enc(scheme://host/path)&enc(k1=v1&k2=v2…)` over every query parameter sorted
  by name (RFC 5849 §3.4.1, without a token), signed with HMAC-SHA1 (or -SHA256) keyed
  by `consumer_secret + "&"`. A fresh nonce and timestamp per request (WooCommerce
  refuses a nonce seen in the last 15 minutes), so a retried request is signed anew.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Generator, Mapping
from typing import Literal
from urllib.parse import quote

import httpx

SignatureMethod = Literal["HMAC-SHA1", "HMAC-SHA256"]
_DIGESTS = {"HMAC-SHA1": hashlib.sha1, "HMAC-SHA256": hashlib.sha256}


def rfc3986(text: str) -> str:
    """PHP's rawurlencode: everything but A-Z a-z 0-9 - . _ ~ percent-encoded."""
    return quote(text, safe="")


def base_string_uri(url: httpx.URL) -> str:
    """scheme://host[:port]/path, lower-case, without a default port or the query."""
    scheme = url.scheme.lower()
    host = url.host.lower()
    port = url.port
    if port is not None and port != {"http": 80, "https": 443}.get(scheme):
        host = f"{host}:{port}"
    return f"{scheme}://{host}{url.path}"


def oauth_signature(
    method: str,
    uri: str,
    params: Mapping[str, str],
    consumer_secret: str,
    signature_method: SignatureMethod = "HMAC-SHA1",
) -> str:
    """The `oauth_signature` for a request (params: every query parameter but it)."""
    pairs = sorted(params.items(), key=lambda kv: kv[0].encode())
    normalized = "&".join(f"{rfc3986(k)}={rfc3986(v)}" for k, v in pairs)
    base = "&".join((method.upper(), rfc3986(uri), rfc3986(normalized)))
    key = f"{consumer_secret}&".encode()
    digest = hmac.new(key, base.encode(), _DIGESTS[signature_method]).digest()
    return base64.b64encode(digest).decode()


class OAuth1Query(httpx.Auth):
    def __init__(
        self,
        consumer_key: str,
        consumer_secret: str,
        *,
        signature_method: SignatureMethod = "HMAC-SHA1",
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = lambda: secrets.token_hex(16),
    ) -> None:
        self._key = consumer_key
        self._secret = consumer_secret
        self._method = signature_method
        self._clock = clock
        self._nonce = nonce

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        params = dict(request.url.params.multi_items())
        oauth = {
            "oauth_consumer_key": self._key,
            "oauth_nonce": self._nonce(),
            "oauth_signature_method": self._method,
            "oauth_timestamp": str(int(self._clock())),
        }
        signature = oauth_signature(
            request.method,
            base_string_uri(request.url),
            {**params, **oauth},
            self._secret,
            self._method,
        )
        request.url = request.url.copy_merge_params({**oauth, "oauth_signature": signature})
        yield request


class QueryKeys(httpx.Auth):
    def __init__(self, consumer_key: str, consumer_secret: str) -> None:
        self._params = {"consumer_key": consumer_key, "consumer_secret": consumer_secret}

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.url = request.url.copy_merge_params(self._params)
        yield request
