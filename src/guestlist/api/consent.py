"""Consent over HTTP: inbound keywords, double opt-in, one-click unsubscribe.

- `POST /api/consent/inbound-sms` (admin key): apply an inbound SMS/WhatsApp message
  (SMS-2 … SMS-7) and get the outcome and the TwiML to answer it with. The Twilio
  webhook itself, with its signature check, belongs to the Twilio connector.
- `POST /api/consent/double-opt-in` (admin key): a `pending` email record and the
  confirmation URL to mail (C-8).
- `GET /api/profiles/{id}/list-unsubscribe` (read key): the RFC 8058 headers (E-2).
- `GET /api/profiles/{id}/consent` (read key): the current consent, whether the person
  opted out of sale and sharing, and when each consent may be asked for again;
  `GET /api/profiles/{id}/consent/may-ask` answers that for one purpose (P-5).
- `GET|POST /c/{token}`, `GET|POST /u/{token}`: the pages behind the links, for the
  person, without login. A GET only shows a button; only a POST acts. A confirmation
  POST sent with `Sec-GPC: 1` also opts the address out of sale and sharing (P-5).

Keys: the two POSTs under `/api/consent` take an admin key, not a write key. Write keys
ship inside websites and apps: with one, anyone could read a confirmation URL straight
from the response and confirm any address, or send START/STOP for any number.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Engine

from guestlist.api.deps import AdminKey, ConnectionDep, EngineDep, ReadKey
from guestlist.consent.ask import AskDecision, ask_decision
from guestlist.consent.double_opt_in import (
    CONFIRM_PREFIX,
    confirm,
    read_confirmation,
    start_double_opt_in,
)
from guestlist.consent.gpc import form_statement, header_signal, record_signal
from guestlist.consent.inbound import apply_inbound_text
from guestlist.consent.ledger import CHANNELS, PURPOSES, ConsentError, current_consent
from guestlist.consent.links import LINKS_SECRET, AddressError, LinkRefused, links_key
from guestlist.consent.optout import existing_secret
from guestlist.consent.pages import PAGE_HEADERS, render
from guestlist.consent.tokens import LIST_UNSUBSCRIBE_POST
from guestlist.consent.unsubscribe import (
    UNSUBSCRIBE_PREFIX,
    list_unsubscribe,
    read_unsubscribe,
    unsubscribe,
)
from guestlist.guard import load_facts, sale_sharing_opted_out
from guestlist.settings import get_settings
from guestlist.store.engine import read_connection
from guestlist.store.types import utcnow

router = APIRouter(tags=["consent"])

_ONE_CLICK_FIELD, _ONE_CLICK_VALUE = LIST_UNSUBSCRIBE_POST.split("=")


def _bad(status: int, field: str, message: str) -> HTTPException:
    return HTTPException(status, {"field": field, "message": message})


# --- inbound keywords -----------------------------------------------------------------


class InboundTextIn(BaseModel):
    """An inbound message as the provider reported it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    channel: Literal["sms", "whatsapp"]
    sender: str = Field(alias="from", min_length=1, max_length=64, description="E.164")
    body: str = Field(default="", max_length=4096)
    message_id: str = Field(min_length=1, max_length=255, description="e.g. Twilio MessageSid")
    received_at: AwareDatetime | None = Field(
        default=None, description="When the provider received it; default: now"
    )
    opt_out_type: str | None = Field(
        default=None, max_length=20, description="Twilio's OptOutType, when Twilio acted"
    )


@router.post("/api/consent/inbound-sms", summary="Apply an inbound SMS/WhatsApp keyword")
def inbound_sms(engine: EngineDep, key: AdminKey, payload: InboundTextIn) -> dict[str, Any]:
    settings = get_settings()
    try:
        with engine.begin() as conn:
            outcome = apply_inbound_text(
                conn,
                channel=payload.channel,
                from_number=payload.sender,
                body=payload.body,
                message_id=payload.message_id,
                received_at=payload.received_at or utcnow(),
                opt_out_type=payload.opt_out_type,
                shop=settings.shop_name,
                region=settings.default_phone_region,
                recorded_by=f"key:{key.key_id}",
            )
    except ConsentError as exc:
        raise _bad(400, exc.field, exc.message) from None
    return outcome.as_dict()


# --- double opt-in --------------------------------------------------------------------


class DoubleOptInIn(BaseModel):
    """Start double opt-in for one address: the profile, its address, or both."""

    model_config = ConfigDict(extra="forbid")

    profile_id: int | None = None
    email: str | None = Field(default=None, max_length=320)
    text: str = Field(min_length=1, max_length=10_000, description="The exact wording shown")
    url: str | None = Field(default=None, max_length=2000, description="The signup page")
    ip: str | None = Field(default=None, max_length=64, description="The signup's IP")
    user_agent: str | None = Field(default=None, max_length=2000)
    purpose: str = "marketing"
    legal_basis: str | None = Field(default=None, max_length=40)

    @model_validator(mode="after")
    def _names_someone(self) -> DoubleOptInIn:
        if self.profile_id is None and not self.email:
            raise ValueError("name the profile_id or the email")
        return self


