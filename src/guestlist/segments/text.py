"""The text form of a segment rule, for the CLI and the API.

`parse_text` reads it with an LALR grammar (lark) into JSON and hands that to
`parse_rule`, so both forms pass exactly the same checks; `to_text` prints a rule back
so that `parse_text(to_text(rule)) == rule`. Every error is a `RuleSyntaxError` with
the line and column it concerns. The syntax is in docs/segments.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final, assert_never

from lark import Lark, Token, Tree, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from guestlist.segments.rules import (
    MAX_NESTING,
    AgeCondition,
    And,
    ConsentCondition,
    EventCondition,
    EventFilter,
    IdentifierCondition,
    InSegment,
    Not,
    OfAgeFor,
    Op,
    Or,
    Rule,
    RuleError,
    TraitCondition,
    Value,
    parse_rule,
    rule_to_json,
)

_SYNTAX: Final = r"""
start: or_expr

?or_expr: and_expr (_OR and_expr)*
?and_expr: not_expr (_AND not_expr)*
?not_expr: NOT not_expr -> negation
         | atom
?atom: _LPAR or_expr _RPAR
     | all_of | any_of
     | trait | consent | age | of_age_for | event | in_segment | identifier

all_of: ALL _LPAR or_expr (_COMMA or_expr)* _RPAR
any_of: ANY _LPAR or_expr (_COMMA or_expr)* _RPAR

trait: TRAIT _DOT NAME comparison
consent: CONSENT _DOT NAME (_DOT NAME)? IS NOT? NAME
age: AGE comparison
of_age_for: OF_AGE_FOR _LPAR STRING (_COMMA LEVEL OP_EQ STRING)? _RPAR
event: AGG _LPAR STRING (_DOT path)? where? within? _RPAR comparison
where: WHERE filter (_AND filter)*
filter: path comparison
within: WITHIN DAYS
path: NAME (_DOT NAME)*
in_segment: IN_SEGMENT _LPAR STRING _RPAR
identifier: IDENTIFIER _DOT NAME comparison

comparison: op value?
op: OP_EQ | OP_EQEQ | OP_NE | OP_LT | OP_LTE | OP_GT | OP_GTE
  | EQ | NE | LT | LTE | GT | GTE
  | IN | NOT_IN | NOT IN | CONTAINS | STARTS_WITH | EXISTS | NOT_EXISTS | NOT EXISTS
?value: STRING | NUMBER | TRUE | FALSE | NULL | list
list: _LBRA (value (_COMMA value)*)? _RBRA

