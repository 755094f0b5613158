"""`Age Verified` and the `birthday` trait, applied by the pipeline.

`Age Verified` is the canonical age event: POS ID scans, third-party checks, signup
forms and the API all state age through it (properties in docs/age.md). The tracking
API checks its properties when it accepts the call (a bad one is a 400 naming the
property). An identify carrying a Segment `birthday` trait is a date of birth typed by
the person: it counts as `dob_provided`, in the jurisdiction of the `address` on the
same call when that names its country. A malformed birthday trait is not refused
(the identify carries everything else too): it becomes an issue on its event.

Like consent, statements are planned before the events are written, so a statement
that cannot be recorded becomes an issue on its event, and recorded in the same
transaction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection

from guestlist.age.compute import InvalidDateOfBirth, parse_dob
from guestlist.age.levels import VerificationLevel
from guestlist.age.places import PlaceError, address_place, jurisdiction_of
from guestlist.age.records import AgeStatement, append_age_records
from guestlist.canonical import CanonicalEvent, PropertyError
from guestlist.capture.tracking import register_event_check
from guestlist.identity.graph import EventIdentity
from guestlist.profiles.trait_names import canonical_trait_name
from guestlist.store.types import utcnow

AGE_EVENT: Final = "Age Verified"
BIRTHDAY_TRAIT: Final = "birthday"
ADDRESS_TRAIT: Final = "address"
BIRTHDAY_METHOD: Final = "birthday_trait"  # `method` of records made from the trait
EARLIEST_DOB: Final = date(1900, 1, 1)
# The furthest any local date runs ahead of UTC (Kiribati, UTC+14): a date of birth
# after the date there is in the future everywhere.
_AHEAD_OF_UTC: Final = timedelta(hours=14)
# JavaScript's `new Date("1990-01-18").toISOString()`: midnight UTC, the form Segment
# clients send a `Date` trait in. Any other time of day is ambiguous by a day.
_MIDNIGHT_UTC: Final = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})T00:00(?::00(?:\.0+)?)?(?:Z|[+-]00:?00)"
)
_TEXT_LIMITS: Final = {"method": 60, "provider": 120, "reference": 255, "recorded_by": 120}


class AgeError(PropertyError):
    """An age statement that cannot be recorded; `field` names the offending part."""


def _text(props: Mapping[str, Any], name: str) -> str | None:
    value = props.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise AgeError(name, f"expected a string, got {type(value).__name__}")
    text = str(value).strip()
    limit = _TEXT_LIMITS[name]
    if len(text) > limit:
        raise AgeError(name, f"longer than {limit} characters")
    return text or None


def _plausible(dob: date, at: datetime, name: str) -> date:
    latest = (at.astimezone(UTC) + _AHEAD_OF_UTC).date()
    if dob > latest:
        raise AgeError(name, f"{dob.isoformat()} is in the future")
    if dob < EARLIEST_DOB:
        raise AgeError(name, f"{dob.isoformat()} is before {EARLIEST_DOB.isoformat()}")
    return dob


def parse_age_verified(props: Mapping[str, Any], *, event_time: datetime) -> AgeStatement:
    """An `Age Verified` event's properties as a statement (raises AgeError)."""
    raw_level = props.get("level")
    if raw_level is None or raw_level == "":
        valid = ", ".join(level.value for level in VerificationLevel)
        raise AgeError("level", f"required, one of {valid}")
    if not isinstance(raw_level, str):
        raise AgeError("level", f"expected a string, got {type(raw_level).__name__}")
    try:
        level = VerificationLevel.parse(raw_level)
    except ValueError as exc:
        raise AgeError("level", str(exc)) from None
    dob: date | None = None
    raw_dob = props.get("birthday")
    if raw_dob is not None and raw_dob != "":
        if not isinstance(raw_dob, str):
            raise AgeError("birthday", "expected a date written YYYY-MM-DD")
        try:
            dob = _plausible(parse_dob(raw_dob), event_time, "birthday")
        except InvalidDateOfBirth as exc:
            raise AgeError("birthday", str(exc)) from None
    country, region = _iso_place(props)
    return AgeStatement(
        dob=dob,
        level=level,
        event_time=event_time,
        method=_text(props, "method"),
        provider=_text(props, "provider"),
        reference=_text(props, "reference"),
        country=country,
        region=region,
        recorded_by=_text(props, "recorded_by"),
    )


def _iso_place(props: Mapping[str, Any]) -> tuple[str | None, str | None]:
    raw: dict[str, str | None] = {}
    for name in ("country", "region"):
        value = props.get(name)
        if value is not None and not isinstance(value, str):
            raise AgeError(name, f"expected a string, got {type(value).__name__}")
        raw[name] = value.strip() if value else None
    try:
        code = jurisdiction_of(raw["country"], raw["region"])
    except PlaceError as exc:
        raise AgeError(exc.field, exc.message) from None
    return _split(code)


def _split(code: str | None) -> tuple[str | None, str | None]:
    """(country, region) columns for a jurisdiction code."""
    if code is None:
        return None, None
    return code[:2], code if "-" in code else None


def check_age_properties(properties: dict[str, Any]) -> None:
    """Raise AgeError if an `Age Verified` call could not be recorded."""
    parse_age_verified(properties, event_time=utcnow())


register_event_check(AGE_EVENT, check_age_properties)


