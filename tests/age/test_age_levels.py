"""Verification levels (A-3) and the level each category requires (A-4)."""

from __future__ import annotations

import pytest

from guestlist.age import (
    DEFAULT_MARKETING_LEVELS,
    VerificationLevel,
    marketing_levels,
    required_level_for,
)

L = VerificationLevel


def test_levels_are_ordered_from_self_declared_to_in_person_id() -> None:
    expected = [
        L.SELF_DECLARED,
        L.DOB_PROVIDED,
        L.DATABASE_CHECK,
        L.ID_DOCUMENT,
        L.IN_PERSON_ID,
    ]
    assert sorted(reversed(expected)) == expected
    assert [level.rank for level in expected] == [0, 1, 2, 3, 4]
    assert L.DOB_PROVIDED < L.DATABASE_CHECK <= L.DATABASE_CHECK < L.ID_DOCUMENT
    assert L.IN_PERSON_ID > L.ID_DOCUMENT >= L.ID_DOCUMENT > L.SELF_DECLARED
    assert not L.IN_PERSON_ID < L.SELF_DECLARED


def test_levels_do_not_compare_with_numbers() -> None:
    with pytest.raises(TypeError):
        _ = L.DOB_PROVIDED < 3  # type: ignore[operator]


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("self_declared", L.SELF_DECLARED),
        ("dob_provided", L.DOB_PROVIDED),
        ("database_check", L.DATABASE_CHECK),
        ("id_document", L.ID_DOCUMENT),
        (" In_Person_ID ", L.IN_PERSON_ID),
    ],
)
def test_parse_level_by_name(text: str, level: VerificationLevel) -> None:
    assert VerificationLevel.parse(text) is level


def test_parse_level_rejects_unknown_name_and_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown verification level 'id_scan'") as info:
        VerificationLevel.parse("id_scan")
    assert "self_declared, dob_provided, database_check, id_document, in_person_id" in str(
        info.value
    )


def test_default_marketing_levels_follow_a4() -> None:
    assert required_level_for("alcohol") is L.DOB_PROVIDED
    assert required_level_for("tobacco") is L.DATABASE_CHECK
    assert required_level_for("vape") is L.DATABASE_CHECK
    assert required_level_for("cannabis") is L.DATABASE_CHECK


def test_sub_category_uses_its_parents_required_level() -> None:
    assert required_level_for("alcohol.spirits") is L.DOB_PROVIDED
    overrides = {"alcohol.spirits": "id_document"}
    assert required_level_for("alcohol.spirits", overrides) is L.ID_DOCUMENT
    assert required_level_for("alcohol.beer_wine", overrides) is L.DOB_PROVIDED


def test_shop_override_replaces_the_default_level() -> None:
    overrides: dict[str, VerificationLevel | str] = {
        "alcohol": "database_check",
        "vape": L.IN_PERSON_ID,
    }
    assert required_level_for("alcohol", overrides) is L.DATABASE_CHECK
    assert required_level_for("vape", overrides) is L.IN_PERSON_ID
    assert required_level_for("tobacco", overrides) is L.DATABASE_CHECK
    assert DEFAULT_MARKETING_LEVELS["alcohol"] is L.DOB_PROVIDED  # defaults untouched


def test_override_with_unknown_level_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown verification level 'photo'"):
        marketing_levels({"alcohol": "photo"})


def test_override_with_malformed_category_is_rejected() -> None:
    with pytest.raises(ValueError, match="not a category"):
        marketing_levels({"Alcohol Spirits": "dob_provided"})


def test_category_without_any_required_level_is_an_error() -> None:
    with pytest.raises(ValueError, match="no required verification level for category 'kratom'"):
        required_level_for("kratom")
