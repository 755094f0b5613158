"""The consent ledger: append-only records, a hash chain per profile, derived state.

Rules (../shared/compliance.md): C-1 a ledger, not a flag; C-2 each record carries its
proof; C-2a each record carries the hash of the previous record of its chain; C-3 the
latest record by event time decides, a withdrawal wins a tie, a late older record is
stored but changes nothing newer; C-6 consent is per identifier; C-7 implied consent
expires; E-3 implied consent for an EU/UK recipient is only the soft opt-in, with its
evidence (consent/eu_uk.py); SMS-6a an SMS or WhatsApp grant is recorded together with
the age check that gated it (`proof.age_gate`).

A record's hash covers everything but its personal columns, which enter through their
HMAC (`personal_hash`): erasure can blank the address, IP and user agent and the chain
still verifies, while an auditor holding a claimed address can still check it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, and_, bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from guestlist.age.levels import VerificationLevel
from guestlist.audit import SYSTEM, AuditEntry, audit_many
from guestlist.canonical import PropertyError
from guestlist.capture.tracking_parse import parse_timestamp
from guestlist.consent.eu_uk import SOFT_OPT_IN, implied_without_basis, in_eu_uk
from guestlist.identity.merge import merge_step
from guestlist.identity.normalize import InvalidIdentifier, normalize_email, normalize_phone
from guestlist.segments.due import mark_due
from guestlist.store.secrets import identifier_hmac, installation_secret
from guestlist.store.tables import age_records, consent_records, consent_state, consent_texts
from guestlist.store.types import utcnow

CHANNELS = ("email", "sms", "whatsapp", "phone", "postal", "push")
PURPOSES = ("marketing", "sale_sharing", "transactional")
STATUSES = ("granted", "denied", "withdrawn", "pending")
KINDS = ("express", "implied")
# At equal event time the more restrictive statement wins (C-3: a withdrawal wins a tie).
_TIE_RANK = {"granted": 0, "pending": 1, "denied": 2, "withdrawn": 3}
# C-7: how long implied consent lasts, by what implied it (CASL s. 10(10)).
IMPLIED_LIFETIME = {"purchase": timedelta(days=2 * 365), "inquiry": timedelta(days=182)}
# Not a channel anyone is messaged on, so not in CHANNELS (a `Consent Updated` cannot
# name it): the browser or device an opt-out preference signal came from (P-5, Global
# Privacy Control). Its identifier is `anonymous_id:<id>` or `user_id:<id>`, the id the
# signalling client sent; see consent/gpc.py.
BROWSER = "browser"
# The identifier kind a channel's consent is given for (C-6).
IDENTIFIER_KIND = {
    "email": "email",
    "sms": "phone",
    "whatsapp": "phone",
    "phone": "phone",
    "postal": "postal",
    "push": "push",
    BROWSER: "browser",
}
# SMS-6a: grants on these channels are recorded with the age check that gated them.
# WhatsApp too: Meta's policy asks for age-appropriate messaging of regulated goods
# "through technical and organisational measures", and the evidence costs nothing; the
# guard refuses ungated grants on SMS only (carriers; see guard.AGE_GATED_CHANNELS).
AGE_GATE_CHANNELS = ("sms", "whatsapp")
AGE_GATE = "age_gate"  # the proof key, and the `Consent Updated` property
# What an `age_gate` property may hold: the check, described as `Age Verified` does.
_AGE_GATE_TEXT = {"method": 60, "provider": 120, "reference": 255}
# Soft opt-in evidence (E-3): the sale or negotiation, and the opt-out offered.
SOFT_OPT_IN_SALE = ("order_id", "inquiry_id")
SOFT_OPT_IN_OFFERED = "opt_out_offered"
SECRET_NAME = "consent-ledger"
_PERSONAL = ("identifier", "ip", "user_agent", "proof")
# Proof fields with a column of their own; any other property is kept in `proof`.
_PROOF_COLUMNS = ("url", "message_id", "keyword", "recorded_by", "ip", "user_agent", "connection")
_KNOWN = {
    "channel",
    "purpose",
    "status",
    "kind",
    "identifier",
    "text",
    "expires_at",
    "basis",
    "legal_basis",
    "needs_review",
    AGE_GATE,  # kept in proof once checked (SMS-6a)
    *_PROOF_COLUMNS,
}


class ConsentError(PropertyError):
    """A consent statement that cannot be recorded; `field` names the offending part."""


@dataclass
class ConsentStatement:
    """One validated consent statement, ready to append."""

    channel: str
    purpose: str
    status: str
    kind: str
    event_time: datetime
    identifier: str | None = None  # the normalised key; None: the profile's own
    text: str | None = None
    expires_at: datetime | None = None
    legal_basis: str | None = None
    url: str | None = None
    message_id: str | None = None
    keyword: str | None = None
    recorded_by: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    connection: str | None = None
    source_id: int | None = None
    needs_review: bool = False
    proof: dict[str, Any] = field(default_factory=dict)
    received_at: datetime | None = None


def _text(props: Mapping[str, Any], name: str, limit: int = 2000) -> str | None:
    value = props.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ConsentError(name, f"expected a string, got {type(value).__name__}")
    text = str(value).strip()
    if len(text) > limit:
        raise ConsentError(name, f"longer than {limit} characters")
    return text


def _choice(
    props: Mapping[str, Any], name: str, allowed: Sequence[str], default: str | None
) -> str:
    value = props.get(name, default)
    if value is None:
        raise ConsentError(name, f"required, one of {', '.join(allowed)}")
    if not isinstance(value, str) or value.strip().lower() not in allowed:
        raise ConsentError(name, f"{value!r} is not one of {', '.join(allowed)}")
    return value.strip().lower()


def normalize_consent_identifier(channel: str, raw: str, region: str = "US") -> str:
    """The key consent for `channel` is recorded under (raises ConsentError)."""
    kind = IDENTIFIER_KIND[channel]
    try:
        if kind == "email":
            return normalize_email(raw).key
        if kind == "phone":
            return normalize_phone(raw, region).key
    except InvalidIdentifier as exc:
        raise ConsentError("identifier", str(exc)) from None
    value = raw.strip()
    if not value:
        raise ConsentError("identifier", "empty")
    return value


def parse_statement(
    props: Mapping[str, Any],
    *,
    event_time: datetime,
    region: str = "US",
    purposes: Sequence[str] = PURPOSES,
) -> ConsentStatement:
    """A `Consent Updated` event's properties as a statement (raises ConsentError).

    What the statement alone shows is checked here; whether the profile it lands on is
    an EU/UK recipient is checked when it is recorded (`check_eu_uk_basis`)."""
    channel = _choice(props, "channel", CHANNELS, None)
    purpose = _choice(props, "purpose", purposes, "marketing")
    status = _choice(props, "status", STATUSES, None)
    legal_basis = _text(props, "legal_basis", 40)
    soft = legal_basis is not None and legal_basis.lower() == SOFT_OPT_IN
    if soft:
        legal_basis = SOFT_OPT_IN
    # E-3: the soft opt-in is implied consent, so that is its default kind.
    kind = _choice(props, "kind", KINDS, "implied" if soft else "express")
    raw_identifier = _text(props, "identifier", 320)
    identifier = (
        None
        if raw_identifier is None
        else normalize_consent_identifier(channel, raw_identifier, region)
    )
    expires_at = None
    if props.get("expires_at") not in (None, ""):
        try:
            expires_at = parse_timestamp(str(props["expires_at"]))
        except ValueError:
            raise ConsentError("expires_at", "expected an ISO 8601 time") from None
    basis = _text(props, "basis", 40)
    extra = {k: v for k, v in props.items() if k not in _KNOWN}
    if soft:
        extra.update(_soft_opt_in(props, kind=kind, status=status))
    # E-3 before C-7: an EU/UK number shows on its own that only the soft opt-in will do.
    _refuse_implied_without_basis(
        channel, purpose, status, kind, legal_basis, identifier, jurisdiction=None
    )
    if kind == "implied" and status == "granted" and expires_at is None:
        if basis in IMPLIED_LIFETIME:
            expires_at = event_time + IMPLIED_LIFETIME[basis]
        elif not soft:  # the soft opt-in has no statutory term: it ends on opt-out
            raise ConsentError(
                "expires_at", "implied consent needs expires_at or basis purchase|inquiry (C-7)"
            )
    review = props.get("needs_review", False)
    if not isinstance(review, bool):
        raise ConsentError("needs_review", "expected true or false")
    if basis is not None:
        extra["basis"] = basis
    if props.get(AGE_GATE) is not None:
        extra[AGE_GATE] = _age_gate(props[AGE_GATE], event_time)  # SMS-6a
    return ConsentStatement(
        channel=channel,
        purpose=purpose,
        status=status,
        kind=kind,
        event_time=event_time,
        identifier=identifier,
        text=_text(props, "text", 10_000),
        expires_at=expires_at,
        legal_basis=legal_basis,
        url=_text(props, "url"),
        message_id=_text(props, "message_id", 255),
        keyword=_text(props, "keyword", 60),
        recorded_by=_text(props, "recorded_by", 120),
        ip=_text(props, "ip", 64),
        user_agent=_text(props, "user_agent"),
        connection=_text(props, "connection", 100),
        needs_review=review,
        proof=extra,
    )


def _soft_opt_in(props: Mapping[str, Any], *, kind: str, status: str) -> dict[str, Any]:
    """E-3, PECR reg. 22(3): the evidence a soft opt-in grant must carry, normalised for
    the record's proof."""
    if kind != "implied":
        raise ConsentError(
            "kind", "the soft opt-in (PECR reg. 22) is implied consent: kind must be implied (E-3)"
        )
    if status != "granted":
        return {}  # an opt-out needs no evidence of the sale
    evidence = {name: _text(props, name, 255) for name in SOFT_OPT_IN_SALE}
    if not any(evidence.values()):
        raise ConsentError(
            "order_id",
            "the soft opt-in needs the sale or negotiation the details came from: "
            "order_id (a sale) or inquiry_id (a quote or enquiry) (E-3, PECR reg. 22(3)(a))",
        )
    offered = props.get(SOFT_OPT_IN_OFFERED)
    if offered is None:
        raise ConsentError(
            SOFT_OPT_IN_OFFERED,
            "the soft opt-in needs proof that an opt-out was offered when the details were "
            "collected: true (E-3, PECR reg. 22(3)(c))",
        )
    if not isinstance(offered, bool):
        raise ConsentError(SOFT_OPT_IN_OFFERED, "expected true or false")
    if not offered:
        raise ConsentError(
            SOFT_OPT_IN_OFFERED,
            "no opt-out was offered when the details were collected, so the soft opt-in "
            "does not apply: ask for consent (E-3, PECR reg. 22(3)(c))",
        )
    out: dict[str, Any] = {k: v for k, v in evidence.items() if v is not None}
    out[SOFT_OPT_IN_OFFERED] = True
    return out


