"""The guard: may this profile be in an audience, or be sent to, for an age-restricted
category on a channel? (Compliance A-6 with A-1..A-5, C-3, C-4, C-6, C-7, E-3, SMS-6a,
P-5.)

One function, `guard(facts, restriction, now)`, with one meaning. It admits a profile
only if, at `now`:

- the profile exists, is live (not merged into another) and not erased;
- it is of age for the category in its jurisdiction, on that jurisdiction's local
  date (`age.compute.eligibility`; a prohibited category, an unknown jurisdiction or
  rule, a missing or future date of birth: not admitted);
- the level backing its date of birth is at least the restriction's required level;
- consent for the channel and purpose is currently granted, not expired, for at least
  one identifier the profile holds (C-4: no record is not consent; C-6: consent
  belongs to the address or number it was given for); an implied marketing grant for
  an EU/UK recipient counts only on the soft opt-in (E-3); and on SMS the grant was
  age-gated (SMS-6a): an age check of at least `SMS_AGE_GATE_LEVEL` that the person
  passed for the category came first;
- for a sharing destination (`Restriction(..., sharing=True)`: advertising audiences,
  anything that sells or shares data under the CCPA), it has not opted out of sale and
  sharing (P-5, `sale_sharing_opted_out`). That is opt-out, not opt-in: no record
  means not opted out.

Segments call it for every member they would admit (`admitted_profiles`), and sync
calls it again at send time (defence in depth), whatever the segment's own rule says.
`GuardDecision.identifiers` are the consented identifiers: sync sends only to those.
The facts come from `load_facts`, a few queries for any number of profiles. See
docs/guard.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Final

from sqlalchemy import Connection, func, select

from guestlist.age.compute import EligibilityStatus, eligibility
from guestlist.age.levels import VerificationLevel, required_level_for
from guestlist.age.names import parse_category
from guestlist.consent.eu_uk import implied_without_basis
from guestlist.consent.ledger import AGE_GATE, CHANNELS, IDENTIFIER_KIND, PURPOSES
from guestlist.store.tables import (
    age_records,
    age_state,
    consent_records,
    consent_state,
    identifiers,
    profiles,
)

CHUNK: Final = 5000  # bound on IN (...) lists
# Identifier kinds the identity graph holds. Consent for other channels' identifiers
# (a postal address, a push token) is held by the consent record itself.
GRAPH_KINDS: Final = frozenset({"email", "phone"})
# SMS-6a: channels whose grants must have been age-gated for a restricted category.
# Carriers vet an SMS programme's opt-in (Twilio rejects an alcohol campaign without a
# 21+ age gate, error 30956), so SMS consent that no age check gated is not consent a
# SHAFT programme can use. WhatsApp is not here: Meta reviews no opt-in flow, and its
# age rule (no regulated-goods messages to minors) is the guard's own age check; its
# grants are still recorded with their age check (consent.ledger.AGE_GATE_CHANNELS).
AGE_GATED_CHANNELS: Final = frozenset({"sms"})
# The weakest check that counts as an SMS age gate: a date of birth typed by the person
# (the minimum for SMS age gates; a bare "I am 21+" checkbox is not one, and Twilio
# warns even a birth-date field may not be enough, so a shop may raise it).
SMS_AGE_GATE_LEVEL: Final = VerificationLevel.DOB_PROVIDED


class Reason(StrEnum):
    """Why a profile is not admitted; a decision lists every reason that applies."""

    NOT_FOUND = "not_found"  # no such profile
    MERGED = "merged"  # merged into another profile: ask about the survivor
    ERASED = "erased"  # personal data erased (P-2)
    # Age (A-1, A-2, A-5): one reason, the first failing check in `eligibility`'s
    # order, except that a profile with neither jurisdiction nor date is `unknown_dob`.
    UNKNOWN_JURISDICTION = "unknown_jurisdiction"  # nowhere to judge the age in
    UNKNOWN_JURISDICTION_RULE = "unknown_jurisdiction_rule"  # no row in the age table
    PROHIBITED = "prohibited"  # the category is not sold or marketed there
    UNKNOWN_DOB = "unknown_dob"
    FUTURE_DOB = "future_dob"
    UNDER_AGE = "under_age"
    # Level, checked on its own.
    INSUFFICIENT_LEVEL = "insufficient_level"
    # Consent on the channel and purpose (C-3, C-4, C-6, C-7): one reason, the most
    # telling status among the identifiers the profile holds.
    CONSENT_UNKNOWN = "consent_unknown"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    CONSENT_DENIED = "consent_denied"
    CONSENT_EXPIRED = "consent_expired"
    CONSENT_PENDING = "consent_pending"
    # The grant is there but does not count: implied consent for an EU/UK recipient
    # without the soft opt-in (E-3); SMS consent no age check gated (SMS-6a).
    IMPLIED_CONSENT_WITHOUT_BASIS = "implied_consent_without_basis"
    SMS_CONSENT_NOT_AGE_GATED = "sms_consent_not_age_gated"
    # Sharing destinations only (P-5): the person opted out of sale and sharing.
    SALE_SHARING_OPTED_OUT = "sale_sharing_opted_out"


SALE_SHARING: Final = "sale_sharing"
OPT_OUT_STATUSES: Final = frozenset({"withdrawn", "denied"})

# Statuses the guard gives a grant that does not count (never stored).
_WITHOUT_BASIS: Final = "without_basis"
_NOT_AGE_GATED: Final = "not_age_gated"
_CONSENT_REASONS: Final = (
    # A grant that is there but does not count says the most: it is what to fix.
    (_WITHOUT_BASIS, Reason.IMPLIED_CONSENT_WITHOUT_BASIS),
    (_NOT_AGE_GATED, Reason.SMS_CONSENT_NOT_AGE_GATED),
    ("withdrawn", Reason.CONSENT_WITHDRAWN),
    ("denied", Reason.CONSENT_DENIED),
    ("expired", Reason.CONSENT_EXPIRED),
    ("pending", Reason.CONSENT_PENDING),
)


@dataclass(frozen=True, init=False)
class Restriction:
    """What an audience or a destination is marked with.

    `Restriction("alcohol.spirits", channel="sms")`; `required_level` defaults to the
    category's A-4 level (`age.levels.required_level_for`). Names are validated.
    `sharing=True` marks an advertising or data-sharing destination (a Facebook custom
    audience, Google Customer Match): it also refuses whoever opted out of sale and
    sharing (P-5).
    """

    category: str
    required_level: VerificationLevel
    channel: str
    purpose: str
    sharing: bool

    def __init__(
        self,
        category: str,
        *,
        channel: str,
        purpose: str = "marketing",
        required_level: VerificationLevel | str | None = None,
        sharing: bool = False,
    ) -> None:
        name = parse_category(category)
        level = (
            required_level_for(name)
            if required_level is None
            else VerificationLevel.parse(required_level)
        )
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}; one of {', '.join(CHANNELS)}")
        if purpose not in PURPOSES:
            raise ValueError(f"unknown purpose {purpose!r}; one of {', '.join(PURPOSES)}")
        object.__setattr__(self, "category", name)
        object.__setattr__(self, "required_level", level)
        object.__setattr__(self, "channel", channel)
        object.__setattr__(self, "purpose", purpose)
        object.__setattr__(self, "sharing", bool(sharing))


@dataclass(frozen=True)
class ConsentFact:
    """One consent_state row: the current status for one identifier."""

    channel: str
    purpose: str
    identifier: str | None  # the normalised key; None once erased
    status: str  # granted | denied | withdrawn | pending
    expires_at: datetime | None = None
    event_time: datetime | None = None  # of the record that decided it (C-3)
    kind: str = "express"  # express | implied
    legal_basis: str | None = None  # of the record that decided it (E-3: soft_opt_in)
    # SMS-6a: the level of the age gate that record itself states (`age_gate` on the
    # `Consent Updated`, or restored with it by START); None when it states none.
    age_gate: VerificationLevel | None = None


@dataclass(frozen=True)
class AgeCheck:
    """An age check on file (SMS-6a): a level and date of birth (None: an undated gate
    passed) that the profile's age records have stated since `checked_at`, the event
    time of the first record stating them."""

    checked_at: datetime
    level: VerificationLevel
    dob: date | None = None


@dataclass(frozen=True)
class ProfileFacts:
    """Everything the guard reads about one profile (see `load_facts`)."""

    profile_id: int
    exists: bool = True
    merged_into: int | None = None
    erased: bool = False
    dob: date | None = None
    level: VerificationLevel | None = None
    jurisdiction: str | None = None
    consents: tuple[ConsentFact, ...] = ()
    identifiers: frozenset[tuple[str, str]] = frozenset()  # (kind, key) held
    age_checks: tuple[AgeCheck, ...] = ()  # every (level, dob) stated, first time (SMS-6a)


@dataclass(frozen=True)
class GuardDecision:
    admitted: bool
    reasons: list[str] = field(default_factory=list)  # empty exactly when admitted
    # Held identifiers with consent granted on the channel and purpose (C-6: the only
    # ones a send may use), sorted.
    identifiers: tuple[str, ...] = ()


def guard(facts: ProfileFacts, restriction: Restriction, now: datetime) -> GuardDecision:
    """Admit `facts`' profile for `restriction` at `now` (timezone-aware), or say why not."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    reasons: list[str] = []
    if not facts.exists:
        reasons.append(Reason.NOT_FOUND)
    if facts.merged_into is not None:
        reasons.append(Reason.MERGED)
    if facts.erased:
        reasons.append(Reason.ERASED)
    reasons.extend(_age_reasons(facts, restriction, now))
    consented, consent_reason = _consent(facts, restriction, now)
    if consent_reason is not None:
        reasons.append(consent_reason)
    if restriction.sharing and sale_sharing_opted_out(facts, now):
        reasons.append(Reason.SALE_SHARING_OPTED_OUT)
    return GuardDecision(admitted=not reasons, reasons=reasons, identifiers=consented)


