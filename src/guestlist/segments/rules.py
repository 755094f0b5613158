"""The segment rule as typed, immutable objects, and its JSON form (the contract).

`parse_rule` is the one way JSON becomes a rule: it refuses unknown keys, wrong types,
missing keys and values an operator cannot take, each with a JSON pointer (RFC 6901)
to the offending part. `rule_to_json` is its inverse. Before a rule is stored it also
passes `check_cost` (bounded fan-out) and `check_no_cycles` (segments using segments).

Frozen, slotted dataclasses rather than pydantic models: a rule is a union told apart
by which key is present (there is no "type" field to discriminate on), errors must be
JSON pointers worded for marketers, and the evaluator reads these objects on every
processed event, where plain attribute access costs nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import KW_ONLY, dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Final, Literal, TypeAlias, assert_never, get_args

from guestlist.profiles.trait_names import canonical_trait_name

# -- vocabulary ---------------------------------------------------------------------

Op: TypeAlias = Literal[
    "eq",
    "ne",
    "lt",
    "lte",
    "gt",
    "gte",
    "in",
    "not_in",
    "contains",
    "starts_with",
    "exists",
    "not_exists",
]
EventOp: TypeAlias = Literal["eq", "ne", "lt", "lte", "gt", "gte"]
AgeOp: TypeAlias = Literal["eq", "ne", "lt", "lte", "gt", "gte", "exists", "not_exists"]
PresenceOp: TypeAlias = Literal["exists", "not_exists"]
Agg: TypeAlias = Literal["count", "sum", "avg", "min", "max"]
Channel: TypeAlias = Literal["email", "sms", "whatsapp", "phone", "postal", "push"]
Purpose: TypeAlias = Literal["marketing", "sale_sharing", "transactional"]
ConsentIs: TypeAlias = Literal["granted", "not_granted"]
Level: TypeAlias = Literal[
    "self_declared", "dob_provided", "database_check", "id_document", "in_person_id"
]
IdentifierType: TypeAlias = Literal["email", "phone", "user_id", "anonymous_id", "external"]

OPS: Final[tuple[Op, ...]] = get_args(Op)
EVENT_OPS: Final[tuple[EventOp, ...]] = get_args(EventOp)
AGE_OPS: Final[tuple[AgeOp, ...]] = get_args(AgeOp)
PRESENCE_OPS: Final[tuple[PresenceOp, ...]] = get_args(PresenceOp)
ORDER_OPS: Final = ("lt", "lte", "gt", "gte")
AGGS: Final[tuple[Agg, ...]] = get_args(Agg)
# The consent ledger's channels and purposes (guestlist.consent.ledger; a test keeps
# the two lists equal).
CHANNELS: Final[tuple[Channel, ...]] = get_args(Channel)
PURPOSES: Final[tuple[Purpose, ...]] = get_args(Purpose)
CONSENT_IS: Final[tuple[ConsentIs, ...]] = get_args(ConsentIs)
# guestlist.age.VerificationLevel, weakest first.
LEVELS: Final[tuple[Level, ...]] = get_args(Level)
IDENTIFIER_TYPES: Final[tuple[IdentifierType, ...]] = get_args(IdentifierType)
CATEGORY_ROOTS: Final = ("alcohol", "tobacco", "vape", "cannabis")

Number: TypeAlias = int | float
Scalar: TypeAlias = str | int | float | bool
# What a comparison holds: a scalar, an `in`/`not_in` list (all strings or all
# numbers), or None for `exists`/`not_exists`.
Value: TypeAlias = Scalar | tuple[str, ...] | tuple[Number, ...] | None

# -- limits -------------------------------------------------------------------------

MAX_CONDITIONS: Final = 50  # leaf conditions in one rule
MAX_DEPTH: Final = 10  # and/or/not levels above the deepest condition
MAX_LIST_VALUES: Final = 1000  # values in one in/not_in list
MAX_EVENT_CONDITIONS: Final = 10  # event aggregates in one rule (each scans events)
MAX_WHERE_FILTERS: Final = 10  # filters on one event aggregate
MAX_NESTING: Final = 64  # parse refuses deeper input outright (no recursion blow-up)
MAX_WITHIN_DAYS: Final = 36_500  # a 100-year window is "all time" already
MAX_AGE: Final = 150
MAX_NAME_LENGTH: Final = 200  # trait, event and property names (the columns' width)
MAX_SLUG_LENGTH: Final = 100
SAFE_INTEGER: Final = 2**53  # integers beyond this do not survive a double

_TRAIT_NAME: Final = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")
_PROPERTY_PATH: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_CATEGORY: Final = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*")
SEGMENT_SLUG: Final = re.compile(r"[a-z0-9][a-z0-9_-]*")
_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# NUL cannot be stored in PostgreSQL text; a lone surrogate is not Unicode text.
_UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")


class RuleError(ValueError):
    """A rule that cannot be used; `path` is a JSON pointer to the offending part
    ("" is the whole rule)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path or 'rule'}: {message}")
        self.path = path
        self.message = message


