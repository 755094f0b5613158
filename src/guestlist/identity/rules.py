"""Identity rules in the manner of Segment Unify: priority, limits, blocked values.

Defaults suit a shop; a JSON file named by the `identity_rules_file` setting
(`GUESTLIST_IDENTITY_RULES_FILE`) replaces any of the fields below.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel

from guestlist.settings import get_settings


class IdentityRules(BaseModel):
    # Strongest first: the first identifier that names one profile picks it.
    priority: list[str] = ["user_id", "external", "email", "phone", "anonymous_id"]
    # Most identifiers of a kind one profile may hold. A merge that would exceed a
    # limit is refused, so a shared family phone does not fuse a household.
    limits: dict[str, int] = {
        "user_id": 1,
        "external": 5,
        "email": 5,
        "phone": 5,
        "anonymous_id": 1000,
    }
    # Merging through these kinds is refused when hard facts disagree.
    guarded_kinds: list[str] = ["phone"]
    hard_facts: list[str] = ["birthday"]
    # Values that never identify anyone (matched on the normalised key).
    blocked_values: list[str] = [
        "",
        "null",
        "none",
        "nil",
        "undefined",
        "anonymous",
        "unknown",
        "guest",
        "n/a",
        "na",
        "-1",
        "0",
        "test",
    ]
    blocked_patterns: list[str] = [
        r"^0+$",  # all zeros
        r"^\+?1?0{10}$",
        r"^\+?1?(\d)\1{6,}$",  # one digit repeated: (+1) 555 555 5555
        r"^\+?1?1234567890$",
    ]
    # Shop placeholder addresses typed at the till when the customer gives none.
    blocked_email_locals: list[str] = [
        "noemail",
        "no-email",
        "no_email",
        "nomail",
        "none",
        "null",
        "na",
        "n/a",
        "noreply",
        "no-reply",
        "donotreply",
        "do-not-reply",
        "test",
        "customer",
        "guest",
        "unknown",
        "email",
        "noone",
        "nobody",
    ]
    blocked_emails: list[str] = ["none@none.com", "no@no.com", "a@a.com", "x@x.com"]
    default_region: str = "US"

    def compile(self) -> CompiledRules:
        return CompiledRules(
            priority={kind: i for i, kind in enumerate(self.priority)},
            limits=dict(self.limits),
            guarded_kinds=frozenset(self.guarded_kinds),
            hard_facts=tuple(self.hard_facts),
            values=frozenset(v.lower() for v in self.blocked_values),
            patterns=tuple(re.compile(p) for p in self.blocked_patterns),
            email_locals=frozenset(v.lower() for v in self.blocked_email_locals),
            emails=frozenset(v.lower() for v in self.blocked_emails),
        )

    def is_blocked(self, kind: str, key: str) -> bool:
        return self.compile().is_blocked(kind, key)


@dataclass(frozen=True, slots=True, eq=False)
class CompiledRules:
    """The rules as plain data, for the hot path (a lookup per identifier per event)."""

    priority: dict[str, int]
    limits: dict[str, int]
    guarded_kinds: frozenset[str]
    hard_facts: tuple[str, ...]
    values: frozenset[str]
    patterns: tuple[re.Pattern[str], ...]
    email_locals: frozenset[str]
    emails: frozenset[str]

    def limit(self, kind: str) -> int:
        return self.limits.get(kind, 1000)

    def rank(self, kind: str) -> int:
        return self.priority.get(kind, len(self.priority))

    def is_blocked(self, kind: str, key: str) -> bool:
        lowered = key.lower()
        if lowered in self.values:
            return True
        for pattern in self.patterns:
            if pattern.match(lowered):
                return True
        if kind == "email":
            return lowered in self.emails or lowered.partition("@")[0] in self.email_locals
        return False


def compiled(rules: IdentityRules | CompiledRules) -> CompiledRules:
    return rules if isinstance(rules, CompiledRules) else rules.compile()


@lru_cache(maxsize=1)
def load_rules() -> CompiledRules:
    path = get_settings().identity_rules_file
    if not path:
        return IdentityRules().compile()
    return IdentityRules.model_validate(json.loads(Path(path).read_text())).compile()
