"""Identity rules in the manner of Segment Unify: priority, limits, blocked values.

Defaults suit a shop; a JSON file named by the `identity_rules_file` setting
(`GUESTLIST_IDENTITY_RULES_FILE`) replaces any of the fields below.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, PrivateAttr

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
    _values: frozenset[str] = PrivateAttr(default=frozenset())
    _patterns: list[re.Pattern[str]] = PrivateAttr(default_factory=list)
    _locals: frozenset[str] = PrivateAttr(default=frozenset())
    _emails: frozenset[str] = PrivateAttr(default=frozenset())

    def limit(self, kind: str) -> int:
        return self.limits.get(kind, 1000)

    def rank(self, kind: str) -> int:
        return self.priority.index(kind) if kind in self.priority else len(self.priority)

    def model_post_init(self, _context: object) -> None:
        self._values = frozenset(v.lower() for v in self.blocked_values)
        self._patterns = [re.compile(p) for p in self.blocked_patterns]
        self._locals = frozenset(v.lower() for v in self.blocked_email_locals)
        self._emails = frozenset(v.lower() for v in self.blocked_emails)

    def is_blocked(self, kind: str, key: str) -> bool:
        lowered = key.lower()
        if lowered in self._values or any(p.match(lowered) for p in self._patterns):
            return True
        if kind == "email":
            return lowered in self._emails or lowered.partition("@")[0] in self._locals
        return False


@lru_cache(maxsize=1)
def load_rules() -> IdentityRules:
    path = get_settings().identity_rules_file
    if not path:
        return IdentityRules()
    return IdentityRules.model_validate(json.loads(Path(path).read_text()))