def _age_reasons(facts: ProfileFacts, restriction: Restriction, now: datetime) -> list[str]:
    out: list[str] = []
    if facts.jurisdiction is None:
        # Nowhere to judge in; with no date of birth either, the missing date is what
        # is missing (a profile without age records has neither).
        out.append(Reason.UNKNOWN_DOB if facts.dob is None else Reason.UNKNOWN_JURISDICTION)
    else:
        try:
            result = eligibility(
                facts.dob,
                facts.jurisdiction,
                restriction.category,
                now,
                level=facts.level or VerificationLevel.SELF_DECLARED,
                required_level=restriction.required_level,
            )
        except (ValueError, LookupError):  # a stored code the table cannot read
            out.append(Reason.UNKNOWN_JURISDICTION)
        else:
            if result.status not in (
                EligibilityStatus.ELIGIBLE,
                EligibilityStatus.INSUFFICIENT_LEVEL,  # reported below, in every case
            ):
                out.append(Reason(result.status.value))
    if facts.level is None or facts.level < restriction.required_level:
        out.append(Reason.INSUFFICIENT_LEVEL)
    return out


def _consent(
    facts: ProfileFacts, restriction: Restriction, now: datetime
) -> tuple[tuple[str, ...], Reason | None]:
    kind = IDENTIFIER_KIND[restriction.channel]
    granted: set[str] = set()
    statuses: set[str] = set()
    for fact in facts.consents:
        if fact.channel != restriction.channel or fact.purpose != restriction.purpose:
            continue
        if fact.identifier is None:
            continue
        if kind in GRAPH_KINDS and (kind, fact.identifier) not in facts.identifiers:
            continue  # C-6: consent given for an address or number the profile lacks
        status = fact.status
        if status == "granted" and fact.expires_at is not None and fact.expires_at <= now:
            status = "expired"  # C-7
        if status == "granted" and _without_basis(facts, fact):
            status = _WITHOUT_BASIS  # E-3
        elif (
            status == "granted"
            and restriction.channel in AGE_GATED_CHANNELS
            and not age_gated(facts, fact, restriction.category)
        ):
            status = _NOT_AGE_GATED  # SMS-6a
        if status == "granted":
            granted.add(fact.identifier)
        statuses.add(status)
    if granted:
        return tuple(sorted(granted)), None
    for status, reason in _CONSENT_REASONS:
        if status in statuses:
            return (), reason
    return (), Reason.CONSENT_UNKNOWN  # C-4


