"""Jurisdiction and category names, and the fallback chains lookups walk.

A jurisdiction is an ISO 3166-1 alpha-2 country (`DE`) or an ISO 3166-2 subdivision
(`CA-QC`); its chain is itself, then its country. A category is a dotted lowercase
name (`alcohol.spirits`); its chain is itself, then each parent (`alcohol`).
"""

from __future__ import annotations

import re

_JURISDICTION = re.compile(r"[A-Z]{2}(?:-[A-Z0-9]{1,3})?")
_CATEGORY = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*")


def is_jurisdiction(name: str) -> bool:
    """True for a canonical code: `US`, `CA-QC`, `AU-NSW`."""
    return _JURISDICTION.fullmatch(name) is not None


def is_category(name: str) -> bool:
    """True for a canonical category: `vape`, `alcohol.beer_wine`."""
    return _CATEGORY.fullmatch(name) is not None


def parse_jurisdiction(text: str) -> str:
    """Canonical jurisdiction code from user input (`" ca-qc "` → `"CA-QC"`)."""
    code = text.strip().upper()
    if not is_jurisdiction(code):
        raise ValueError(
            f"not a jurisdiction code: {text!r} (expected ISO 3166-1 alpha-2 such as "
            "'DE', or ISO 3166-2 such as 'CA-QC')"
        )
    return code


def parse_category(text: str) -> str:
    """Canonical category from user input (`"Alcohol.Spirits"` → `"alcohol.spirits"`)."""
    name = text.strip().lower()
    if not is_category(name):
        raise ValueError(
            f"not a category: {text!r} (expected dotted lowercase names such as "
            "'alcohol' or 'alcohol.spirits')"
        )
    return name


def jurisdiction_chain(code: str) -> tuple[str, ...]:
    """`CA-QC` → (`CA-QC`, `CA`); `DE` → (`DE`,)."""
    country, _, subdivision = code.partition("-")
    return (code, country) if subdivision else (code,)


def category_chain(name: str) -> tuple[str, ...]:
    """`alcohol.beer_wine` → (`alcohol.beer_wine`, `alcohol`)."""
    parts = name.split(".")
    return tuple(".".join(parts[:n]) for n in range(len(parts), 0, -1))
