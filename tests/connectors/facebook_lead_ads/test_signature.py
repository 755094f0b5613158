"""X-Hub-Signature-256 over the raw body: the published vector, escaped unicode."""

from __future__ import annotations

import json

from guestlist.connectors.facebook_lead_ads.signature import is_valid, sign
from tests.connectors.facebook_lead_ads.helpers import sample


def test_the_documented_vector_passes() -> None:
    vector = sample("hub_signature_256_vector.json")
    body = vector["raw_body"].encode()
    assert sign(vector["secret"], body) == vector["expected_header"]
    assert is_valid(vector["secret"], body, vector["expected_header"])
    assert is_valid(vector["secret"], body, vector["expected_header"].upper().replace(
        "SHA256=", "sha256="))
    assert not is_valid(vector["secret"], body + b" ", vector["expected_header"])
    assert not is_valid("another secret", body, vector["expected_header"])
    assert not is_valid(vector["secret"], body, None)
    assert not is_valid(vector["secret"], body, "")


def test_meta_signs_escaped_unicode_so_only_the_raw_bytes_verify() -> None:
    # Meta serialises "Renée" as "Ren\u00e9e" and signs those bytes.
    raw = b'{"object":"page","entry":[{"id":"1","changes":[{"field":"leadgen",' \
          b'"value":{"leadgen_id":"9","form_id":"8","page_id":"1","note":"Ren\\u00e9e"}}]}]}'
    header = sign("app-secret", raw)
    assert is_valid("app-secret", raw, header)
    parsed = json.loads(raw)
    assert parsed["entry"][0]["changes"][0]["value"]["note"] == "Renée"
    for reserialised in (
        json.dumps(parsed, ensure_ascii=False, separators=(",", ":")).encode(),
        json.dumps(parsed).encode(),
    ):
        assert not is_valid("app-secret", reserialised, header)