OP_EQ: "="
OP_EQEQ: "=="
OP_NE: "!="
OP_LT: "<"
OP_LTE: "<="
OP_GT: ">"
OP_GTE: ">="
_LPAR: "("
_RPAR: ")"
_LBRA: "["
_RBRA: "]"
_COMMA: ","
_DOT: "."
NAME: /[A-Za-z0-9_]+/
DAYS: /[0-9]+d/
NUMBER: /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/
STRING: /"(?:[^"\\\x00-\x1f]|\\["\\\/bfnrt]|\\u[0-9a-fA-F]{4})*"/

%ignore /[ \t\r\n]+/
"""
# Words are matched whole (`order` is not `or` followed by `der`) and win over NAME
# where both could stand (`is not granted`).
KEYWORDS: Final[dict[str, str]] = {
    "_OR": "or",
    "_AND": "and",
    "NOT": "not",
    "ALL": "all",
    "ANY": "any",
    "TRAIT": "trait",
    "CONSENT": "consent",
    "IS": "is",
    "AGE": "age",
    "OF_AGE_FOR": "of_age_for",
    "LEVEL": "level",
    "WHERE": "where",
    "WITHIN": "within",
    "IN_SEGMENT": "in_segment",
    "IDENTIFIER": "identifier",
    "EQ": "eq",
    "NE": "ne",
    "LT": "lt",
    "LTE": "lte",
    "GT": "gt",
    "GTE": "gte",
    "IN": "in",
    "NOT_IN": "not_in",
    "CONTAINS": "contains",
    "STARTS_WITH": "starts_with",
    "EXISTS": "exists",
    "NOT_EXISTS": "not_exists",
    "TRUE": "true",
    "FALSE": "false",
    "NULL": "null",
}
AGGREGATES: Final = ("count", "sum", "avg", "min", "max")
GRAMMAR: Final = (
    _SYNTAX
    + "".join(f"{name}.2: /{word}\\b/\n" for name, word in KEYWORDS.items())
    + f"AGG.2: /(?:{'|'.join(AGGREGATES)})\\b/\n"
)

_PARSER: Final = Lark(
    GRAMMAR, parser="lalr", lexer="contextual", propagate_positions=True, maybe_placeholders=False
)

_OP_NAMES: Final[dict[str, Op]] = {
    "OP_EQ": "eq",
    "OP_EQEQ": "eq",
    "EQ": "eq",
    "OP_NE": "ne",
    "NE": "ne",
    "OP_LT": "lt",
    "LT": "lt",
    "OP_LTE": "lte",
    "LTE": "lte",
    "OP_GT": "gt",
    "GT": "gt",
    "OP_GTE": "gte",
    "GTE": "gte",
    "IN": "in",
    "NOT_IN": "not_in",
    "CONTAINS": "contains",
    "STARTS_WITH": "starts_with",
    "EXISTS": "exists",
    "NOT_EXISTS": "not_exists",
}
_OP_SYMBOLS: Final[dict[str, str]] = {
    "eq": "=",
    "ne": "!=",
    "lt": "<",
    "lte": "<=",
    "gt": ">",
    "gte": ">=",
}

# How an error names what the parser expected.
_CONDITION_START: Final = frozenset(
    {"TRAIT", "CONSENT", "AGE", "OF_AGE_FOR", "AGG", "IN_SEGMENT", "IDENTIFIER", "ALL", "ANY"}
)
_OPERATORS: Final = frozenset(_OP_NAMES) | {"NOT"}
_VALUES: Final = frozenset({"STRING", "NUMBER", "TRUE", "FALSE", "NULL", "_LBRA"})
_TERMINAL_NAMES: Final[dict[str, str]] = {
    "_OR": "'or'",
    "_AND": "'and'",
    "NOT": "'not'",
    "IS": "'is'",
    "LEVEL": "'level'",
    "WHERE": "'where'",
    "WITHIN": "'within'",
    "_LPAR": "'('",
    "_RPAR": "')'",
    "_LBRA": "'['",
    "_RBRA": "']'",
    "_COMMA": "','",
    "_DOT": "'.'",
    "OP_EQ": "'='",
    "AGG": "count, sum, avg, min or max",
    "NAME": "a name",
    "DAYS": "a number of days such as 90d",
    "NUMBER": "a number",
    "STRING": 'a string in double quotes such as "Austin"',
    "$END": "the end of the rule",
}


class RuleSyntaxError(RuleError):
    """Text that is not a rule: `line` and `column` (from 1) point at the problem,
    `expected` lists what could have stood there (empty when the text parsed but a
    value was refused; `path` then says which part of the rule)."""

    def __init__(
        self,
        message: str,
        *,
        line: int,
        column: int,
        source: str,
        expected: Sequence[str] = (),
        path: str = "",
    ) -> None:
        RuleError.__init__(self, path, message)
        self.args = (f"line {line}, column {column}: {message}",)
        self.line = line
        self.column = column
        self.expected = tuple(expected)
        self.source = source

    @property
    def snippet(self) -> str:
        """The offending line with a caret under the column, for terminals."""
        lines = self.source.split("\n")  # as lark counts lines
        text = lines[self.line - 1].rstrip("\r") if 0 < self.line <= len(lines) else ""
        return f"{text}\n{' ' * (self.column - 1)}^"


# -- text → rule --------------------------------------------------------------------


def parse_text(text: str) -> Rule:
    """The rule written in `text`; RuleSyntaxError with line and column otherwise."""
    try:
        tree = _PARSER.parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text) from None
    _check_nesting(tree, text)
    builder = _JsonBuilder(text)
    data = builder.rule(tree.children[0], "")
    try:
        return parse_rule(data)
    except RuleError as exc:
        line, column = builder.position_of(exc.path)
        raise RuleSyntaxError(
            exc.message, line=line, column=column, source=text, path=exc.path
        ) from None


def text_to_json(text: str) -> dict[str, Any]:
    """The canonical JSON of the rule written in `text`."""
    return rule_to_json(parse_text(text))


def _syntax_error(exc: UnexpectedInput, text: str) -> RuleSyntaxError:
    line, column = exc.line, exc.column
    if not isinstance(line, int) or line < 1 or not isinstance(column, int) or column < 1:
        line, column = _end_position(text)
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream
        char = text[pos] if pos is not None and 0 <= pos < len(text) else ""
        expected = _describe_expected(exc.allowed or set())
        if char == '"':
            message = (
                'a string that is not closed, or holds a bad escape (use \\" \\\\ \\n \\t \\uXXXX)'
            )
            expected = []
        else:
            message = f"unexpected character {char!r}"
    elif isinstance(exc, UnexpectedToken):
        expected = _describe_expected(exc.accepts or exc.expected)
        token = exc.token
        if token.type == "$END":
            message = "unexpected end of the rule"
            line, column = _end_position(text)
        else:
            message = f"unexpected {str(token)!r}"
    else:  # pragma: no cover - LALR raises only the two above
        expected = []
        message = str(exc)
    if expected:
        message += f"; expected {_join_or(expected)}"
    return RuleSyntaxError(message, line=line, column=column, source=text, expected=expected)


def _describe_expected(names: set[str] | frozenset[str]) -> list[str]:
    rest = set(names)
    found: list[str] = []
    if rest >= _CONDITION_START:
        rest -= _CONDITION_START | {"NOT", "_LPAR"}
        found.append("a condition")
    if {"OP_EQ", "IN", "EXISTS", "CONTAINS"} <= rest:
        rest -= _OPERATORS
        found.append(
            "an operator (= != < <= > >= in not_in contains starts_with exists not_exists)"
        )
    if rest >= _VALUES:
        rest -= _VALUES
        found.append("a value")
    for name in sorted(rest, key=lambda name: (name == "$END", name)):
        if name in _TERMINAL_NAMES:
            found.append(_TERMINAL_NAMES[name])
        elif name in _LITERALS:
            found.append(repr(_LITERALS[name]))
        else:  # pragma: no cover - every terminal is named above
            found.append(name)
    return found


_LITERALS: Final = {
    **{t.name: t.pattern.value for t in _PARSER.terminals if t.pattern.type == "str"},
    **KEYWORDS,
}


def _join_or(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " or " + items[-1]


def _end_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1


_GROUPS: Final = frozenset({"or_expr", "and_expr", "negation", "all_of", "any_of"})


def _check_nesting(tree: Tree[Token], text: str) -> None:
    """Refuse nesting beyond MAX_NESTING before the recursive walk below."""
    stack: list[tuple[Tree[Token], int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if node.data in _GROUPS:
            depth += 1
            if depth > MAX_NESTING:
                raise RuleSyntaxError(
                    f"rules nest more than {MAX_NESTING} levels deep",
                    line=node.meta.line,
                    column=node.meta.column,
                    source=text,
                )
        stack.extend((child, depth) for child in node.children if isinstance(child, Tree))


class _JsonBuilder:
    """Turns the parse tree into rule JSON, noting where in the text each JSON pointer
    came from so that `parse_rule`'s errors can be placed."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.positions: dict[str, tuple[int, int]] = {}

    def position_of(self, path: str) -> tuple[int, int]:
        while True:
            if path in self.positions:
                return self.positions[path]
            if not path:
                return 1, 1
            path = path.rsplit("/", 1)[0]

    def _at(self, path: str, node: Tree[Token] | Token) -> None:
        if isinstance(node, Token):
            line, column = node.line, node.column
        else:
            line, column = node.meta.line, node.meta.column
        if isinstance(line, int) and isinstance(column, int):
            self.positions.setdefault(path, (line, column))

    def _after(self, path: str, token: Token) -> None:
        if isinstance(token.end_line, int) and isinstance(token.end_column, int):
            self.positions.setdefault(path, (token.end_line, token.end_column))

    def rule(self, node: Tree[Token] | Token, path: str) -> dict[str, Any]:
        assert isinstance(node, Tree)
        self._at(path, node)
        kids = node.children
        match node.data:
            case "or_expr" | "and_expr" | "all_of" | "any_of":
                key = "or" if node.data in ("or_expr", "any_of") else "and"
                operands = [k for k in kids if isinstance(k, Tree)]
                return {key: [self.rule(k, f"{path}/{key}/{i}") for i, k in enumerate(operands)]}
            case "negation":
                return {"not": self.rule(kids[1], f"{path}/not")}
            case "trait":
                out: dict[str, Any] = {"trait": self._token(kids[1], f"{path}/trait")}
                return self._comparison(out, kids[2], path)
            case "consent":
                names = [k for k in kids if isinstance(k, Token) and k.type == "NAME"]
                out = {"consent": self._token(names[0], f"{path}/consent")}
                if len(names) == 3:
                    out["purpose"] = self._token(names[1], f"{path}/purpose")
                negated = any(isinstance(k, Token) and k.type == "NOT" for k in kids)
                state = names[-1]
                self._at(f"{path}/is", state)
                out["is"] = f"not_{state}" if negated else str(state)
                return out
            case "age":
                age = self._comparison({}, kids[1], f"{path}/age")
                return {"age": age}
            case "of_age_for":
                strings = [k for k in kids if isinstance(k, Token) and k.type == "STRING"]
                out = {"of_age_for": self._string(strings[0], f"{path}/of_age_for")}
                if len(strings) == 2:
                    out["level"] = self._string(strings[1], f"{path}/level")
                return out
            case "event":
                return self._event(node, path)
            case "in_segment":
                return {"in_segment": self._string(kids[1], f"{path}/in_segment")}
            case "identifier":
                out = {"identifier": self._token(kids[1], f"{path}/identifier")}
                return self._comparison(out, kids[2], path)
        raise AssertionError(node.data)  # pragma: no cover

    def _event(self, node: Tree[Token], path: str) -> dict[str, Any]:
        agg, name = node.children[0], node.children[1]
        assert isinstance(agg, Token)
        assert isinstance(name, Token)
        out: dict[str, Any] = {"event": self._string(name, f"{path}/event")}
        self._at(f"{path}/agg", agg)
        if not any(isinstance(k, Tree) and k.data == "path" for k in node.children):
            self._after(f"{path}/property", name)
        for part in node.children[2:-1]:
            assert isinstance(part, Tree)
            if part.data == "path":
                out["property"] = self._path(part, f"{path}/property")
            elif part.data == "within":
                days = part.children[1]
                assert isinstance(days, Token)
                self._at(f"{path}/within_days", days)
                out["within_days"] = int(str(days)[:-1])
            elif part.data == "where":
                filters = [k for k in part.children if isinstance(k, Tree)]
                out["where"] = []
                for i, flt in enumerate(filters):
                    fpath = f"{path}/where/{i}"
                    self._at(fpath, flt)
                    item = {"property": self._path(flt.children[0], f"{fpath}/property")}
                    out["where"].append(self._comparison(item, flt.children[1], fpath))
        out["agg"] = str(agg)
        return self._comparison(out, node.children[-1], path)

    def _comparison(
        self, out: dict[str, Any], node: Tree[Token] | Token, path: str
    ) -> dict[str, Any]:
        assert isinstance(node, Tree)
        op_node = node.children[0]
        assert isinstance(op_node, Tree)
        self._at(f"{path}/op", op_node)
        words = [k for k in op_node.children if isinstance(k, Token)]
        if len(words) == 2:  # `not in`, `not exists`
            out["op"] = "not_in" if words[1].type == "IN" else "not_exists"
        else:
            out["op"] = _OP_NAMES[words[0].type]
        if len(node.children) == 2:
            out["value"] = self._value(node.children[1], f"{path}/value")
        else:  # a missing value is reported just after the operator
            self._after(f"{path}/value", words[-1])
        return out

    def _value(self, node: Tree[Token] | Token, path: str) -> Any:
        self._at(path, node)
        if isinstance(node, Tree):  # a list
            return [self._value(item, f"{path}/{i}") for i, item in enumerate(node.children)]
        match node.type:
            case "STRING":
                return self._string(node, path)
            case "NUMBER":
                text = str(node)
                return float(text) if any(c in text for c in ".eE") else int(text)
            case "TRUE":
                return True
            case "FALSE":
                return False
        return None  # NULL

    def _path(self, node: Tree[Token] | Token, path: str) -> str:
        assert isinstance(node, Tree)
        self._at(path, node)
        return ".".join(str(k) for k in node.children)

    def _token(self, node: Tree[Token] | Token, path: str) -> str:
        self._at(path, node)
        return str(node)

    def _string(self, node: Tree[Token] | Token, path: str) -> str:
        self._at(path, node)
        decoded = json.loads(str(node))
        assert isinstance(decoded, str)
        return decoded


# -- rule → text --------------------------------------------------------------------


def to_text(rule: Rule) -> str:
    """`rule` in the text form; `parse_text(to_text(rule)) == rule`.

    Groups print flat (`a and b and c`), with parentheses only where the grammar needs
    them to keep the rule's shape: an `or` inside an `and`, a group inside a group of
    the same kind, a group under `not`. A group of one prints as `all(x)` / `any(x)`.
    """
    match rule:
        case And() | Or():
            word = "and" if isinstance(rule, And) else "or"
            if len(rule.rules) == 1:
                return f"{'all' if word == 'and' else 'any'}({to_text(rule.rules[0])})"
            parts = []
            for child in rule.rules:
                wrap = isinstance(child, Or) or (isinstance(child, And) and word == "and")
                if isinstance(child, And | Or) and len(child.rules) == 1:
                    wrap = False
                text = to_text(child)
                parts.append(f"({text})" if wrap else text)
            return f" {word} ".join(parts)
        case Not():
            inner = rule.rule
            text = to_text(inner)
            if isinstance(inner, And | Or) and len(inner.rules) > 1:
                text = f"({text})"
            return f"not {text}"
        case TraitCondition():
            return f"trait.{rule.trait} {_comparison_text(rule.op, rule.value)}"
        case ConsentCondition():
            purpose = "" if rule.purpose == "marketing" else f".{rule.purpose}"
            return f"consent.{rule.channel}{purpose} is {rule.is_}"
        case AgeCondition():
            return f"age {_comparison_text(rule.op, rule.value)}"
        case OfAgeFor():
            level = "" if rule.level is None else f", level={_string_text(rule.level)}"
            return f"of_age_for({_string_text(rule.category)}{level})"
        case EventCondition():
            inside = _string_text(rule.event)
            if rule.property is not None:
                inside += f".{rule.property}"
            if rule.where:
                inside += " where " + " and ".join(_filter_text(f) for f in rule.where)
            if rule.within_days is not None:
                inside += f" within {rule.within_days}d"
            return f"{rule.agg}({inside}) {_comparison_text(rule.op, rule.value)}"
        case InSegment():
            return f"in_segment({_string_text(rule.slug)})"
        case IdentifierCondition():
            return f"identifier.{rule.type} {rule.op}"
        case _:
            assert_never(rule)


def _filter_text(flt: EventFilter) -> str:
    return f"{flt.property} {_comparison_text(flt.op, flt.value)}"


def _comparison_text(op: str, value: Value) -> str:
    word = _OP_SYMBOLS.get(op, op)
    return word if value is None else f"{word} {_value_text(value)}"


def _value_text(value: Value) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_value_text(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _string_text(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _string_text(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)
