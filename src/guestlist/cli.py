"""The `guestlist` command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

from guestlist.runtime import tune_gc
from guestlist.settings import get_settings

app = typer.Typer(
    help="guestlist: a customer data platform for age-restricted retail.", no_args_is_help=True
)
keys_app = typer.Typer(help="API and write keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
err = Console(stderr=True)


@app.callback()
def _startup() -> None:
    tune_gc()


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (GUESTLIST_DATABASE_URL)."""
    from guestlist.store.migrate import upgrade

    upgrade()
    err.print(f"[green]migrated[/] {_safe_url()}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Also process the inbox in-process")
    ] = True,
    migrate_first: Annotated[bool, typer.Option("--migrate/--no-migrate")] = True,
) -> None:
    """Serve the tracking API, webhooks, `/api` and docs (with a worker unless told not to)."""
    import uvicorn

    from guestlist.api.app import create_app

    if migrate_first:
        from guestlist.store.migrate import upgrade

        upgrade()
    err.print(f"guestlist on http://{host}:{port}  (docs: /docs, database: {_safe_url()})")
    uvicorn.run(
        create_app(run_worker=worker), host=host, port=port, log_level="warning", access_log=False
    )


@app.command("worker")
def run_worker() -> None:
    """Process the inbox and run due jobs until stopped (SIGTERM/SIGINT)."""
    from guestlist.jobs.worker import Worker
    from guestlist.pipeline import process_pending
    from guestlist.store.engine import get_engine

    settings = get_settings()
    Worker(
        get_engine(),
        process_inbox=process_pending,
        batch_size=settings.worker_batch_size,
        poll_seconds=settings.worker_poll_seconds,
    ).run_forever()


@keys_app.command("create")
def keys_create(
    kind: Annotated[str, typer.Option(help="write (tracking API) | read | admin (/api)")],
    source: Annotated[str | None, typer.Option(help="Source name; required for write")] = None,
) -> None:
    """Create a key. The key is printed alone on the last line (shown only once)."""
    from guestlist.keys import create_key
    from guestlist.store.engine import get_engine

    if kind not in ("write", "read", "admin"):
        err.print(f"[red]--kind must be write, read or admin, not {kind!r}[/]")
        raise typer.Exit(2)
    if kind == "write" and not source:
        err.print("[red]a write key needs --source NAME (the source its events come from)[/]")
        raise typer.Exit(2)
    with get_engine().begin() as conn:
        key_id, plaintext = create_key(conn, kind, source)  # type: ignore[arg-type]
    err.print(f"created {kind} key #{key_id}" + (f" for source {source!r}" if source else ""))
    print(plaintext)


@app.command("import")
def import_customers(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    source: Annotated[str, typer.Option(help="Source name the rows are recorded under")],
    fmt: Annotated[str | None, typer.Option("--format", help="csv | jsonl (by suffix)")] = None,
    region: Annotated[str, typer.Option(help="Region for phones without +country")] = "US",
    errors: Annotated[Path | None, typer.Option(help="Where to write the row report")] = None,
) -> None:
    """Import customers from CSV or JSON Lines; bad rows are reported, good rows kept."""
    from guestlist.capture.imports import import_file
    from guestlist.store.engine import get_engine

    size = path.stat().st_size
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    ) as bar:
        task = bar.add_task(f"importing {path.name}", total=size)
        try:
            report = import_file(
                get_engine(),
                path,
                source,
                fmt=fmt,
                region=region,
                progress=lambda done: bar.update(task, completed=done),
            )
        except ValueError as exc:
            err.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from None
    err.print(
        f"{report.rows} rows: {report.imported} imported, {report.rejected} rejected, "
        f"{len(report.problems) - report.rejected} warnings"
    )
    if report.problems:
        target = errors or path.with_name(path.name + ".errors.csv")
        report.write_csv(target)
        err.print(f"row report: {target}")
        for problem in report.problems[:10]:
            err.print(f"  line {problem.line}: {problem.column or 'row'} {problem.error}")
    if report.rejected and not report.imported:
        raise typer.Exit(1)


@app.command()
def demo(
    host: str = "127.0.0.1",
    port: int = 8000,
    customers: Annotated[int, typer.Option(help="How many customers to generate")] = 5000,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve")] = True,
) -> None:
    """Migrate, load realistic sample data, create keys and serve on http://HOST:PORT."""
    from guestlist.demo import load_demo
    from guestlist.store.migrate import upgrade

    upgrade()
    keys = load_demo(customers=customers, console=err)
    err.print("\n[bold]Try it[/]")
    err.print(f"  API docs:   http://{host}:{port}/docs")
    err.print(f"  write key:  {keys['write']}", soft_wrap=True)
    err.print(f"  admin key:  {keys['admin']}", soft_wrap=True)
    err.print(
        f"  curl -s -H 'Authorization: Bearer {keys['admin']}' "
        f"'http://{host}:{port}/api/profiles?q=smith' | python3 -m json.tool",
        soft_wrap=True,
    )
    if serve_after:
        serve(host=host, port=port, worker=True, migrate_first=False)


def _safe_url() -> str:
    from sqlalchemy.engine import make_url

    return make_url(get_settings().database_url).render_as_string(hide_password=True)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(app())
