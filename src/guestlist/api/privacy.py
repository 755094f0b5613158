"""Privacy and compliance endpoints: erasure, export, the audit log, the compliance report,
the profiles flagged for review (P-4).

Erasure and export are admin-only and audited with the key that asked (`key:<id>`);
the review list is admin-only; the compliance report needs a read key. See
docs/privacy.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from guestlist.api.deps import AdminKey, ConnectionDep, EngineDep, ReadKey
from guestlist.api.pagination import decode_cursor, encode_cursor
from guestlist.audit import audit_entries
from guestlist.keys import KeyInfo
from guestlist.privacy.erase import ProfileAlreadyErased, ProfileNotFound, erase_profile
from guestlist.privacy.export import export_profile, jsonable
from guestlist.privacy.report import compliance_report
from guestlist.privacy.retention import review_queue
from guestlist.settings import get_settings

router = APIRouter(tags=["privacy"])


class ErasureRequest(BaseModel):
    reason: str | None = Field(
        default=None, max_length=2000, description="Why (kept in the audit log)"
    )


def actor(key: KeyInfo) -> str:
    return f"key:{key.key_id}"


def _not_found(profile_id: int) -> HTTPException:
    return HTTPException(404, {"field": "profile_id", "message": f"no profile {profile_id}"})


@router.delete(
    "/api/profiles/{profile_id}",
    summary="Erase a person (GDPR Art. 17, CCPA deletion)",
    description="Removes the person's data from every table, suppresses their email "
    "addresses and phone numbers, queues an erasure job for every destination holding "
    "them, and keeps consent evidence reduced to hashes (P-3a). A merged-away id erases "
    "the profile it was merged into. 404 for an unknown id, 409 when already erased.",
)
def delete_profile(
    engine: EngineDep,
    key: AdminKey,
    profile_id: int,
    body: Annotated[ErasureRequest | None, Body()] = None,
) -> dict[str, Any]:
    try:
        with engine.begin() as conn:
            report = erase_profile(
                conn, profile_id, actor=actor(key), reason=body.reason if body else None
            )
    except ProfileNotFound:
        raise _not_found(profile_id) from None
    except ProfileAlreadyErased as exc:
        raise HTTPException(409, {"field": "profile_id", "message": str(exc)}) from None
    return report.as_dict()


@router.get(
    "/api/profiles/{profile_id}/export",
    summary="Everything held about a person, as JSON (GDPR Art. 15/20, CCPA right to know)",
)
def export(engine: EngineDep, key: AdminKey, profile_id: int) -> dict[str, Any]:
    try:
        with engine.begin() as conn:
            return export_profile(conn, profile_id, actor=actor(key))
    except ProfileNotFound:
        raise _not_found(profile_id) from None


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@router.get("/api/audit", summary="The audit log, oldest first, filtered")
def read_audit(
    conn: ConnectionDep,
    _key: AdminKey,
    profile_id: int | None = None,
    since: Annotated[
        datetime | None, Query(description="ISO 8601; entries at or after (UTC if no zone)")
    ] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601; entries before")] = None,
    action: Annotated[str | None, Query(description="e.g. profile.erased")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    rows = audit_entries(
        conn,
        profile_id=profile_id,
        since=_utc(since),
        until=_utc(until),
        action=action,
        after_id=decode_cursor(cursor),
        limit=limit,
    )
    data = [
        jsonable(
            {
                "id": int(r.id),
                "at": r.at,
                "actor": r.actor,
                "action": r.action,
                "profile_id": r.profile_id,
                "detail": r.detail,
                "reason": r.reason,
            }
        )
        for r in rows
    ]
    next_cursor = encode_cursor(data[-1]["id"]) if len(data) == limit else None
    return {"data": data, "next_cursor": next_cursor}


@router.get(
    "/api/privacy/review",
    summary="Profiles flagged for review: no activity and no granted consent (P-4)",
    description="Profiles with no event, trait change or consent record and no consent "
    "granted for `inactive_profile_review_days` (default 1095), by id. Flags are refreshed "
    "by the daily `privacy.retention` job; a profile active again since is left out. "
    "Deciding what to do with each (erase it, or keep it) is the shop's.",
)
def review(
    conn: ConnectionDep,
    _key: AdminKey,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    items = review_queue(
        conn,
        review_days=get_settings().inactive_profile_review_days,
        after_id=decode_cursor(cursor),
        limit=limit,
    )
    data = [item.as_dict() for item in items]
    next_cursor = encode_cursor(items[-1].profile_id) if len(items) == limit else None
    return {"data": data, "next_cursor": next_cursor}


Days = Annotated[int, Query(ge=1, le=366, description="Days of opt-outs, up to today (UTC)")]
Verify = Annotated[bool, Query(description="Check the consent ledger's hash chains")]


@router.get("/api/reports/compliance", summary="Compliance report (JSON)")
def compliance(
    conn: ConnectionDep, _key: ReadKey, days: Days = 30, verify_ledger: Verify = True
) -> dict[str, Any]:
    return compliance_report(conn, days=days, verify=verify_ledger).as_dict()


@router.get(
    "/api/reports/compliance.csv",
    summary="Compliance report (CSV, one section per table)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
def compliance_csv(
    conn: ConnectionDep, _key: ReadKey, days: Days = 30, verify_ledger: Verify = True
) -> Response:
    report = compliance_report(conn, days=days, verify=verify_ledger)
    name = f"compliance-{report.generated_at.date().isoformat()}.csv"
    return Response(
        report.to_csv(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
