"""Dependencies shared by the `/api` routers: the database and API-key scopes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection, Engine

from guestlist.keys import KeyInfo, authenticate
from guestlist.store.engine import read_connection

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer KEY`")

# Which key kinds may use an endpoint of each scope. Write keys belong to a source and
# ship inside websites and apps: they send events (/v1), never read people back.
SCOPES = {"read": {"read", "admin"}, "admin": {"admin"}}


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(get_engine)]


def get_connection(engine: EngineDep) -> Iterator[Connection]:
    with read_connection(engine) as conn:
        yield conn


ConnectionDep = Annotated[Connection, Depends(get_connection)]


def require(scope: str) -> Callable[..., KeyInfo]:
    def check(
        engine: EngineDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> KeyInfo:
        if credentials is None:
            raise HTTPException(401, "missing API key: send `Authorization: Bearer KEY`")
        key = authenticate(engine, credentials.credentials, {"read", "write", "admin"})
        if key is None:
            raise HTTPException(401, "unknown or revoked API key")
        if key.kind == "write":
            raise HTTPException(403, "a write key only sends events to /v1")
        if key.kind not in SCOPES[scope]:
            raise HTTPException(403, f"a {key.kind} key cannot use this endpoint ({scope} needed)")
        return key

    return check


ReadKey = Annotated[KeyInfo, Depends(require("read"))]
AdminKey = Annotated[KeyInfo, Depends(require("admin"))]
