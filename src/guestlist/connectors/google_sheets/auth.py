"""Service-account auth: the OAuth 2.0 JWT bearer grant (RFC 7523), as Google runs it.

We sign a JWT with the key file's RSA key (RS256: RSASSA-PKCS1-v1_5 over SHA-256,
RFC 7518 §3.3) claiming `iss` = the service account's email, `scope` = read-only
Sheets, `aud` = the token endpoint, `iat`/`exp` at most an hour apart; POST it as
`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=…` to the token
endpoint; and send the `access_token` we get as `Bearer`. The token is reused until
five minutes before it expires, and fetched again once if the API answers 401.
Written with `cryptography` (already a dependency) rather than a JWT library.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Generator

import httpx
import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from guestlist.connectors.base import ConnectorError
from guestlist.connectors.google_sheets.settings import SCOPE, ServiceAccount

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
LIFETIME = 3600  # seconds; Google refuses an assertion valid for longer than an hour
REFRESH_MARGIN = 300


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def assertion(account: ServiceAccount, audience: str, now: int, scope: str = SCOPE) -> str:
    """The signed JWT for the grant."""
    header: dict[str, str] = {"alg": "RS256", "typ": "JWT"}
    if account.private_key_id:
        header["kid"] = account.private_key_id
    claims = {"iss": account.client_email, "scope": scope, "aud": audience,
              "iat": now, "exp": now + LIFETIME}
    signing_input = f"{b64url(orjson.dumps(header))}.{b64url(orjson.dumps(claims))}"
    signature = account.key().sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


class ServiceAccountAuth(httpx.Auth):
    """httpx auth that holds a token, refreshes it before expiry and after a 401."""

    def __init__(
        self,
        account: ServiceAccount,
        token_url: str,
        *,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.account = account
        self.token_url = token_url
        self.clock = clock
        self.transport = transport
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self.fetched = 0  # tokens obtained (tests)

    def _fetch(self) -> None:
        now = int(self.clock())
        form = {"grant_type": GRANT_TYPE,
                "assertion": assertion(self.account, self.token_url, now)}
        try:
            with httpx.Client(timeout=30.0, transport=self.transport) as http:
                response = http.post(self.token_url, data=form)
        except httpx.HTTPError as exc:
            raise ConnectorError(f"Google token endpoint unreachable: {exc}") from None
        if response.status_code != 200:
            detail = response.text[:200] if response.content else response.reason_phrase
            raise ConnectorError(
                f"Google refused the service account ({response.status_code}): {detail}"
            )
        body = response.json()
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ConnectorError("Google's token answer has no access_token")
        expires_in = body.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else 3600.0
        self._token = token
        self._expires_at = now + lifetime
        self.fetched += 1

    def token(self, *, renew: bool = False) -> str:
        with self._lock:
            if renew or self._token is None or self.clock() >= self._expires_at - REFRESH_MARGIN:
                self._fetch()
            assert self._token is not None
            return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        used = self.token()
        request.headers["Authorization"] = f"Bearer {used}"
        response = yield request
        if response.status_code == 401:
            # Revoked or expired early: one new token, one more try.
            with self._lock:
                stale = self._token == used
            request.headers["Authorization"] = f"Bearer {self.token(renew=stale)}"
            yield request