def check_eu_uk_basis(statement: ConsentStatement, jurisdiction: str | None) -> None:
    """E-3: refuse an implied marketing grant for an EU/UK recipient that does not stand
    on the soft opt-in. `jurisdiction` is where the profile is placed (None: unknown;
    the identifier's number still counts). Raises ConsentError naming `legal_basis`."""
    _refuse_implied_without_basis(
        statement.channel,
        statement.purpose,
        statement.status,
        statement.kind,
        statement.legal_basis,
        statement.identifier,
        jurisdiction=jurisdiction,
    )


def _refuse_implied_without_basis(
    channel: str,
    purpose: str,
    status: str,
    kind: str,
    legal_basis: str | None,
    identifier: str | None,
    *,
    jurisdiction: str | None,
) -> None:
    if not implied_without_basis(
        channel=channel,
        purpose=purpose,
        status=status,
        kind=kind,
        legal_basis=legal_basis,
        identifier=identifier,
        jurisdiction=jurisdiction,
    ):
        return
    where = (
        f"the profile is placed in {jurisdiction}"
        if in_eu_uk(jurisdiction)
        else f"{identifier} is an EU/UK number"
    )
    raise ConsentError(
        "legal_basis",
        f"{where}: implied consent for an EU/UK recipient is only the soft opt-in; send "
        f"legal_basis {SOFT_OPT_IN} with order_id or inquiry_id and opt_out_offered: true, "
        "or record express consent (E-3, PECR reg. 22)",
    )