# -- the objects --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class And:
    """Every one of `rules` holds (at least one)."""

    rules: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """At least one of `rules` holds."""

    rules: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """`rule` does not hold."""

    rule: Rule


def exact_number(value: Number) -> Decimal:
    """The exact decimal a JSON number stands for: an int as itself, a float as its
    shortest round-trip form (`0.1` is 0.1, not the binary double nearest to it).
    Every numeric comparison and sum in a rule is exact on these."""
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


def _value_set(value: Value) -> frozenset[str] | frozenset[Decimal] | None:
    if not isinstance(value, tuple) or not value:
        return None
    if isinstance(value[0], str):
        return frozenset(v for v in value if isinstance(v, str))
    return frozenset(exact_number(v) for v in value if not isinstance(v, str))


@dataclass(frozen=True, slots=True)
class TraitCondition:
    """The trait `trait` compared with `value` by `op` (see docs/segments.md)."""

    trait: str
    op: Op
    value: Value = None
    # The in/not_in list as a set (numbers as `exact_number`s), for evaluators; not
    # part of the rule's identity.
    value_set: frozenset[str] | frozenset[Decimal] | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "value_set", _value_set(self.value))


@dataclass(frozen=True, slots=True)
class ConsentCondition:
    """The current consent on `channel` for `purpose` is (or is not) `granted`."""

    channel: Channel
    purpose: Purpose = "marketing"
    is_: ConsentIs = "granted"


@dataclass(frozen=True, slots=True)
class AgeCondition:
    """Completed years on today's UTC date compared with `value`."""

    op: AgeOp
    value: int | None = None


@dataclass(frozen=True, slots=True)
class OfAgeFor:
    """Of age for `category` in the profile's jurisdiction, verified at `level` or
    above (None: the category's marketing default)."""

    category: str
    level: Level | None = None


@dataclass(frozen=True, slots=True)
class EventFilter:
    """One `where` filter: the event property at `property` compared like a trait."""

    property: str
    op: Op
    value: Value = None
    value_set: frozenset[str] | frozenset[Decimal] | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "value_set", _value_set(self.value))


@dataclass(frozen=True, slots=True)
class EventCondition:
    """An aggregate over the profile's `event` events compared with `value`."""

    event: str
    op: EventOp
    value: Number
    _: KW_ONLY
    within_days: int | None = None
    agg: Agg = "count"
    property: str | None = None
    where: tuple[EventFilter, ...] = ()


@dataclass(frozen=True, slots=True)
class InSegment:
    """The profile is currently a member of the segment `slug`."""

    slug: str


@dataclass(frozen=True, slots=True)
class IdentifierCondition:
    """The profile has (or has no) identifier of `type`."""

    type: IdentifierType
    op: PresenceOp


Condition: TypeAlias = (
    TraitCondition
    | ConsentCondition
    | AgeCondition
    | OfAgeFor
    | EventCondition
    | InSegment
    | IdentifierCondition
)
Rule: TypeAlias = And | Or | Not | Condition
CONDITION_TYPES: Final = (
    TraitCondition,
    ConsentCondition,
    AgeCondition,
    OfAgeFor,
    EventCondition,
    InSegment,
    IdentifierCondition,
)


# -- JSON → objects -----------------------------------------------------------------

