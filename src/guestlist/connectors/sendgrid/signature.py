"""Who may post: SendGrid does not sign Inbound Parse posts by default, so the URL holds
a per-connection secret (its last path segment) and, optionally, Basic credentials.
Both are compared in constant time."""

from __future__ import annotations

import base64
import binascii

from guestlist.connectors._signing.hmac import signatures_match
from guestlist.connectors.base import WebhookRejected, WebhookRequest, no_secret
from guestlist.connectors.sendgrid.settings import SendGridSettings

AUTHORIZATION = "Authorization"


def _refused(error: str, message: str, field: str) -> WebhookRejected:
    return WebhookRejected(401, error, message, field=field)


def check_caller(settings: SendGridSettings, request: WebhookRequest) -> None:
    """Raise `WebhookRejected` (401, or 409 without a secret) unless the post is ours."""
    if settings.webhook_secret is None:
        raise no_secret()
    if not request.path_token:
        raise _refused(
            "missing_secret",
            "post to /hooks/sendgrid/{id}/{secret}: the URL's last segment is the secret",
            "token",
        )
    if not signatures_match(settings.webhook_secret.get_secret_value(), request.path_token):
        raise _refused("invalid_secret", "the secret in the URL does not match", "token")
    if settings.basic_auth_username is None or settings.basic_auth_password is None:
        return
    given = request.header(AUTHORIZATION)
    if not given:
        raise _refused(
            "missing_credentials", "the Authorization header (Basic) is required", AUTHORIZATION
        )
    scheme, _, encoded = given.partition(" ")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    username, sep, password = decoded.partition(":")
    # Both compared whatever the first gives, so timing tells nothing about either.
    user_ok = signatures_match(settings.basic_auth_username, username)
    pass_ok = signatures_match(settings.basic_auth_password.get_secret_value(), password)
    if scheme.lower() != "basic" or not sep or not (user_ok and pass_ok):
        raise _refused(
            "invalid_credentials", "the Basic credentials do not match", AUTHORIZATION
        )