def _age_gate(value: Any, event_time: datetime) -> dict[str, Any]:
    """SMS-6a: the age check that gated a grant, as the event states it."""
    if not isinstance(value, Mapping):
        raise ConsentError(
            AGE_GATE, "expected an object: {level, method, provider, reference, passed_at}"
        )
    allowed = {"level", "passed_at", *_AGE_GATE_TEXT}
    for name in value:
        if name not in allowed:
            raise ConsentError(
                f"{AGE_GATE}.{name}", f"unknown; one of {', '.join(sorted(allowed))}"
            )
    raw_level = value.get("level")
    if raw_level is None or raw_level == "":
        valid = ", ".join(level.value for level in VerificationLevel)
        raise ConsentError(f"{AGE_GATE}.level", f"required, one of {valid}")
    if not isinstance(raw_level, str):
        kind = type(raw_level).__name__
        raise ConsentError(f"{AGE_GATE}.level", f"expected a string, got {kind}")
    try:
        level = VerificationLevel.parse(raw_level)
    except ValueError as exc:
        raise ConsentError(f"{AGE_GATE}.level", str(exc)) from None
    gate: dict[str, Any] = {"from": "event", "level": level.value}
    for name, limit in _AGE_GATE_TEXT.items():
        try:
            text = _text(value, name, limit)
        except ConsentError as exc:
            raise ConsentError(f"{AGE_GATE}.{name}", exc.message) from None
        if text is not None:
            gate[name] = text
    if value.get("passed_at") not in (None, ""):
        try:
            passed = parse_timestamp(str(value["passed_at"]))
        except ValueError:
            raise ConsentError(f"{AGE_GATE}.passed_at", "expected an ISO 8601 time") from None
        if passed > event_time:
            raise ConsentError(
                f"{AGE_GATE}.passed_at",
                "after the consent it gated: the age check comes first (SMS-6a)",
            )
        gate["passed_at"] = passed.isoformat()
    return gate


