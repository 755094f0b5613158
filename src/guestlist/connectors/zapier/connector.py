"""The Zapier connector: a catch endpoint for any JSON a Zap sends, mapped per connection.

The REST Hook subscriptions a Zapier app makes (to trigger on "profile entered segment")
are in `subscriptions.py` and `api.py`."""

from __future__ import annotations

from typing import Any

import orjson

from guestlist.canonical import CanonicalEvent
from guestlist.connectors.base import (
    Capability,
    Connector,
    Delivery,
    WebhookRequest,
    bad_body,
)
from guestlist.connectors.registry import register
from guestlist.connectors.zapier.mapping import (
    CONNECTION_HEADER,
    MAPPING_HEADER,
    RESERVED_HEADERS,
    TOPIC,
    ZapierPayloadError,
    delivery_key,
    missing_identifier,
    parse_envelope,
    records_of,
)
from guestlist.connectors.zapier.settings import ZapierSettings
from guestlist.connectors.zapier.signature import check_caller
from guestlist.inbox.store import InboxEnvelope

MAX_RECORDS = 500



@register
class ZapierConnector(Connector):
    slug = "zapier"
    title = "Zapier"
    capabilities = frozenset({Capability.WEBHOOK})
    settings_model = ZapierSettings
    generates_webhook_secret = True
    secret_in_path = True

    def verify_webhook(self, settings: Any, request: WebhookRequest) -> Delivery:
        assert isinstance(settings, ZapierSettings)
        check_caller(settings, request)
        for header in RESERVED_HEADERS:
            if request.header(header) is not None:
                raise bad_body(header, f"{header} is set by guestlist, not the sender")
        try:
            records = records_of(request.body)
        except ZapierPayloadError as exc:
            raise bad_body(exc.field, exc.message) from None
        if len(records) > MAX_RECORDS:
            raise bad_body("body", f"at most {MAX_RECORDS} records per post")
        key = delivery_key(settings.mapping, records, request.body)
        for n, record in enumerate(records):
            field = missing_identifier(settings.mapping, record)
            if field is not None:
                where = f"record {n}: " if len(records) > 1 else ""
                raise bad_body(
                    field,
                    f"{where}no email or phone where the mapping looks ({field}); "
                    "map one in settings.mapping.traits",
                    key,
                )
        # The mapping in force when it arrived, for the pure `parse`; the connection's
        # name for the consent records' proof.
        context = {MAPPING_HEADER: orjson.dumps(settings.mapping.model_dump(mode="json")).decode()}
        if request.connection_name:
            context[CONNECTION_HEADER] = request.connection_name
        return Delivery(topic=TOPIC, delivery_id=key, context=context)

    def parse(self, envelope: InboxEnvelope) -> list[CanonicalEvent]:
        return parse_envelope(envelope)
