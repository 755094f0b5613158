"""The Zendesk connector: signed webhooks and the users stream."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from guestlist.canonical import CanonicalEvent
from guestlist.connectors._http.client import VendorClient
from guestlist.connectors._signing import StaleTimestamp, check_fresh
from guestlist.connectors.base import (
    Capability,
    Connector,
    ConnectorError,
    Delivery,
    Page,
    WebhookRejected,
    WebhookRequest,
    bad_body,
    bad_signature,
    checked_topic,
    json_object,
    missing_header,
    no_secret,
    required_str,
)
from guestlist.connectors.registry import register
from guestlist.connectors.zendesk import client as api
from guestlist.connectors.zendesk.mapping import (
    EVENT_PREFIX,
    SLUG,
    TEST_TOPIC,
    TICKET_TOPIC,
    parse_envelope,
)
from guestlist.connectors.zendesk.settings import ZendeskSettings
from guestlist.connectors.zendesk.signature import (
    INVOCATION_HEADER,
    SIGNATURE_HEADER,
    TEST_SECRET,
    TIMESTAMP_HEADER,
    matches,
)
from guestlist.inbox.store import InboxEnvelope

log = structlog.get_logger(__name__)



def _signed_at(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise WebhookRejected(400, "invalid_header", f"unreadable {TIMESTAMP_HEADER}",
                              field=TIMESTAMP_HEADER) from None
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


@register
class ZendeskConnector(Connector):
    slug = SLUG
    title = "Zendesk"
    capabilities = frozenset({Capability.WEBHOOK, Capability.PULL})
    settings_model = ZendeskSettings
    streams = ("users",)

    def verify_webhook(self, settings: Any, request: WebhookRequest) -> Delivery:
        assert isinstance(settings, ZendeskSettings)
        given = request.header(SIGNATURE_HEADER)
        if not given:
            raise missing_header(SIGNATURE_HEADER)
        stamp = request.header(TIMESTAMP_HEADER)
        if not stamp:
            raise missing_header(TIMESTAMP_HEADER)
        invocation = request.header(INVOCATION_HEADER) or None
        if settings.webhook_secret is None:
            raise no_secret()
        test = False
        if not matches(settings.webhook_secret.get_secret_value(), stamp, request.body, given):
            # The builder's "Test webhook" requests are signed with Zendesk's static secret.
            if not matches(TEST_SECRET, stamp, request.body, given):
                exc = bad_signature(SIGNATURE_HEADER)
                exc.delivery_id = invocation
                raise exc
            test = True
        signed_at = _signed_at(stamp)
        try:
            check_fresh(signed_at, request.received_at,
                        timedelta(seconds=settings.replay_window))
        except StaleTimestamp as stale:
            raise WebhookRejected(401, "stale_timestamp", str(stale), field=TIMESTAMP_HEADER,
                                  delivery_id=invocation) from None
        if test:
            # Accepted so the builder shows success; stored as `zendesk.test`, mapped to
            # nothing (anyone can sign with the static secret: it proves nothing).
            log.info("zendesk test webhook", delivery_id=invocation)
            return Delivery(topic=TEST_TOPIC, delivery_id=invocation)
        body = json_object(request.body, invocation)
        kind = body.get("type")
        if isinstance(kind, str) and kind.startswith(EVENT_PREFIX):
            account = body.get("account_id")
            if settings.account_id is not None and account != settings.account_id:
                raise WebhookRejected(
                    403, "wrong_account", f"an event of Zendesk account {account!r}, not this "
                    "connection's", field="account_id", delivery_id=invocation)
            topic = checked_topic(kind.removeprefix(EVENT_PREFIX), "type", invocation)
            if not topic.startswith("user."):
                raise WebhookRejected(
                    400, "unsupported_topic",
                    f"guestlist takes Zendesk user events, not {topic!r}; remove it from "
                    "the webhook's subscriptions", field="type", delivery_id=invocation)
            event_id = required_str(body, "id", "id (the event id) is required", invocation)
            detail = body.get("detail")
            if not isinstance(detail, dict):
                raise bad_body("detail", "detail (the user) is required", invocation)
            if not detail.get("id"):
                raise bad_body("detail.id", "detail.id (the user id) is required", invocation)
            if not isinstance(body.get("time"), str):
                raise bad_body("time", "time is required", invocation)
            return Delivery(topic=topic, delivery_id=invocation or f"event:{event_id}")
        if "ticket_id" in body:
            if body["ticket_id"] in (None, ""):
                raise bad_body("ticket_id", "ticket_id is empty", invocation)
            requester = body.get("requester")
            if not isinstance(requester, dict):
                raise bad_body("requester", "requester is required (see the template)",
                                invocation)
            if not any(requester.get(k) for k in ("email", "phone", "id", "external_id")):
                raise bad_body("requester.email", "the requester has no email, phone or id",
                                invocation)
            for stamp_field in ("updated_at", "created_at"):
                value = body.get(stamp_field)
                if value not in (None, ""):
                    try:
                        datetime.fromisoformat(str(value).replace("Z", "+00:00"))
                    except ValueError:
                        raise bad_body(stamp_field, f"unreadable {stamp_field}",
                                        invocation) from None
            # Without an invocation id, a retry of the same ticket version is still one.
            version = body.get("updated_at") or body.get("created_at") or ""
            return Delivery(topic=TICKET_TOPIC,
                            delivery_id=invocation or f"ticket:{body['ticket_id']}:{version}")
        raise bad_body(
            "type", "neither a user event (`type` zen:event-type:user.*) nor the ticket "
            "template (`ticket_id`)", invocation)

    def parse(self, envelope: InboxEnvelope) -> list[CanonicalEvent]:
        return parse_envelope(envelope)

    def client(self, settings: Any, *, connection_id: int | None = None) -> VendorClient:
        assert isinstance(settings, ZendeskSettings)
        return api.make_client(settings, connection_id=connection_id)

    def pull(
        self, client: VendorClient, settings: Any, stream: str, checkpoint: str | None
    ) -> Iterator[Page]:
        assert isinstance(settings, ZendeskSettings)
        if stream == "users":
            return api.user_pages(client, settings, checkpoint)
        raise ConnectorError(f"Zendesk has no stream {stream!r}")

    def check(self, client: VendorClient, settings: Any) -> str:
        return api.check(client)
