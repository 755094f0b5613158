"""Age policy: minimum ages as data, age on the local date, verification levels.

Pure functions over a data table (no database): see docs/age.md and compliance rules
A-1 to A-6.
"""

from __future__ import annotations

from guestlist.age.compute import (
    Eligibility,
    EligibilityStatus,
    InvalidDateOfBirth,
    age_on,
    birthday_in,
    eligibility,
    local_today,
    of_age_on,
    parse_dob,
)
from guestlist.age.conflicts import DobClaim, DobResolution, resolve_dob
from guestlist.age.levels import (
    DEFAULT_MARKETING_LEVELS,
    VerificationLevel,
    marketing_levels,
    required_level_for,
)
from guestlist.age.names import parse_category, parse_jurisdiction
from guestlist.age.policy import (
    AgePolicy,
    AgeRule,
    AgeTableError,
    LeapDayRule,
    RuleLookup,
    RuleStatus,
    RuleType,
    UnknownJurisdictionError,
    default_policy,
)

__all__ = [
    "DEFAULT_MARKETING_LEVELS",
    "AgePolicy",
    "AgeRule",
    "AgeTableError",
    "DobClaim",
    "DobResolution",
    "Eligibility",
    "EligibilityStatus",
    "InvalidDateOfBirth",
    "LeapDayRule",
    "RuleLookup",
    "RuleStatus",
    "RuleType",
    "UnknownJurisdictionError",
    "VerificationLevel",
    "age_on",
    "birthday_in",
    "default_policy",
    "eligibility",
    "local_today",
    "marketing_levels",
    "of_age_on",
    "parse_category",
    "parse_dob",
    "parse_jurisdiction",
    "required_level_for",
    "resolve_dob",
]
