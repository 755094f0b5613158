"""The Twilio connector: inbound SMS/WhatsApp messages, keywords answered in TwiML."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import structlog
from sqlalchemy import Connection

from guestlist.canonical import CanonicalEvent
from guestlist.connectors.base import (
    Capability,
    Connector,
    Delivery,
    Reply,
    WebhookRejected,
    WebhookRequest,
    bad_body,
    bad_signature,
    no_secret,
)
from guestlist.connectors.registry import register
from guestlist.connectors.twilio.mapping import (
    SLUG,
    form_params,
    message_sid,
    number_of,
    parse_envelope,
)
from guestlist.connectors.twilio.settings import TwilioSettings
from guestlist.connectors.twilio.signature import (
    SETTINGS_HEADER,
    SIGNATURE_HEADER,
    algorithm_of,
    body_hash,
    is_valid,
)
from guestlist.consent.inbound import apply_inbound_text
from guestlist.consent.keywords import KeywordKind, classify
from guestlist.consent.ledger import ConsentError
from guestlist.consent.twiml import CONTENT_TYPE, EMPTY_RESPONSE, channel_of
from guestlist.inbox.store import InboxEnvelope
from guestlist.settings import get_settings

log = structlog.get_logger(__name__)

FORM = "application/x-www-form-urlencoded"
_EMPTY = Reply(EMPTY_RESPONSE.encode(), CONTENT_TYPE)



@register
class TwilioConnector(Connector):
    slug = SLUG
    title = "Twilio SMS and WhatsApp"
    capabilities = frozenset({Capability.WEBHOOK})
    settings_model = TwilioSettings

    def verify_webhook(self, settings: Any, request: WebhookRequest) -> Delivery:
        assert isinstance(settings, TwilioSettings)
        try:
            pairs: list[tuple[str, str]] | None = form_params(request.body)
        except UnicodeDecodeError:
            pairs = None
        params = dict(pairs or ())
        sid = message_sid(params)  # for the log, also when the delivery is refused
        given = request.header(SIGNATURE_HEADER)
        if not given:
            raise WebhookRejected(
                401,
                "missing_signature",
                f"the {SIGNATURE_HEADER} header is required: Twilio signs every webhook",
                field=SIGNATURE_HEADER,
                delivery_id=sid,
            )
        if settings.webhook_secret is None:
            raise no_secret()
        json_body = body_hash(request.url) is not None
        signed = () if json_body or pairs is None else pairs
        if not is_valid(
            settings.webhook_secret.get_secret_value(),
            request.url,
            signed,
            given,
            body=request.body,
            algorithm=algorithm_of(request.header(SETTINGS_HEADER)),
        ):
            rejected = bad_signature(SIGNATURE_HEADER)
            rejected.message += (
                " (Twilio signs the URL it calls: GUESTLIST_PUBLIC_URL must be that URL, "
                "and webhook_secret the account's Auth Token)"
            )
            rejected.delivery_id = sid
            raise rejected
        media_type = (request.header("content-type") or FORM).split(";")[0].strip().lower()
        if json_body or pairs is None or media_type != FORM:
            raise bad_body(
                "content-type",
                f"an inbound message is {FORM} (UTF-8), not {media_type or 'this body'}",
                sid,
            )
        if not sid:
            raise bad_body("MessageSid", "MessageSid is required")
        sender = params.get("From")
        if not sender:
            raise bad_body("From", "From is required", sid)
        try:
            channel = channel_of(sender)
        except ValueError as exc:
            raise bad_body("From", str(exc), sid) from None
        if not number_of(sender).strip():
            raise bad_body("From", f"no number in From {sender!r}", sid)
        account = params.get("AccountSid")
        if account is not None and account != settings.account_sid:
            raise WebhookRejected(
                403,
                "wrong_account",
                f"this delivery is for Twilio account {account!r}, not this connection's",
                field="AccountSid",
                delivery_id=sid,
            )
        status = params.get("MessageStatus") or params.get("SmsStatus")
        if status is not None and status != "received":
            raise bad_body(
                "MessageStatus",
                f"a status callback ({status!r}): this URL takes incoming messages only",
                sid,
            )
        return Delivery(channel, sid)

    def reply(
        self,
        conn: Connection,
        settings: Any,
        request: WebhookRequest,
        delivery: Delivery,
        source_id: int,
    ) -> Reply | None:
        """Keywords act on the ledger now, in the delivery's transaction (SMS-2..SMS-5,
        SMS-7), and are answered in TwiML; anything else gets an empty `<Response/>`."""
        assert isinstance(settings, TwilioSettings)
        params = dict(form_params(request.body))
        body = params.get("Body", "")
        opt_out_type = params.get("OptOutType") or None
        config = settings.keywords.config()
        if opt_out_type is None and classify(body, config=config).kind is KeywordKind.NONE:
            return _EMPTY
        try:
            outcome = apply_inbound_text(
                conn,
                channel=delivery.topic,
                from_number=number_of(params["From"]),
                body=body,
                message_id=delivery.delivery_id or "",
                received_at=request.received_at,
                source_id=source_id,
                config=config,
                opt_out_type=opt_out_type,
                shop=get_settings().shop_name,
                replies=settings.replies,
                region=settings.default_region,
                recorded_by=SLUG,
                connection=_connection_id(request.url),
            )
        except ConsentError as exc:
            # The delivery is kept (its event lands on the timeline); the keyword could
            # not be applied to a number the ledger cannot key. Twilio still blocks sends
            # to a number that texted STOP.
            log.warning(
                "twilio keyword not applied",
                delivery_id=delivery.delivery_id,
                field=exc.field,
                detail=exc.message,
            )
            return _EMPTY
        log.info(
            "twilio keyword",
            delivery_id=delivery.delivery_id,
            channel=outcome.channel,
            kind=outcome.match.kind.value,
            action=outcome.action.value,
            duplicate=outcome.duplicate,
            needs_review=outcome.needs_review,
        )
        return Reply(outcome.twiml.encode(), CONTENT_TYPE)

    def parse(self, envelope: InboxEnvelope) -> list[CanonicalEvent]:
        return parse_envelope(envelope)


def _connection_id(url: str) -> str | None:
    """The `{id}` of `…/hooks/twilio/{id}`: the connection the record came through."""
    parts = urlparse(url).path.rstrip("/").split("/")
    if len(parts) >= 3 and parts[-2] == SLUG:
        return f"{SLUG}/{parts[-1]}"
    return None
