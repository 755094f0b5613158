"""Who may post to the catch endpoint: Zapier does not sign what a Zap sends, so the
connection's secret comes in the URL's last segment or in `X-Guestlist-Secret`, compared
in constant time."""

from __future__ import annotations

from guestlist.connectors._signing.hmac import signatures_match
from guestlist.connectors.base import WebhookRejected, WebhookRequest, no_secret
from guestlist.connectors.zapier.settings import ZapierSettings

SECRET_HEADER = "X-Guestlist-Secret"


def check_caller(settings: ZapierSettings, request: WebhookRequest) -> None:
    if settings.webhook_secret is None:
        raise no_secret()
    expected = settings.webhook_secret.get_secret_value()
    if request.path_token:
        if not signatures_match(expected, request.path_token):
            raise WebhookRejected(
                401, "invalid_secret", "the secret in the URL does not match", field="token"
            )
        return
    given = request.header(SECRET_HEADER)
    if not given:
        raise WebhookRejected(
            401,
            "missing_secret",
            f"send the connection's secret in {SECRET_HEADER}, or post to "
            "/hooks/zapier/{id}/{secret}",
            field=SECRET_HEADER,
        )
    if not signatures_match(expected, given):
        raise WebhookRejected(
            401, "invalid_secret", f"the {SECRET_HEADER} header does not match", field=SECRET_HEADER
        )