def _without_basis(facts: ProfileFacts, fact: ConsentFact) -> bool:
    """E-3 (defence in depth): an implied marketing grant for someone the facts place in
    the EU/UK, or whose number is there, that does not stand on the soft opt-in. The
    ledger refuses such statements when it knows; this catches the ones recorded before
    the profile was placed there."""
    return implied_without_basis(
        channel=fact.channel,
        purpose=fact.purpose,
        status=fact.status,
        kind=fact.kind,
        legal_basis=fact.legal_basis,
        identifier=fact.identifier,
        jurisdiction=facts.jurisdiction,
    )


def age_gated(facts: ProfileFacts, fact: ConsentFact, category: str) -> bool:
    """SMS-6a: whether an age check gated the grant `fact` for `category`.

    Either the grant states its gate (`age_gate`) at `SMS_AGE_GATE_LEVEL` or above, or
    the profile's age as of the grant's event time — its age state derived from the
    checks on file by then (A-5: dated checks first, the higher level, then the
    youngest date; else the highest undated gate) — reaches that level and, when it
    has a date of birth, made the person of age for `category` on the grant's local
    date in the profile's jurisdiction. A check that showed a minor gated nothing. A
    check that arrives later but is dated earlier counts: the decision depends on what
    was said and when, not on arrival order.
    """
    if fact.age_gate is not None and fact.age_gate >= SMS_AGE_GATE_LEVEL:
        return True
    at = fact.event_time
    if at is None:
        return False  # when the grant was given is unknown: nothing shown to precede it
    before = [c for c in facts.age_checks if c.checked_at <= at]
    dated = [c for c in before if c.dob is not None]
    if not dated:
        return any(c.level >= SMS_AGE_GATE_LEVEL for c in before)
    best = max(dated, key=lambda c: (c.level.rank, c.dob))
    if best.level < SMS_AGE_GATE_LEVEL or facts.jurisdiction is None:
        return False
    try:
        result = eligibility(
            best.dob,
            facts.jurisdiction,
            category,
            at,
            level=best.level,
            required_level=VerificationLevel.SELF_DECLARED,
        )
    except (ValueError, LookupError):
        return False
    return result.status is EligibilityStatus.ELIGIBLE