_KINDS: Final = (
    "and",
    "or",
    "not",
    "trait",
    "consent",
    "age",
    "of_age_for",
    "event",
    "in_segment",
    "identifier",
)
_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "and": ("and",),
    "or": ("or",),
    "not": ("not",),
    "trait": ("trait", "op", "value"),
    "consent": ("consent", "purpose", "is"),
    "age": ("age",),
    "of_age_for": ("of_age_for", "level"),
    "event": ("event", "within_days", "agg", "property", "where", "op", "value"),
    "in_segment": ("in_segment",),
    "identifier": ("identifier", "op"),
}


def parse_rule(data: Any) -> Rule:
    """The rule `data` (parsed JSON) describes; RuleError at the first problem.

    Optional keys may also be given as null, which means absent: `value` (for
    exists/not_exists), `purpose`, `is`, `level`, `within_days`, `agg`, `property`,
    `where`.
    """
    return _parse(data, "", 0)


def _parse(data: Any, path: str, depth: int) -> Rule:
    if depth > MAX_NESTING:
        raise RuleError(path, f"rules nest more than {MAX_NESTING} levels deep")
    if not isinstance(data, dict):
        raise RuleError(path, f"expected a rule (a JSON object), got {_describe(data)}")
    kinds = [kind for kind in _KINDS if kind in data]
    if not kinds:
        got = ", ".join(repr(k) for k in data) or "none"
        raise RuleError(path, f"a rule needs one of the keys {', '.join(_KINDS)}; got keys: {got}")
    if len(kinds) > 1:
        raise RuleError(
            path,
            f"a rule has exactly one of the keys {', '.join(_KINDS)}; got {' and '.join(kinds)}",
        )
    kind = kinds[0]
    allowed = _KEYS[kind]
    for key in data:
        # `value` on an identifier gets the operator's own message below.
        if key not in allowed and not (kind == "identifier" and key == "value"):
            raise RuleError(
                _child(path, key),
                f"unknown key {key!r}; {kind} rules take the keys {', '.join(allowed)}",
            )
    match kind:
        case "and" | "or":
            items = data[kind]
            if not isinstance(items, list) or not items:
                raise RuleError(
                    f"{path}/{kind}",
                    f"{kind} needs a non-empty list of rules, got {_describe(items)}",
                )
            rules = tuple(
                _parse(item, f"{path}/{kind}/{i}", depth + 1) for i, item in enumerate(items)
            )
            return And(rules) if kind == "and" else Or(rules)
        case "not":
            return Not(_parse(data["not"], f"{path}/not", depth + 1))
        case "trait":
            name = _trait_name(data["trait"], f"{path}/trait")
            op = _choice(data, "op", OPS, path, "operator")
            return TraitCondition(name, op, _value_for(op, data, path))
        case "consent":
            return ConsentCondition(
                _choice(data, "consent", CHANNELS, path, "channel"),
                _choice(data, "purpose", PURPOSES, path, "purpose", default="marketing"),
                _choice(data, "is", CONSENT_IS, path, "consent state", default="granted"),
            )
        case "age":
            return _age(data["age"], f"{path}/age")
        case "of_age_for":
            return OfAgeFor(
                _category(data["of_age_for"], f"{path}/of_age_for"),
                _optional_choice(data, "level", LEVELS, path, "verification level"),
            )
        case "event":
            return _event(data, path)
        case "in_segment":
            return InSegment(_slug(data["in_segment"], f"{path}/in_segment"))
        case "identifier":
            kind_of_id = _choice(data, "identifier", IDENTIFIER_TYPES, path, "identifier type")
            op = _choice(
                data,
                "op",
                PRESENCE_OPS,
                path,
                "operator",
                hint="identifiers take exists or not_exists",
            )
            if data.get("value") is not None:
                raise RuleError(f"{path}/value", f"{op} takes no value")
            return IdentifierCondition(kind_of_id, op)
    raise AssertionError(kind)  # pragma: no cover


