"""`guestlist connections …`: add, list, show, test, backfill, log, remove."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

connections_app = typer.Typer(
    help="Connections to shop platforms and tools (docs/connectors.md).", no_args_is_help=True
)
err = Console(stderr=True)
out = Console()
CLI_ACTOR = "cli"


def _settings(pairs: list[str]) -> dict[str, str]:
    settings: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            err.print(f"[red]--set takes key=value, got {pair!r}[/]")
            raise typer.Exit(2)
        settings[key.strip()] = value
    return settings


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]{message}[/]")
    return typer.Exit(code)


def _found(conn: Any, ref: str) -> Any:
    """The connection `ref` names, or the command ends saying there is none."""
    from guestlist.connectors.connections import UnknownConnection, get

    try:
        return get(conn, ref)
    except UnknownConnection as exc:
        raise _fail(str(exc)) from None


def _rows(rows: list[dict[str, Any]], columns: list[tuple[str, str]], as_json: bool) -> None:
    """Rows as JSON, or as a table of (header, key) columns."""
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(*(header for header, _ in columns))
    for row in rows:
        table.add_row(*(str(row[key]) if row[key] is not None else "" for _, key in columns))
    out.print(table)


@connections_app.command("add")
def add_connection(
    platform: Annotated[str, typer.Argument(help="shopify, square, woocommerce, magento, …")],
    name: Annotated[str, typer.Option(help="A unique name for this account")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="A setting, key=value (repeat); see `connections platforms`"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the connection as JSON")] = False,
) -> None:
    """Add a connection; prints its webhook URL (and the webhook secret we generated)."""
    from guestlist.connectors import load_all
    from guestlist.connectors.connections import NameTaken, SettingsInvalid, add
    from guestlist.connectors.registry import UnknownPlatform
    from guestlist.store.engine import get_engine

    load_all()
    try:
        info, generated = add(get_engine(), platform, name, _settings(set_ or []), actor=CLI_ACTOR)
    except (UnknownPlatform, NameTaken) as exc:
        raise _fail(str(exc)) from None
    except SettingsInvalid as exc:
        raise _fail(f"setting {exc.field}: {exc.message}") from None
    data = info.as_json()
    if generated:
        data["webhook_secret"] = generated
    if as_json:
        print(json.dumps(data, indent=2))
        return
    err.print(f"[green]added[/] {info.platform} connection {info.name!r} (id {info.id})")
    err.print(f"webhook URL: {info.webhook_url}")
    if generated:
        err.print(f"webhook secret (shown once; paste it at {info.platform}): {generated}")


@connections_app.command("list")
def list_connections(
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """All connections."""
    from guestlist.connectors.connections import list_all
    from guestlist.store.engine import get_engine, read_connection

    with read_connection(get_engine()) as conn:
        items = list_all(conn)
    if as_json:
        print(json.dumps([i.as_json() for i in items], indent=2))
        return
    table = Table("id", "platform", "name", "webhook URL", "secrets set")
    for i in items:
        table.add_row(str(i.id), i.platform, i.name, i.webhook_url, ", ".join(i.secrets_set))
    out.print(table)


@connections_app.command("show")
def show_connection(
    ref: Annotated[str, typer.Argument(help="Connection id or name")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One connection: settings (no secret values) and each stream's progress."""
    from guestlist.connectors.connections import UnknownConnection, get
    from guestlist.store.engine import get_engine, read_connection

    with read_connection(get_engine()) as conn:
        try:
            info = get(conn, ref)
        except UnknownConnection as exc:
            raise _fail(str(exc)) from None
    data = info.as_json()
    if as_json:
        print(json.dumps(data, indent=2))
        return
    out.print(f"{info.platform} connection {info.name!r} (id {info.id}): {info.webhook_url}")
    out.print(f"settings: {json.dumps(info.settings)}; secrets set: {info.secrets_set}")
    for s in info.streams:
        total = f"/{s['total']}" if s["total"] is not None else ""
        out.print(f"  {s['stream']}: {s['status']}, run {s['run']}, {s['records']}{total} "
                  f"records in {s['pages']} pages" + (f" — {s['error']}" if s["error"] else ""))


@connections_app.command("test")
def test_connection(ref: Annotated[str, typer.Argument(help="Connection id or name")]) -> None:
    """Call the vendor once with the stored credentials."""
    from guestlist.connectors import load_all
    from guestlist.connectors.connections import UnknownConnection, check_connection
    from guestlist.store.engine import get_engine

    load_all()
    try:
        ok, message = check_connection(get_engine(), ref)
    except UnknownConnection as exc:
        raise _fail(str(exc)) from None
    if not ok:
        raise _fail(f"failed: {message}", 1)
    err.print(f"[green]ok[/] {message}")


