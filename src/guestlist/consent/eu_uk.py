"""E-3: who is an EU/UK recipient, and what implied consent needs there.

Marketing by electronic message to someone in the EU, the EEA or the UK needs opt-in
consent (GDPR, the ePrivacy Directive; in the UK the PECR, reg. 22). The one exception
is the *soft opt-in* (PECR reg. 22(3); § 7(3) UWG in Germany): the details came from a
sale or the negotiations for one, the marketing is for the shop's own similar
products, and the person was offered an opt-out when the details were collected (and
in every message since). guestlist records it as `kind` `implied` with `legal_basis`
`soft_opt_in` and its evidence; any other implied consent for such a recipient is not
consent. See docs/consent.md, *EU and UK recipients (E-3)*.

A recipient is EU/UK when either of these says so (the conservative union):

- the profile's jurisdiction: its `age_state` (the deciding age record's place, else
  its `address` trait, else the `default_jurisdiction` setting); for a profile without
  age records, its `address` trait, else the default (`recipient_jurisdiction`);
- for channels messaged at a phone number (`sms`, `whatsapp`, `phone`), the number's
  country calling code (`number_in_eu_uk`).

When neither says anything the recipient is not known to be EU/UK: the statement is
recorded, and the guard asks again with the facts it has at decision time.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import Connection, select

from guestlist.age.places import address_place
from guestlist.age.records import ADDRESS_TRAIT, default_jurisdiction
from guestlist.store.tables import age_state, traits

SOFT_OPT_IN: Final = "soft_opt_in"

# ISO 3166-1 alpha-2 codes where GDPR and the ePrivacy rules (or the UK's copies of
# them) apply: the 27 EU states (Greece is GR), the EU's outermost regions that have
# codes of their own (French Guiana, Guadeloupe, Martinique, Réunion, Mayotte,
# Saint-Martin) and Åland; the EEA states Iceland, Liechtenstein and Norway; the UK,
# the Crown Dependencies that share its +44 numbers (Guernsey, Jersey, Isle of Man)
# and Gibraltar, which have data-protection and e-marketing laws of the same shape.
# Data, for the shop to review: adding a code only ever asks for more proof.
EU_UK_COUNTRIES: Final = frozenset(
    {
        # EU
        "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU",
        "IE", "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES",
        "SE",
        "GF", "GP", "MQ", "RE", "YT", "MF", "AX",
        # EEA
        "IS", "LI", "NO",
        # UK and places sharing its numbering or its rules
        "GB", "GG", "JE", "IM", "GI",
    }
)  # fmt: skip

# ITU-T E.164 country calling codes of those places. Calling codes are prefix-free, so
# a number's code is the one of these its digits start with. A few codes also cover a
# place outside the list (+39 the Vatican, +590 Saint-Barthélemy, +47 Svalbard): a
# number there is treated as EU/UK, the conservative side.
EU_UK_CALLING_CODES: Final = frozenset(
    {
        "43", "32", "359", "385", "357", "420", "45", "372", "358", "33", "49", "30",
        "36", "353", "39", "371", "370", "352", "356", "31", "48", "351", "40", "421",
        "386", "34", "46",
        "594", "590", "596", "262",  # GF; GP and MF; MQ; RE and YT (AX shares +358)
        "354", "423", "47",  # IS, LI, NO
        "44", "350",  # GB with GG, JE and IM; GI
    }
)  # fmt: skip

# Channels messaged at a phone number: for these the number's country counts too.
PHONE_CHANNELS: Final = frozenset({"sms", "whatsapp", "phone"})
# Channels E-3 governs: electronic messages (PECR reg. 22 "electronic mail": email, SMS,
# WhatsApp; push notifications conservatively too). Not `phone` (live calls are
# opt-out under PECR reg. 21, screened against the TPS) nor `postal` (GDPR
# legitimate interests, recital 47), where an implied grant stays valid.
E3_CHANNELS: Final = frozenset({"email", "sms", "whatsapp", "push"})


def in_eu_uk(jurisdiction: str | None) -> bool:
    """Whether a jurisdiction code (`GB`, `ES-CN`) is in the EU, the EEA or the UK."""
    return jurisdiction is not None and jurisdiction[:2].upper() in EU_UK_COUNTRIES


def number_in_eu_uk(number: str | None) -> bool:
    """Whether an E.164 number (`+447700900123`) has an EU/EEA/UK calling code."""
    if not number or not number.startswith("+"):
        return False
    digits = number[1:]
    return any(digits[:n] in EU_UK_CALLING_CODES for n in (1, 2, 3))


def recipient_in_eu_uk(channel: str, identifier: str | None, jurisdiction: str | None) -> bool:
    """Whether a message on `channel` to `identifier` reaches an EU/UK recipient: the
    profile's `jurisdiction` is there, or (phone channels) the number is. Unknown is
    False: not known to be EU/UK."""
    if in_eu_uk(jurisdiction):
        return True
    return channel in PHONE_CHANNELS and number_in_eu_uk(identifier)


def implied_without_basis(
    *,
    channel: str,
    purpose: str,
    status: str,
    kind: str,
    legal_basis: str | None,
    identifier: str | None,
    jurisdiction: str | None,
) -> bool:
    """E-3: an implied marketing grant on an electronic channel for an EU/UK recipient
    that does not stand on the soft opt-in — which is not consent there."""
    return (
        status == "granted"
        and kind == "implied"
        and purpose == "marketing"
        and channel in E3_CHANNELS
        and legal_basis != SOFT_OPT_IN
        and recipient_in_eu_uk(channel, identifier, jurisdiction)
    )


def recipient_jurisdiction(conn: Connection, profile_id: int) -> str | None:
    """Where guestlist places the profile now: its `age_state` jurisdiction when it
    holds age records, else its stored `address` trait, else the `default_jurisdiction`
    setting; None when unknown (an address naming a country the age table cannot read
    is unknown, and no default applies)."""
    row = conn.execute(
        select(age_state.c.jurisdiction).where(age_state.c.profile_id == profile_id)
    ).first()
    if row is not None:
        return None if row.jurisdiction is None else str(row.jurisdiction)
    default = default_jurisdiction()
    address = conn.scalar(
        select(traits.c.value).where(
            traits.c.profile_id == profile_id, traits.c.name == ADDRESS_TRAIT
        )
    )
    place = address_place(address, default=default)
    return place.jurisdiction if place.placed else default