# -- hashing ------------------------------------------------------------------------


def _canonical(value: Mapping[str, Any]) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def personal_hash(key: bytes, row: Mapping[str, Any]) -> str:
    return hmac.new(
        key, _canonical({name: row.get(name) for name in _PERSONAL}), hashlib.sha256
    ).hexdigest()


def record_hash(row: Mapping[str, Any]) -> str:
    """SHA-256 over the previous hash and the record's non-personal content."""
    content = {
        "chain_id": row["chain_id"],
        "seq": row["seq"],
        "channel": row["channel"],
        "purpose": row["purpose"],
        "status": row["status"],
        "kind": row["kind"],
        "identifier_hash": row["identifier_hash"],
        "event_time": _iso(row["event_time"]),
        "received_at": _iso(row["received_at"]),
        "expires_at": _iso(row["expires_at"]),
        "source_id": row["source_id"],
        "connection": row["connection"],
        "legal_basis": row["legal_basis"],
        "text_hash": row["text_hash"],
        "url": row["url"],
        "message_id": row["message_id"],
        "keyword": row["keyword"],
        "recorded_by": row["recorded_by"],
        "needs_review": bool(row["needs_review"]),
        "personal_hash": row["personal_hash"],
    }
    return hashlib.sha256((row["prev_hash"] or "").encode() + _canonical(content)).hexdigest()


def ledger_key(conn: Connection) -> bytes:
    return installation_secret(conn, SECRET_NAME)


# -- appending ----------------------------------------------------------------------


def _store_text(conn: Connection, text: str, at: datetime) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()
    if conn.scalar(select(consent_texts.c.hash).where(consent_texts.c.hash == digest)) is None:
        try:
            with conn.begin_nested():
                conn.execute(
                    consent_texts.insert().values(hash=digest, text=text, first_seen_at=at)
                )
        except IntegrityError:
            pass  # stored meanwhile by another transaction: same text, same hash
    return digest


def _wins(status: str, at: datetime, current_status: str, current_at: datetime) -> bool:
    if at != current_at:
        return at > current_at
    return _TIE_RANK[status] > _TIE_RANK[current_status]


def append(
    conn: Connection, profile_id: int, statement: ConsentStatement, *, key: bytes | None = None
) -> int:
    """Append one record to the profile's chain and update the derived state.

    `statement.identifier` must be set (C-2: a record without the consented identifier
    is invalid). Returns the record id.
    """
    (record_id,) = append_many(conn, [(profile_id, statement)], key=key)
    return record_id


