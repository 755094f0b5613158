"""Loading, validating and looking up an age table (A-1), on small tables made here."""

from __future__ import annotations

import pytest

from guestlist.age import AgePolicy, AgeRule, AgeTableError, RuleStatus, UnknownJurisdictionError

ZONES = """
[zones]
CA = "America/Vancouver"
CA-QC = "America/Toronto"
US = "Pacific/Honolulu"
DE = "Europe/Berlin"
"""


def row(jurisdiction: str, category: str, body: str = "minimum_age = 18") -> str:
    return f"""
[[rule]]
jurisdiction = "{jurisdiction}"
category = "{category}"
{body}
source = "test statute s. 1"
verified = true
"""


def table(*rows: str, zones: str = ZONES) -> AgePolicy:
    return AgePolicy.from_toml(zones + "".join(rows), origin="test.toml")


def test_subdivision_row_overrides_country_row() -> None:
    policy = table(
        row("CA", "cannabis", "minimum_age = 19"), row("CA-QC", "cannabis", "minimum_age = 21")
    )
    found = policy.lookup("CA-QC", "cannabis")
    assert found.status is RuleStatus.MINIMUM_AGE
    assert found.minimum_age == 21
    assert policy.minimum_age("CA-ON", "cannabis") == 19


def test_subdivision_without_a_row_falls_back_to_its_country() -> None:
    policy = table(row("CA", "alcohol", "minimum_age = 19"))
    found = policy.lookup("CA-QC", "alcohol")
    assert found.minimum_age == 19
    assert found.rule is not None and found.rule.jurisdiction == "CA"
    assert found.jurisdiction == "CA-QC"


def test_sub_category_falls_back_to_its_parent() -> None:
    policy = table(
        row("DE", "alcohol", "minimum_age = 18"), row("DE", "alcohol.beer_wine", "minimum_age = 16")
    )
    assert policy.minimum_age("DE", "alcohol.beer_wine") == 16
    spirits = policy.lookup("DE", "alcohol.spirits")
    assert spirits.minimum_age == 18
    assert spirits.rule is not None and spirits.rule.category == "alcohol"
    assert spirits.category == "alcohol.spirits"


def test_subdivision_row_for_the_parent_beats_country_row_for_the_sub_category() -> None:
    policy = table(
        row("CA", "alcohol.beer_wine", "minimum_age = 16"),
        row("CA-QC", "alcohol", "minimum_age = 18"),
    )
    assert policy.minimum_age("CA-QC", "alcohol.beer_wine") == 18
    assert policy.minimum_age("CA-ON", "alcohol.beer_wine") == 16


def test_missing_row_is_unknown_never_a_guess() -> None:
    policy = table(row("DE", "alcohol.beer_wine", "minimum_age = 16"))
    for jurisdiction, category in [("FR", "alcohol"), ("DE", "tobacco"), ("DE", "alcohol")]:
        found = policy.lookup(jurisdiction, category)
        assert found.status is RuleStatus.UNKNOWN
        assert found.rule is None
        assert found.minimum_age is None


def test_prohibited_row_gives_prohibited() -> None:
    policy = table(row("US", "cannabis", "prohibited = true"))
    found = policy.lookup("US-TX", "cannabis")
    assert found.status is RuleStatus.PROHIBITED
    assert found.minimum_age is None


def test_subdivision_row_can_lift_a_country_prohibition() -> None:
    policy = table(
        row("US", "cannabis", "prohibited = true"), row("US-CA", "cannabis", "minimum_age = 21")
    )
    assert policy.lookup("US-CA", "cannabis").status is RuleStatus.MINIMUM_AGE
    assert policy.minimum_age("US-CA", "cannabis") == 21
    assert policy.lookup("US-VA", "cannabis").status is RuleStatus.PROHIBITED


def test_lookup_normalises_input_and_rejects_malformed_codes() -> None:
    policy = table(row("CA-QC", "cannabis", "minimum_age = 21"))
    assert policy.minimum_age(" ca-qc ", "Cannabis") == 21
    with pytest.raises(ValueError, match="not a jurisdiction code"):
        policy.lookup("Quebec", "cannabis")
    with pytest.raises(ValueError, match="not a category"):
        policy.lookup("CA-QC", "weed!")


def test_zone_of_a_subdivision_falls_back_to_its_country() -> None:
    policy = table(row("CA", "alcohol", "minimum_age = 19"))
    assert policy.zone("CA-QC").key == "America/Toronto"
    assert policy.zone("CA-ON").key == "America/Vancouver"
    with pytest.raises(UnknownJurisdictionError, match="no time zone for JP"):
        policy.zone("JP")


def test_unverified_rows_are_listed_for_review() -> None:
    unsure = row("DE", "vape").replace("verified = true", "verified = false")
    policy = table(row("DE", "tobacco"), unsure)
    assert [(r.jurisdiction, r.category) for r in policy.unverified()] == [("DE", "vape")]