def _age(data: Any, path: str) -> AgeCondition:
    if not isinstance(data, dict):
        raise RuleError(
            path, f'age needs an object such as {{"op": "gte", "value": 21}}, got {_describe(data)}'
        )
    for key in data:
        if key not in ("op", "value"):
            raise RuleError(_child(path, key), f"unknown key {key!r}; age takes the keys op, value")
    op = _choice(
        data,
        "op",
        AGE_OPS,
        path,
        "operator",
        hint="age takes eq ne lt lte gt gte exists not_exists",
    )
    value = data.get("value")
    if op in PRESENCE_OPS:
        if value is not None:
            raise RuleError(f"{path}/value", f"{op} takes no value")
        return AgeCondition(op)
    if value is None:
        raise RuleError(f"{path}/value", f"age {op} needs a value: whole years")
    if not _is_int(value) or not 0 <= value <= MAX_AGE:
        raise RuleError(
            f"{path}/value", f"age compares whole years from 0 to {MAX_AGE}, got {_show(value)}"
        )
    return AgeCondition(op, value)


def _event(data: dict[str, Any], path: str) -> EventCondition:
    name = _name(data["event"], f"{path}/event", "event name")
    within = data.get("within_days")
    if within is not None and (not _is_int(within) or not 1 <= within <= MAX_WITHIN_DAYS):
        raise RuleError(
            f"{path}/within_days",
            f"within_days is a whole number of days from 1 to {MAX_WITHIN_DAYS} "
            f"(leave it out for all time), got {_show(within)}",
        )
    agg = _choice(data, "agg", AGGS, path, "aggregate", default="count")
    prop = data.get("property")
    if agg == "count" and prop is not None:
        raise RuleError(
            f"{path}/property",
            "count takes no property: it counts events (filter them with where)",
        )
    if agg != "count":
        if prop is None:
            raise RuleError(f"{path}/property", f"{agg} needs a property: the number to {agg}")
        prop = _property_path(prop, f"{path}/property")
    raw_where = data.get("where")
    if raw_where is None:
        raw_where = []
    if not isinstance(raw_where, list):
        raise RuleError(
            f"{path}/where", f"where needs a list of filters, got {_describe(raw_where)}"
        )
    where = tuple(_filter(item, f"{path}/where/{i}") for i, item in enumerate(raw_where))
    op = _choice(
        data,
        "op",
        EVENT_OPS,
        path,
        "operator",
        hint="an aggregate compares as a number: eq ne lt lte gt gte",
    )
    value = data.get("value")
    if value is None:
        raise RuleError(f"{path}/value", f"{agg} {op} needs a value: a number")
    if not _is_number(value):
        raise RuleError(f"{path}/value", f"{agg} compares with a number, got {_show(value)}")
    return EventCondition(
        name,
        op,
        _number(value, f"{path}/value"),
        within_days=within,
        agg=agg,
        property=prop,
        where=where,
    )


def _filter(data: Any, path: str) -> EventFilter:
    if not isinstance(data, dict):
        raise RuleError(
            path,
            f'a where filter is an object such as {{"property": "category", "op": "eq", '
            f'"value": "bourbon"}}, got {_describe(data)}',
        )
    for key in data:
        if key not in ("property", "op", "value"):
            raise RuleError(
                _child(path, key),
                f"unknown key {key!r}; a where filter takes the keys property, op, value",
            )
    if data.get("property") is None:
        raise RuleError(f"{path}/property", "a where filter needs a property")
    prop = _property_path(data["property"], f"{path}/property")
    op = _choice(data, "op", OPS, path, "operator")
    return EventFilter(prop, op, _value_for(op, data, path))


def _value_for(op: Op, data: dict[str, Any], path: str) -> Value:
    """The value `op` compares with, checked for its type (docs/segments.md)."""
    vpath = f"{path}/value"
    value = data.get("value")
    if op in PRESENCE_OPS:
        if value is not None:
            raise RuleError(vpath, f"{op} takes no value")
        return None
    if value is None:
        hint = "; to test for absence use not_exists" if "value" in data else ""
        raise RuleError(vpath, f"{op} needs a value{hint}")
    if op in ("eq", "ne"):
        if isinstance(value, bool):
            return value
        if _is_number(value):
            return _number(value, vpath)
        if isinstance(value, str):
            return _text(value, vpath)
        raise RuleError(
            vpath, f"{op} compares with a string, a number, true or false, got {_describe(value)}"
        )
    if op in ORDER_OPS:
        if _is_number(value):
            return _number(value, vpath)
        if isinstance(value, str):
            return _date(value, vpath, op)
        raise RuleError(
            vpath, f"{op} compares with a number or a date YYYY-MM-DD, got {_describe(value)}"
        )
    if op in ("in", "not_in"):
        return _list(value, vpath, op)
    # contains, starts_with
    if not isinstance(value, str) or not value:
        raise RuleError(vpath, f"{op} needs a non-empty string, got {_show(value)}")
    return _text(value, vpath)