def _chain_heads(conn: Connection, profile_ids: Sequence[int]) -> dict[int, tuple[int, str]]:
    """Each chain's last (seq, record_hash), for the chains of these profiles."""
    heads: dict[int, tuple[int, str]] = {}
    ids = sorted(set(profile_ids))
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        last = (
            select(consent_records.c.chain_id, func.max(consent_records.c.seq).label("seq"))
            .where(consent_records.c.chain_id.in_(chunk))
            .group_by(consent_records.c.chain_id)
            .subquery()
        )
        rows = conn.execute(
            select(consent_records.c.chain_id, consent_records.c.seq, consent_records.c.record_hash)
            .join(
                last,
                and_(
                    consent_records.c.chain_id == last.c.chain_id,
                    consent_records.c.seq == last.c.seq,
                ),
            )
        )
        heads.update({int(r.chain_id): (int(r.seq), str(r.record_hash)) for r in rows})
    return heads


def append_many(
    conn: Connection,
    items: Sequence[tuple[int, ConsentStatement]],
    *,
    key: bytes | None = None,
) -> list[int]:
    """Append records (profile id, statement), in order, to their profiles' chains, and
    update the derived state; returns the record ids in the same order.

    The same as appending them one by one, in a few statements for the whole batch: a
    pipeline batch of customers with consent costs a handful of round trips, not six
    per record.
    """
    if not items:
        return []
    for _, statement in items:
        if statement.identifier is None:
            raise ConsentError("identifier", "no address or number to record the consent for")
    key = key or ledger_key(conn)
    now = utcnow()
    heads = _chain_heads(conn, [pid for pid, _ in items])
    texts: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    for profile_id, statement in items:
        proof = statement.proof
        if (
            statement.channel in AGE_GATE_CHANNELS
            and statement.status == "granted"
            and AGE_GATE not in proof
        ):
            gate = age_check_before(conn, profile_id, statement.event_time)
            if gate is not None:  # SMS-6a: recorded together with the check that gated it
                proof = {**proof, AGE_GATE: gate}
        text_hash = None
        if statement.text is not None:
            if statement.text not in texts:
                texts[statement.text] = _store_text(conn, statement.text, now)
            text_hash = texts[statement.text]
        last = heads.get(profile_id)
        assert statement.identifier is not None
        row: dict[str, Any] = {
            "profile_id": profile_id,
            "chain_id": profile_id,
            "seq": 1 if last is None else last[0] + 1,
            "channel": statement.channel,
            "purpose": statement.purpose,
            "status": statement.status,
            "kind": statement.kind,
            "identifier": statement.identifier,
            "identifier_hash": identifier_hmac(
                key, IDENTIFIER_KIND[statement.channel], statement.identifier
            ),
            "event_time": statement.event_time,
            "received_at": statement.received_at or now,
            "expires_at": statement.expires_at,
            "source_id": statement.source_id,
            "connection": statement.connection,
            "legal_basis": statement.legal_basis,
            "text_hash": text_hash,
            "url": statement.url,
            "message_id": statement.message_id,
            "keyword": statement.keyword,
            "recorded_by": statement.recorded_by,
            "ip": statement.ip,
            "user_agent": statement.user_agent,
            "proof": proof or None,
            "needs_review": statement.needs_review,
            "prev_hash": None if last is None else last[1],
        }
        row["personal_hash"] = personal_hash(key, row)
        row["record_hash"] = record_hash(row)
        heads[profile_id] = (row["seq"], row["record_hash"])
        rows.append(row)
    inserted = conn.execute(
        consent_records.insert().returning(consent_records.c.id, sort_by_parameter_order=True),
        rows,
    )
    record_ids = [int(r) for r in inserted.scalars()]
    _update_states(conn, rows, record_ids)
    mark_due(conn, [row["profile_id"] for row in rows])  # segments testing consent re-check
    audit_many(
        conn,
        "consent.recorded",
        [
            AuditEntry(
                actor=statement.recorded_by or SYSTEM,
                profile_id=row["profile_id"],
                detail={
                    "record_id": record_id,
                    "channel": row["channel"],
                    "purpose": row["purpose"],
                    "status": row["status"],
                    "record_hash": row["record_hash"],  # the ledger's head, for verify-ledger
                },
            )
            for (_, statement), row, record_id in zip(items, rows, record_ids, strict=True)
        ],
    )
    return record_ids


