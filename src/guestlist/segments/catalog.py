"""Stored segments: create, update, delete, list, and the order they are evaluated in.

A segment is a slug, a name, a rule (the JSON contract, `segments.rules`) and,
optionally, a restricted category with the channel and purpose its members are
reached on. A restricted segment's members must also pass the guard (`guestlist.guard`,
compliance A-6): of age for the category at its level, consent granted on the channel.

Every rule is checked before it is stored (`parse_rule`, `check_cost`,
`check_no_cycles`); a segment another uses cannot be deleted, and a change of rule
bumps `version` and schedules a full evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from types import SimpleNamespace
from typing import Any, Final

from sqlalchemy import Connection, delete, func, select, update

from guestlist.age.levels import VerificationLevel
from guestlist.age.names import parse_category
from guestlist.audit import audit
from guestlist.consent.ledger import CHANNELS, PURPOSES
from guestlist.guard import Restriction
from guestlist.segments.computed import ComputedTrait, parse_computed, parse_computed_text
from guestlist.segments.rules import (
    MAX_NAME_LENGTH,
    SEGMENT_SLUG,
    And,
    ConsentCondition,
    OfAgeFor,
    Rule,
    RuleError,
    TraitCondition,
    check_cost,
    check_no_cycles,
    dependencies,
    parse_rule,
    rule_to_json,
    walk,
)
from guestlist.store.tables import (
    computed_traits,
    segment_changes,
    segment_memberships,
    segments,
    traits,
)
from guestlist.store.types import utcnow

MAX_SLUG: Final = 100


class SegmentError(ValueError):
    """A segment that cannot be stored; `field` names the offending input (for a rule,
    `rule` followed by the JSON pointer inside it)."""

    def __init__(self, field: str, message: str, *, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Segment:
    id: int
    slug: str
    name: str
    rule: Rule
    category: str | None
    channel: str | None
    purpose: str | None
    required_level: str | None
    description: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    evaluated_at: datetime | None

    @property
    def restriction(self) -> Restriction | None:
        if self.category is None or self.channel is None:
            return None
        return Restriction(
            self.category,
            channel=self.channel,
            purpose=self.purpose or "marketing",
            required_level=self.required_level,
        )

    @property
    def effective_rule(self) -> Rule:
        """The rule with the guard's age and consent conditions added, for SQL to narrow
        with; the guard itself still decides (it also checks C-6 and the level)."""
        restriction = self.restriction
        if restriction is None:
            return self.rule
        return And(
            (
                self.rule,
                OfAgeFor(restriction.category, restriction.required_level.value),
                ConsentCondition(restriction.channel, restriction.purpose, "granted"),  # type: ignore[arg-type]
            )
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "slug": self.slug,
            "name": self.name,
            "rule": rule_to_json(self.rule),
            "category": self.category,
            "channel": self.channel,
            "purpose": self.purpose,
            "required_level": self.required_level,
            "description": self.description,
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "evaluated_at": None if self.evaluated_at is None else self.evaluated_at.isoformat(),
        }


def _segment(row: Any) -> Segment:
    return Segment(
        id=int(row.id),
        slug=row.slug,
        name=row.name,
        rule=parse_rule(row.rule),
        category=row.category,
        channel=row.channel,
        purpose=row.purpose,
        required_level=row.required_level,
        description=row.description,
        version=int(row.version),
        created_at=row.created_at,
        updated_at=row.updated_at,
        evaluated_at=row.evaluated_at,
    )


def list_segments(conn: Connection) -> list[Segment]:
    return [_segment(r) for r in conn.execute(select(segments).order_by(segments.c.slug))]


def get_segment(conn: Connection, slug: str) -> Segment | None:
    row = conn.execute(select(segments).where(segments.c.slug == slug)).first()
    return None if row is None else _segment(row)


def evaluation_order(all_segments: Sequence[Segment]) -> list[Segment]:
    """Segments with each after the segments it uses (in_segment), so one pass over a
    profile can answer in_segment from what it has already decided."""
    by_slug = {s.slug: s for s in all_segments}
    done: dict[str, Segment] = {}

    def visit(segment: Segment) -> None:
        if segment.slug in done:
            return
        for used in sorted(dependencies(segment.rule)):
            if used in by_slug:
                visit(by_slug[used])
        done[segment.slug] = segment

    for segment in sorted(all_segments, key=lambda s: s.slug):
        visit(segment)
    return list(done.values())


@dataclass(frozen=True)
class SegmentInput:
    """What the API and CLI send to create or update a segment."""

    name: str
    slug: str
    rule: Mapping[str, Any]
    category: str | None = None
    channel: str | None = None
    purpose: str | None = None
    required_level: str | None = None
    description: str | None = None


def checked_rule(conn: Connection, slug: str, data: Any) -> Rule:
    """Parse and check a rule for segment `slug` (which need not exist yet)."""
    try:
        rule = parse_rule(data)
        check_cost(rule)
        check_no_cycles(slug, rule, lambda other: _stored_rule(conn, other))
    except RuleError as exc:
        raise SegmentError(f"rule{exc.path}", exc.message) from exc
    return rule


def _stored_rule(conn: Connection, slug: str) -> Rule | None:
    stored = conn.scalar(select(segments.c.rule).where(segments.c.slug == slug))
    return None if stored is None else parse_rule(stored)


PREVIEW_SLUG: Final = "~preview"  # cannot be a stored slug, so never in a cycle


def _check_slug(slug: Any) -> None:
    if not isinstance(slug, str) or not SEGMENT_SLUG.fullmatch(slug):
        raise SegmentError(
            "slug", "use lower-case letters, digits, '-' and '_', starting with a letter or digit"
        )
    if len(slug) > MAX_SLUG:
        raise SegmentError("slug", f"at most {MAX_SLUG} characters")


def checked_definition(conn: Connection, given: SegmentInput) -> Segment:
    """A segment for an unsaved definition (a preview), checked like a stored one."""
    _, values = _checked(conn, replace(given, slug=PREVIEW_SLUG), preview=True)
    now = utcnow()
    return _segment(
        SimpleNamespace(
            id=0, version=0, created_at=now, updated_at=now, evaluated_at=None, **values
        )
    )


def _checked(
    conn: Connection, given: SegmentInput, *, preview: bool = False
) -> tuple[Rule, dict[str, Any]]:
    if not preview:
        _check_slug(given.slug)
    name = given.name.strip() if isinstance(given.name, str) else ""
    if not name:
        raise SegmentError("name", "a segment needs a name")
    if len(name) > MAX_NAME_LENGTH:
        raise SegmentError("name", f"at most {MAX_NAME_LENGTH} characters")
    rule = checked_rule(conn, given.slug, given.rule)
    category = channel = purpose = level = None
    if given.category is not None:
        try:
            category = parse_category(given.category)
        except ValueError as exc:
            raise SegmentError("category", str(exc)) from exc
        if given.channel is None:
            raise SegmentError(
                "channel",
                "a restricted segment needs the channel its members are reached on "
                f"(one of {', '.join(CHANNELS)}): the guard checks consent on it",
            )
        if given.channel not in CHANNELS:
            raise SegmentError("channel", f"unknown channel; one of {', '.join(CHANNELS)}")
        channel = given.channel
        purpose = given.purpose or "marketing"
        if purpose not in PURPOSES:
            raise SegmentError("purpose", f"unknown purpose; one of {', '.join(PURPOSES)}")
        if given.required_level is not None:
            try:
                level = VerificationLevel.parse(given.required_level).value
            except ValueError as exc:
                raise SegmentError("required_level", str(exc)) from exc
    elif given.channel is not None or given.required_level is not None:
        field = "channel" if given.channel is not None else "required_level"
        raise SegmentError(field, "only a segment with a restricted category takes this")
    values = {
        "slug": given.slug,
        "name": name,
        "rule": rule_to_json(rule),
        "category": category,
        "channel": channel,
        "purpose": purpose,
        "required_level": level,
        "description": given.description,
    }
    return rule, values


def create_segment(conn: Connection, given: SegmentInput, *, actor: str) -> Segment:
    """Store a new segment (its members are worked out by `membership.evaluate_segment`,
    which the API and CLI run or schedule right after)."""
    _, values = _checked(conn, given)
    if conn.scalar(select(segments.c.id).where(segments.c.slug == given.slug)) is not None:
        raise SegmentError("slug", f"a segment {given.slug!r} exists already", status=409)
    now = utcnow()
    conn.execute(segments.insert().values(**values, version=1, created_at=now, updated_at=now))
    audit(conn, "segment.create", actor=actor, detail={"slug": given.slug, "rule": values["rule"]})
    created = get_segment(conn, given.slug)
    assert created is not None
    return created


def update_segment(conn: Connection, slug: str, given: SegmentInput, *, actor: str) -> Segment:
    """Replace a segment's definition; the version goes up when the rule or the guard
    changes (members must then be re-evaluated)."""
    current = get_segment(conn, slug)
    if current is None:
        raise SegmentError("slug", f"no segment {slug!r}", status=404)
    if given.slug != slug:
        raise SegmentError("slug", "a segment's slug cannot change (other segments use it)")
    _, values = _checked(conn, given)
    changed = any(
        values[key] != old
        for key, old in (
            ("rule", rule_to_json(current.rule)),
            ("category", current.category),
            ("channel", current.channel),
            ("purpose", current.purpose),
            ("required_level", current.required_level),
        )
    )
    conn.execute(
        update(segments)
        .where(segments.c.id == current.id)
        .values(
            **values,
            version=current.version + (1 if changed else 0),
            updated_at=utcnow(),
        )
    )
    audit(conn, "segment.update", actor=actor, detail={"slug": slug, "rule": values["rule"]})
    updated = get_segment(conn, slug)
    assert updated is not None
    return updated


def users_of(conn: Connection, slug: str) -> list[str]:
    """Slugs of the segments whose rules use `slug`."""
    return sorted(s.slug for s in list_segments(conn) if slug in dependencies(s.rule))


def delete_segment(conn: Connection, slug: str, *, actor: str) -> None:
    """Delete a segment with its memberships and change log; refused while another
    segment uses it."""
    current = get_segment(conn, slug)
    if current is None:
        raise SegmentError("slug", f"no segment {slug!r}", status=404)
    users = users_of(conn, slug)
    if users:
        raise SegmentError(
            "slug",
            f"segment {slug!r} is used by {', '.join(users)}; change those first",
            status=409,
        )
    members = conn.scalar(
        select(func.count())
        .select_from(segment_memberships)
        .where(
            segment_memberships.c.segment_id == current.id,
            segment_memberships.c.exited_at.is_(None),
        )
    )
    conn.execute(delete(segment_changes).where(segment_changes.c.segment_id == current.id))
    conn.execute(delete(segment_memberships).where(segment_memberships.c.segment_id == current.id))
    conn.execute(delete(segments).where(segments.c.id == current.id))
    audit(conn, "segment.delete", actor=actor, detail={"slug": slug, "members": members})


# -- computed traits ---------------------------------------------------------------------


def list_computed(conn: Connection) -> list[ComputedTrait]:
    return [
        parse_computed(name, definition)
        for name, definition in conn.execute(
            select(computed_traits.c.name, computed_traits.c.definition).order_by(
                computed_traits.c.name
            )
        )
    ]


def define_computed(
    conn: Connection, name: str, definition: Any, *, actor: str
) -> tuple[ComputedTrait, bool]:
    """Create or replace a computed trait; returns it and whether the definition changed
    (then every profile's value must be recomputed: `membership.compute_everyone`)."""
    try:
        trait = (
            parse_computed_text(name, definition)
            if isinstance(definition, str)
            else parse_computed(name, definition)
        )
    except RuleError as exc:
        field = "name" if exc.path == "/name" else f"definition{exc.path}"
        raise SegmentError(field, exc.message) from exc
    stored = conn.execute(
        select(computed_traits.c.definition, computed_traits.c.version).where(
            computed_traits.c.name == name
        )
    ).first()
    now = utcnow()
    data = trait.to_json()
    if stored is None:
        conn.execute(
            computed_traits.insert().values(
                name=name, definition=data, version=1, created_at=now, updated_at=now
            )
        )
        changed = True
    else:
        changed = stored.definition != data
        conn.execute(
            update(computed_traits)
            .where(computed_traits.c.name == name)
            .values(
                definition=data,
                version=stored.version + (1 if changed else 0),
                updated_at=now,
                **({"computed_at": None} if changed else {}),
            )
        )
    audit(conn, "computed_trait.define", actor=actor, detail={"name": name, "definition": data})
    return trait, changed


def delete_computed(conn: Connection, name: str, *, actor: str) -> None:
    """Delete a computed trait and its values; refused while a segment's rule uses it."""
    if conn.scalar(select(computed_traits.c.name).where(computed_traits.c.name == name)) is None:
        raise SegmentError("name", f"no computed trait {name!r}", status=404)
    users = sorted(
        s.slug
        for s in list_segments(conn)
        if any(isinstance(node, TraitCondition) and node.trait == name for _, node in walk(s.rule))
    )
    if users:
        raise SegmentError(
            "name", f"computed trait {name!r} is used by {', '.join(users)}", status=409
        )
    conn.execute(delete(traits).where(traits.c.name == name, traits.c.source_id.is_(None)))
    conn.execute(delete(computed_traits).where(computed_traits.c.name == name))
    audit(conn, "computed_trait.delete", actor=actor, detail={"name": name})
