"""What the Zapier tests share: samples, the contest mapping, posting to the catch URL."""

from __future__ import annotations

from typing import Any

from tests.connectors.conftest import App
from tests.connectors.helpers import add_connection, connection_log, sample_readers, samples_dir

SAMPLES = samples_dir("zapier")
SECRET = "zapier-test-secret-abcdefghijklmnop"
CONTEST = "catch__contest_entry.CONSTRUCTED.json"
FLAT = "catch__flat_fields.CONSTRUCTED.json"
SEVERAL = "catch__several_records.CONSTRUCTED.json"

EMAIL_TEXT = "Yes, email me Bottle Shop news and offers. I can unsubscribe at any time."
SMS_TEXT = ("Yes, text me offers from Bottle Shop. Msg & data rates may apply. Reply STOP to "
            "opt out. Consent is not a condition of purchase.")

CONTEST_MAPPING: dict[str, Any] = {
    "type": "track",
    "event": "Contest Entered",
    "traits": {
        "email": "contact.email",
        "phone": "contact.phone",
        "firstName": "contact.first_name",
        "last_name": "contact.last_name",
        "birthday": "answers.dob",
    },
    "properties": {"contest": "contest", "favorite_spirit": "answers.favorite_spirit"},
    "delivery_id": "entry_id",
    "timestamp": "submitted_at",
    "consent": [
        {"field": "answers.email_optin", "channel": "email", "text": EMAIL_TEXT,
         "url": "https://bottleshop.example/giveaway", "legal_basis": "gdpr_consent"},
        {"field": "answers.sms_optin", "channel": "sms", "text": SMS_TEXT,
         "legal_basis": "tcpa_written"},
    ],
    "age_gate": {"field": "answers.age_21_plus", "text": "I am 21 or older", "minimum_age": 21},
}

sample_bytes, sample = sample_readers(SAMPLES)


def connect(app: App, name: str = "Zaps", **settings: Any) -> int:
    return int(add_connection(app.client, app.admin, "zapier", name,
                              {"webhook_secret": SECRET, **settings})["id"])


def catch(
    app: App, cid: int | str, body: bytes, *, secret: str | None = SECRET,
    in_header: bool = False, headers: dict[str, str] | None = None,
) -> Any:
    sent = {"content-type": "application/json", **(headers or {})}
    path = f"/hooks/zapier/{cid}"
    if secret is not None and in_header:
        sent["x-guestlist-secret"] = secret
    elif secret is not None:
        path += f"/{secret}"
    return app.client.post(path, content=body, headers=sent)


def log_of(app: App, cid: int) -> list[dict[str, Any]]:
    return connection_log(app.client, app.read, cid, check=True)
