"""Reading one Inbound Parse post: the multipart form, and the mail in it.

SendGrid posts `multipart/form-data` in one of two modes. Default ("parsed"): fields
`headers` (the mail's header block), `from`, `to`, `cc`, `subject`, `text`, `html`,
`envelope` (JSON), `charsets` (JSON: the charset of each field), `SPF`, `dkim`,
`spam_score`, `sender_ip`, `attachments` (a count), `attachment-info` (JSON) and one
file part per attachment. Raw: the whole MIME message in `email`, beside `from`, `to`,
`envelope`, `charsets`, `SPF`, `dkim`…

The form is read with the standard library's MIME parser, which takes both CRLF and bare
LF line ends: SendGrid's own sample posts (its `send.py` test tool) use bare LF, which
strict form parsers refuse. Attachments are measured, never kept.
"""

from __future__ import annotations

import email.policy
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesParser, HeaderParser
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

import orjson

# Fields SendGrid documents; any other text field is kept as a property as it is.
KNOWN_FIELDS = frozenset({
    "headers", "dkim", "to", "cc", "from", "subject", "text", "html", "sender_ip",
    "envelope", "attachments", "attachment-info", "charsets", "SPF", "spam_score",
    "spam_report", "content-ids", "email",
})
_ATTACHMENT_PART = re.compile(r"^attachment\d+$")
_MAX_ID = 150  # fits inbox keys and event message ids (200 characters) with a prefix


class InboundError(ValueError):
    """A post that is not an Inbound Parse form; `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class FormPart:
    name: str
    data: bytes
    filename: str | None
    content_type: str


@dataclass(slots=True)
class InboundMail:
    """What the mapping needs from one post, decoded."""

    mode: str  # parsed | raw
    headers: Message
    sender_email: str | None
    sender_name: str | None
    subject: str | None
    text: str | None
    to: list[str]
    cc: list[str]
    envelope: dict[str, Any]
    attachments: list[dict[str, Any]]
    fields: dict[str, str]  # text fields as decoded (not `email`, `html` or files)
    extra: dict[str, str] = field(default_factory=dict)  # fields SendGrid does not document

    @property
    def message_id(self) -> str | None:
        value = self.headers.get("message-id")
        if value is None:
            return None
        text = str(value).strip().strip("<>").strip()
        return text or None

    def sent_at(self) -> datetime | None:
        value = self.headers.get("date")
        if value is None:
            return None
        try:
            parsed = parsedate_to_datetime(str(value))
        except (TypeError, ValueError, IndexError):
            return None
        if parsed.tzinfo is None:
            return None
        return parsed.astimezone(UTC)


def read_form(content_type: str | None, body: bytes) -> dict[str, FormPart]:
    """The parts of a `multipart/form-data` body, by name (the first of a repeated name)."""
    if not content_type:
        raise InboundError("content-type", "the Content-Type header is required")
    if "\r" in content_type or "\n" in content_type:
        raise InboundError("content-type", "the Content-Type header is malformed")
    probe = Message()
    probe["content-type"] = content_type
    if probe.get_content_type() != "multipart/form-data" or not probe.get_param("boundary"):
        raise InboundError(
            "content-type", "expected multipart/form-data with a boundary (Inbound Parse posts)"
        )
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    form = BytesParser(policy=email.policy.compat32).parsebytes(head + body)
    if not form.is_multipart():
        raise InboundError("body", "the body is not a multipart form")
    parts: dict[str, FormPart] = {}
    for part in form.get_payload():
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            continue
        data = part.get_payload(decode=True)
        parts.setdefault(
            name,
            FormPart(
                name=name,
                data=data if isinstance(data, bytes) else b"",
                filename=part.get_filename(),
                content_type=part.get_content_type(),
            ),
        )
    if not parts:
        raise InboundError("body", "the form has no fields (wrong boundary?)")
    return parts


def _json_object(raw: str | None, field_name: str) -> dict[str, Any]:
    if raw is None or not raw.strip():
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InboundError(field_name, f"{field_name} is not JSON") from None
    if not isinstance(value, dict):
        raise InboundError(field_name, f"{field_name} is not a JSON object")
    return value


def _decode(data: bytes, charset: Any) -> str:
    name = charset if isinstance(charset, str) and charset else "utf-8"
    try:
        text = data.decode(name, errors="replace")
    except LookupError:  # a charset Python does not know
        text = data.decode("utf-8", errors="replace")
    return text.rstrip("\r\n")


def _unfold(value: str) -> str:
    """A header value with RFC 2047 encoded words decoded."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeDecodeError):
        return value


def _addresses(value: str | None) -> list[tuple[str, str]]:
    if not value:
        return []
    return [
        (_unfold(name).strip(), addr.strip())
        for name, addr in getaddresses([value])
        if addr and "@" in addr
    ]


def delivery_key(mail: InboundMail | None, body: bytes) -> str:
    """What a retry of this post shares: the Message-ID, else the body's SHA-256."""
    message_id = mail.message_id if mail is not None else None
    if message_id and len(message_id) <= _MAX_ID and message_id.isprintable():
        return message_id
    return "sha256:" + hashlib.sha256(body).hexdigest()