@connections_app.command("backfill")
def backfill_connection(
    ref: Annotated[str, typer.Argument(help="Connection id or name")],
    stream: Annotated[
        list[str] | None, typer.Option("--stream", help="Only this stream (repeat)")
    ] = None,
    restart: Annotated[bool, typer.Option(help="Start over instead of resuming")] = False,
    process: Annotated[
        bool, typer.Option("--process/--no-process", help="Build profiles as pages arrive")
    ] = True,
    fetch_process: Annotated[
        bool,
        typer.Option(
            "--fetch-process/--fetch-thread",
            help="Fetch in a process of its own (one core each for fetching and building "
            "profiles), or in a thread of this one",
        ),
    ] = True,
) -> None:
    """Pull the connection's history. Stopped (Ctrl-C, crash) it resumes where it was."""
    from guestlist.connectors import load_all
    from guestlist.connectors.backfill import StreamProgress
    from guestlist.connectors.backfill_run import BackfillFailed, backfill_and_process
    from guestlist.connectors.base import Capability
    from guestlist.connectors.connections import UnknownConnection, load
    from guestlist.pipeline import process_pending
    from guestlist.settings import get_settings
    from guestlist.store.engine import get_engine

    load_all()
    engine = get_engine()
    with engine.connect() as conn:  # refuse here what the child process would refuse
        try:
            connector, _settings, info = load(conn, ref)
        except UnknownConnection as exc:
            raise _fail(str(exc)) from None
    if Capability.PULL not in connector.capabilities:
        raise _fail(f"{info.platform} connections cannot be pulled")
    for name in stream or []:
        if name not in connector.streams:
            raise _fail(f"unknown stream {name!r} (streams: {', '.join(connector.streams)})")
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    ) as bar:
        tasks: dict[str, Any] = {}
        pages = bar.add_task("pages into profiles", total=None) if process else None

        def on_progress(state: StreamProgress) -> None:
            if state.stream not in tasks:
                tasks[state.stream] = bar.add_task(f"{state.stream} fetched", total=state.total)
            bar.update(tasks[state.stream], completed=state.records, total=state.total)

        def on_processed(done: int) -> None:
            if pages is not None:
                bar.update(pages, completed=done)

        try:
            done = backfill_and_process(
                engine,
                info.id,
                process=process_pending if process else None,
                streams=stream,
                restart=restart,
                batch_size=get_settings().worker_batch_size,
                on_progress=on_progress,
                on_processed=on_processed,
                fetch_process=fetch_process,
            )
        except KeyboardInterrupt:
            raise _fail("stopped; what was fetched is kept: run the same command to resume",
                        130) from None
        except BackfillFailed as exc:
            raise _fail(f"{exc}\nwhat was fetched is kept: run the same command to resume",
                        1) from None
    err.print(f"[green]done[/]: {done} pages processed")


@connections_app.command("log")
def connection_log(
    ref: Annotated[str, typer.Argument(help="Connection id or name")],
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Deliveries, pulls and tests of a connection, newest first."""
    from guestlist.connectors.connections import log_entries
    from guestlist.store.engine import get_engine, read_connection

    with read_connection(get_engine()) as conn:
        entries = log_entries(conn, _found(conn, ref).id, limit=limit)
    _rows(
        entries,
        [("at", "at"), ("kind", "kind"), ("outcome", "outcome"), ("status", "status"),
         ("delivery", "delivery_id"), ("detail", "detail")],
        as_json,
    )


@connections_app.command("failures")
def connection_failures(
    ref: Annotated[str, typer.Argument(help="Connection id or name")],
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Deliveries and pages that could not be read into events, and why."""
    from guestlist.inbox.store import failed_envelopes
    from guestlist.store.engine import get_engine, read_connection

    with read_connection(get_engine()) as conn:
        failed = failed_envelopes(conn, _found(conn, ref).source_id, limit=limit)
    _rows(
        failed,
        [("inbox id", "inbox_id"), ("kind", "kind"), ("delivery", "delivery_id"),
         ("received", "received_at"), ("error", "error")],
        as_json,
    )


@connections_app.command("retry")
def retry_failures(ref: Annotated[str, typer.Argument(help="Connection id or name")]) -> None:
    """Process a connection's failed deliveries and pages again (after a fix)."""
    from guestlist.connectors import load_all
    from guestlist.connectors.connections import UnknownConnection, get
    from guestlist.inbox.store import requeue_failed
    from guestlist.pipeline import process_all
    from guestlist.store.engine import get_engine

    load_all()
    engine = get_engine()
    with engine.begin() as conn:
        try:
            info = get(conn, ref)
        except UnknownConnection as exc:
            raise _fail(str(exc)) from None
        requeued = requeue_failed(conn, info.source_id)
    process_all(engine)
    with engine.connect() as conn:
        left = get(conn, info.id).inbox.get("failed", 0)
    err.print(f"{requeued} requeued; {requeued - left} processed, {left} failed again")
    if left:
        raise typer.Exit(1)


@connections_app.command("remove")
def remove_connection(
    ref: Annotated[str, typer.Argument(help="Connection id or name")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask")] = False,
) -> None:
    """Remove a connection (its credentials, checkpoints and log). Profiles stay."""
    from guestlist.connectors.connections import UnknownConnection, remove
    from guestlist.store.engine import get_engine

    if not yes:
        typer.confirm(f"remove connection {ref!r}?", abort=True)
    try:
        info = remove(get_engine(), ref, actor=CLI_ACTOR)
    except UnknownConnection as exc:
        raise _fail(str(exc)) from None
    err.print(f"[green]removed[/] {info.platform} connection {info.name!r} (id {info.id})")


@connections_app.command("platforms")
def platforms() -> None:
    """The platforms, what each connector can do and the settings it takes."""
    from guestlist.connectors import load_all
    from guestlist.connectors.connections import secret_fields
    from guestlist.connectors.registry import PLATFORMS, available

    load_all()
    ready = {c.slug: c for c in available()}
    table = Table("platform", "can", "settings (secret*)")
    for slug in PLATFORMS:
        c = ready.get(slug)
        if c is None:
            table.add_row(slug, "[dim]not yet[/]", "")
            continue
        secret = set(secret_fields(c.settings_model))
        names = [f"{n}*" if n in secret else n for n in c.settings_model.model_fields]
        table.add_row(slug, ", ".join(sorted(c.capabilities)), ", ".join(names))
    out.print(table)
