"""Where a person is judged: a jurisdiction code from what senders write.

Two inputs. `Age Verified` names ISO codes (`country` alpha-2, `region` ISO 3166-2 or
its part after the dash), and anything the age table cannot place is refused.
A Segment `address` trait is written by people (`{"country": "Canada", "state":
"Québec"}`), so it also accepts alpha-3 codes and English names for the countries the
table covers, and state or province names for the US and Canada. See docs/age.md,
*Jurisdiction*.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from guestlist.age.policy import AgePolicy, default_policy

# Alpha-3 codes and English names of the countries the age table covers. Alpha-2 codes
# need no entry; `UK` is the code ISO reserves for GB and many people write.
COUNTRY_NAMES: Final[Mapping[str, str]] = {
    "UK": "GB",
    "USA": "US",
    "UNITED STATES": "US",
    "UNITED STATES OF AMERICA": "US",
    "CAN": "CA",
    "CANADA": "CA",
    "AUS": "AU",
    "AUSTRALIA": "AU",
    "MEX": "MX",
    "MEXICO": "MX",
    "BRA": "BR",
    "BRAZIL": "BR",
    "GBR": "GB",
    "UNITED KINGDOM": "GB",
    "GREAT BRITAIN": "GB",
    "ENGLAND": "GB",
    "SCOTLAND": "GB",
    "WALES": "GB",
    "NORTHERN IRELAND": "GB",
    "DEU": "DE",
    "GERMANY": "DE",
    "DEUTSCHLAND": "DE",
    "BEL": "BE",
    "BELGIUM": "BE",
    "DNK": "DK",
    "DENMARK": "DK",
    "SWE": "SE",
    "SWEDEN": "SE",
    "AUT": "AT",
    "AUSTRIA": "AT",
    "FRA": "FR",
    "FRANCE": "FR",
    "ESP": "ES",
    "SPAIN": "ES",
    "ITA": "IT",
    "ITALY": "IT",
    "NLD": "NL",
    "NETHERLANDS": "NL",
    "THE NETHERLANDS": "NL",
    "IRL": "IE",
    "IRELAND": "IE",
    "POL": "PL",
    "POLAND": "PL",
    "JPN": "JP",
    "JAPAN": "JP",
    "KOR": "KR",
    "SOUTH KOREA": "KR",
    "KOREA": "KR",
    "REPUBLIC OF KOREA": "KR",
    "IND": "IN",
    "INDIA": "IN",
    "ZAF": "ZA",
    "SOUTH AFRICA": "ZA",
}

# State and province names (ISO 3166-2 subdivision names, English and French for
# Quebec); their codes are accepted as they are.
SUBDIVISION_NAMES: Final[Mapping[str, Mapping[str, str]]] = {
    "US": {
        "ALABAMA": "AL", "ALASKA": "AK", "ARIZONA": "AZ", "ARKANSAS": "AR",
        "CALIFORNIA": "CA", "COLORADO": "CO", "CONNECTICUT": "CT", "DELAWARE": "DE",
        "DISTRICT OF COLUMBIA": "DC", "WASHINGTON DC": "DC", "FLORIDA": "FL",
        "GEORGIA": "GA", "HAWAII": "HI", "IDAHO": "ID", "ILLINOIS": "IL", "INDIANA": "IN",
        "IOWA": "IA", "KANSAS": "KS", "KENTUCKY": "KY", "LOUISIANA": "LA", "MAINE": "ME",
        "MARYLAND": "MD", "MASSACHUSETTS": "MA", "MICHIGAN": "MI", "MINNESOTA": "MN",
        "MISSISSIPPI": "MS", "MISSOURI": "MO", "MONTANA": "MT", "NEBRASKA": "NE",
        "NEVADA": "NV", "NEW HAMPSHIRE": "NH", "NEW JERSEY": "NJ", "NEW MEXICO": "NM",
        "NEW YORK": "NY", "NORTH CAROLINA": "NC", "NORTH DAKOTA": "ND", "OHIO": "OH",
        "OKLAHOMA": "OK", "OREGON": "OR", "PENNSYLVANIA": "PA", "RHODE ISLAND": "RI",
        "SOUTH CAROLINA": "SC", "SOUTH DAKOTA": "SD", "TENNESSEE": "TN", "TEXAS": "TX",
        "UTAH": "UT", "VERMONT": "VT", "VIRGINIA": "VA", "WASHINGTON": "WA",
        "WEST VIRGINIA": "WV", "WISCONSIN": "WI", "WYOMING": "WY",
    },
    "CA": {
        "ALBERTA": "AB", "BRITISH COLUMBIA": "BC", "MANITOBA": "MB", "NEW BRUNSWICK": "NB",
        "NEWFOUNDLAND AND LABRADOR": "NL", "NEWFOUNDLAND": "NL", "NOVA SCOTIA": "NS",
        "NORTHWEST TERRITORIES": "NT", "NUNAVUT": "NU", "ONTARIO": "ON",
        "PRINCE EDWARD ISLAND": "PE", "QUEBEC": "QC", "SASKATCHEWAN": "SK", "YUKON": "YT",
    },
}  # fmt: skip


class PlaceError(ValueError):
    """A country or region that cannot be placed; `field` is `country` or `region`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _words(text: str) -> str:
    """Upper case, accents and dots dropped, spaces collapsed: `Québec` → `QUEBEC`."""
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch))
    return " ".join(plain.replace(".", "").replace("_", " ").upper().split())