def age_check_before(conn: Connection, profile_id: int, at: datetime) -> dict[str, Any] | None:
    """SMS-6a: the profile's age check as of `at`, to link to a grant that carries no
    `age_gate` of its own: among its age records with event time at or before `at`,
    the one its age state would have been decided by then (A-5: dated records first,
    the higher level, then the youngest date; undated ones only when none is dated,
    the higher level). None when there is none. The date of birth stays in the age
    record; the link names it."""
    rows = conn.execute(
        select(
            age_records.c.id,
            age_records.c.level,
            age_records.c.method,
            age_records.c.dob,
            age_records.c.event_time,
        ).where(age_records.c.profile_id == profile_id, age_records.c.event_time <= at)
    ).all()
    ranked = []
    for r in rows:
        try:
            level = VerificationLevel.parse(r.level)
        except ValueError:
            continue  # an unreadable level backs nothing
        order = (r.dob is not None, level.rank, r.dob or date.min, r.event_time, r.id)
        ranked.append((order, r, level))
    if not ranked:
        return None
    _, best, level = max(ranked, key=lambda item: item[0])
    gate: dict[str, Any] = {
        "from": "age_record",
        "age_record_id": int(best.id),
        "level": level.value,
        "checked_at": best.event_time.isoformat(),
        "dated": best.dob is not None,
    }
    if best.method:
        gate["method"] = best.method
    return gate


StateKey = tuple[int, str, str, str]  # profile, channel, purpose, identifier hash


def _update_states(
    conn: Connection, rows: Sequence[Mapping[str, Any]], record_ids: Sequence[int]
) -> None:
    """Move each (profile, channel, purpose, identifier) state to the winning record."""
    profile_ids = sorted({int(row["profile_id"]) for row in rows})
    current: dict[StateKey, tuple[str, datetime]] = {}
    for i in range(0, len(profile_ids), 500):
        for r in conn.execute(
            select(
                consent_state.c.profile_id,
                consent_state.c.channel,
                consent_state.c.purpose,
                consent_state.c.identifier_hash,
                consent_state.c.status,
                consent_state.c.event_time,
            ).where(consent_state.c.profile_id.in_(profile_ids[i : i + 500]))
        ):
            current[(int(r.profile_id), r.channel, r.purpose, r.identifier_hash)] = (
                r.status,
                r.event_time,
            )
    new: dict[StateKey, dict[str, Any]] = {}
    changed: dict[StateKey, dict[str, Any]] = {}
    for row, record_id in zip(rows, record_ids, strict=True):
        state_key: StateKey = (
            int(row["profile_id"]), row["channel"], row["purpose"], row["identifier_hash"]
        )
        values = {
            "identifier": row["identifier"],
            "status": row["status"],
            "kind": row["kind"],
            "event_time": row["event_time"],
            "expires_at": row["expires_at"],
            "record_id": record_id,
        }
        held = current.get(state_key)
        if held is not None and not _wins(row["status"], row["event_time"], *held):
            continue
        current[state_key] = (row["status"], row["event_time"])
        if held is None or state_key in new:
            new[state_key] = values
        else:
            changed[state_key] = values
    if new:
        conn.execute(
            consent_state.insert(),
            [
                {"profile_id": k[0], "channel": k[1], "purpose": k[2], "identifier_hash": k[3],
                 **v}
                for k, v in new.items()
            ],
        )
    if changed:
        conn.execute(
            update(consent_state)
            .where(
                consent_state.c.profile_id == bindparam("k_profile"),
                consent_state.c.channel == bindparam("k_channel"),
                consent_state.c.purpose == bindparam("k_purpose"),
                consent_state.c.identifier_hash == bindparam("k_hash"),
            )
            .values(
                identifier=bindparam("v_identifier"),
                status=bindparam("v_status"),
                kind=bindparam("v_kind"),
                event_time=bindparam("v_event_time"),
                expires_at=bindparam("v_expires_at"),
                record_id=bindparam("v_record_id"),
            ),
            [
                {"k_profile": k[0], "k_channel": k[1], "k_purpose": k[2], "k_hash": k[3],
                 **{f"v_{name}": value for name, value in v.items()}}
                for k, v in changed.items()
            ],
        )


# -- reading ------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentState:
    channel: str
    purpose: str
    identifier: str | None
    status: str  # granted | denied | withdrawn | pending | expired
    kind: str
    event_time: datetime
    expires_at: datetime | None
    record_id: int