BAD_ROWS = [
    ("minimum_age = 18\nprohibited = true", "a prohibited row has no minimum_age"),
    ("prohibited = false", "needs minimum_age or prohibited = true"),
    ("minimum_age = true", "minimum_age must be a whole number"),
    ("minimum_age = 18.5", "minimum_age must be a whole number"),
    ("minimum_age = 0", "minimum_age 0 is not between 1 and 99"),
    ('minimum_age = "18"', "minimum_age must be a whole number"),
    (
        'minimum_age = 18\nrule_type = "lunar"',
        "rule_type 'lunar' is not one of 'birthday', 'calendar_year'",
    ),
    (
        'minimum_age = 18\nfeb29_birthday_on = "feb29"',
        "feb29_birthday_on 'feb29' is not one of 'mar1', 'feb28'",
    ),
    ("minimum_age = 18\nminimun_age = 18", r"unknown key\(s\) \['minimun_age'\]"),
    ('minimum_age = 18\nprohibited = "no"', "prohibited must be a bool"),
]


@pytest.mark.parametrize(("body", "message"), BAD_ROWS)
def test_bad_row_is_rejected_with_its_number_and_name(body: str, message: str) -> None:
    with pytest.raises(AgeTableError, match=message) as info:
        table(row("DE", "alcohol"), row("DE", "vape", body))
    assert "test.toml: rule #2 (DE vape): " in str(info.value)


def test_row_without_a_source_is_rejected() -> None:
    text = (
        ZONES
        + '[[rule]]\njurisdiction = "DE"\ncategory = "vape"\nminimum_age = 18\nverified = true\n'
    )
    with pytest.raises(AgeTableError, match=r"rule #1 \(DE vape\): missing source"):
        AgePolicy.from_toml(text, origin="test.toml")
    blank = row("DE", "vape").replace('"test statute s. 1"', '"  "')
    with pytest.raises(AgeTableError, match="source is empty"):
        table(blank)


def test_row_without_verified_is_rejected() -> None:
    text = row("DE", "vape").replace("verified = true\n", "")
    with pytest.raises(AgeTableError, match=r"rule #1 \(DE vape\): missing verified"):
        table(text)


@pytest.mark.parametrize(
    ("jurisdiction", "category", "message"),
    [
        ("de", "vape", "jurisdiction 'de' is not an ISO 3166 code"),
        ("DEU", "vape", "jurisdiction 'DEU' is not an ISO 3166 code"),
        ("DE", "Vape", "category 'Vape' is not a dotted lowercase name"),
        ("DE", "alcohol..spirits", "category 'alcohol..spirits' is not a dotted lowercase name"),
    ],
)
def test_malformed_names_in_the_table_are_rejected(
    jurisdiction: str, category: str, message: str
) -> None:
    with pytest.raises(AgeTableError, match=message):
        table(row(jurisdiction, category))


def test_duplicate_rows_are_rejected_naming_both() -> None:
    with pytest.raises(AgeTableError, match=r"rule #3 \(DE vape\) duplicates rule #1"):
        table(row("DE", "vape"), row("DE", "tobacco"), row("DE", "vape", "minimum_age = 21"))


def test_row_whose_jurisdiction_has_no_zone_is_rejected() -> None:
    with pytest.raises(AgeTableError, match="row JP alcohol: no time zone for JP or its country"):
        table(row("JP", "alcohol", "minimum_age = 20"))


def test_unknown_zone_name_is_rejected() -> None:
    with pytest.raises(AgeTableError, match=r"zones.DE: unknown time zone 'Europe/Bonn'"):
        table(row("DE", "vape"), zones='[zones]\nDE = "Europe/Bonn"\n')


def test_unknown_top_level_key_and_bad_toml_are_rejected() -> None:
    with pytest.raises(AgeTableError, match=r"unknown top-level key\(s\) \['rules'\]"):
        AgePolicy.from_toml(ZONES + '[[rules]]\njurisdiction = "DE"\n', origin="test.toml")
    with pytest.raises(AgeTableError, match=r"test\.toml: not valid TOML"):
        AgePolicy.from_toml("[[rule]\n", origin="test.toml")


def test_policy_built_in_code_rejects_duplicate_rows() -> None:
    rule = AgeRule("DE", "vape", 18, False, "test statute s. 1", True)
    with pytest.raises(AgeTableError, match="duplicate row for DE vape"):
        AgePolicy(
            [rule, AgeRule("DE", "vape", 21, False, "other statute", True)], {"DE": "Europe/Berlin"}
        )


def test_rule_built_in_code_is_validated() -> None:
    with pytest.raises(ValueError, match="needs minimum_age or prohibited = true"):
        AgeRule("DE", "vape", None, False, "test statute s. 1", True)
