"""A fake of the Graph API calls Lead Ads makes: read a lead, read a form, `/me`, and
the bulk read (`/{page}/leadgen_forms`, `/{form}/leads` with `limit`, `after` cursors,
`paging.next` left out on the last page, and `filtering` on `time_created`).

Auth as Meta does it: a Page token as `Authorization: Bearer` (or `access_token` in
the query); a wrong one is a 400 `OAuthException` code 190. An unknown id is a 400
code 100. Each answer carries `X-App-Usage` (`usage` percent). Faults: `fail[path]`
is a list of statuses answered, one per request, before the real answer.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
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


def _epoch(created: str) -> int:
    return int(datetime.fromisoformat(created).timestamp())


def graph_error(status: int, code: int, message: str, kind: str = "OAuthException") -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "code": code, "fbtrace_id": "AbCdEf"}}
    return JSONResponse(body, status_code=status)


@dataclass
class GraphFake:
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail: dict[str, list[int]] = field(default_factory=dict)
    usage: int = 12
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    # Bulk read: the Page's forms, and each form's leads (ids, in creation order).
    page_forms: list[str] = field(default_factory=list)
    form_leads: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.app = Starlette(routes=[
            Route("/{version}/{node}", self.node),
            Route("/{version}/{node}/{edge}", self.edge),
        ])

    def seed(self, forms: int, leads_per_form: int, start: int = 1_778_000_000) -> list[str]:
        """`forms` forms of PAGE, each with leads created a minute apart; their ids."""
        base_form = sample("leadgen_form__legal_content.CONSTRUCTED.json")
        base_lead = sample("lead__consent_and_dob.CONSTRUCTED.json")
        made: list[str] = []
        for f in range(forms):
            form_id = f"90000000000{f:02d}"
            self.add_form({**base_form, "id": form_id, "name": f"Form {f}"})
            self.page_forms.append(form_id)
            self.form_leads[form_id] = []
            for n in range(leads_per_form):
                i = f * leads_per_form + n
                lead_id = f"81000000{i:05d}"
                created = datetime.fromtimestamp(start + i * 60, UTC)
                self.add_lead({
                    **base_lead, "id": lead_id, "form_id": form_id,
                    "created_time": created.strftime("%Y-%m-%dT%H:%M:%S+0000"),
                    "field_data": [
                        {"name": "email", "values": [f"lead{i}@example.com"]},
                        {"name": "full_name", "values": [f"Lead {i}"]},
                    ],
                })
                self.form_leads[form_id].append(lead_id)
                made.append(lead_id)
        return made

    def _auth(self, request: Request) -> JSONResponse | None:
        query = dict(request.query_params)
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else query.get(
            "access_token", "")
        if token != TOKEN:
            return graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token")
        if request.path_params["version"] != VERSION:
            return graph_error(400, 2635, "unexpected version", "GraphMethodException")
        return None

    async def edge(self, request: Request) -> JSONResponse:
        node, edge = request.path_params["node"], request.path_params["edge"]
        query = dict(request.query_params)
        self.requests.append((request.url.path, query))
        refused = self._auth(request)
        if refused:
            return refused
        pending = self.fail.get(f"{node}/{edge}")
        if pending:
            status = pending.pop(0)
            return graph_error(status, 2, "injected fault", "FacebookApiException")
        if edge == "leadgen_forms" and node == PAGE["id"]:
            items = [{"id": f} for f in self.page_forms]
        elif edge == "leads" and node in self.form_leads:
            items = [self.objects[i] for i in self.form_leads[node]]
            if "filtering" in query:
                (rule,) = json.loads(query["filtering"])
                assert rule["field"] == "time_created" and rule["operator"] == "GREATER_THAN"
                items = [x for x in items if _epoch(x["created_time"]) > int(rule["value"])]
            wanted = set(query.get("fields", "id").split(","))
            items = [{k: v for k, v in x.items() if k in wanted or k == "id"} for x in items]
        else:
            return graph_error(400, 100, f"Unsupported get request: {node}/{edge}",
                               "GraphMethodException")
        limit = int(query.get("limit", 25))
        offset = int(base64.b64decode(query["after"])) if query.get("after") else 0
        page = items[offset: offset + limit]
        paging: dict[str, Any] = {"cursors": {
            "before": base64.b64encode(str(offset).encode()).decode(),
            "after": base64.b64encode(str(offset + len(page)).encode()).decode()}}
        if offset + limit < len(items):
            paging["next"] = f"https://graph.facebook.com{request.url.path}?after=" + paging[
                "cursors"]["after"]
        return JSONResponse({"data": page, "paging": paging})

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