@router.post(
    "/api/consent/double-opt-in",
    status_code=201,
    summary="Record pending email consent and get the confirmation URL to send",
)
def start_confirmation(
    engine: EngineDep, key: AdminKey, payload: DoubleOptInIn, response: Response
) -> dict[str, Any]:
    try:
        with engine.begin() as conn:
            started = start_double_opt_in(
                conn,
                profile_id=payload.profile_id,
                email=payload.email,
                text=payload.text,
                url=payload.url,
                ip=payload.ip,
                user_agent=payload.user_agent,
                purpose=payload.purpose,
                legal_basis=payload.legal_basis,
                recorded_by=f"key:{key.key_id}",
                public_url=get_settings().public_url,
            )
    except AddressError as exc:
        raise _bad(exc.status, exc.field, exc.message) from None
    except ConsentError as exc:
        raise _bad(400, exc.field, exc.message) from None
    if started.status != "pending":
        response.status_code = 200  # already granted: nothing recorded, nothing to send
    return started.as_dict()


# --- one-click unsubscribe headers ------------------------------------------------------


def _links_key(engine: Engine) -> bytes:
    """The link-signing key, read without the write lock when it exists (the usual case)."""
    with read_connection(engine) as conn:
        found = existing_secret(conn, LINKS_SECRET)
    if found is not None:
        return found
    with engine.begin() as conn:
        return links_key(conn)


@router.get(
    "/api/profiles/{profile_id}/list-unsubscribe",
    summary="RFC 8058 List-Unsubscribe headers for a profile's address",
)
def list_unsubscribe_headers(
    engine: EngineDep,
    _key: ReadKey,
    profile_id: int,
    channel: str = "email",
    email: str | None = None,
) -> dict[str, str]:
    public_url = get_settings().public_url
    if not public_url.lower().startswith("https://"):
        raise HTTPException(
            500, "GUESTLIST_PUBLIC_URL must be an https URL: RFC 8058 one-click needs one"
        )
    links = _links_key(engine)
    try:
        with read_connection(engine) as conn:
            return list_unsubscribe(
                conn, profile_id, public_url=public_url, channel=channel, email=email, links=links
            )
    except ConsentError as exc:
        raise _bad(400, exc.field, exc.message) from None
    except AddressError as exc:
        raise _bad(exc.status, exc.field, exc.message) from None


# --- current consent, and when to ask again (P-5) -------------------------------------


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _ask(decision: AskDecision) -> dict[str, Any]:
    return {
        "purpose": decision.purpose,
        "channel": decision.channel,
        "may_ask": decision.may_ask,
        "last_opt_out": _iso(decision.last_opt_out),
        "may_ask_after": _iso(decision.may_ask_after),
    }


def _live_or_redirect(conn: ConnectionDep, request: Request, profile_id: int) -> int | Response:
    facts = load_facts(conn, [profile_id])[profile_id]
    if not facts.exists:
        raise _bad(404, "profile_id", "no such profile")
    if facts.merged_into is not None:
        # The person lives on in the survivor; old ids keep working.
        path = request.url.path.replace(f"/{profile_id}/", f"/{facts.merged_into}/", 1)
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(path + query, 308)
    return profile_id


@router.get(
    "/api/profiles/{profile_id}/consent",
    summary="A profile's consent: current state, sale/sharing opt-out, when to ask again",
)
def profile_consent(
    conn: ConnectionDep, _key: ReadKey, request: Request, profile_id: int
) -> Any:
    live = _live_or_redirect(conn, request, profile_id)
    if isinstance(live, Response):
        return live
    now = utcnow()
    facts = load_facts(conn, [live])[live]
    asked: dict[tuple[str, str | None], AskDecision] = {}

    def ask(purpose: str, channel: str | None) -> AskDecision:
        scope = (purpose, None if purpose == "sale_sharing" else channel)
        if scope not in asked:
            asked[scope] = ask_decision(conn, live, purpose, now, scope[1])
        return asked[scope]

    consent = [
        {
            "channel": s.channel,
            "purpose": s.purpose,
            "identifier": s.identifier,
            "status": s.status,
            "kind": s.kind,
            "event_time": _iso(s.event_time),
            "expires_at": _iso(s.expires_at),
            "record_id": s.record_id,
            "may_ask_after": _iso(
                ask(s.purpose, s.channel if s.channel in CHANNELS else None).may_ask_after
            ),
        }
        for s in current_consent(conn, live, now=now)
    ]
    sharing = ask("sale_sharing", None)
    return {
        "profile_id": live,
        "consent": consent,
        "sale_sharing": {
            "opted_out": sale_sharing_opted_out(facts, now),
            "may_ask": sharing.may_ask,
            "last_opt_out": _iso(sharing.last_opt_out),
            "may_ask_after": _iso(sharing.may_ask_after),
        },
    }


