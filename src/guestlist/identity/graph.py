"""Identity resolution for a batch of events against the stored identity graph.

The batch is resolved in memory, event by event in order, over the slice of the graph
its identifiers touch (loaded in a handful of queries); then new profiles and
identifiers are written in bulk and stored profiles that turned out to be one person
are merged. New profiles carry provisional negative ids until they are inserted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from operator import attrgetter
from typing import Any

from sqlalchemy import Connection, select

from guestlist.canonical import CanonicalEvent
from guestlist.identity.merge import merge_profiles
from guestlist.identity.normalize import Identifier, InvalidIdentifier, normalize
from guestlist.identity.rules import CompiledRules, IdentityRules, compiled
from guestlist.store.bulk import allocate_ids, bulk_insert, select_in
from guestlist.store.tables import identifiers, profiles, traits
from guestlist.store.types import utcnow

CHUNK = 5000  # bound on IN (...) lists (SQLite allows 32766 parameters)


@dataclass(slots=True)
class EventIdentity:
    """What resolution found for one event."""

    identifiers: list[Identifier] = field(default_factory=list)
    issues: list[dict[str, Any]] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)
    profile_id: int = 0
    created: bool = False  # the profile was created by this batch

    def __reduce__(self) -> tuple[type[EventIdentity], tuple[Any, ...]]:
        # An import's reader process extracts these (see canonical.CanonicalEvent).
        return (EventIdentity, _identity_fields(self))


_identity_fields = attrgetter(*(f.name for f in fields(EventIdentity)))


@dataclass(slots=True)
class _Merge:
    survivor: int
    merged: int
    reason: str
    identifier: Identifier | None
    message_id: str
    detail: dict[str, Any]


_trait_kinds: dict[str, str | None] = {}


def _identifier_trait(name: str) -> str | None:
    """`email` or `phone` if a trait of this name holds one (`Email` from a spreadsheet
    is still the email), else None; memoized, as few names recur on every event."""
    try:
        return _trait_kinds[name]
    except KeyError:
        lowered = name.strip().lower()
        kind = lowered if lowered in ("email", "phone") else None
        if len(_trait_kinds) < 10_000:
            _trait_kinds[name] = kind
        return kind


# What `extract_identifiers` gave events, by `id()` of the event object (exact even
# where two events share a messageId; the events are alive as long as the mapping).
Extracted = Mapping[int, EventIdentity]


def extract_identifiers(event: CanonicalEvent, rules: CompiledRules) -> EventIdentity:
    """Normalise every identifier an event carries; invalid or blocked ones become issues."""
    found = EventIdentity()
    candidates: list[tuple[str, str, object]] = []
    if event.user_id is not None:
        candidates.append(("user_id", "userId", event.user_id))
    if event.anonymous_id is not None:
        candidates.append(("anonymous_id", "anonymousId", event.anonymous_id))
    where = "traits" if event.type == "identify" else "context.traits"
    id_traits = event.identity_traits()
    for name, value in id_traits.items():
        kind = _identifier_trait(name)
        if kind is not None and value not in (None, ""):
            candidates.append((kind, f"{where}.{name}", value))
    for ext in event.external_ids:
        candidates.append(("external", "externalIds", ext.key))
    for kind, field_name, raw in candidates:
        try:
            ident = normalize(kind, raw, event.default_region)
        except InvalidIdentifier as exc:
            found.issues.append({"field": field_name, "value": raw, "error": str(exc)})
            continue
        if rules.is_blocked(kind, ident.key):
            found.issues.append(
                {"field": field_name, "value": raw, "error": "blocked value: never identifies"}
            )
            continue
        if ident not in found.identifiers:
            found.identifiers.append(ident)
    found.identifiers.sort(key=lambda i: rules.rank(i.kind))
    for fact in rules.hard_facts:
        value = event.traits.get(fact) if event.type == "identify" else None
        if isinstance(value, str) and value.strip():
            found.facts[fact] = value.strip()[:10]  # dates compare by their day
    return found


class BatchResolver:
    """Resolves a batch of events to profile ids inside one transaction."""

    def __init__(self, conn: Connection, rules: IdentityRules | CompiledRules) -> None:
        self.conn = conn
        self.rules = compiled(rules)
        self.owners: dict[tuple[str, str], set[int]] = defaultdict(set)
        self.holdings: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.facts: dict[int, dict[str, str]] = defaultdict(dict)
        self.parent: dict[int, int] = {}
        self.stored: set[tuple[int, str, str]] = set()
        self.new_profiles: list[int] = []
        self.attach: list[tuple[int, Identifier, int, datetime]] = []
        self.merges: list[_Merge] = []
        self.seen: dict[int, tuple[datetime, datetime]] = {}

    # -- loading -----------------------------------------------------------------

    def _load(self, keys: set[tuple[str, str]]) -> None:
        by_kind: dict[str, list[str]] = defaultdict(list)
        for kind, key in keys:
            by_kind[kind].append(key)
        found: set[int] = set()
        for kind, values in by_kind.items():
            rows = select_in(self.conn, identifiers, ["profile_id"], "key", values, kind=kind)
            found.update(int(pid) for (pid,) in rows)
        self._load_profiles(found)

    def _load_profiles(self, ids: Iterable[int]) -> None:
        wanted = [i for i in ids if i not in self.holdings]
        for chunk in _chunks(wanted):
            columns = ["profile_id", "kind", "key"]
            for pid, kind, key in select_in(self.conn, identifiers, columns, "profile_id", chunk):
                pid = int(pid)
                self.owners[(kind, key)].add(pid)
                self.holdings[pid][kind].add(key)
                self.stored.add((pid, kind, key))
            if self.rules.hard_facts:
                for row in self.conn.execute(
                    select(traits.c.profile_id, traits.c.name, traits.c.value).where(
                        traits.c.profile_id.in_(chunk),
                        traits.c.name.in_(list(self.rules.hard_facts)),
                    )
                ):
                    if isinstance(row.value, str) and row.value.strip():
                        self.facts[int(row.profile_id)][row.name] = row.value.strip()[:10]
            for pid in chunk:
                self.holdings.setdefault(pid, defaultdict(set))

    # -- the rules ---------------------------------------------------------------

    def find(self, pid: int) -> int:
        while pid in self.parent:
            pid = self.parent[pid]
        return pid

    def _conflicting_fact(self, a: dict[str, str], b: dict[str, str]) -> str | None:
        for name in self.rules.hard_facts:
            if name in a and name in b and a[name] != b[name]:
                return name
        return None

    def _over_limit(self, held: dict[str, set[str]], extra: dict[str, set[str]]) -> str | None:
        for kind, keys in extra.items():
            mine = held.get(kind, set())
            # Only what is new counts: after an alias a profile may hold two user ids
            # beyond the limit, and each must still find it.
            if not keys <= mine and len(mine | keys) > self.rules.limit(kind):
                return kind
        return None

    def _refusal(
        self, pid: int, extra: dict[str, set[str]], facts: dict[str, str], via: str
    ) -> str | None:
        """Why `pid` cannot take on these identifiers and facts, or None if it can."""
        kind = self._over_limit(self.holdings[pid], extra)
        if kind is not None:
            return f"limit of {self.rules.limit(kind)} {kind} per profile"
        if via in self.rules.guarded_kinds:
            fact = self._conflicting_fact(self.facts[pid], facts)
            if fact is not None:
                return f"conflicting {fact}"
        return None

    def _merge(
        self, a: int, b: int, reason: str, via: Identifier | None, event: CanonicalEvent
    ) -> int:
        # Stored beats new; among stored the older (lower id) survives.
        if (a < 0 < b) or (a > 0 and b > 0 and b < a) or (a < 0 and b < 0 and b > a):
            a, b = b, a
        self.parent[b] = a
        for kind, keys in self.holdings.pop(b, {}).items():
            for key in keys:
                self.owners[(kind, key)].discard(b)
                self.owners[(kind, key)].add(a)
            self.holdings[a][kind] |= keys
        for name, value in self.facts.pop(b, {}).items():
            self.facts[a].setdefault(name, value)
        if b in self.seen:
            self._touch(a, *self.seen.pop(b))
        if a > 0 and b > 0:
            self.merges.append(
                _Merge(a, b, reason, via, event.message_id, {"source_id": event.source_id})
            )
        return a

    def _touch(self, pid: int, first: datetime, last: datetime) -> None:
        if pid in self.seen:
            f, la = self.seen[pid]
            self.seen[pid] = (min(f, first), max(la, last))
        else:
            self.seen[pid] = (first, last)

    def _new_profile(self) -> int:
        pid = -(len(self.new_profiles) + 1)
        self.new_profiles.append(pid)
        self.holdings[pid] = defaultdict(set)
        return pid

    def _resolve_one(self, event: CanonicalEvent, found: EventIdentity) -> int:
        by_kind: dict[str, set[str]] = defaultdict(set)
        for ident in found.identifiers:
            by_kind[ident.kind].add(ident.key)
        primary: int | None = None
        for ident in found.identifiers:
            owners = sorted(self.owners.get((ident.kind, ident.key), ()))
            if not owners:
                continue
            if primary is None:
                # Only identifiers at least as strong as this one can rule a profile out;
                # weaker ones that do not fit are simply not attached.
                rank = self.rules.rank(ident.kind)
                stronger = {k: v for k, v in by_kind.items() if self.rules.rank(k) <= rank}
                for pid in owners:
                    why = self._refusal(pid, stronger, found.facts, ident.kind)
                    if why is None:
                        primary = pid
                        break
                    found.issues.append(
                        {"identifier": ident.kind, "profile_id": pid, "error": f"not joined: {why}"}
                    )
                continue
            if len(owners) != 1 or owners[0] == primary:
                continue  # a shared identifier picks a profile but never fuses several
            other = owners[0]
            why = self._refusal(primary, dict(self.holdings[other]), self.facts[other], ident.kind)
            if why is None:
                primary = self._merge(primary, other, "shared_identifier", ident, event)
            else:
                found.issues.append(
                    {"identifier": ident.kind, "profile_id": other, "error": f"not merged: {why}"}
                )
        if primary is None:
            primary = self._new_profile()
        if event.type == "alias" and event.previous_id:
            primary = self._alias(event, primary)
        for ident in found.identifiers:
            held = self.holdings[primary][ident.kind]
            if ident.key in held:
                continue
            if len(held) >= self.rules.limit(ident.kind):
                found.issues.append(
                    {"identifier": ident.kind, "error": "not attached: limit reached"}
                )
                continue
            held.add(ident.key)
            self.owners[(ident.kind, ident.key)].add(primary)
            self.attach.append((primary, ident, event.source_id, event.timestamp))
        for name, value in found.facts.items():
            self.facts[primary][name] = value
        self._touch(primary, event.timestamp, event.timestamp)
        return primary

    def _alias(self, event: CanonicalEvent, primary: int) -> int:
        """`alias` says two ids are one person: merge explicitly, whatever the limits."""
        previous = str(event.previous_id).strip()
        for kind in ("user_id", "anonymous_id"):
            for other in sorted(self.owners.get((kind, previous), ())):
                other = self.find(other)
                if other != primary:
                    via = Identifier(kind, previous, previous)
                    primary = self._merge(primary, other, "alias", via, event)
        if not any(self.owners.get((k, previous)) for k in ("user_id", "anonymous_id")):
            ident = Identifier("anonymous_id", previous, previous)
            if not self.rules.is_blocked("anonymous_id", previous):
                self.holdings[primary]["anonymous_id"].add(previous)
                self.owners[("anonymous_id", previous)].add(primary)
                self.attach.append((primary, ident, event.source_id, event.timestamp))
        return primary

    # -- the batch ---------------------------------------------------------------

    def resolve(
        self, events: Sequence[CanonicalEvent], extracted: Extracted | None = None
    ) -> list[EventIdentity]:
        """`extracted` holds what `extract_identifiers` gives some of the events, if known
        (an import's reader process computes it)."""
        if extracted:
            found = [extracted.get(id(e)) or extract_identifiers(e, self.rules) for e in events]
        else:
            found = [extract_identifiers(e, self.rules) for e in events]
        keys = {(i.kind, i.key) for f in found for i in f.identifiers}
        for e in events:
            if e.type == "alias" and e.previous_id:
                keys.add(("user_id", str(e.previous_id).strip()))
                keys.add(("anonymous_id", str(e.previous_id).strip()))
        self._load(keys)
        for event, f in zip(events, found, strict=True):
            f.profile_id = self._resolve_one(event, f)
        real = self._flush()
        for f in found:
            root = self.find(f.profile_id)
            f.created = root < 0
            f.profile_id = real[root]
        return found

    def _flush(self) -> dict[int, int]:
        """Write merges, new profiles and identifiers; map every root id to a stored id."""
        now = utcnow()
        for m in self.merges:
            merge_profiles(
                self.conn,
                m.survivor,
                m.merged,
                reason=m.reason,
                identifier_kind=m.identifier.kind if m.identifier else None,
                identifier_key=m.identifier.key if m.identifier else None,
                detail=m.detail,
                message_id=m.message_id,
                at=now,
            )
        real: dict[int, int] = {}
        roots = [p for p in self.new_profiles if p not in self.parent]
        if roots:
            rows = []
            for p, pid in zip(roots, allocate_ids(self.conn, profiles, len(roots)), strict=True):
                real[p] = pid
                first, last = self.seen.get(p, (now, now))
                rows.append(
                    {"id": pid, "created_at": now, "first_seen_at": first, "last_seen_at": last}
                )
            bulk_insert(self.conn, profiles, rows)
        for pid in list(self.holdings) + list(self.parent):
            root = self.find(pid)
            if root > 0:
                real.setdefault(root, root)
        have = {(real[self.find(p)], k, key) for p, k, key in self.stored if self.find(p) in real}
        rows_to_attach: list[dict[str, Any]] = []
        for pid, ident, source_id, at in self.attach:
            owner = real[self.find(pid)]
            if (owner, ident.kind, ident.key) in have:
                continue
            have.add((owner, ident.kind, ident.key))
            rows_to_attach.append(
                {
                    "profile_id": owner,
                    "kind": ident.kind,
                    "key": ident.key,
                    "value": ident.value,
                    "source_id": source_id,
                    "first_seen_at": at,
                }
            )
        if rows_to_attach:
            bulk_insert(self.conn, identifiers, rows_to_attach)
        return real


def _chunks(values: Sequence[Any] | list[Any]) -> Iterable[list[Any]]:
    values = list(values)
    for i in range(0, len(values), CHUNK):
        yield values[i : i + CHUNK]