def _is_code(text: str, length: range) -> bool:
    return len(text) in length and text.isascii() and text.isalnum()


def read_country(text: str, *, names: bool) -> str | None:
    """An alpha-2 code from `text` (`names`: also alpha-3 codes and English names of
    the table's countries); None when it cannot be read."""
    word = _words(text)
    if len(word) == 2 and word.isascii() and word.isalpha():
        return "GB" if word == "UK" else word
    return COUNTRY_NAMES.get(word) if names else None


def read_subdivision(country: str, text: str, *, names: bool) -> str | None:
    """`CA-QC` from (`CA`, `QC` | `CA-QC` | `Québec` with `names`); None if unreadable."""
    word = _words(text).replace(" - ", "-")
    prefix, dash, rest = word.partition("-")
    if dash:
        if prefix != country:
            return None
        word = rest
    if names and word in SUBDIVISION_NAMES.get(country, {}):
        return f"{country}-{SUBDIVISION_NAMES[country][word]}"
    if _is_code(word, range(1, 4)):
        return f"{country}-{word}"
    return None


def jurisdiction_of(
    country: str | None, region: str | None, *, policy: AgePolicy | None = None
) -> str | None:
    """The jurisdiction an ISO `country` and `region` name (the region's, else the
    country's); None when both are empty. Raises PlaceError naming the field when
    either is malformed, they disagree, or the age table cannot place the result."""
    policy = policy or default_policy()
    code: str | None = None
    if country:
        code = read_country(country, names=False)
        if code is None:
            raise PlaceError("country", f"{country!r} is not an ISO 3166-1 alpha-2 code")
        if not policy.knows(code):
            raise PlaceError("country", f"{code} is not a jurisdiction the age table knows")
    if not region:
        return code
    if code is None:
        prefix, dash, _ = _words(region).partition("-")
        if not dash:
            raise PlaceError("region", f"{region!r}: write CC-XX (ISO 3166-2) or give country")
        code = prefix
    subdivision = read_subdivision(code, region, names=False)
    if subdivision is None:
        raise PlaceError("region", f"{region!r} is not an ISO 3166-2 subdivision of {code}")
    if not policy.knows(subdivision):
        raise PlaceError("region", f"{subdivision} is not a jurisdiction the age table knows")
    return subdivision


@dataclass(frozen=True)
class AddressPlace:
    """Where an `address` trait puts a person.

    `placed` is False when the address says nothing usable (no country, and no state
    readable in the default's country): the caller falls back to the default. When it
    names a country that cannot be read, `placed` is True and `jurisdiction` None:
    the person is somewhere the table cannot judge, and no default applies.
    """

    jurisdiction: str | None
    placed: bool
    problem: str | None = None  # for the event's issues; None when read cleanly
    field: str | None = None  # the address part at fault


_NOWHERE = AddressPlace(None, placed=False)


def _part(address: Mapping[Any, Any], name: str) -> str | None:
    for key, value in address.items():
        if isinstance(key, str) and key.strip().lower() == name:
            if isinstance(value, str) and value.strip():
                return value.strip()
            return None
    return None


def address_place(
    address: Any, *, default: str | None = None, policy: AgePolicy | None = None
) -> AddressPlace:
    """Read a Segment `address` trait (`country`, `state`; other parts are ignored).

    With a country: its subdivision if `state` reads as one, else the country. Without
    a country: `state` is read in the default jurisdiction's country (a US shop's
    customers rarely write "US"); if it does not read there, the address places no one.
    """
    if not isinstance(address, Mapping):  # most calls: no address at all
        return _NOWHERE
    policy = policy or default_policy()
    country_text = _part(address, "country")
    state_text = _part(address, "state")
    if country_text is None:
        if state_text is None or default is None:
            return _NOWHERE
        subdivision = read_subdivision(default[:2], state_text, names=True)
        if subdivision is None or not policy.knows(subdivision):
            return _NOWHERE
        return AddressPlace(subdivision, placed=True)
    country = read_country(country_text, names=True)
    if country is None:
        return AddressPlace(
            None, True, f"country {country_text!r} not recognised: age cannot be judged",
            "country",
        )
    if state_text is None:
        return AddressPlace(country, placed=True)
    subdivision = read_subdivision(country, state_text, names=True)
    if subdivision is None or not policy.knows(subdivision):
        return AddressPlace(
            country, True, f"state {state_text!r} not recognised in {country}: judged by "
            f"{country}'s rules", "state",
        )
    return AddressPlace(subdivision, placed=True)
