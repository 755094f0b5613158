"""The SendGrid Inbound Parse connector: mail posted to a secret URL."""

from __future__ import annotations

from typing import Any

import structlog

from guestlist.canonical import CanonicalEvent
from guestlist.connectors.base import (
    Capability,
    Connector,
    Delivery,
    WebhookRejected,
    WebhookRequest,
)
from guestlist.connectors.registry import register
from guestlist.connectors.sendgrid.inbound import (
    InboundError,
    InboundMail,
    automated,
    delivery_key,
    read_mail,
)
from guestlist.connectors.sendgrid.mapping import PERSON_TOPIC, parse_envelope
from guestlist.connectors.sendgrid.settings import SendGridSettings
from guestlist.connectors.sendgrid.signature import check_caller
from guestlist.inbox.store import InboxEnvelope

log = structlog.get_logger(__name__)


def check_hostname(hostname: str, mail: InboundMail, key: str) -> None:
    """Refuse (403) a post whose envelope names no recipient at the parse hostname."""
    raw = mail.envelope.get("to")
    recipients = [r for r in raw if isinstance(r, str)] if isinstance(raw, list) else []
    if not recipients:
        recipients = mail.to
    hosts = {r.strip().strip("<>").rsplit("@", 1)[-1].lower() for r in recipients if "@" in r}
    if hostname not in hosts:
        raise WebhookRejected(
            403, "wrong_hostname",
            f"no recipient at {hostname}: this post is for another Parse hostname",
            field="envelope.to", delivery_id=key,
        )


@register
class SendGridConnector(Connector):
    slug = "sendgrid"
    title = "SendGrid Inbound Parse"
    capabilities = frozenset({Capability.WEBHOOK})
    settings_model = SendGridSettings
    generates_webhook_secret = True
    secret_in_path = True

    def verify_webhook(self, settings: Any, request: WebhookRequest) -> Delivery:
        assert isinstance(settings, SendGridSettings)
        check_caller(settings, request)
        try:
            mail = read_mail(request.header("content-type"), request.body)
        except InboundError as exc:
            raise WebhookRejected(
                400, "invalid_body", exc.message, field=exc.field,
                delivery_id=delivery_key(None, request.body),
            ) from None
        key = delivery_key(mail, request.body)
        if settings.hostname is not None:
            check_hostname(settings.hostname, mail, key)
        kind = automated(mail)
        if kind is not None:
            # Answered 200 so SendGrid stops retrying; stored, but makes no profile.
            log.info("sendgrid automated mail", kind=kind, delivery_id=key)
        return Delivery(topic=kind or PERSON_TOPIC, delivery_id=key)

    def parse(self, envelope: InboxEnvelope) -> list[CanonicalEvent]:
        return parse_envelope(envelope)
