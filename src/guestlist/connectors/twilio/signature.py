"""`X-Twilio-Signature`: what Twilio signs and how we check it.

The signature is base64(HMAC-SHA1(Auth Token, URL + each POST parameter's name and
value, sorted by name)). Several values of one name are sorted too (and, as the
official SDK does, identical values counted once). The URL is the one Twilio called,
query included, exactly: behind a proxy it is `GUESTLIST_PUBLIC_URL` + path + query.

Twilio's back end is inconsistent about the port (the SDK says so), so a signature
made over the URL with its scheme's default port (`:443`, `:80`) or without any port
is accepted, as the SDK's `RequestValidator.validate` does. A JSON body is not signed
itself: the URL carries `bodySHA256=hex(sha256(body))` and only the URL is signed.

A webhook signed with a SharedKey says so in `X-Twilio-Webhooks-Signature-Settings`
(`key=…,algorithm=HMAC_SHA256`); the algorithm named there is used (the secret is then
that key's, set as the connection's `webhook_secret`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from functools import lru_cache
from urllib.parse import parse_qs, urlparse

SIGNATURE_HEADER = "X-Twilio-Signature"
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
ALGORITHMS = {"HMAC_SHA1": hashlib.sha1, "HMAC_SHA256": hashlib.sha256}
DEFAULT_ALGORITHM = "HMAC_SHA1"

Params = Sequence[tuple[str, str]]


def algorithm_of(settings_header: str | None) -> str:
    """The algorithm a `X-Twilio-Webhooks-Signature-Settings` header names (upper
    case); HMAC_SHA1 when the header is missing or names none."""
    for part in (settings_header or "").split(","):
        name, eq, value = part.partition("=")
        if eq and name.strip() == "algorithm" and value.strip():
            return value.strip().upper()
    return DEFAULT_ALGORITHM


def signed_params(params: Params, *, keep_repeats: bool = False) -> str:
    """Each parameter's name and value, sorted by name, then by value (see the module
    docstring): what follows the URL in the signed text."""
    by_name: dict[str, list[str]] = {}
    for name, value in params:
        by_name.setdefault(name, []).append(value)
    parts = []
    for name in sorted(by_name):
        values = by_name[name]
        if len(values) == 1:
            parts.append(name + values[0])
            continue
        for value in sorted(values if keep_repeats else set(values)):
            parts.append(name + value)
    return "".join(parts)


def signed_text(url: str, params: Params, *, keep_repeats: bool = False) -> str:
    """The URL followed by the sorted names and values."""
    return url + signed_params(params, keep_repeats=keep_repeats)


def _sign(token: bytes, text: str, algorithm: str) -> bytes:
    return base64.b64encode(hmac.new(token, text.encode(), ALGORITHMS[algorithm]).digest())


def compute_signature(
    token: str,
    url: str,
    params: Params = (),
    *,
    algorithm: str = DEFAULT_ALGORITHM,
    keep_repeats: bool = False,
) -> str:
    return _sign(
        token.encode(), signed_text(url, params, keep_repeats=keep_repeats), algorithm
    ).decode()


@lru_cache(maxsize=256)
def url_variants(url: str) -> tuple[str, ...]:
    """The URL as given, with its scheme's default port added (if it names none), and
    without any port: the forms the SDK accepts."""
    parsed = urlparse(url)
    try:
        port = parsed.port
    except ValueError:
        return (url,)
    if port:
        host = parsed.netloc.rsplit(":", 1)[0]
        return tuple(dict.fromkeys((url, parsed._replace(netloc=host).geturl())))
    default = 443 if parsed.scheme == "https" else 80
    with_port = parsed._replace(netloc=f"{parsed.netloc}:{default}").geturl()
    return tuple(dict.fromkeys((url, parsed.geturl(), with_port)))


def body_hash(url: str) -> str | None:
    """`bodySHA256` from the URL's query: present for JSON bodies only."""
    if "bodySHA256" not in url:
        return None
    query = urlparse(url).query
    values = parse_qs(query).get("bodySHA256")
    return values[0] if values else None


def is_valid(
    token: str,
    url: str,
    params: Params,
    signature: str,
    *,
    body: bytes | None = None,
    algorithm: str = DEFAULT_ALGORITHM,
) -> bool:
    """Whether `signature` is Twilio's for this URL and these POST parameters.

    `body`: the raw body, checked against `bodySHA256` when the URL has one (then the
    parameters are not signed). An unknown algorithm never matches.
    """
    if algorithm not in ALGORITHMS:
        return False
    given = signature.strip().encode()
    expected_hash = body_hash(url)
    if expected_hash is not None and body is not None:
        actual = hashlib.sha256(body).hexdigest()
        if not hmac.compare_digest(actual.encode(), expected_hash.encode()):
            return False
        params = ()
    key = token.encode()
    suffixes = [signed_params(params)]
    if len({name for name, _ in params}) < len(params):
        suffixes.append(signed_params(params, keep_repeats=True))  # also as sent
    for suffix in dict.fromkeys(suffixes):
        for variant in url_variants(url):
            # Each comparison is constant-time; stopping at a match tells a caller only
            # which form of the URL Twilio signed, nothing about the token.
            if hmac.compare_digest(_sign(key, variant + suffix, algorithm), given):
                return True
    return False