@router.get(
    "/api/profiles/{profile_id}/consent/may-ask",
    summary="May a consent prompt for this purpose be shown to the profile now?",
)
def profile_may_ask(
    conn: ConnectionDep,
    _key: ReadKey,
    request: Request,
    profile_id: int,
    purpose: Annotated[str, Query(description=", ".join(PURPOSES))] = "sale_sharing",
    channel: Annotated[
        str | None, Query(description="Scope a marketing prompt to one channel")
    ] = None,
) -> Any:
    if purpose not in PURPOSES:
        raise _bad(400, "purpose", f"one of {', '.join(PURPOSES)}")
    if channel is not None and channel not in CHANNELS:
        raise _bad(400, "channel", f"one of {', '.join(CHANNELS)}")
    live = _live_or_redirect(conn, request, profile_id)
    if isinstance(live, Response):
        return live
    return {"profile_id": live, **_ask(ask_decision(conn, live, purpose, utcnow(), channel))}


# --- the pages behind the links -------------------------------------------------------


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _page(
    request: Request, status: int, template: str, data: dict[str, Any], **context: Any
) -> Response:
    if _wants_json(request):
        return JSONResponse(data, status_code=status, headers=PAGE_HEADERS)
    html = render(template, shop=get_settings().shop_name, **context)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def _refused(request: Request, exc: LinkRefused) -> Response:
    titles = {
        "invalid": "This link is not valid",
        "expired": "This link has expired",
        "unknown": "This link is not valid",
        "gone": "This link is no longer valid",
    }
    data = {
        "success": False,
        "error": {"code": f"{exc.reason}_link", "message": exc.message, "field": "token"},
    }
    return _page(
        request, exc.status, "message.html", data, title=titles[exc.reason], message=exc.message
    )


def _client(request: Request) -> tuple[str | None, str | None]:
    ip = request.client.host if request.client else None
    return ip, request.headers.get("user-agent")


@router.get("/c/{token}", response_class=HTMLResponse, summary="Double opt-in: the page")
def confirmation_page(conn: ConnectionDep, request: Request, token: str) -> Response:
    try:
        found = read_confirmation(conn, token)
    except LinkRefused as exc:
        return _refused(request, exc)
    data = {"status": "granted" if found.confirmed else "pending", "email": found.token.identifier}
    if found.confirmed:
        return _page(
            request,
            200,
            "message.html",
            data,
            title="Already confirmed",
            message="Your subscription is confirmed. Thank you!",
        )
    return _page(
        request,
        200,
        "confirm.html",
        data,
        title="Confirm your subscription",
        address=found.token.identifier,
        wording=found.text,
        action=f"/{CONFIRM_PREFIX}/{token}",
    )


@router.post("/c/{token}", response_class=HTMLResponse, summary="Double opt-in: confirm")
def confirmation_click(engine: EngineDep, request: Request, token: str) -> Response:
    ip, user_agent = _client(request)
    try:
        with engine.begin() as conn:
            found = confirm(conn, token, ip=ip, user_agent=user_agent)
            if header_signal(request.headers):  # P-5: GPC on a form submission
                record_signal(
                    conn,
                    found.profile_id,
                    form_statement(
                        channel=found.token.channel,
                        identifier=found.token.identifier,
                        at=utcnow(),
                        form="double-opt-in confirmation",
                        message_id=found.token.nonce,
                        ip=ip,
                        user_agent=user_agent,
                    ),
                )
    except LinkRefused as exc:
        return _refused(request, exc)
    data = {
        "status": "granted",
        "email": found.token.identifier,
        "record_id": found.confirmed_record_id,
    }
    return _page(
        request,
        200,
        "message.html",
        data,
        title="Subscription confirmed",
        message="Thank you: your subscription is confirmed.",
    )


@router.get("/u/{token}", response_class=HTMLResponse, summary="Unsubscribe: the page")
def unsubscribe_page(conn: ConnectionDep, request: Request, token: str) -> Response:
    try:
        found = read_unsubscribe(conn, token)
    except LinkRefused as exc:
        return _refused(request, exc)
    return _page(
        request,
        200,
        "unsubscribe.html",
        {"email": found.identifier},
        title="Unsubscribe",
        address=found.identifier,
        action=f"/{UNSUBSCRIBE_PREFIX}/{token}",
    )


@router.post(
    "/u/{token}",
    response_class=HTMLResponse,
    summary="Unsubscribe (RFC 8058 one-click: body List-Unsubscribe=One-Click)",
)
def unsubscribe_click(
    engine: EngineDep,
    request: Request,
    token: str,
    one_click: Annotated[str | None, Form(alias=_ONE_CLICK_FIELD)] = None,
) -> Response:
    ip, user_agent = _client(request)
    try:
        with engine.begin() as conn:
            done = unsubscribe(
                conn,
                token,
                ip=ip,
                user_agent=user_agent,
                one_click=(one_click or "").strip().lower() == _ONE_CLICK_VALUE.lower(),
            )
    except LinkRefused as exc:
        return _refused(request, exc)
    data = {
        "status": "withdrawn",
        "email": done.token.identifier,
        "already": done.already,
        "record_ids": list(done.record_ids),
    }
    return _page(
        request,
        200,
        "message.html",
        data,
        title="You are unsubscribed",
        message=f"{done.token.identifier} will get no more marketing email from us.",
    )