def _held(facts: ProfileFacts, channel: str, identifier: str | None) -> bool:
    """Whether consent recorded for `identifier` on `channel` is the profile's (C-6)."""
    if identifier is None:
        return False  # erased
    kind = IDENTIFIER_KIND.get(channel)
    return kind not in GRAPH_KINDS or (kind, identifier) in facts.identifiers


def sale_sharing_opted_out(facts: ProfileFacts, now: datetime | None) -> bool:
    """Whether the person has opted out of the sale and sharing of their data (P-5).

    CCPA/CPRA sale and sharing is opt-out: with no record the person has not opted out
    (unlike marketing consent, C-4, where no record is no consent). The right belongs
    to the person, not to one address, so the question is asked of the profile as a
    whole, across every channel and identifier of purpose `sale_sharing`:

    - any `withdrawn` or `denied` state opts the profile out, whatever identifier it
      was recorded for (a browser's Global Privacy Control signal, an SMS STOP, an
      email unsubscribe, a `Consent Updated`) — even one the profile no longer holds:
      an opt-out is never discounted;
    - until a later `granted` state (by event time; at a tie the opt-out wins, C-3)
      lifts it: one for an identifier the profile holds (C-6), not expired at `now`
      (C-7; `now=None` ignores expiry). `pending` and expired grants lift nothing.
    """
    latest_out: datetime | None = None
    out = False
    for fact in facts.consents:
        if fact.purpose == SALE_SHARING and fact.status in OPT_OUT_STATUSES:
            out = True
            if fact.event_time is None:
                return True  # undated: nothing can be later
            if latest_out is None or fact.event_time > latest_out:
                latest_out = fact.event_time
    if not out:
        return False
    assert latest_out is not None
    for fact in facts.consents:
        if (
            fact.purpose == SALE_SHARING
            and fact.status == "granted"
            and fact.event_time is not None
            and fact.event_time > latest_out
            and (now is None or fact.expires_at is None or fact.expires_at > now)
            and _held(facts, fact.channel, fact.identifier)
        ):
            return False
    return True


# -- loading ----------------------------------------------------------------------------


def load_facts(conn: Connection, profile_ids: Iterable[int]) -> dict[int, ProfileFacts]:
    """Facts for every id asked (an unknown id gets `exists=False`), in five queries
    per 5,000 profiles: profiles, age_state, consent_state (with its deciding record's
    legal basis and stated age gate), identifiers, age_records (grouped)."""
    wanted = sorted(set(profile_ids))
    out: dict[int, ProfileFacts] = {}
    for i in range(0, len(wanted), CHUNK):
        out.update(_load_chunk(conn, wanted[i : i + CHUNK]))
    return out