def parse_birthday_trait(value: Any, *, event_time: datetime) -> date:
    """A `birthday` trait as a date: `YYYY-MM-DD`, or a date-time at midnight UTC (a
    JavaScript `Date`). Raises AgeError (field `birthday`) for anything else."""
    if not isinstance(value, str):
        raise AgeError("birthday", "expected a date written YYYY-MM-DD")
    text = value.strip()
    if "T" in text:  # a date-time; plain YYYY-MM-DD, the usual form, skips the regex
        midnight = _MIDNIGHT_UTC.fullmatch(text)
        if midnight is None:
            raise AgeError(
                "birthday", f"{value!r} has a time of day, which makes its date ambiguous; "
                "send YYYY-MM-DD"
            )
        text = midnight.group(1)
    try:
        return _plausible(parse_dob(text), event_time, "birthday")
    except InvalidDateOfBirth as exc:
        raise AgeError("birthday", str(exc)) from None


# -- planning and recording -----------------------------------------------------------


@dataclass
class AgePlan:
    """What a batch states about age: statements, and address traits that may move a
    profile to another jurisdiction. Positions are the events' indexes in the batch."""

    statements: list[tuple[int, AgeStatement]] = field(default_factory=list)
    addresses: list[tuple[int, Any, datetime]] = field(default_factory=list)


def _issue(found: EventIdentity, where: str, exc: PropertyError) -> None:
    found.issues.append(
        {"field": f"{where}.{exc.field}", "error": exc.message, "age": "not recorded"}
    )


def plan_age(batch: Sequence[CanonicalEvent], found: Sequence[EventIdentity]) -> AgePlan:
    """Statements from `Age Verified` events and `birthday` traits; a bad one becomes
    an issue on its event."""
    plan = AgePlan()
    for index, event in enumerate(batch):
        if event.type == "track" and event.name == AGE_EVENT:
            try:
                statement = parse_age_verified(event.properties, event_time=event.timestamp)
            except AgeError as exc:
                _issue(found[index], "properties", exc)
                continue
            plan.statements.append((index, _stamped(statement, event)))
        elif event.type == "identify":
            _plan_identify(plan, index, event, found[index])
    return plan


# The raw names that spell `birthday` and `address` in each set of trait names seen:
# senders repeat a few sets (an import's header, an SDK's traits), so each identify
# costs one lookup rather than a canonical name per trait. Bounded: cleared when full.
_AGE_TRAIT_NAMES: dict[tuple[str, ...], tuple[str | None, str | None]] = {}
_TRAIT_SETS_KEPT: Final = 4096


def _age_trait_names(traits: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(raw birthday name, raw address name); the last spelling wins, as in a dict of
    canonical names."""
    names = tuple(traits)
    found = _AGE_TRAIT_NAMES.get(names)
    if found is None:
        birthday = address = None
        for name in names:
            canonical = canonical_trait_name(name)
            if canonical == BIRTHDAY_TRAIT:
                birthday = name
            elif canonical == ADDRESS_TRAIT:
                address = name
        if len(_AGE_TRAIT_NAMES) >= _TRAIT_SETS_KEPT:
            _AGE_TRAIT_NAMES.clear()
        found = _AGE_TRAIT_NAMES[names] = (birthday, address)
    return found


def _plan_identify(plan: AgePlan, index: int, event: CanonicalEvent, found: EventIdentity) -> None:
    birthday_name, address_name = _age_trait_names(event.traits)
    if address_name is not None:
        plan.addresses.append((index, event.traits[address_name], event.timestamp))
    if birthday_name is None:
        return
    birthday = event.traits[birthday_name]
    if birthday is None or birthday == "":
        return
    try:
        dob = parse_birthday_trait(birthday, event_time=event.timestamp)
    except AgeError as exc:
        _issue(found, "traits", exc)
        return
    country = region = None
    # Read without the default: only an address naming its country places the
    # statement (a state alone is read in the default's country, which is the state's
    # fallback to apply, not the statement's).
    place = address_place(None if address_name is None else event.traits[address_name])
    if place.placed:
        if place.problem is not None and place.field is not None:
            found.issues.append(
                {"field": f"traits.address.{place.field}", "error": place.problem}
            )
        country, region = _split(place.jurisdiction)
    statement = AgeStatement(
        dob=dob,
        level=VerificationLevel.DOB_PROVIDED,
        event_time=event.timestamp,
        method=BIRTHDAY_METHOD,
        country=country,
        region=region,
        source_id=event.source_id,
        message_id=event.message_id,
        received_at=event.received_at,
    )
    plan.statements.append((index, statement))


def _stamped(statement: AgeStatement, event: CanonicalEvent) -> AgeStatement:
    return replace(
        statement,
        source_id=event.source_id,
        message_id=event.message_id,
        received_at=event.received_at,
    )


def record_age(conn: Connection, plan: AgePlan, found: Sequence[EventIdentity]) -> int:
    """Append the planned statements and re-derive the age state of every profile they
    or an address change touch; returns how many statements were recorded."""
    statements = [(found[i].profile_id, st) for i, st in plan.statements]
    addresses = [(found[i].profile_id, v, at) for i, v, at in plan.addresses]
    if not statements and not addresses:
        return 0
    created = {f.profile_id for f in found if f.created}
    append_age_records(conn, statements, addresses=addresses, new_profiles=created)
    return len(statements)
