"""X-Hub-Signature (HMAC-SHA1) over the raw body. Intercom publishes no secret for its
example, so its exact body is signed with our own and checked both ways."""

from __future__ import annotations

import hashlib
import hmac
import json

from guestlist.connectors.intercom.signature import is_valid, sign
from tests.connectors.intercom.helpers import sample


def test_the_documented_notification_signed_with_our_secret() -> None:
    example = sample("webhook_signed_notification_example.json")
    body = json.dumps(example["body"]).encode()
    header = sign("our-client-secret", body)
    # Independently computed: sha1= + hex(HMAC-SHA1(secret, body)).
    assert header == "sha1=" + hmac.new(b"our-client-secret", body, hashlib.sha1).hexdigest()
    assert header.startswith("sha1=") and len(header) == len(example["headers"]["X-Hub-Signature"])
    assert is_valid("our-client-secret", body, header)
    assert is_valid("our-client-secret", body, header.upper().replace("SHA1=", "sha1="))
    assert not is_valid("another", body, header)
    assert not is_valid("our-client-secret", body.replace(b"Hoban", b"Hoban "), header)
    assert not is_valid("our-client-secret", body, None)
    # The docs' header was made with a secret we do not have: it does not verify with ours.
    assert not is_valid("our-client-secret", body, example["headers"]["X-Hub-Signature"])