def _list(value: Any, path: str, op: str) -> tuple[str, ...] | tuple[Number, ...]:
    if not isinstance(value, list) or not value:
        raise RuleError(
            path, f"{op} needs a non-empty list of strings or of numbers, got {_show(value)}"
        )
    if isinstance(value[0], str):
        strings: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise RuleError(
                    f"{path}/{i}",
                    f"{op} lists hold strings or numbers, not both; got {_show(item)}",
                )
            strings.append(_text(item, f"{path}/{i}"))
        return tuple(strings)
    numbers: list[Number] = []
    for i, item in enumerate(value):
        if not _is_number(item):
            what = "strings or numbers, not both" if isinstance(item, str) else "strings or numbers"
            raise RuleError(f"{path}/{i}", f"{op} lists hold {what}; got {_show(item)}")
        numbers.append(_number(item, f"{path}/{i}"))
    return tuple(numbers)


def _choice(
    data: dict[str, Any],
    key: str,
    choices: tuple[Any, ...],
    path: str,
    what: str,
    *,
    default: Any = None,
    hint: str = "",
) -> Any:
    value = data.get(key)
    if value is None:
        if default is not None:
            return default
        raise RuleError(f"{path}/{key}", f"missing {key}: the {what}")
    if not isinstance(value, str) or value not in choices:
        expected = hint or f"expected one of: {', '.join(choices)}"
        shown = (
            f"unknown {what} {value!r}"
            if isinstance(value, str)
            else f"{what} is {_describe(value)}"
        )
        raise RuleError(f"{path}/{key}", f"{shown}; {expected}")
    return value


def _optional_choice(
    data: dict[str, Any], key: str, choices: tuple[Any, ...], path: str, what: str
) -> Any:
    return None if data.get(key) is None else _choice(data, key, choices, path, what)


def _trait_name(value: Any, path: str) -> str:
    name = _name(value, path, "trait name")
    if not _TRAIT_NAME.fullmatch(name):
        canonical = canonical_trait_name(name)
        hint = f"; did you mean {canonical!r}?" if _TRAIT_NAME.fullmatch(canonical) else ""
        raise RuleError(
            path,
            f"trait {name!r} is not a stored trait name (lowercase words joined by _, "
            f"as traits are stored){hint}",
        )
    return name


def _property_path(value: Any, path: str) -> str:
    name = _name(value, path, "property")
    if not _PROPERTY_PATH.fullmatch(name):
        raise RuleError(
            path,
            f"property {name!r} is not a plain dotted path such as 'total' or "
            "'shipping.country' (names of letters, digits and _ joined by dots)",
        )
    return name


