"""The evaluator's input, loaded from the store: one `ProfileView` per live profile.

Read from the same tables the SQL compiler reads, with the same derivations, so that
`evaluate(rule, view, now, …)` and `compile_rule(rule, now=now, …)` agree:

- only live profiles (not merged away, not erased) get a view;
- traits as stored (SQL NULL and JSON null both become None: absent);
- track events only, with their properties;
- consent per (channel, purpose) as the consent package derives it
  (`consent.ledger.channel_status` over the rows, granted implied consent at or past
  its `expires_at` reading as `expired`);
- `of_age(category, level)` from `guestlist.age.eligibility` with the profile's
  `age_state` row, judged at `now`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import Connection, select

from guestlist.age import AgePolicy, VerificationLevel, default_policy, eligibility
from guestlist.age.names import is_jurisdiction
from guestlist.consent.ledger import ConsentState, channel_status
from guestlist.segments.evaluate import ProfileEvent, ProfileView
from guestlist.store.tables import age_state, consent_state, events, identifiers, profiles, traits

__all__ = ["OfAge", "load_profile_views"]

CHUNK: Final = 5000  # ids per IN list (SQLite allows 32,766 variables)
_LEVELS: Final = {level.value: level for level in VerificationLevel}


@dataclass(frozen=True)
class OfAge:
    """`ProfileView.of_age` for one profile's age facts at `now`.

    Only what `age/records.py` stores counts: a canonical jurisdiction code (`US-TX`)
    and a level's exact name (`dob_provided`). Anything else, or either missing, is
    never of age — the SQL compiler decides the same way.
    """

    dob: date | None
    level: str | None
    jurisdiction: str | None
    now: datetime
    policy: AgePolicy

    def __call__(self, category: str, required: str | None) -> bool:
        if self.jurisdiction is None or not is_jurisdiction(self.jurisdiction):
            return False
        level = None if self.level is None else _LEVELS.get(self.level)
        if level is None:
            return False
        return eligibility(
            self.dob,
            self.jurisdiction,
            category,
            self.now,
            level=level,
            required_level=None if required is None else VerificationLevel(required),
            policy=self.policy,
        ).eligible


def load_profile_views(
    conn: Connection,
    profile_ids: Iterable[int],
    *,
    now: datetime,
    policy: AgePolicy | None = None,
    event_names: Iterable[str] | None = None,
) -> dict[int, ProfileView]:
    """A view per live profile among `profile_ids` (merged, erased and unknown ids get
    none), for evaluating rules at `now` (timezone-aware).

    `event_names` limits the events loaded to those names (the ones the rules at hand
    use); None loads every track event.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got the naive {now.isoformat()}")
    policy = policy or default_policy()
    names = None if event_names is None else sorted(set(event_names))
    wanted = sorted(set(profile_ids))
    out: dict[int, ProfileView] = {}
    for i in range(0, len(wanted), CHUNK):
        out.update(_load_chunk(conn, wanted[i : i + CHUNK], now, policy, names))
    return out


def _load_chunk(
    conn: Connection,
    ids: Sequence[int],
    now: datetime,
    policy: AgePolicy,
    event_names: list[str] | None,
) -> dict[int, ProfileView]:
    live = [
        int(pid)
        for pid in conn.scalars(
            select(profiles.c.id).where(
                profiles.c.id.in_(ids),
                profiles.c.merged_into.is_(None),
                profiles.c.erased_at.is_(None),
            )
        )
    ]
    if not live:
        return {}

    trait_values: dict[int, dict[str, Any]] = defaultdict(dict)
    for row in conn.execute(
        select(traits.c.profile_id, traits.c.name, traits.c.value).where(
            traits.c.profile_id.in_(live)
        )
    ):
        trait_values[int(row.profile_id)][row.name] = row.value

    held: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for row in conn.execute(
        select(identifiers.c.profile_id, identifiers.c.kind, identifiers.c.key).where(
            identifiers.c.profile_id.in_(live)
        )
    ):
        held[int(row.profile_id)][row.kind].add(row.key)

    states: dict[int, list[ConsentState]] = defaultdict(list)
    for state in conn.execute(
        select(
            consent_state.c.profile_id,
            consent_state.c.channel,
            consent_state.c.purpose,
            consent_state.c.identifier,
            consent_state.c.status,
            consent_state.c.kind,
            consent_state.c.event_time,
            consent_state.c.expires_at,
            consent_state.c.record_id,
        ).where(consent_state.c.profile_id.in_(live))
    ):
        status = state.status
        if status == "granted" and state.expires_at is not None and state.expires_at <= now:
            status = "expired"  # as consent.ledger.current_consent reads it (C-7)
        states[int(state.profile_id)].append(
            ConsentState(
                state.channel,
                state.purpose,
                state.identifier,
                status,
                state.kind,
                state.event_time,
                state.expires_at,
                int(state.record_id),
            )
        )

    ages = {
        int(row.profile_id): row
        for row in conn.execute(
            select(
                age_state.c.profile_id, age_state.c.dob, age_state.c.level, age_state.c.jurisdiction
            ).where(age_state.c.profile_id.in_(live))
        )
    }

    history: dict[int, list[ProfileEvent]] = defaultdict(list)
    event_query = select(
        events.c.profile_id, events.c.name, events.c.timestamp, events.c.properties
    ).where(events.c.profile_id.in_(live), events.c.type == "track", events.c.name.is_not(None))
    if event_names is not None:
        event_query = event_query.where(events.c.name.in_(event_names))
    for event in conn.execute(event_query.order_by(events.c.profile_id, events.c.timestamp)):
        history[int(event.profile_id)].append(
            ProfileEvent(event.name, event.timestamp, event.properties)
        )

    views: dict[int, ProfileView] = {}
    for pid in live:
        mine = states.get(pid, [])
        pairs = {(s.channel, s.purpose) for s in mine}
        age = ages.get(pid)
        dob = None if age is None else age.dob
        level = None if age is None else age.level
        jurisdiction = None if age is None else age.jurisdiction
        views[pid] = ProfileView(
            traits=trait_values.get(pid, {}),
            identifiers={kind: frozenset(keys) for kind, keys in held.get(pid, {}).items()},
            events=tuple(history.get(pid, ())),
            consent={pair: channel_status(mine, *pair) for pair in pairs},
            dob=dob,
            verification_level=level,
            jurisdiction=jurisdiction,
            of_age=OfAge(dob, level, jurisdiction, now, policy),
        )
    return views
