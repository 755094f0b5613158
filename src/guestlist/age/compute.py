"""Age on a local date, and whether a person may be marketed a category (A-2, A-4).

Age is counted on the date in the jurisdiction's time zone, never in UTC. A missing
rule, a missing or impossible date of birth, or a weak verification level is never
eligible.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from functools import lru_cache
from typing import Final

from guestlist.age.levels import VerificationLevel, required_level_for
from guestlist.age.policy import (
    AgePolicy,
    AgeRule,
    LeapDayRule,
    RuleStatus,
    RuleType,
    default_policy,
)

_DOB: Final = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")


class InvalidDateOfBirth(ValueError):
    """Text that is not a YYYY-MM-DD calendar date."""


# Imports and streams repeat the same few tens of thousands of dates of birth.
@lru_cache(maxsize=1 << 15)
def parse_dob(text: str) -> date:
    """A date of birth written YYYY-MM-DD, and nothing else.

    `2001-02-29` and `2001-13-01` are refused as impossible dates; `20010203`,
    `2001-2-3`, `03/02/2001` and surrounding spaces are refused as the wrong format.
    Whether the date lies in the future is `eligibility`'s concern.
    """
    match = _DOB.fullmatch(text)
    if match is None:
        raise InvalidDateOfBirth(f"date of birth {text!r} is not written YYYY-MM-DD")
    year, month, day = (int(part) for part in match.groups())
    try:
        return date(year, month, day)
    except ValueError as exc:
        raise InvalidDateOfBirth(f"date of birth {text!r} is not a calendar date: {exc}") from None


def birthday_in(dob: date, year: int, *, feb29_birthday_on: LeapDayRule = LeapDayRule.MAR1) -> date:
    """The date `dob`'s birthday falls on in `year`; 29 February moves to 1 March (or
    28 February, when the row says so) in non-leap years."""
    if dob.month == 2 and dob.day == 29 and not calendar.isleap(year):
        return date(year, 3, 1) if feb29_birthday_on is LeapDayRule.MAR1 else date(year, 2, 28)
    return dob.replace(year=year)


def age_on(dob: date, on: date, *, feb29_birthday_on: LeapDayRule = LeapDayRule.MAR1) -> int:
    """Completed years on the date `on`; ValueError if `on` is before `dob`."""
    if on < dob:
        raise ValueError(f"{on.isoformat()} is before the date of birth {dob.isoformat()}")
    years = on.year - dob.year
    if on < birthday_in(dob, on.year, feb29_birthday_on=feb29_birthday_on):
        years -= 1
    return years


def of_age_on(
    dob: date,
    minimum_age: int,
    *,
    rule_type: RuleType = RuleType.BIRTHDAY,
    feb29_birthday_on: LeapDayRule = LeapDayRule.MAR1,
) -> date:
    """The first local date on which someone born on `dob` has `minimum_age`.

    By birthday: the `minimum_age`-th birthday. By calendar year (KR): 1 January of the
    year in which that birthday falls.
    """
    year = dob.year + minimum_age
    if rule_type is RuleType.CALENDAR_YEAR:
        return date(year, 1, 1)
    return birthday_in(dob, year, feb29_birthday_on=feb29_birthday_on)


def local_today(jurisdiction: str, now: datetime, *, policy: AgePolicy | None = None) -> date:
    """The date it is at `now` in the jurisdiction's zone (A-2).

    `now` must be timezone-aware. Raises UnknownJurisdictionError when the table has
    no zone for the jurisdiction or its country.
    """
    _require_aware(now)
    zone = (policy or default_policy()).zone(jurisdiction)
    return now.astimezone(zone).date()


class EligibilityStatus(Enum):
    ELIGIBLE = "eligible"
    UNDER_AGE = "under_age"
    UNKNOWN_DOB = "unknown_dob"
    FUTURE_DOB = "future_dob"  # invalid data, never eligible
    UNKNOWN_JURISDICTION_RULE = "unknown_jurisdiction_rule"
    PROHIBITED = "prohibited"
    INSUFFICIENT_LEVEL = "insufficient_level"


@dataclass(frozen=True)
class Eligibility:
    """One decision, with what it rested on (A-1: keep the threshold applied)."""

    status: EligibilityStatus
    jurisdiction: str
    category: str
    level: VerificationLevel
    required_level: VerificationLevel
    rule: AgeRule | None = None  # the row applied; None when unknown
    local_date: date | None = None  # the jurisdiction's date at `now`
    of_age_on: date | None = None  # the first local date of legal age, where known

    @property
    def eligible(self) -> bool:
        return self.status is EligibilityStatus.ELIGIBLE

    @property
    def minimum_age(self) -> int | None:
        return self.rule.minimum_age if self.rule is not None else None


def eligibility(
    dob: date | None,
    jurisdiction: str,
    category: str,
    now: datetime,
    *,
    level: VerificationLevel,
    required_level: VerificationLevel | None = None,
    policy: AgePolicy | None = None,
) -> Eligibility:
    """Whether a person may be in a marketing audience for `category` at `now`.

    `level` backs `dob`; `required_level` defaults to the category's A-4 default
    (`levels.required_level_for`). Checks, first failing wins: the table has a rule
    (`unknown_jurisdiction_rule`), it is not a prohibition (`prohibited`), there is a
    date of birth (`unknown_dob`), it is not after today's local date (`future_dob`),
    the person is of age (`under_age`), the level suffices (`insufficient_level`).
    """
    _require_aware(now)
    policy = policy or default_policy()
    found = policy.lookup(jurisdiction, category)
    needed = required_level if required_level is not None else required_level_for(category)
    decided = _Decision(found.jurisdiction, found.category, level, needed, found.rule)
    if found.status is RuleStatus.UNKNOWN:
        return decided.as_(EligibilityStatus.UNKNOWN_JURISDICTION_RULE)
    if found.status is RuleStatus.PROHIBITED:
        return decided.as_(EligibilityStatus.PROHIBITED)
    rule = found.rule
    assert rule is not None and rule.minimum_age is not None
    if dob is None:
        return decided.as_(EligibilityStatus.UNKNOWN_DOB)
    today = local_today(found.jurisdiction, now, policy=policy)
    if dob > today:
        return decided.as_(EligibilityStatus.FUTURE_DOB, local_date=today)
    coming_of_age = of_age_on(
        dob,
        rule.minimum_age,
        rule_type=rule.rule_type,
        feb29_birthday_on=rule.feb29_birthday_on,
    )
    if today < coming_of_age:
        status = EligibilityStatus.UNDER_AGE
    elif level < needed:
        status = EligibilityStatus.INSUFFICIENT_LEVEL
    else:
        status = EligibilityStatus.ELIGIBLE
    return decided.as_(status, local_date=today, of_age_on=coming_of_age)


@dataclass(frozen=True)
class _Decision:
    jurisdiction: str
    category: str
    level: VerificationLevel
    required_level: VerificationLevel
    rule: AgeRule | None

    def as_(
        self,
        status: EligibilityStatus,
        *,
        local_date: date | None = None,
        of_age_on: date | None = None,
    ) -> Eligibility:
        return Eligibility(
            status=status,
            jurisdiction=self.jurisdiction,
            category=self.category,
            level=self.level,
            required_level=self.required_level,
            rule=self.rule,
            local_date=local_date,
            of_age_on=of_age_on,
        )


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got the naive datetime {now.isoformat()}")