def _category(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise RuleError(path, f"the category is a string such as 'alcohol', got {_describe(value)}")
    if not _CATEGORY.fullmatch(value) or value.split(".")[0] not in CATEGORY_ROOTS:
        lowered = value.strip().lower()
        hint = (
            f"; did you mean {lowered!r}?"
            if lowered != value
            and _CATEGORY.fullmatch(lowered)
            and lowered.split(".")[0] in CATEGORY_ROOTS
            else ""
        )
        raise RuleError(
            path,
            f"unknown category {value!r}: expected {', '.join(CATEGORY_ROOTS)} or a dotted "
            f"sub-category of one such as 'alcohol.spirits'{hint}",
        )
    return value


def _slug(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise RuleError(path, f"the segment slug is a string, got {_describe(value)}")
    if not SEGMENT_SLUG.fullmatch(value) or len(value) > MAX_SLUG_LENGTH:
        raise RuleError(
            path,
            f"{value!r} is not a segment slug (lowercase letters, digits, - and _, starting "
            f"with a letter or digit, at most {MAX_SLUG_LENGTH} characters)",
        )
    return value


def _name(value: Any, path: str, what: str) -> str:
    if not isinstance(value, str):
        raise RuleError(path, f"the {what} is a string, got {_describe(value)}")
    if not value:
        raise RuleError(path, f"the {what} is empty")
    if len(value) > MAX_NAME_LENGTH:
        raise RuleError(path, f"the {what} is longer than {MAX_NAME_LENGTH} characters")
    return _text(value, path)


def _text(value: str, path: str) -> str:
    if _UNSTORABLE.search(value):
        raise RuleError(path, "strings may not contain NUL (U+0000) or unpaired surrogates")
    return value


def _date(value: str, path: str, op: str) -> str:
    try:
        if not _DATE.fullmatch(value):
            raise ValueError
        date.fromisoformat(value)
    except ValueError:
        raise RuleError(
            path, f"{op} compares with a number or a date YYYY-MM-DD, got {value!r}"
        ) from None
    return value


def _number(value: Number, path: str) -> Number:
    if isinstance(value, float) and not math.isfinite(value):
        raise RuleError(path, f"numbers must be finite, got {value!r}")
    if isinstance(value, int) and abs(value) > SAFE_INTEGER:
        raise RuleError(path, f"whole numbers must lie within ±2^53 ({SAFE_INTEGER}), got {value}")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "an empty list" if not value else "a list"
    return _describe(value)


def _child(path: str, key: Any) -> str:
    return f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"


# -- objects → JSON -----------------------------------------------------------------


def rule_to_json(rule: Rule) -> dict[str, Any]:
    """The canonical JSON of `rule`: `parse_rule(rule_to_json(r)) == r`.

    Defaulted keys are always written (`purpose`, `is`, `agg`); absent optional ones
    are left out (`value` of exists/not_exists, `level`, `within_days`, `property`, an
    empty `where`).
    """
    match rule:
        case And():
            return {"and": [rule_to_json(r) for r in rule.rules]}
        case Or():
            return {"or": [rule_to_json(r) for r in rule.rules]}
        case Not():
            return {"not": rule_to_json(rule.rule)}
        case TraitCondition():
            return _comparison_json({"trait": rule.trait}, rule.op, rule.value)
        case ConsentCondition():
            return {"consent": rule.channel, "purpose": rule.purpose, "is": rule.is_}
        case AgeCondition():
            age: dict[str, Any] = {"op": rule.op}
            if rule.value is not None:
                age["value"] = rule.value
            return {"age": age}
        case OfAgeFor():
            out: dict[str, Any] = {"of_age_for": rule.category}
            if rule.level is not None:
                out["level"] = rule.level
            return out
        case EventCondition():
            event: dict[str, Any] = {"event": rule.event}
            if rule.within_days is not None:
                event["within_days"] = rule.within_days
            event["agg"] = rule.agg
            if rule.property is not None:
                event["property"] = rule.property
            if rule.where:
                event["where"] = [
                    _comparison_json({"property": f.property}, f.op, f.value) for f in rule.where
                ]
            event["op"] = rule.op
            event["value"] = rule.value
            return event
        case InSegment():
            return {"in_segment": rule.slug}
        case IdentifierCondition():
            return {"identifier": rule.type, "op": rule.op}
        case _:
            assert_never(rule)


def _comparison_json(head: dict[str, Any], op: Op, value: Value) -> dict[str, Any]:
    head["op"] = op
    if value is not None:
        head["value"] = list(value) if isinstance(value, tuple) else value
    return head


# -- walking, dependencies, cycles, cost --------------------------------------------


def walk(rule: Rule, path: str = "") -> Iterator[tuple[str, Rule]]:
    """Every part of `rule`, parents before children, with its JSON pointer."""
    yield path, rule
    match rule:
        case And():
            for i, child in enumerate(rule.rules):
                yield from walk(child, f"{path}/and/{i}")
        case Or():
            for i, child in enumerate(rule.rules):
                yield from walk(child, f"{path}/or/{i}")
        case Not():
            yield from walk(rule.rule, f"{path}/not")
        case _:
            pass


def dependencies(rule: Rule) -> set[str]:
    """The slugs of the segments `rule` uses through in_segment."""
    return {node.slug for _, node in walk(rule) if isinstance(node, InSegment)}


def _references(rule: Rule) -> dict[str, str]:
    """Each segment `rule` uses, in order of first use, with that use's path."""
    found: dict[str, str] = {}
    for path, node in walk(rule):
        if isinstance(node, InSegment):
            found.setdefault(node.slug, path)
    return found


def check_no_cycles(slug: str, rule: Rule, lookup: Callable[[str], Rule | None]) -> None:
    """Refuse `rule` as the rule of segment `slug` when the segments it uses, directly
    or through others, use `slug` again (or form any other cycle), or do not exist.

    `lookup(other)` gives another segment's stored rule (None: no such segment); the
    stored rule of `slug` itself is never read, `rule` replaces it. The RuleError's
    path points at the in_segment of `rule` the problem is reached through, and its
    message names the chain: `a → b → a`.
    """
    graph: dict[str, dict[str, str]] = {slug: _references(rule)}
    # Iterative depth-first search; `trail` is the chain of segments being explored.
    trail: list[str] = [slug]
    pending: list[list[str]] = [list(graph[slug])]
    finished: set[str] = set()
    while pending:
        if not pending[-1]:
            finished.add(trail.pop())
            pending.pop()
            continue
        nxt = pending[-1].pop(0)
        via = graph[slug][trail[1] if len(trail) > 1 else nxt]
        if nxt in trail:
            cycle = [*trail[trail.index(nxt) :], nxt]
            raise RuleError(via, f"segments would form a cycle: {' → '.join(cycle)}")
        if nxt in finished:
            continue
        if nxt not in graph:
            found = lookup(nxt)
            if found is None:
                user = f" (used by {trail[-1]!r})" if len(trail) > 1 else ""
                raise RuleError(via, f"no segment {nxt!r}{user}")
            graph[nxt] = _references(found)
        trail.append(nxt)
        pending.append(list(graph[nxt]))


def check_cost(rule: Rule) -> None:
    """Refuse a rule whose fan-out is too large to run on every event; the RuleError
    names the limit (docs/segments.md, Limits)."""
    conditions = 0
    events = 0
    for path, node, depth in _walk_depth(rule):
        if depth > MAX_DEPTH:
            raise RuleError(
                path,
                f"rules nest at most {MAX_DEPTH} levels of and/or/not; "
                f"this part is at level {depth}",
            )
        if isinstance(node, And | Or | Not):
            continue
        conditions += 1
        if isinstance(node, TraitCondition):
            _check_list(node.value, f"{path}/value")
        if isinstance(node, EventCondition):
            events += 1
            if len(node.where) > MAX_WHERE_FILTERS:
                raise RuleError(
                    f"{path}/where",
                    f"an event condition takes at most {MAX_WHERE_FILTERS} where filters, "
                    f"got {len(node.where)}",
                )
            for i, flt in enumerate(node.where):
                _check_list(flt.value, f"{path}/where/{i}/value")
    if conditions > MAX_CONDITIONS:
        raise RuleError(
            "", f"a rule holds at most {MAX_CONDITIONS} conditions, this one {conditions}"
        )
    if events > MAX_EVENT_CONDITIONS:
        raise RuleError(
            "", f"a rule holds at most {MAX_EVENT_CONDITIONS} event conditions, this one {events}"
        )


def _check_list(value: Value, path: str) -> None:
    if isinstance(value, tuple) and len(value) > MAX_LIST_VALUES:
        raise RuleError(
            path, f"a list holds at most {MAX_LIST_VALUES} values, this one {len(value)}"
        )


def _walk_depth(rule: Rule) -> Iterator[tuple[str, Rule, int]]:
    stack: list[tuple[str, Rule, int]] = [("", rule, 0)]
    while stack:
        path, node, depth = stack.pop()
        yield path, node, depth
        match node:
            case And() | Or():
                key = "and" if isinstance(node, And) else "or"
                for i in reversed(range(len(node.rules))):
                    stack.append((f"{path}/{key}/{i}", node.rules[i], depth + 1))
            case Not():
                stack.append((f"{path}/not", node.rule, depth + 1))
            case _:
                pass
