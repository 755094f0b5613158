"""Segments over HTTP: create, update, list, delete, preview, members (JSON pages and
CSV), size over time, the change log sync reads, and explain. See docs/segments.md.

Reading needs a read key; defining segments an admin key (a rule decides who gets
marketed to, so changing one is audited like other admin actions).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from guestlist.api.deps import AdminKey, ConnectionDep, EngineDep, ReadKey
from guestlist.api.pagination import decode_cursor, encode_cursor
from guestlist.keys import KeyInfo
from guestlist.segments.catalog import (
    Segment,
    SegmentError,
    SegmentInput,
    checked_definition,
    create_segment,
    define_computed,
    delete_computed,
    delete_segment,
    get_segment,
    list_computed,
    list_segments,
    update_segment,
)
from guestlist.segments.membership import member_count, size_history
from guestlist.segments.rules import RuleError, rule_to_json
from guestlist.segments.service import (
    change_page,
    explain_profile,
    explain_sql,
    member_page,
    members_csv,
    preview,
    schedule_computation,
    schedule_evaluation,
)
from guestlist.segments.text import parse_text
from guestlist.store.types import utcnow

router = APIRouter(tags=["segments"])

Limit = Annotated[int, Query(ge=1, le=1000)]


class SegmentBody(BaseModel):
    name: str = Field(max_length=200, examples=["Bourbon lovers who text"])
    slug: str = Field(max_length=100, examples=["bourbon-sms"])
    rule: dict[str, Any] | str = Field(
        description="The rule as JSON (the contract) or in the text form, e.g. "
        '`of_age_for("alcohol") and count("Order Completed" within 90d) >= 2`',
        examples=[{"trait": "favourite_category", "op": "in", "value": ["bourbon", "tequila"]}],
    )
    category: str | None = Field(
        default=None, description="Restricted category (e.g. alcohol): the guard applies"
    )
    channel: str | None = Field(default=None, description="Channel the guard checks consent on")
    purpose: str | None = Field(default=None, description="Consent purpose (default marketing)")
    required_level: str | None = Field(default=None, description="Minimum verification level")
    description: str | None = Field(default=None, max_length=2000)


class PreviewBody(BaseModel):
    rule: dict[str, Any] | str
    category: str | None = None
    channel: str | None = None
    purpose: str | None = None
    required_level: str | None = None


def _actor(key: KeyInfo) -> str:
    return f"key:{key.key_id}"


def _rule_json(rule: dict[str, Any] | str) -> dict[str, Any]:
    if isinstance(rule, dict):
        return rule
    try:
        return rule_to_json(parse_text(rule))
    except RuleError as exc:
        raise SegmentError("rule", exc.message) from exc


def _error(exc: SegmentError) -> HTTPException:
    return HTTPException(exc.status, {"field": exc.field, "message": exc.message})


def _input(body: SegmentBody | PreviewBody, *, slug: str, name: str) -> SegmentInput:
    return SegmentInput(
        name=name,
        slug=slug,
        rule=_rule_json(body.rule),
        category=body.category,
        channel=body.channel,
        purpose=body.purpose,
        required_level=body.required_level,
        description=getattr(body, "description", None),
    )


def _found(conn: Any, slug: str) -> Segment:
    segment = get_segment(conn, slug)
    if segment is None:
        raise HTTPException(404, {"field": "slug", "message": f"no segment {slug!r}"})
    return segment


def _with_size(conn: Any, segment: Segment) -> dict[str, Any]:
    return {**segment.as_json(), "members": member_count(conn, segment.id)}


@router.post("/api/segments", status_code=201, summary="Create a segment")
def create(engine: EngineDep, key: AdminKey, body: SegmentBody) -> dict[str, Any]:
    """Stores the segment and queues its first evaluation (`evaluated_at` is set once
    it ran; real-time updates start at once)."""
    try:
        with engine.begin() as conn:
            segment = create_segment(
                conn, _input(body, slug=body.slug, name=body.name), actor=_actor(key)
            )
            schedule_evaluation(conn, segment)
            return _with_size(conn, segment)
    except SegmentError as exc:
        raise _error(exc) from None


@router.get("/api/segments", summary="List segments with their current sizes")
def index(conn: ConnectionDep, _key: ReadKey) -> dict[str, Any]:
    return {"data": [_with_size(conn, s) for s in list_segments(conn)]}


@router.get("/api/segments/{slug}", summary="One segment")
def show(conn: ConnectionDep, _key: ReadKey, slug: str) -> dict[str, Any]:
    return _with_size(conn, _found(conn, slug))


@router.put("/api/segments/{slug}", summary="Replace a segment's definition")
def replace(engine: EngineDep, key: AdminKey, slug: str, body: SegmentBody) -> dict[str, Any]:
    try:
        with engine.begin() as conn:
            before = _found(conn, slug)
            segment = update_segment(
                conn, slug, _input(body, slug=body.slug, name=body.name), actor=_actor(key)
            )
            if segment.version != before.version:
                schedule_evaluation(conn, segment)
            return _with_size(conn, segment)
    except SegmentError as exc:
        raise _error(exc) from None


@router.delete("/api/segments/{slug}", status_code=204, summary="Delete a segment")
def remove(engine: EngineDep, key: AdminKey, slug: str) -> None:
    """Refused (409) while another segment uses it."""
    try:
        with engine.begin() as conn:
            delete_segment(conn, slug, actor=_actor(key))
    except SegmentError as exc:
        raise _error(exc) from None


@router.post("/api/segments/preview", summary="Count and sample an unsaved rule")
def preview_rule(conn: ConnectionDep, _key: ReadKey, body: PreviewBody) -> dict[str, Any]:
    try:
        given = _input(body, slug="preview", name="preview")
        segment = _unsaved(conn, given)
        return preview(conn, segment).as_json()
    except SegmentError as exc:
        raise _error(exc) from None


def _unsaved(conn: Any, given: SegmentInput) -> Segment:
    return checked_definition(conn, given)


@router.get("/api/segments/{slug}/members", summary="Current members, a page at a time")
def members(
    conn: ConnectionDep, _key: ReadKey, slug: str, cursor: str | None = None, limit: Limit = 100
) -> dict[str, Any]:
    segment = _found(conn, slug)
    data = member_page(conn, segment, after=decode_cursor(cursor), limit=limit)
    next_cursor = encode_cursor(data[-1]["id"]) if len(data) == limit else None
    return {"data": data, "next_cursor": next_cursor}


@router.get(
    "/api/segments/{slug}/members.csv",
    summary="Current members as CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
def members_as_csv(engine: EngineDep, _key: ReadKey, slug: str) -> StreamingResponse:
    with engine.connect() as conn:
        segment = _found(conn, slug)

    def rows() -> Any:
        with engine.connect() as conn:
            yield from members_csv(conn, segment)

    return StreamingResponse(
        rows(),
        media_type="text/csv",
        headers={"content-disposition": f'attachment; filename="{slug}-members.csv"'},
    )


@router.get("/api/segments/{slug}/size", summary="Size over time (end of each day it changed)")
def size(conn: ConnectionDep, _key: ReadKey, slug: str) -> dict[str, Any]:
    segment = _found(conn, slug)
    return {
        "slug": slug,
        "members": member_count(conn, segment.id),
        "history": [
            {"date": d.isoformat(), "members": n} for d, n in size_history(conn, segment.id)
        ],
    }


@router.get("/api/segments/{slug}/changes", summary="Entries and exits, oldest first")
def changes(
    conn: ConnectionDep, _key: ReadKey, slug: str, cursor: str | None = None, limit: Limit = 100
) -> dict[str, Any]:
    """The log a destination sync reads: resume from `next_cursor`."""
    segment = _found(conn, slug)
    data = change_page(conn, segment, after=decode_cursor(cursor), limit=limit)
    next_cursor = encode_cursor(data[-1]["id"]) if data else cursor
    return {"data": data, "next_cursor": next_cursor}


@router.get("/api/segments/{slug}/explain", summary="The SQL, and for one profile which parts held")
def explain(
    conn: ConnectionDep, _key: ReadKey, slug: str, profile_id: int | None = None
) -> dict[str, Any]:
    segment = _found(conn, slug)
    now = utcnow()
    out: dict[str, Any] = {"slug": slug, "sql": explain_sql(conn, segment, now=now)}
    if profile_id is not None:
        try:
            out["profile"] = explain_profile(conn, segment, profile_id, now=now)
        except SegmentError as exc:
            raise _error(exc) from None
    return out


class ComputedBody(BaseModel):
    name: str = Field(max_length=200, examples=["lifetime_spend"])
    definition: dict[str, Any] | str = Field(
        description='JSON, or the text form, e.g. `sum("Order Completed".total)`',
        examples=['most_frequent("Order Completed".products[].category)'],
    )


@router.get("/api/computed-traits", summary="Computed traits")
def computed_index(conn: ConnectionDep, _key: ReadKey) -> dict[str, Any]:
    return {
        "data": [
            {"name": t.name, "definition": t.to_json(), "text": t.to_text()}
            for t in list_computed(conn)
        ]
    }


@router.put(
    "/api/computed-traits/{name}",
    summary="Create or replace a computed trait (recomputed for everyone by a job)",
)
def computed_define(
    engine: EngineDep, key: AdminKey, name: str, body: ComputedBody
) -> dict[str, Any]:
    if body.name != name:
        raise HTTPException(422, {"field": "name", "message": "the body's name must match the URL"})
    try:
        with engine.begin() as conn:
            trait, changed = define_computed(conn, name, body.definition, actor=_actor(key))
            if changed:
                schedule_computation(conn)
    except SegmentError as exc:
        raise _error(exc) from None
    return {"name": trait.name, "definition": trait.to_json(), "text": trait.to_text()}


@router.delete("/api/computed-traits/{name}", status_code=204, summary="Delete a computed trait")
def computed_delete(engine: EngineDep, key: AdminKey, name: str) -> None:
    """Refused (409) while a segment's rule uses the trait."""
    try:
        with engine.begin() as conn:
            delete_computed(conn, name, actor=_actor(key))
    except SegmentError as exc:
        raise _error(exc) from None