def read_mail(content_type: str | None, body: bytes) -> InboundMail:
    """One post, decoded; raises `InboundError` naming the field that is wrong."""
    parts = read_form(content_type, body)
    charsets = _json_object(_raw_text(parts, "charsets"), "charsets")
    envelope = _json_object(_raw_text(parts, "envelope"), "envelope")
    texts = {
        name: _decode(part.data, charsets.get(name))
        for name, part in parts.items()
        if part.filename is None and name not in ("email", "html")
        and not _ATTACHMENT_PART.match(name)
    }
    extra = {name: value for name, value in texts.items() if name not in KNOWN_FIELDS}
    if "email" in parts:
        mail = _raw_mode(parts["email"].data, texts, envelope)
    elif "headers" in parts or "from" in parts:
        mail = _parsed_mode(parts, texts, envelope)
    else:
        raise InboundError("from", "neither `from`, `headers` nor `email` is in the form")
    mail.extra = extra
    if mail.sender_email is None:
        raise InboundError("from", "no sender address in `from` or `envelope`")
    return mail


def _raw_text(parts: dict[str, FormPart], name: str) -> str | None:
    part = parts.get(name)
    return part.data.decode("utf-8", errors="replace") if part is not None else None


def _sender(
    from_value: str | None, envelope: dict[str, Any]
) -> tuple[str | None, str | None]:
    found = _addresses(from_value)
    if found:
        name, addr = found[0]
        return addr, (name or None)
    fallback = envelope.get("from")
    if isinstance(fallback, str) and "@" in fallback:
        return fallback.strip().strip("<>"), None
    return None, None


def _parsed_mode(
    parts: dict[str, FormPart], texts: dict[str, str], envelope: dict[str, Any]
) -> InboundMail:
    headers = HeaderParser(policy=email.policy.compat32).parsestr(texts.get("headers", ""))
    email_addr, name = _sender(texts.get("from") or headers.get("from"), envelope)
    info = _json_object(texts.get("attachment-info"), "attachment-info")
    attachments = []
    for part_name, part in parts.items():
        if part.filename is None and not _ATTACHMENT_PART.match(part_name):
            continue
        if part_name in ("email", "headers"):
            continue
        described = info.get(part_name)
        meta = described if isinstance(described, dict) else {}
        attachments.append({
            "filename": meta.get("filename") or part.filename,
            "type": meta.get("type") or part.content_type,
            "size": len(part.data),
            **({"content_id": meta["content-id"]} if meta.get("content-id") else {}),
        })
    return InboundMail(
        mode="parsed",
        headers=headers,
        sender_email=email_addr,
        sender_name=name,
        subject=texts.get("subject") or _header_text(headers, "subject"),
        text=texts.get("text"),
        to=[a for _n, a in _addresses(texts.get("to"))],
        cc=[a for _n, a in _addresses(texts.get("cc"))],
        envelope=envelope,
        attachments=attachments,
        fields=texts,
    )


def _header_text(headers: Message, name: str) -> str | None:
    value = headers.get(name)
    return _unfold(str(value)).strip() if value is not None else None


def _raw_mode(raw: bytes, texts: dict[str, str], envelope: dict[str, Any]) -> InboundMail:
    message = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    email_addr, name = _sender(str(message.get("from") or "") or texts.get("from"), envelope)
    body = message.get_body(preferencelist=("plain",))
    text: str | None = None
    if isinstance(body, EmailMessage):
        try:
            content = body.get_content()
            text = content.rstrip("\r\n") if isinstance(content, str) else None
        except (LookupError, ValueError):
            text = None
    attachments = []
    for part in message.iter_attachments():
        data = part.get_payload(decode=True)
        attachments.append({
            "filename": part.get_filename(),
            "type": part.get_content_type(),
            "size": len(data) if isinstance(data, bytes) else 0,
        })
    headers = HeaderParser(policy=email.policy.compat32).parsestr(
        "".join(f"{k}: {v}\n" for k, v in message.items())
    )
    return InboundMail(
        mode="raw",
        headers=headers,
        sender_email=email_addr,
        sender_name=name,
        subject=texts.get("subject") or _header_text(headers, "subject"),
        text=text,
        to=[a for _n, a in _addresses(texts.get("to") or str(message.get("to") or ""))],
        cc=[a for _n, a in _addresses(str(message.get("cc") or ""))],
        envelope=envelope,
        attachments=attachments,
        fields=texts,
    )


_AUTO_PRECEDENCE = frozenset({"bulk", "junk", "auto_reply"})
_DAEMONS = frozenset({"mailer-daemon", "postmaster"})


def automated(mail: InboundMail) -> str | None:
    """`bounce` or `auto_reply` for a mail no person wrote; None for a person's mail."""
    headers = mail.headers
    content_type = Message()
    content_type["content-type"] = str(headers.get("content-type") or "text/plain")
    if (
        content_type.get_content_type() == "multipart/report"
        and str(content_type.get_param("report-type") or "").lower() == "delivery-status"
    ):
        return "bounce"
    local = (mail.sender_email or "").split("@", 1)[0].lower()
    if local in _DAEMONS:
        return "bounce"
    return_path = headers.get("return-path")
    if return_path is not None and str(return_path).strip() in ("<>", ""):
        return "bounce"
    envelope_from = mail.envelope.get("from")
    if isinstance(envelope_from, str) and envelope_from.strip() in ("", "<>"):
        return "bounce"
    submitted = str(headers.get("auto-submitted") or "").split(";")[0].strip().lower()
    if submitted and submitted != "no":
        return "auto_reply"
    if headers.get("x-autoreply") is not None or headers.get("x-autorespond") is not None:
        return "auto_reply"
    precedence = str(headers.get("precedence") or "").strip().lower()
    if precedence in _AUTO_PRECEDENCE:
        return "auto_reply"
    return None
