"""`guestlist segments …`: define segments and look into them from the shell.

Imports happen inside the commands: `guestlist --help` stays fast.

Rules are given in the text form (`--rule`) or as JSON (`--rule-json`); see
docs/segments.md. Results go to standard output as JSON (or CSV for members), messages
to standard error, so the commands compose with `jq` and friends.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

segments_app = typer.Typer(
    help="Segments: define, preview, members, explain.", no_args_is_help=True
)
err = Console(stderr=True)
CLI_ACTOR = "cli"

RuleText = Annotated[
    str | None, typer.Option("--rule", help="Text form, e.g. 'trait.tier = \"gold\"'")
]
RuleJson = Annotated[str | None, typer.Option("--rule-json", help="The rule as JSON")]
Category = Annotated[
    str | None, typer.Option(help="Restricted category (alcohol, tobacco, vape, cannabis…)")
]
Channel = Annotated[str | None, typer.Option(help="Channel the guard checks consent on")]
Level = Annotated[str | None, typer.Option("--level", help="Minimum verification level")]


def _rule(text: str | None, raw: str | None) -> dict[str, Any]:
    from guestlist.segments.rules import RuleError, rule_to_json
    from guestlist.segments.text import parse_text

    if (text is None) == (raw is None):
        _fail("give the rule once: --rule TEXT or --rule-json JSON")
    try:
        if text is not None:
            return rule_to_json(parse_text(text))
        data = json.loads(raw or "")
    except RuleError as exc:
        _fail(f"rule: {exc}")
    except json.JSONDecodeError as exc:
        _fail(f"--rule-json is not JSON: {exc}")
    if not isinstance(data, dict):
        _fail("--rule-json must be a JSON object")
    return dict(data)


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[red]{message}[/]")
    raise typer.Exit(code)


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


@segments_app.command("create")
def create(
    slug: Annotated[str, typer.Argument(help="Lower-case letters, digits, - and _")],
    name: Annotated[str, typer.Option(help="Name shown in the console")],
    rule: RuleText = None,
    rule_json: RuleJson = None,
    category: Category = None,
    channel: Channel = None,
    purpose: Annotated[str | None, typer.Option(help="Consent purpose")] = None,
    level: Level = None,
) -> None:
    """Create a segment and work out its members now."""
    from guestlist.segments.catalog import SegmentError, SegmentInput, create_segment
    from guestlist.segments.membership import evaluate_segment
    from guestlist.store.engine import get_engine

    given = SegmentInput(
        name=name,
        slug=slug,
        rule=_rule(rule, rule_json),
        category=category,
        channel=channel,
        purpose=purpose,
        required_level=level,
    )
    try:
        with get_engine().begin() as conn:
            segment = create_segment(conn, given, actor=CLI_ACTOR)
            changes = evaluate_segment(conn, slug)
    except SegmentError as exc:
        _fail(str(exc), 1)
    err.print(f"[green]created {slug}[/]: {len(changes.entered)} members")
    _print({**segment.as_json(), "members": len(changes.entered)})


@segments_app.command("list")
def index() -> None:
    """Every segment with its rule (text form) and current size."""
    from guestlist.segments.catalog import list_segments
    from guestlist.segments.membership import member_count
    from guestlist.segments.text import to_text
    from guestlist.store.engine import get_engine

    with get_engine().connect() as conn:
        _print(
            [
                {
                    "slug": s.slug,
                    "name": s.name,
                    "rule": to_text(s.rule),
                    "category": s.category,
                    "members": member_count(conn, s.id),
                }
                for s in list_segments(conn)
            ]
        )


@segments_app.command("preview")
def preview_rule(
    rule: RuleText = None,
    rule_json: RuleJson = None,
    category: Category = None,
    channel: Channel = None,
    level: Level = None,
) -> None:
    """Count and sample who an unsaved rule selects now."""
    from guestlist.segments.catalog import SegmentError, SegmentInput, checked_definition
    from guestlist.segments.service import preview
    from guestlist.store.engine import get_engine

    given = SegmentInput(
        name="preview",
        slug="preview",
        rule=_rule(rule, rule_json),
        category=category,
        channel=channel,
        required_level=level,
    )
    try:
        with get_engine().connect() as conn:
            result = preview(conn, checked_definition(conn, given))
    except SegmentError as exc:
        _fail(str(exc), 1)
    _print(result.as_json())


@segments_app.command("members")
def members(
    slug: str,
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="Write CSV here ('-': standard output)")
    ] = None,
) -> None:
    """Current members (CSV with email, phone and user id)."""
    from guestlist.segments.membership import member_count
    from guestlist.segments.service import members_csv
    from guestlist.store.engine import get_engine

    with get_engine().connect() as conn:
        segment = _segment(conn, slug)
        chunks = members_csv(conn, segment)
        if csv_file is None or str(csv_file) == "-":
            for chunk in chunks:
                sys.stdout.write(chunk)
            return
        with csv_file.open("w", encoding="utf-8", newline="") as out:
            for chunk in chunks:
                out.write(chunk)
        err.print(f"wrote {member_count(conn, segment.id)} members to {csv_file}")


@segments_app.command("explain")
def explain(
    slug: str,
    profile: Annotated[
        int | None, typer.Option("--profile", help="Show which conditions held for this profile")
    ] = None,
) -> None:
    """The SQL that selects the members, and for one profile which conditions held."""
    from guestlist.segments.catalog import SegmentError
    from guestlist.segments.service import explain_profile, explain_sql
    from guestlist.segments.text import to_text
    from guestlist.store.engine import get_engine

    with get_engine().connect() as conn:
        segment = _segment(conn, slug)
        err.print(f"[bold]{slug}[/]: {to_text(segment.rule)}")
        print(explain_sql(conn, segment))
        if profile is None:
            return
        try:
            found = explain_profile(conn, segment, profile)
        except SegmentError as exc:
            _fail(str(exc), 1)
    for step in found["conditions"]:
        depth = step["path"].count("/") // 2 if step["path"] != "/" else 0
        mark = "[green]✔[/]" if step["held"] else "[red]✘[/]"
        err.print(f"{'  ' * depth}{mark} {step['condition']}")
    if "guard" in found:
        guard = found["guard"]
        err.print(
            "guard: admitted"
            if guard["admitted"]
            else f"guard: refused ({', '.join(guard['reasons'])})"
        )
    _print(found)


@segments_app.command("delete")
def delete(slug: str) -> None:
    """Delete a segment (refused while another segment uses it)."""
    from guestlist.segments.catalog import SegmentError, delete_segment
    from guestlist.store.engine import get_engine

    try:
        with get_engine().begin() as conn:
            delete_segment(conn, slug, actor=CLI_ACTOR)
    except SegmentError as exc:
        _fail(str(exc), 1)
    err.print(f"deleted {slug}")


@segments_app.command("recheck")
def recheck() -> None:
    """Re-evaluate now the profiles whose time-based recheck is due."""
    from guestlist.segments.membership import run_due_rechecks
    from guestlist.store.engine import get_engine

    checked = changed = 0
    while True:
        with get_engine().begin() as conn:
            done = run_due_rechecks(conn)
        checked += done.checked
        changed += len(done)
        if not done.checked:
            break
    err.print(f"{checked} profiles rechecked, {changed} membership changes")


def _segment(conn: Any, slug: str) -> Any:
    from guestlist.segments.catalog import get_segment

    return get_segment(conn, slug) or _fail(f"no segment {slug!r}", 1)


computed_app = typer.Typer(help="Computed traits: aggregates over events.", no_args_is_help=True)
segments_app.add_typer(computed_app, name="computed")


@computed_app.command("add")
def computed_add(
    name: Annotated[str, typer.Argument(help="snake_case trait name, e.g. lifetime_spend")],
    definition: Annotated[str, typer.Argument(help="e.g. 'sum(\"Order Completed\".total)'")],
) -> None:
    """Create or replace a computed trait and compute it for everyone now."""
    from guestlist.segments.catalog import SegmentError, define_computed
    from guestlist.segments.membership import compute_everyone
    from guestlist.store.engine import get_engine

    try:
        with get_engine().begin() as conn:
            trait, changed = define_computed(conn, name, definition, actor=CLI_ACTOR)
            profiles = compute_everyone(conn) if changed else 0
    except SegmentError as exc:
        _fail(str(exc), 1)
    err.print(f"[green]{name}[/] = {trait.to_text()}  ({profiles} profiles computed)")
    _print({"name": name, "definition": trait.to_json()})


@computed_app.command("list")
def computed_list() -> None:
    """Every computed trait, as JSON."""
    from guestlist.segments.catalog import list_computed
    from guestlist.store.engine import get_engine

    with get_engine().connect() as conn:
        _print([{"name": t.name, "text": t.to_text()} for t in list_computed(conn)])


@computed_app.command("remove")
def computed_remove(name: str) -> None:
    """Delete a computed trait and its values (refused while a segment uses it)."""
    from guestlist.segments.catalog import SegmentError, delete_computed
    from guestlist.store.engine import get_engine

    try:
        with get_engine().begin() as conn:
            delete_computed(conn, name, actor=CLI_ACTOR)
    except SegmentError as exc:
        _fail(str(exc), 1)
    err.print(f"removed {name}")
