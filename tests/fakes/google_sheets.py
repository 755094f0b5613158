"""A fake of Google's token endpoint and Sheets API v4 `spreadsheets.values.get`.

What it enforces:

- **Token endpoint** (OAuth 2.0 JWT bearer grant, RFC 7523, as Google runs it): the
  form's `grant_type` must be `urn:ietf:params:oauth:grant-type:jwt-bearer`; the
  `assertion` an RS256 JWT whose signature verifies with the public key of the test's
  key pair (checked here with `cryptography`, not with the connector's code), `iss`
  the service account, `aud` this endpoint, a read scope, `exp - iat` at most an hour
  and not expired. Otherwise 400 `invalid_grant`, as Google answers.
- **Every API request is checked against the discovery document**
  (tests/fakes/specs/sheets.v4.discovery.json, from ../shared/vendor-specs): the method must
  exist (HTTP method + path template), every query parameter must be declared for it
  or globally, enum values must be allowed. A violation is a 400 and is recorded in
  `violations`, which tests assert empty.
- **Auth**: `Authorization: Bearer` with a token this fake issued and that has not
  expired; otherwise 401 `UNAUTHENTICATED`.
- **values.get**: A1 ranges (`Sheet!A2:Z1001`, open-ended `A2:Z`), answered as a
  `ValueRange` (`range`, `majorDimension`, `values`) with trailing empty cells and rows
  left out, and `values` absent when there are none, as the API does.
- **Quota**: `quota` read requests per `window` seconds per user; over it, 429
  `RESOURCE_EXHAUSTED` (Google sends no Retry-After).
- **Faults**: a status on the k-th distinct values request, a number of times or always.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

DISCOVERY = Path(__file__).resolve().parent / "specs" / "sheets.v4.discovery.json"
CLIENT_EMAIL = "guestlist-import@bottle-shop.iam.gserviceaccount.com"
SPREADSHEET_ID = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"
HEADERS = ["Email", "First Name", "Last Name", "Phone", "Birthday", "Newsletter",
           "Signed up", "Notes", "Customer #"]
READ_SCOPES = ("https://www.googleapis.com/auth/spreadsheets.readonly",
               "https://www.googleapis.com/auth/spreadsheets")
_A1 = re.compile(
    r"^(?P<sheet>'(?:[^']|'')+'|[^'!:]+)!(?P<c1>[A-Z]+)(?P<r1>\d*):(?P<c2>[A-Z]+)(?P<r2>\d*)$"
)


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_file(key: rsa.RSAPrivateKey, token_uri: str = "https://oauth2.googleapis.com/token",
             ) -> str:
    """A service account key file as Google's console downloads it (fields we need)."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return json.dumps({
        "type": "service_account", "project_id": "bottle-shop",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": pem, "client_email": CLIENT_EMAIL, "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri,
    })


def serial(day: date) -> float:
    return float((day - date(1899, 12, 30)).days)


def generated_rows(n: int) -> list[list[Any]]:
    """The header row, then `n` rows: every 7th blank, row 4 with a bad email."""
    rows: list[list[Any]] = [list(HEADERS)]
    for i in range(n):
        if i % 7 == 6:
            rows.append([])
            continue
        newsletter: Any = True if i % 2 else "no"
        if i % 10 == 5:
            newsletter = "Unsubscribed"
        row: list[Any] = [
            "not-an-email" if i == 3 else f"guest{i}@example.com",
            f"Guest{i}", "Shaw", 4155550100 + i,
            serial(date(1970 + i % 30, 1 + i % 12, 1 + i % 28)), newsletter,
            serial(date(2019, 1 + i % 12, 1 + i % 28)), "", 1000 + i,
        ]
        while row and row[-1] == "":
            row.pop()
        rows.append(row)
    return rows


