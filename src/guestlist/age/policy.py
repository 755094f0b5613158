"""Minimum ages by jurisdiction x category (rule A-1), loaded from a data table.

The shipped table is `minimum_ages.toml` beside this module (format in docs/age.md);
a shop may load its own with `AgePolicy.from_file`. A lookup tries the subdivision,
then its country; within each, the category, then its parents. Nothing found is
`unknown`, which never counts as eligible.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from guestlist.age.names import (
    category_chain,
    is_category,
    is_jurisdiction,
    jurisdiction_chain,
    parse_category,
    parse_jurisdiction,
)

DEFAULT_TABLE: Final = Path(__file__).with_name("minimum_ages.toml")

_RULE_KEYS: Final = frozenset(
    {
        "jurisdiction",
        "category",
        "minimum_age",
        "prohibited",
        "rule_type",
        "feb29_birthday_on",
        "source",
        "verified",
        "note",
    }
)
_TOP_KEYS: Final = frozenset({"zones", "rule"})
_MAX_AGE: Final = 99

_T = TypeVar("_T")
_E = TypeVar("_E", bound=Enum)


class AgeTableError(ValueError):
    """The age table is malformed; the message names the file and the row."""


class UnknownJurisdictionError(LookupError):
    """The table has no time zone for a jurisdiction or its country."""


class RuleType(Enum):
    """How a row counts age (A-2)."""

    BIRTHDAY = "birthday"  # completed years, from the date of birth
    CALENDAR_YEAR = "calendar_year"  # of age from 1 January of the year one turns N


class LeapDayRule(Enum):
    """The birthday, in a non-leap year, of someone born on 29 February (A-2)."""

    MAR1 = "mar1"  # the later, conservative day
    FEB28 = "feb28"


@dataclass(frozen=True)
class AgeRule:
    """One row of the table: a minimum age, or a prohibition, with its source."""

    jurisdiction: str
    category: str
    minimum_age: int | None
    prohibited: bool
    source: str
    verified: bool
    rule_type: RuleType = RuleType.BIRTHDAY
    feb29_birthday_on: LeapDayRule = LeapDayRule.MAR1
    note: str = ""

    def __post_init__(self) -> None:
        if not is_jurisdiction(self.jurisdiction):
            raise ValueError(
                f"jurisdiction {self.jurisdiction!r} is not an ISO 3166 code such as "
                "'DE' or 'CA-QC' (upper case)"
            )
        if not is_category(self.category):
            raise ValueError(
                f"category {self.category!r} is not a dotted lowercase name such as "
                "'alcohol.spirits'"
            )
        if self.prohibited:
            if self.minimum_age is not None:
                raise ValueError("a prohibited row has no minimum_age")
        elif self.minimum_age is None:
            raise ValueError("needs minimum_age or prohibited = true")
        elif not 1 <= self.minimum_age <= _MAX_AGE:
            raise ValueError(f"minimum_age {self.minimum_age} is not between 1 and {_MAX_AGE}")
        if not self.source.strip():
            raise ValueError("source is empty: every row cites a statute or official page")

    @property
    def key(self) -> tuple[str, str]:
        return (self.jurisdiction, self.category)


class RuleStatus(Enum):
    """What the table says for a jurisdiction x category."""

    MINIMUM_AGE = "minimum_age"
    PROHIBITED = "prohibited"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class RuleLookup:
    """The answer for the jurisdiction and category asked; `rule` is the row used,
    whose own jurisdiction and category show any fallback taken."""

    jurisdiction: str
    category: str
    status: RuleStatus
    rule: AgeRule | None = None

    @property
    def minimum_age(self) -> int | None:
        return self.rule.minimum_age if self.rule is not None else None


class AgePolicy:
    """The age table: rows indexed by (jurisdiction, category), plus time zones."""

    def __init__(self, rules: Iterable[AgeRule], zones: Mapping[str, str]) -> None:
        self._rules: dict[tuple[str, str], AgeRule] = {}
        for rule in rules:
            if rule.key in self._rules:
                raise AgeTableError(f"duplicate row for {rule.jurisdiction} {rule.category}")
            self._rules[rule.key] = rule
        self._zones: dict[str, ZoneInfo] = {}
        for code, name in zones.items():
            if not is_jurisdiction(code):
                raise AgeTableError(f"zones: {code!r} is not an ISO 3166 code")
            self._zones[code] = _load_zone(name, f"zones.{code}")
        for rule in self._rules.values():
            if self._zone_key(rule.jurisdiction) is None:
                raise AgeTableError(
                    f"row {rule.jurisdiction} {rule.category}: no time zone for "
                    f"{rule.jurisdiction} or its country in [zones]"
                )

    @classmethod
    def from_file(cls, path: Path | str) -> AgePolicy:
        """Load and validate a TOML table; AgeTableError names the file and the row."""
        path = Path(path)
        return cls.from_toml(path.read_text(encoding="utf-8"), origin=str(path))

    @classmethod
    def from_toml(cls, text: str, *, origin: str = "<age table>") -> AgePolicy:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise AgeTableError(f"{origin}: not valid TOML: {exc}") from exc
        unknown = sorted(set(data) - _TOP_KEYS)
        if unknown:
            raise AgeTableError(
                f"{origin}: unknown top-level key(s) {unknown}; expected [zones] and [[rule]]"
            )
        zones = data.get("zones", {})
        if not isinstance(zones, dict) or not all(isinstance(v, str) for v in zones.values()):
            raise AgeTableError(f"{origin}: [zones] maps jurisdictions to zone names")
        raw_rules = data.get("rule", [])
        if not isinstance(raw_rules, list):
            raise AgeTableError(f"{origin}: rows are written as [[rule]] tables")
        rules: list[AgeRule] = []
        seen: dict[tuple[str, str], int] = {}
        for number, raw in enumerate(raw_rules, start=1):
            rule = _rule_from_table(raw, f"{origin}: rule #{number}")
            if rule.key in seen:
                raise AgeTableError(
                    f"{origin}: rule #{number} ({rule.jurisdiction} {rule.category}) "
                    f"duplicates rule #{seen[rule.key]}"
                )
            seen[rule.key] = number
            rules.append(rule)
        try:
            return cls(rules, zones)
        except AgeTableError as exc:
            raise AgeTableError(f"{origin}: {exc}") from exc

    @property
    def rules(self) -> tuple[AgeRule, ...]:
        return tuple(self._rules.values())

    def unverified(self) -> tuple[AgeRule, ...]:
        """Rows a reviewer still has to confirm (shown as such in the console)."""
        return tuple(rule for rule in self._rules.values() if not rule.verified)

    def lookup(self, jurisdiction: str, category: str) -> RuleLookup:
        """The row that applies, trying the subdivision before the country and, within
        each, the category before its parents; `unknown` when nothing matches."""
        code = parse_jurisdiction(jurisdiction)
        name = parse_category(category)
        for place in jurisdiction_chain(code):
            for kind in category_chain(name):
                rule = self._rules.get((place, kind))
                if rule is not None:
                    status = RuleStatus.PROHIBITED if rule.prohibited else RuleStatus.MINIMUM_AGE
                    return RuleLookup(code, name, status, rule)
        return RuleLookup(code, name, RuleStatus.UNKNOWN)

    def minimum_age(self, jurisdiction: str, category: str) -> int | None:
        """The minimum age, or None where the category is prohibited or unknown."""
        return self.lookup(jurisdiction, category).minimum_age

    def zone(self, jurisdiction: str) -> ZoneInfo:
        """The zone whose date counts (A-2): the subdivision's, else its country's."""
        code = parse_jurisdiction(jurisdiction)
        key = self._zone_key(code)
        if key is None:
            raise UnknownJurisdictionError(f"no time zone for {code} or its country")
        return self._zones[key]

    def knows(self, jurisdiction: str) -> bool:
        """True when the table can place `jurisdiction`: it has a zone for it or its
        country and, where the table lists a country's subdivisions in [zones] (US,
        CA), the subdivision is one of them (`US-ZZ` is unknown; `IN-KA` is known, as
        India's subdivisions are not listed). Malformed codes are unknown."""
        try:
            code = parse_jurisdiction(jurisdiction)
        except ValueError:
            return False
        if self._zone_key(code) is None:
            return False
        country, _, subdivision = code.partition("-")
        if not subdivision or code in self._zones:
            return True
        return not any(key.startswith(f"{country}-") for key in self._zones)

    def _zone_key(self, code: str) -> str | None:
        for place in jurisdiction_chain(code):
            if place in self._zones:
                return place
        return None


@cache
def default_policy() -> AgePolicy:
    """The shipped table, loaded once."""
    return AgePolicy.from_file(DEFAULT_TABLE)


def _rule_from_table(raw: Any, label: str) -> AgeRule:
    if not isinstance(raw, dict):
        raise AgeTableError(f"{label}: a row is a table of keys")
    jurisdiction = raw.get("jurisdiction")
    category = raw.get("category")
    if isinstance(jurisdiction, str) and isinstance(category, str):
        label = f"{label} ({jurisdiction} {category})"
    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        raise AgeTableError(f"{label}: unknown key(s) {unknown}")
    try:
        return AgeRule(
            jurisdiction=_required(raw, "jurisdiction", str),
            category=_required(raw, "category", str),
            minimum_age=_optional_int(raw, "minimum_age"),
            prohibited=_optional(raw, "prohibited", bool, False),
            source=_required(raw, "source", str),
            verified=_required(raw, "verified", bool),
            rule_type=_enum(raw, "rule_type", RuleType, RuleType.BIRTHDAY),
            feb29_birthday_on=_enum(raw, "feb29_birthday_on", LeapDayRule, LeapDayRule.MAR1),
            note=_optional(raw, "note", str, ""),
        )
    except ValueError as exc:
        raise AgeTableError(f"{label}: {exc}") from exc


def _required(raw: dict[str, Any], key: str, kind: type[_T]) -> _T:
    if key not in raw:
        raise ValueError(f"missing {key}")
    return _typed(raw[key], key, kind)


def _optional(raw: dict[str, Any], key: str, kind: type[_T], default: _T) -> _T:
    return _typed(raw[key], key, kind) if key in raw else default


def _typed(value: Any, key: str, kind: type[_T]) -> _T:
    if not isinstance(value, kind):
        raise ValueError(f"{key} must be a {kind.__name__}, not {value!r}")
    return value


def _optional_int(raw: dict[str, Any], key: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be a whole number, not {value!r}")
    return value


def _enum(raw: dict[str, Any], key: str, kind: type[_E], default: _E) -> _E:
    if key not in raw:
        return default
    value = raw[key]
    try:
        return kind(value)
    except ValueError:
        valid = ", ".join(repr(member.value) for member in kind)
        raise ValueError(f"{key} {value!r} is not one of {valid}") from None


def _load_zone(name: str, label: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise AgeTableError(f"{label}: unknown time zone {name!r}") from exc
