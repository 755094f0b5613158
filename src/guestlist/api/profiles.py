"""`/api/profiles`: search, one profile with traits, identifiers and merges, its events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import RedirectResponse

from guestlist.api.deps import ConnectionDep, ReadKey
from guestlist.api.pagination import decode_cursor, encode_cursor
from guestlist.profiles.queries import BadQuery, get_profile, profile_events, search_profiles
from guestlist.settings import get_settings

router = APIRouter(prefix="/api/profiles", tags=["profiles"])

Limit = Annotated[int, Query(ge=1, le=500, description="Page size")]


@router.get("", summary="Search profiles")
def list_profiles(
    conn: ConnectionDep,
    _key: ReadKey,
    email: Annotated[str | None, Query(description="Matched like an identifier")] = None,
    phone: Annotated[str | None, Query(description="Any format; E.164 after parsing")] = None,
    external_id: Annotated[str | None, Query(description="e.g. shopify:customer:123")] = None,
    user_id: str | None = None,
    q: Annotated[str | None, Query(description="Free text over names, emails, phones")] = None,
    region: Annotated[str | None, Query(description="Region for phones without +")] = None,
    cursor: str | None = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    try:
        data = search_profiles(
            conn,
            email=email,
            phone=phone,
            external_id=external_id,
            user_id=user_id,
            q=q,
            region=region or get_settings().default_phone_region,
            after_id=decode_cursor(cursor),
            limit=limit,
        )
    except BadQuery as exc:
        raise HTTPException(400, {"field": exc.field, "message": str(exc)}) from None
    next_cursor = encode_cursor(data[-1]["id"]) if len(data) == limit else None
    return {"data": data, "next_cursor": next_cursor}


@router.get("/{profile_id}", summary="One profile: traits, identifiers, merges, recent events")
def read_profile(conn: ConnectionDep, _key: ReadKey, profile_id: int) -> Any:
    profile = get_profile(conn, profile_id)
    if profile is None:
        raise HTTPException(404, {"field": "profile_id", "message": "no such profile"})
    if profile["merged_into"] is not None:
        # The person lives on in the survivor; old ids keep working.
        return RedirectResponse(f"/api/profiles/{profile['merged_into']}", status_code=308)
    return profile


@router.get("/{profile_id}/events", summary="A profile's events, newest first")
def read_profile_events(
    conn: ConnectionDep,
    _key: ReadKey,
    profile_id: int,
    type: str | None = None,
    name: str | None = None,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Any:
    profile = get_profile(conn, profile_id, recent=0)
    if profile is None:
        raise HTTPException(404, {"field": "profile_id", "message": "no such profile"})
    if profile["merged_into"] is not None:
        return RedirectResponse(f"/api/profiles/{profile['merged_into']}/events", status_code=308)
    data = profile_events(
        conn, profile_id, before_id=decode_cursor(cursor), limit=limit, type_=type, name=name
    )
    next_cursor = encode_cursor(data[-1]["id"]) if len(data) == limit else None
    return {"data": data, "next_cursor": next_cursor}