def _column(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n


def _b64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


@dataclass
class Fault:
    request: int  # the k-th distinct values request (1-based)
    status: int = 503
    times: int = 1  # -1: every time


@dataclass
class FakeSheets:
    public_key: rsa.RSAPublicKey
    rows: list[list[Any]]
    sheet: str = "Customers"
    base: str = ""  # set once served: the token endpoint is f"{base}/token"
    quota: int = 60
    window: float = 60.0
    token_lifetime: int = 3599
    faults: list[Fault] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)  # ranges asked, in order
    distinct: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    grants: int = 0
    throttled: int = 0
    tokens: dict[str, float] = field(default_factory=dict)
    _calls: deque[float] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.discovery = json.loads(DISCOVERY.read_text())
        self.methods = list(_methods(self.discovery.get("resources") or {}))

    # -- token endpoint -----------------------------------------------------------

    async def token(self, request: Request) -> JSONResponse:
        form = await request.form()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return _grant_error("unsupported_grant_type", "Invalid grant_type.")
        jwt = str(form.get("assertion") or "")
        parts = jwt.split(".")
        if len(parts) != 3:
            return _grant_error("invalid_request", "Invalid JWT.")
        try:
            header = json.loads(_b64(parts[0]))
            claims = json.loads(_b64(parts[1]))
            self.public_key.verify(_b64(parts[2]), f"{parts[0]}.{parts[1]}".encode(),
                                   padding.PKCS1v15(), hashes.SHA256())
        except (ValueError, InvalidSignature):
            return _grant_error("invalid_grant", "Invalid JWT Signature.")
        now = time.time()
        if header.get("alg") != "RS256":
            return _grant_error("invalid_grant", "Invalid JWT: alg must be RS256.")
        if claims.get("iss") != CLIENT_EMAIL:
            return _grant_error("invalid_grant", "Invalid JWT: unknown issuer.")
        if claims.get("aud") != f"{self.base}/token":
            return _grant_error("invalid_grant", "Invalid JWT: Token must be a short-lived "
                                "token and in a reasonable timeframe (aud).")
        if not set(str(claims.get("scope", "")).split()) & set(READ_SCOPES):
            return _grant_error("invalid_scope", "Invalid OAuth scope.")
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int) or exp - iat > 3600 \
                or iat > now + 300 or exp < now:
            return _grant_error("invalid_grant", "Invalid JWT: Token must be a short-lived "
                                "token (60 minutes) and in a reasonable timeframe.")
        token = "ya29." + secrets.token_urlsafe(24)
        self.tokens[token] = now + self.token_lifetime
        self.grants += 1
        return JSONResponse({"access_token": token, "expires_in": self.token_lifetime,
                             "token_type": "Bearer"})

    # -- the API --------------------------------------------------------------------

    def _check_spec(self, request: Request) -> str | None:
        path = request.url.path.lstrip("/")
        found = None
        for http_method, template, params in self.methods:
            if (http_method == request.method and _template(template).match(path)
                    and (found is None or len(template) > len(found[1]))):
                found = (http_method, template, params)
        if found is None:
            return f"no method {request.method} {path} in the discovery document"
        declared = {**(self.discovery.get("parameters") or {}), **found[2]}
        for name, value in request.query_params.multi_items():
            spec = declared.get(name)
            if spec is None or spec.get("location") not in (None, "query"):
                return f"query parameter {name!r} is not declared for {found[1]}"
            if "enum" in spec and value not in spec["enum"]:
                return f"{name}={value!r} is not one of {spec['enum']}"
        return None

    def _throttle(self) -> JSONResponse | None:
        with self._lock:
            now = time.monotonic()
            while self._calls and self._calls[0] <= now - self.window:
                self._calls.popleft()
            if len(self._calls) >= self.quota:
                self.throttled += 1
                return _api_error(429, "RESOURCE_EXHAUSTED",
                                  "Quota exceeded for quota metric 'Read requests' and limit "
                                  "'Read requests per minute per user'")
            self._calls.append(now)
            return None

    async def values_get(self, request: Request) -> JSONResponse:
        problem = self._check_spec(request)
        if problem:
            self.violations.append(problem)
            return _api_error(400, "INVALID_ARGUMENT", problem)
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ")
        if not auth.startswith("Bearer ") or self.tokens.get(token, 0) < time.time():
            return _api_error(401, "UNAUTHENTICATED", "Request had invalid authentication "
                              "credentials. Expected OAuth 2 access token.")
        refused = self._throttle()
        if refused:
            return refused
        if request.path_params["spreadsheet_id"] != SPREADSHEET_ID:
            return _api_error(404, "NOT_FOUND", "Requested entity was not found.")
        a1 = request.path_params["a1"]
        self.seen.append(a1)
        if a1 not in self.distinct:
            self.distinct.append(a1)
        number = self.distinct.index(a1) + 1
        for fault in self.faults:
            if fault.request == number and fault.times != 0:
                if fault.times > 0:
                    fault.times -= 1
                return _api_error(fault.status, "UNAVAILABLE", "The service is unavailable.")
        match = _A1.match(a1)
        if match is None:
            return _api_error(400, "INVALID_ARGUMENT", f"Unable to parse range: {a1}")
        if match["sheet"].strip("'") != self.sheet:
            return _api_error(400, "INVALID_ARGUMENT", f"Unable to parse range: {a1}")
        c1, c2 = _column(match["c1"]), _column(match["c2"])
        r1 = int(match["r1"] or 1)
        r2 = int(match["r2"]) if match["r2"] else len(self.rows)
        values = []
        for row in self.rows[r1 - 1 : r2]:
            cells = list(row[c1 - 1 : c2])
            while cells and cells[-1] in ("", None):
                cells.pop()
            values.append(cells)
        while values and not values[-1]:
            values.pop()
        body: dict[str, Any] = {"range": f"{match['sheet']}!{match['c1']}{r1}:{match['c2']}{r2}",
                                "majorDimension": "ROWS"}
        if values:
            body["values"] = values
        return JSONResponse(body)

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/token", self.token, methods=["POST"]),
            Route("/v4/spreadsheets/{spreadsheet_id}/values/{a1:path}", self.values_get),
        ])


def _methods(resources: dict[str, Any]) -> Any:
    for resource in resources.values():
        for method in (resource.get("methods") or {}).values():
            params = {k: v for k, v in (method.get("parameters") or {}).items()
                      if v.get("location") == "query"}
            yield method["httpMethod"], method["flatPath"], params
        yield from _methods(resource.get("resources") or {})


def _template(flat: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", flat)
    pattern = "".join("[^/]+?" if p.startswith("{") and p != "{range}" else
                      (".+" if p == "{range}" else re.escape(p)) for p in parts)
    return re.compile(f"^{pattern}$")


def _grant_error(error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=400)


def _api_error(code: int, status: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "status": status}},
                        status_code=code)

