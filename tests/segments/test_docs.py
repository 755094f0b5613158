"""docs/segments.md's examples are real: each text parses, and each JSON block is the
text block just before it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from guestlist.segments.rules import check_cost, parse_rule
from guestlist.segments.text import parse_text

DOC = Path(__file__).parents[2] / "docs" / "segments.md"
_BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.DOTALL)


def _examples() -> list[tuple[str, str]]:
    section = DOC.read_text().split("## Examples", 1)[1]
    return [(m.group(1), m.group(2)) for m in _BLOCK.finditer(section)]


def _rules_in(block: str) -> list[str]:
    """A block is one rule when its lines continue (indented), else one per line."""
    lines = [line for line in block.splitlines() if line.strip()]
    if any(line.startswith(" ") for line in lines[1:]):
        return [" ".join(line.strip() for line in lines)]
    return lines


def test_every_example_parses_and_its_json_matches() -> None:
    examples = _examples()
    assert len(examples) >= 6
    previous: list[str] = []
    for language, block in examples:
        if language == "json":
            assert len(previous) == 1
            assert parse_rule(json.loads(block)) == parse_text(previous[0])
        else:
            previous = _rules_in(block)
            for text in previous:
                check_cost(parse_text(text))
