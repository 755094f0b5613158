"""What the Google Sheets tests share: a key pair, the fake, settings."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.google_sheets import SPREADSHEET_ID, key_file

GRANT_TEXT = ("Yes, send me Bottle Shop's newsletter with tastings and offers. "
              "I can unsubscribe at any time.")

MAPPING: dict[str, Any] = {
    "columns": {
        "Email": "email",
        "First Name": "first_name",
        "Last Name": "last_name",
        "Phone": "phone",
        "Birthday": "birthday",
        "Customer #": "customer_id",
        "Newsletter": {"consent": {
            "channel": "email", "text": GRANT_TEXT, "legal_basis": "gdpr_consent",
            "url": "https://bottleshop.example/newsletter", "at_column": "Signed up",
        }},
    },
}


def settings(
    key: rsa.RSAPrivateKey, url: str = "http://127.0.0.1:9", **over: Any
) -> dict[str, Any]:
    return {
        "spreadsheet_id": SPREADSHEET_ID,
        "range": "Customers!A1:I",
        "service_account_json": key_file(key, token_uri=f"{url}/token"),
        "mapping": MAPPING,
        "base_url": url,
        **over,
    }