def current_consent(
    conn: Connection, profile_id: int, *, now: datetime | None = None
) -> list[ConsentState]:
    """The profile's consent per channel, purpose and identifier; granted implied
    consent past its expiry reads as `expired` (C-7)."""
    now = now or utcnow()
    out = []
    for r in conn.execute(
        select(consent_state)
        .where(consent_state.c.profile_id == profile_id)
        .order_by(consent_state.c.channel, consent_state.c.purpose, consent_state.c.identifier)
    ):
        status = r.status
        if status == "granted" and r.expires_at is not None and r.expires_at <= now:
            status = "expired"
        out.append(
            ConsentState(
                r.channel,
                r.purpose,
                r.identifier,
                status,
                r.kind,
                r.event_time,
                r.expires_at,
                int(r.record_id),
            )
        )
    return out


def channel_status(states: Sequence[ConsentState], channel: str, purpose: str = "marketing") -> str:
    """One word for a channel: `granted` if any of its identifiers is (C-4: no record is
    `unknown`, never consent)."""
    mine = [s.status for s in states if s.channel == channel and s.purpose == purpose]
    if not mine:
        return "unknown"
    if "granted" in mine:
        return "granted"
    for status in ("withdrawn", "denied", "expired", "pending"):
        if status in mine:
            return status
    return mine[0]


# -- merges -------------------------------------------------------------------------


@merge_step("consent_state")
def _merge_consent_state(conn: Connection, survivor: int, merged: int) -> None:
    """Each identifier keeps its own consent (C-6); where both profiles hold state for
    the same identifier, the winner by the ledger's rule (C-3) stays."""
    theirs = conn.execute(select(consent_state).where(consent_state.c.profile_id == merged)).all()
    for row in theirs:
        where = and_(
            consent_state.c.profile_id == survivor,
            consent_state.c.channel == row.channel,
            consent_state.c.purpose == row.purpose,
            consent_state.c.identifier_hash == row.identifier_hash,
        )
        mine = conn.execute(
            select(consent_state.c.status, consent_state.c.event_time).where(where)
        ).first()
        if mine is not None and _wins(row.status, row.event_time, mine.status, mine.event_time):
            conn.execute(
                update(consent_state)
                .where(where)
                .values(
                    identifier=row.identifier,
                    status=row.status,
                    kind=row.kind,
                    event_time=row.event_time,
                    expires_at=row.expires_at,
                    record_id=row.record_id,
                )
            )
        if mine is not None:
            conn.execute(
                delete(consent_state).where(
                    consent_state.c.profile_id == merged,
                    consent_state.c.channel == row.channel,
                    consent_state.c.purpose == row.purpose,
                    consent_state.c.identifier_hash == row.identifier_hash,
                )
            )
    conn.execute(
        update(consent_state)
        .where(consent_state.c.profile_id == merged)
        .values(profile_id=survivor)
    )


# -- verification -------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerProblem:
    record_id: int
    chain_id: int
    seq: int
    problem: str


def verify_ledger(conn: Connection, *, key: bytes | None = None) -> tuple[int, list[LedgerProblem]]:
    """Check every chain (C-2a): sequence without gaps, each record's link to the one
    before, its own hash, and the HMAC of its personal columns where they are still
    held. Returns (records checked, problems)."""
    key = key or ledger_key(conn)
    problems: list[LedgerProblem] = []
    checked = 0
    chain: int | None = None
    expected_seq = 1
    prev: str | None = None
    rows = conn.execute(
        select(consent_records).order_by(consent_records.c.chain_id, consent_records.c.seq)
    ).mappings()
    for raw in rows:
        row: dict[str, Any] = dict(raw)
        checked += 1
        if row["chain_id"] != chain:
            chain, expected_seq, prev = row["chain_id"], 1, None

        def problem(text: str, row: Mapping[str, Any] = row) -> None:
            problems.append(LedgerProblem(row["id"], row["chain_id"], row["seq"], text))

        if row["seq"] != expected_seq:
            problem(f"sequence jumps from {expected_seq - 1} to {row['seq']}: records removed")
        if row["prev_hash"] != prev:
            problem("does not link to the record before it")
        if record_hash(row) != row["record_hash"]:
            problem("content changed after it was written")
        erased = all(row[name] is None for name in _PERSONAL)
        if not erased and personal_hash(key, row) != row["personal_hash"]:
            problem("personal columns changed after they were written")
        expected_seq = row["seq"] + 1
        prev = row["record_hash"]
    return checked, problems
