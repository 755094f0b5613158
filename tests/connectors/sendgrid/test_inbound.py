"""Reading Inbound Parse posts: both modes from SendGrid's own samples, charsets,
attachments measured not kept, senders, and mail no person wrote."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from guestlist.connectors.sendgrid.inbound import (
    InboundError,
    automated,
    delivery_key,
    read_form,
    read_mail,
)
from guestlist.connectors.sendgrid.mapping import name_traits
from tests.connectors.sendgrid.helpers import (
    AUTO_REPLY,
    BOUNCE,
    CONTENT_TYPES,
    DEFAULT,
    LATIN1,
    RAW,
    SAMPLES,
    sample_bytes,
)


def read(name: str) -> object:
    return read_mail(CONTENT_TYPES[name], sample_bytes(name))


def test_default_mode_fields_match_the_parsed_sample() -> None:
    expected = json.loads((SAMPLES / "inbound_parse_default_fields.json").read_text())["fields"]
    parts = read_form(CONTENT_TYPES[DEFAULT], sample_bytes(DEFAULT))
    assert set(parts) == set(expected)
    for name, value in expected.items():
        assert parts[name].data.decode().rstrip("\n") == value, name


def test_default_mode_mail() -> None:
    mail = read_mail(CONTENT_TYPES[DEFAULT], sample_bytes(DEFAULT))
    assert mail.mode == "parsed"
    assert (mail.sender_email, mail.sender_name) == ("test@example.com", "Example User")
    assert mail.subject == "Testing non-raw"
    assert mail.text == "Hello Twilio SendGrid!"
    assert mail.to == ["inbound@inbound.example.com"]
    assert mail.attachments == [] and mail.extra == {}
    assert mail.sent_at() == datetime(2016, 8, 11, 1, 10, 13, tzinfo=UTC)
    assert mail.message_id is None  # the sample has none: the body's hash is the key
    assert delivery_key(mail, sample_bytes(DEFAULT)).startswith("sha256:")
    assert automated(mail) is None


def test_raw_mode_reads_the_mime_message() -> None:
    mail = read_mail(CONTENT_TYPES[RAW], sample_bytes(RAW))
    assert mail.mode == "raw"
    assert (mail.sender_email, mail.sender_name) == ("test@example.com", "Example User")
    assert mail.text == "Hello Twilio SendGrid!"  # text/plain part; html not kept
    assert mail.subject == "Testing with Request.bin"  # SendGrid's decoded field
    assert mail.to == ["inbound@inbound.inbound.com"]
    assert mail.sent_at() == datetime(2016, 8, 10, 21, 44, 21, tzinfo=UTC)


def test_charsets_cc_attachment_and_message_id() -> None:
    mail = read_mail(CONTENT_TYPES[LATIN1], sample_bytes(LATIN1))
    assert mail.sender_email == "Jose.Martinez@example.net"
    assert mail.sender_name == "José Martínez"  # ISO-8859-1 per `charsets`
    assert mail.subject == "¿Tenéis mezcal añejo?"
    assert mail.text is not None and mail.text.startswith("Hola, ¿tenéis mezcal añejo?")
    assert mail.cc == ["ana.ruiz@example.net"]
    assert mail.to == ["hello@parse.bottleshop.example"]
    (attachment,) = mail.attachments
    assert attachment == {"filename": "label.png", "type": "image/png", "size": 66,
                          "content_id": "ii_lk3"}
    assert mail.message_id == "CAF3xY9q2-7b1e4d@mail.example.net"
    assert delivery_key(mail, b"") == "CAF3xY9q2-7b1e4d@mail.example.net"


def test_bare_lf_and_crlf_read_alike() -> None:
    lf = sample_bytes(DEFAULT)
    crlf = lf.replace(b"\n", b"\r\n")
    a = read_mail(CONTENT_TYPES[DEFAULT], lf)
    b = read_mail(CONTENT_TYPES[DEFAULT], crlf)
    assert (a.sender_email, a.subject, a.text, a.to) == (b.sender_email, b.subject, b.text, b.to)


@pytest.mark.parametrize("name,kind", [(AUTO_REPLY, "auto_reply"), (BOUNCE, "bounce")])
def test_mail_no_person_wrote(name: str, kind: str) -> None:
    mail = read_mail(CONTENT_TYPES[name], sample_bytes(name))
    assert automated(mail) == kind


def _with_header(header: str, sender: str = "Kim <kim@example.com>") -> bytes:
    return (
        b"--b\r\nContent-Disposition: form-data; name=\"headers\"\r\n\r\n"
        + header.encode() + b"\nSubject: hi\n"
        b"\r\n--b\r\nContent-Disposition: form-data; name=\"from\"\r\n\r\n"
        + sender.encode() + b"\r\n--b--\r\n"
    )


@pytest.mark.parametrize("header,sender,kind", [
    ("Auto-Submitted: auto-generated", "Kim <kim@example.com>", "auto_reply"),
    ("Auto-Submitted: auto-replied; owner-email=kim@example.com", "Kim <kim@example.com>",
     "auto_reply"),
    ("Auto-Submitted: no", "Kim <kim@example.com>", None),
    ("X-Autorespond: on", "Kim <kim@example.com>", "auto_reply"),
    ("Precedence: bulk", "Kim <kim@example.com>", "auto_reply"),
    ("Precedence: junk", "Kim <kim@example.com>", "auto_reply"),
    ("Precedence: auto_reply", "Kim <kim@example.com>", "auto_reply"),
    ("Precedence: first-class", "Kim <kim@example.com>", None),
    ("Return-Path: <>", "Kim <kim@example.com>", "bounce"),
    ("X-Mailer: x", "postmaster@example.com", "bounce"),
    ("Content-Type: multipart/report; report-type=delivery-status; boundary=x",
     "Kim <kim@example.com>", "bounce"),
    ("Content-Type: multipart/report; report-type=disposition-notification; boundary=x",
     "Kim <kim@example.com>", None),
])
def test_automated_headers(header: str, sender: str, kind: str | None) -> None:
    mail = read_mail("multipart/form-data; boundary=b", _with_header(header, sender))
    assert automated(mail) == kind


def test_envelope_sender_when_from_is_unreadable() -> None:
    body = (
        b"--b\r\nContent-Disposition: form-data; name=\"from\"\r\n\r\nundisclosed\r\n"
        b"--b\r\nContent-Disposition: form-data; name=\"envelope\"\r\n\r\n"
        b"{\"to\":[\"a@parse.example\"],\"from\":\"lee@example.com\"}\r\n--b--\r\n"
    )
    mail = read_mail("multipart/form-data; boundary=b", body)
    assert (mail.sender_email, mail.sender_name) == ("lee@example.com", None)


def test_unknown_fields_are_kept() -> None:
    body = (
        b"--b\r\nContent-Disposition: form-data; name=\"from\"\r\n\r\nlee@example.com\r\n"
        b"--b\r\nContent-Disposition: form-data; name=\"x-new-field\"\r\n\r\nsomething\r\n--b--\r\n"
    )
    mail = read_mail("multipart/form-data; boundary=b", body)
    assert mail.extra == {"x-new-field": "something"}


@pytest.mark.parametrize("content_type,body,field", [
    (None, b"x", "content-type"),
    ("application/json", b"{}", "content-type"),
    ("multipart/form-data", b"--b--", "content-type"),
    ("multipart/form-data; boundary=zz", sample_bytes(DEFAULT), "body"),
    ("multipart/form-data; boundary=b",
     b"--b\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\na@b.c\r\n--b--\r\n", "from"),
    ("multipart/form-data; boundary=b",
     b"--b\r\nContent-Disposition: form-data; name=\"from\"\r\n\r\nnobody\r\n--b--\r\n", "from"),
    ("multipart/form-data; boundary=b",
     b"--b\r\nContent-Disposition: form-data; name=\"from\"\r\n\r\na@b.c\r\n"
     b"--b\r\nContent-Disposition: form-data; name=\"envelope\"\r\n\r\n{nope\r\n--b--\r\n",
     "envelope"),
    ("multipart/form-data; boundary=b",
     b"--b\r\nContent-Disposition: form-data; name=\"from\"\r\n\r\na@b.c\r\n"
     b"--b\r\nContent-Disposition: form-data; name=\"charsets\"\r\n\r\n[1]\r\n--b--\r\n",
     "charsets"),
])
def test_malformed_posts_name_the_field(
    content_type: str | None, body: bytes, field: str
) -> None:
    with pytest.raises(InboundError) as caught:
        read_mail(content_type, body)
    assert caught.value.field == field


@pytest.mark.parametrize("name,address,traits", [
    ("Ada Lovelace", "ada@example.com", {"name": "Ada Lovelace", "first_name": "Ada",
                                         "last_name": "Lovelace"}),
    ("Lovelace, Ada", "ada@example.com", {"name": "Lovelace, Ada", "first_name": "Ada",
                                          "last_name": "Lovelace"}),
    ("Mary Ann Smith", "m@example.com", {"name": "Mary Ann Smith"}),  # no guess
    ("Cher", "c@example.com", {"name": "Cher"}),
    ("ada@example.com", "ada@example.com", {}),
    (None, "ada@example.com", {}),
])
def test_name_traits(name: str | None, address: str, traits: dict[str, str]) -> None:
    assert name_traits(name, address) == traits