def _load_chunk(conn: Connection, ids: Sequence[int]) -> dict[int, ProfileFacts]:
    base = {
        int(r.id): r
        for r in conn.execute(
            select(profiles.c.id, profiles.c.merged_into, profiles.c.erased_at).where(
                profiles.c.id.in_(ids)
            )
        )
    }
    ages = {
        int(r.profile_id): r
        for r in conn.execute(
            select(
                age_state.c.profile_id,
                age_state.c.dob,
                age_state.c.level,
                age_state.c.jurisdiction,
            ).where(age_state.c.profile_id.in_(ids))
        )
    }
    consents: dict[int, list[ConsentFact]] = {}
    for r in conn.execute(
        select(
            consent_state.c.profile_id,
            consent_state.c.channel,
            consent_state.c.purpose,
            consent_state.c.identifier,
            consent_state.c.status,
            consent_state.c.expires_at,
            consent_state.c.event_time,
            consent_state.c.kind,
            consent_records.c.legal_basis,
            consent_records.c.proof[AGE_GATE].label("age_gate"),
        )
        .select_from(
            consent_state.outerjoin(
                consent_records, consent_records.c.id == consent_state.c.record_id
            )
        )
        .where(consent_state.c.profile_id.in_(ids))
    ):
        consents.setdefault(int(r.profile_id), []).append(
            ConsentFact(
                r.channel,
                r.purpose,
                r.identifier,
                r.status,
                r.expires_at,
                r.event_time,
                kind=r.kind,
                legal_basis=r.legal_basis,
                age_gate=_stated_gate(r.age_gate),
            )
        )
    checks: dict[int, list[AgeCheck]] = {}
    for check in conn.execute(
        select(
            age_records.c.profile_id,
            age_records.c.level,
            age_records.c.dob,
            func.min(age_records.c.event_time).label("checked_at"),
        )
        .where(age_records.c.profile_id.in_(ids))
        .group_by(age_records.c.profile_id, age_records.c.level, age_records.c.dob)
    ):
        level = _level(check.level)
        if level is not None:
            checks.setdefault(int(check.profile_id), []).append(
                AgeCheck(check.checked_at, level, check.dob)
            )
    held: dict[int, set[tuple[str, str]]] = {}
    for ident in conn.execute(
        select(identifiers.c.profile_id, identifiers.c.kind, identifiers.c.key).where(
            identifiers.c.profile_id.in_(ids), identifiers.c.kind.in_(sorted(GRAPH_KINDS))
        )
    ):
        held.setdefault(int(ident.profile_id), set()).add((ident.kind, ident.key))
    out: dict[int, ProfileFacts] = {}
    for pid in ids:
        row = base.get(pid)
        if row is None:
            out[pid] = ProfileFacts(pid, exists=False)
            continue
        age = ages.get(pid)
        out[pid] = ProfileFacts(
            profile_id=pid,
            merged_into=None if row.merged_into is None else int(row.merged_into),
            erased=row.erased_at is not None,
            dob=None if age is None else age.dob,
            level=None if age is None or age.level is None else _level(age.level),
            jurisdiction=None if age is None else age.jurisdiction,
            consents=tuple(consents.get(pid, ())),
            identifiers=frozenset(held.get(pid, ())),
            age_checks=tuple(sorted(checks.get(pid, ()), key=_check_order)),
        )
    return out


def _check_order(check: AgeCheck) -> tuple[datetime, int, date]:
    return (check.checked_at, check.level.rank, check.dob or date.min)


def _stated_gate(value: object) -> VerificationLevel | None:
    """The level of an age gate a consent record states itself (`from: event`), not
    one the ledger linked from an age record (the guard reads those records itself)."""
    if not isinstance(value, dict) or value.get("from") != "event":
        return None
    level = value.get("level")
    return _level(level) if isinstance(level, str) else None


def _level(name: str) -> VerificationLevel | None:
    try:
        return VerificationLevel.parse(name)
    except ValueError:
        return None  # an unreadable level backs nothing


def admitted_profiles(
    conn: Connection, profile_ids: Iterable[int], restriction: Restriction, now: datetime
) -> set[int]:
    """The ids among `profile_ids` that `guard` admits."""
    facts = load_facts(conn, profile_ids)
    return {pid for pid, f in facts.items() if guard(f, restriction, now).admitted}
