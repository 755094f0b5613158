"""A fake of the Graph API calls Lead Ads makes: read a lead, read a form, `/me`.

Auth as Meta does it: a Page token as `Authorization: Bearer` (or `access_token` in
the query); a wrong one is a 400 `OAuthException` code 190. An unknown id is a 400
code 100. Each answer carries `X-App-Usage` (`usage` percent). Faults: `fail[path]`
is a list of statuses answered, one per request, before the real answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TOKEN = "EAAG-fake-page-token"
VERSION = "v24.0"
PAGE = {"id": "104233165087761", "name": "Cellar & Co"}
SAMPLES = Path(__file__).resolve().parents[2] / "src/guestlist/connectors/facebook_lead_ads/samples"


def sample(name: str) -> dict[str, Any]:
    raw = json.loads((SAMPLES / name).read_text())
    return {k: v for k, v in raw.items() if not k.startswith("_")}


def graph_error(status: int, code: int, message: str, kind: str = "OAuthException") -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "code": code, "fbtrace_id": "AbCdEf"}}
    return JSONResponse(body, status_code=status)


@dataclass
class GraphFake:
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail: dict[str, list[int]] = field(default_factory=dict)
    usage: int = 12
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.app = Starlette(routes=[Route("/{version}/{node}", self.node)])

    def add_lead(self, lead: dict[str, Any]) -> None:
        self.objects[str(lead["id"])] = lead

    def add_form(self, form: dict[str, Any]) -> None:
        self.objects[str(form["id"])] = form

    async def node(self, request: Request) -> JSONResponse:
        version, node = request.path_params["version"], request.path_params["node"]
        query = dict(request.query_params)
        self.requests.append((request.url.path, query))
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else query.get(
            "access_token", "")
        if token != TOKEN:
            return graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token")
        if version != VERSION:
            return graph_error(400, 2635, f"unexpected version {version}", "GraphMethodException")
        pending = self.fail.get(node)
        if pending:
            status = pending.pop(0)
            return graph_error(status, 2 if status >= 500 else 100, "injected fault",
                               "FacebookApiException")
        found = PAGE if node == "me" else self.objects.get(node)
        if found is None:
            return graph_error(
                400, 100,
                f"Unsupported get request. Object with ID '{node}' does not exist",
                "GraphMethodException",
            )
        wanted = query.get("fields")
        body = dict(found)
        if wanted:
            names = set(wanted.split(","))
            body = {k: v for k, v in found.items() if k in names or k == "id"}
        usage = json.dumps({"call_count": self.usage, "total_time": 1, "total_cputime": 1})
        return JSONResponse(body, headers={"X-App-Usage": usage})
