"""Age verification levels (rule A-3) and the level each category needs (A-4).

Levels are ordered, weakest first. What a marketing audience requires per category is
data: `DEFAULT_MARKETING_LEVELS`, which a shop overrides with a dict of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType
from typing import Final

from guestlist.age.names import category_chain, parse_category


class VerificationLevel(Enum):
    """How a date of birth (or an age) was established, weakest first."""

    SELF_DECLARED = "self_declared"  # a checkbox or "I am over 21" gate
    DOB_PROVIDED = "dob_provided"  # a date of birth typed by the person
    DATABASE_CHECK = "database_check"  # name, address and DOB matched against records
    ID_DOCUMENT = "id_document"  # ID scan with a selfie/liveness check
    IN_PERSON_ID = "in_person_id"  # staff checked a government ID at the till or door

    @classmethod
    def parse(cls, value: str | VerificationLevel) -> VerificationLevel:
        """The level named `value` (case-insensitive); ValueError naming the valid ones."""
        if isinstance(value, VerificationLevel):
            return value
        name = value.strip().lower()
        for level in cls:
            if level.value == name:
                return level
        valid = ", ".join(level.value for level in cls)
        raise ValueError(f"unknown verification level {value!r}; expected one of: {valid}")

    @property
    def rank(self) -> int:
        """0 for `self_declared` up to 4 for `in_person_id`."""
        return _RANKS[self]

    def __lt__(self, other: VerificationLevel) -> bool:
        if not isinstance(other, VerificationLevel):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: VerificationLevel) -> bool:
        if not isinstance(other, VerificationLevel):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: VerificationLevel) -> bool:
        if not isinstance(other, VerificationLevel):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: VerificationLevel) -> bool:
        if not isinstance(other, VerificationLevel):
            return NotImplemented
        return self.rank >= other.rank


_RANKS: Final[Mapping[VerificationLevel, int]] = MappingProxyType(
    {level: rank for rank, level in enumerate(VerificationLevel)}
)

# alcohol marketing needs a typed date of birth; tobacco and vape need a database
# check (what the US PACT Act requires to sell online). Cannabis is not in A-4: it
# gets the stricter of the two until the shop decides otherwise.
DEFAULT_MARKETING_LEVELS: Final[Mapping[str, VerificationLevel]] = MappingProxyType(
    {
        "alcohol": VerificationLevel.DOB_PROVIDED,
        "tobacco": VerificationLevel.DATABASE_CHECK,
        "vape": VerificationLevel.DATABASE_CHECK,
        "cannabis": VerificationLevel.DATABASE_CHECK,
    }
)


def marketing_levels(
    overrides: Mapping[str, VerificationLevel | str] | None = None,
) -> dict[str, VerificationLevel]:
    """The defaults with the shop's overrides applied; names and levels are validated."""
    levels = dict(DEFAULT_MARKETING_LEVELS)
    for category, level in (overrides or {}).items():
        levels[parse_category(category)] = VerificationLevel.parse(level)
    return levels


def required_level_for(
    category: str,
    overrides: Mapping[str, VerificationLevel | str] | None = None,
) -> VerificationLevel:
    """The level a marketing audience for `category` requires.

    A sub-category without its own entry uses its parent's (`alcohol.spirits` →
    `alcohol`). A category with no entry at all is an error, not a guess.
    """
    levels = marketing_levels(overrides)
    for name in category_chain(parse_category(category)):
        if name in levels:
            return levels[name]
    raise ValueError(
        f"no required verification level for category {category!r}; "
        f"known: {', '.join(sorted(levels))}"
    )
