"""The shipped minimum-age table (A-1, A-2): it loads, covers compliance.md's
jurisdictions, and says what compliance.md and compliance-research.md say."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta

import pytest

from guestlist.age import RuleStatus, RuleType, default_policy
from guestlist.age.policy import DEFAULT_TABLE

CATEGORIES = ["alcohol", "tobacco", "vape", "cannabis"]
CANADA = ["AB", "QC", "MB", "PE", "BC", "ON", "SK", "NS", "NB", "NL", "YT", "NT", "NU"]
COMPLIANCE_TABLE = [
    "US",
    *(f"CA-{p}" for p in CANADA),
    *"GB DE BE DK SE AT FR ES IT NL IE PL AU JP KR IN MX BR ZA".split(),
]
# Deliberately without a row: India sets alcohol ages state by state.
BY_SUBDIVISION = {("IN", "alcohol")}


def test_shipped_table_loads() -> None:
    policy = default_policy()
    assert len(policy.rules) > 100
    assert all(rule.source.strip() for rule in policy.rules)


@pytest.mark.parametrize("jurisdiction", COMPLIANCE_TABLE)
def test_every_jurisdiction_in_compliance_md_has_a_row_per_category(
    jurisdiction: str,
) -> None:
    for category in CATEGORIES:
        found = default_policy().lookup(jurisdiction, category)
        if (jurisdiction, category) in BY_SUBDIVISION:
            assert found.status is RuleStatus.UNKNOWN
        else:
            assert found.status is not RuleStatus.UNKNOWN, (jurisdiction, category)


@pytest.mark.parametrize(
    ("jurisdiction", "category", "age"),
    [
        ("US", "alcohol", 21),
        ("US-TX", "tobacco", 21),
        ("US", "vape", 21),
        ("US-CA", "cannabis", 21),
        ("CA-AB", "alcohol", 18),
        ("CA-AB", "cannabis", 18),
        ("CA-QC", "alcohol", 18),
        ("CA-QC", "cannabis", 21),
        ("CA-MB", "tobacco", 18),
        ("CA-MB", "cannabis", 19),
        ("CA-PE", "alcohol", 19),
        ("CA-PE", "tobacco", 21),
        ("CA-PE", "vape", 21),
        ("CA-ON", "alcohol", 19),
        ("CA-SK", "tobacco", 19),
        ("CA-NU", "cannabis", 19),
        ("GB", "alcohol", 18),
        ("DE", "alcohol.beer_wine", 16),
        ("DE", "alcohol.spirits", 18),
        ("DE", "alcohol", 18),
        ("BE", "alcohol.beer_wine", 16),
        ("BE", "alcohol.spirits", 18),
        ("AT", "alcohol.beer_wine", 16),
        ("AT", "alcohol.spirits", 18),
        ("DK", "alcohol.spirits", 18),
        ("SE", "alcohol", 20),
        ("SE", "tobacco", 18),
        ("FR", "alcohol", 18),
        ("PL", "vape", 18),
        ("AU", "alcohol", 18),
        ("JP", "alcohol", 20),
        ("JP", "tobacco", 20),
        ("KR", "alcohol", 19),
        ("IN", "tobacco", 18),
        ("MX", "alcohol", 18),
        ("BR", "tobacco", 18),
        ("ZA", "alcohol", 18),
    ],
)
def test_minimum_ages_match_compliance_md(
    jurisdiction: str, category: str, age: int
) -> None:
    assert default_policy().minimum_age(jurisdiction, category) == age


@pytest.mark.parametrize(
    ("jurisdiction", "category"),
    [
        ("US", "cannabis"),
        ("US-VA", "cannabis"),
        ("GB", "cannabis"),
        ("DE", "cannabis"),
        ("SE", "cannabis"),
        ("NL", "cannabis"),
        ("AU", "vape"),
        ("JP", "cannabis"),
        ("KR", "cannabis"),
        ("IN", "vape"),
        ("IN-GJ", "alcohol"),
        ("MX", "vape"),
        ("BR", "vape"),
        ("ZA", "cannabis"),
    ],
)
def test_not_sold_and_banned_are_prohibited_rows(jurisdiction: str, category: str) -> None:
    assert default_policy().lookup(jurisdiction, category).status is RuleStatus.PROHIBITED


def test_denmark_wine_is_18_since_april_2025() -> None:  # A-1 (departs from compliance.md)
    found = default_policy().lookup("DK", "alcohol.beer_wine")
    assert found.minimum_age == 18
    assert found.rule is not None and not found.rule.verified


def test_korea_counts_by_calendar_year() -> None:
    policy = default_policy()
    for category in ["alcohol", "tobacco", "vape"]:
        rule = policy.lookup("KR", category).rule
        assert rule is not None and rule.rule_type is RuleType.CALENDAR_YEAR
    assert all(
        rule.rule_type is RuleType.BIRTHDAY for rule in policy.rules if rule.jurisdiction != "KR"
    )


@pytest.mark.parametrize(
    ("jurisdiction", "category"),
    [
        ("GB", "tobacco"),
        ("GB", "vape"),
        ("AU", "alcohol"),
        ("AU", "cannabis"),
        ("MX", "alcohol"),
        ("MX", "tobacco"),
        ("MX", "cannabis"),
        ("BR", "alcohol"),
        ("BR", "tobacco"),
        ("BR", "cannabis"),
        ("ZA", "alcohol"),
        ("ZA", "tobacco"),
        ("ZA", "vape"),
        ("ZA", "cannabis"),
    ],
)
def test_rows_marked_uncertain_in_research_are_unverified(
    jurisdiction: str, category: str
) -> None:
    rule = default_policy().lookup(jurisdiction, category).rule
    assert rule is not None
    assert (rule.jurisdiction, rule.category) == (jurisdiction, category)
    assert not rule.verified


def _zone_codes() -> list[str]:
    with DEFAULT_TABLE.open("rb") as fh:
        return list(tomllib.load(fh)["zones"])


def test_country_zone_is_never_ahead_of_any_of_its_subdivisions() -> None:
    policy = default_policy()
    subdivisions = [code for code in _zone_codes() if "-" in code]
    assert len(subdivisions) > 60
    start = datetime(2025, 1, 1, tzinfo=UTC)
    instants = [start + timedelta(hours=6 * n) for n in range(4 * 366 * 2)]
    for code in subdivisions:
        country_zone, own_zone = policy.zone(code.split("-")[0]), policy.zone(code)
        for instant in instants:
            country_offset = instant.astimezone(country_zone).utcoffset()
            own_offset = instant.astimezone(own_zone).utcoffset()
            assert country_offset is not None and own_offset is not None
            assert country_offset <= own_offset, (code, instant)


def test_multi_zone_countries_use_their_most_western_zone() -> None:
    policy = default_policy()
    expected = {
        "US": "Pacific/Honolulu",
        "CA": "America/Vancouver",
        "AU": "Australia/Perth",
        "MX": "America/Tijuana",
        "BR": "America/Rio_Branco",
        "ES": "Atlantic/Canary",
    }
    assert {code: policy.zone(code).key for code in expected} == expected


@pytest.mark.parametrize(
    ("subdivision", "zone"),
    [
        ("CA-QC", "America/Toronto"),  # not the Magdalen Islands' Atlantic time
        ("CA-ON", "America/Winnipeg"),  # Kenora, west of 90°W
        ("CA-SK", "America/Edmonton"),  # Lloydminster
        ("CA-NL", "America/Goose_Bay"),  # Labrador, not St. John's
        ("US-TX", "America/Denver"),  # El Paso
        ("US-FL", "America/Chicago"),  # the western panhandle
        ("US-AK", "America/Adak"),  # the Aleutians
        ("AU-NSW", "Australia/Broken_Hill"),
    ],
)
def test_subdivisions_spanning_zones_use_their_most_western(
    subdivision: str, zone: str
) -> None:
    assert default_policy().zone(subdivision).key == zone
