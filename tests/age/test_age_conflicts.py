"""Conflicting dates of birth on one profile (A-5)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guestlist.age import DobClaim, VerificationLevel, resolve_dob

L = VerificationLevel
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def claim(
    dob: str, level: VerificationLevel, source: str = "shopify", minutes: int = 0
) -> DobClaim:
    return DobClaim(date.fromisoformat(dob), level, source, T0 + timedelta(minutes=minutes))


def test_higher_level_wins_even_over_a_younger_claim() -> None:
    typed = claim("2008-05-01", L.DOB_PROVIDED, "signup_form")
    scanned = claim("2001-05-01", L.ID_DOCUMENT, "yoti")
    result = resolve_dob([typed, scanned])
    assert result.winner == scanned
    assert result.dob == date(2001, 5, 1)
    assert result.conflict
    assert result.conflicting == (typed,)


def test_at_equal_level_the_youngest_wins() -> None:
    older = claim("1999-03-10", L.DOB_PROVIDED, "pos", minutes=5)
    younger = claim("2004-03-10", L.DOB_PROVIDED, "signup_form")
    result = resolve_dob([older, younger])
    assert result.winner == younger
    assert result.conflict
    assert result.conflicting == (older,)


def test_agreeing_claims_are_not_a_conflict() -> None:
    a = claim("2000-01-01", L.DOB_PROVIDED, "pos")
    b = claim("2000-01-01", L.DATABASE_CHECK, "veratad")
    result = resolve_dob([a, b])
    assert result.winner == b
    assert not result.conflict


def test_equal_claims_go_to_the_most_recently_recorded() -> None:
    first = claim("2000-01-01", L.DOB_PROVIDED, "pos", minutes=0)
    later = claim("2000-01-01", L.DOB_PROVIDED, "pos", minutes=10)
    assert resolve_dob([first, later]).winner == later
    assert resolve_dob([later, first]).winner == later


def test_no_claims_give_no_winner() -> None:
    result = resolve_dob([])
    assert result.winner is None
    assert result.dob is None
    assert not result.conflict


def test_claim_needs_an_aware_recorded_at() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        DobClaim(date(2000, 1, 1), L.DOB_PROVIDED, "pos", datetime(2025, 1, 1))


claims = st.builds(
    DobClaim,
    dob=st.dates(min_value=date(1900, 1, 1), max_value=date(2030, 12, 31)),
    level=st.sampled_from(list(VerificationLevel)),
    source=st.sampled_from(["pos", "signup_form", "veratad", "yoti"]),
    recorded_at=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
)


@given(st.lists(claims, min_size=1, max_size=8), st.randoms())
def test_winner_has_the_top_level_and_the_latest_dob_at_it(
    given_claims: list[DobClaim], rnd: random.Random
) -> None:
    result = resolve_dob(given_claims)
    assert result.winner is not None
    top = max(c.level for c in given_claims)
    assert result.winner.level is top
    assert result.winner.dob == max(c.dob for c in given_claims if c.level is top)
    assert result.conflict == (len({c.dob for c in given_claims}) > 1)
    shuffled = list(given_claims)
    rnd.shuffle(shuffled)
    assert resolve_dob(shuffled) == result
