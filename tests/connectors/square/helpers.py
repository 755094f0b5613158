"""What the Square tests share: settings, samples, signing, and reading the results."""

from __future__ import annotations

from typing import Any

from guestlist.connectors.square.signature import SIGNATURE_HEADER, sign
from tests.connectors.helpers import (  # the database reads the connector tests share
    age_of,
    consent_of,
    count_events,
    events_of,
    inbox_rows,
    live_profiles,
    profile_of,
    sample_readers,
    samples_dir,
    traits_of,
)
from tests.fakes.square import TOKEN

__all__ = [
    "age_of", "consent_of", "count_events", "events_of", "inbox_rows", "live_profiles",
    "profile_of", "traits_of",
]

SAMPLES = samples_dir("square")
SECRET = "square-test-signature-key"
sample_bytes, sample = sample_readers(SAMPLES)


def settings(**overrides: Any) -> dict[str, Any]:
    return {"access_token": TOKEN, "webhook_secret": SECRET, **overrides}


def signed_headers(url: str, body: bytes, *, secret: str = SECRET, **extra: str) -> dict[str, str]:
    return {
        SIGNATURE_HEADER: sign(secret, url, body),
        "content-type": "application/json",
        "square-environment": "Production",
        **extra,
    }
