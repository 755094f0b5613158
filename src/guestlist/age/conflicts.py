"""Choosing between different dates of birth held for one profile (rule A-5).

The claim backed by the higher verification level wins; at equal level the youngest
person (the latest date of birth) wins, the conservative choice. Any disagreement is
reported so the console can flag it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from guestlist.age.levels import VerificationLevel


@dataclass(frozen=True)
class DobClaim:
    """A date of birth as one source gave it."""

    dob: date
    level: VerificationLevel
    source: str
    recorded_at: datetime

    def __post_init__(self) -> None:
        if self.recorded_at.tzinfo is None or self.recorded_at.utcoffset() is None:
            raise ValueError("recorded_at must be timezone-aware")


@dataclass(frozen=True)
class DobResolution:
    winner: DobClaim | None  # None when there were no claims
    conflicting: tuple[DobClaim, ...]  # claims whose date differs from the winner's

    @property
    def conflict(self) -> bool:
        """True when the claims do not all give the same date of birth."""
        return bool(self.conflicting)

    @property
    def dob(self) -> date | None:
        return self.winner.dob if self.winner is not None else None


def resolve_dob(claims: Iterable[DobClaim]) -> DobResolution:
    """The winning claim and the ones that disagree with it.

    Ties on level and date go to the most recently recorded claim, then to the source
    name, so the answer does not depend on the order of `claims`.
    """
    ordered = sorted(
        claims,
        key=lambda c: (c.level.rank, c.dob, c.recorded_at, c.source),
        reverse=True,
    )
    if not ordered:
        return DobResolution(winner=None, conflicting=())
    winner = ordered[0]
    return DobResolution(
        winner=winner,
        conflicting=tuple(claim for claim in ordered if claim.dob != winner.dob),
    )
