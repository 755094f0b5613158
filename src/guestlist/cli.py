"""The `guestlist` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

from guestlist.connectors.cli import connections_app
from guestlist.runtime import tune_gc
from guestlist.segments.cli import segments_app
from guestlist.settings import get_settings

app = typer.Typer(
    help="guestlist: a customer data platform for age-restricted retail.", no_args_is_help=True
)
keys_app = typer.Typer(help="API and write keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
privacy_app = typer.Typer(
    help="Erasure, access and the consent ledger (docs/privacy.md).", no_args_is_help=True
)
app.add_typer(privacy_app, name="privacy")
report_app = typer.Typer(help="Reports for the shop and its auditors.", no_args_is_help=True)
app.add_typer(report_app, name="report")
app.add_typer(segments_app, name="segments")
app.add_typer(connections_app, name="connections")
err = Console(stderr=True)
# Who the audit log names for what is done from this command (P-6).
CLI_ACTOR = "cli"


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
    # Registered on import: the destination erasure jobs, and the daily recurring jobs
    # privacy.retention and privacy.legal_hold.
    import guestlist.privacy.erase
    import guestlist.privacy.legal_hold
    import guestlist.privacy.retention  # noqa: F401
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
        key_id, plaintext = create_key(conn, kind, source, actor=CLI_ACTOR)  # type: ignore[arg-type]
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


@privacy_app.command("erase")
def privacy_erase(
    profile_id: Annotated[int, typer.Argument(help="Profile id (a merged-away id works too)")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log)")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Erase a person: data removed everywhere, addresses suppressed, destinations queued."""
    from guestlist.privacy.erase import ProfileAlreadyErased, ProfileNotFound, erase_profile
    from guestlist.store.engine import get_engine

    if not reason.strip():
        err.print("[red]--reason must say why (it is kept in the audit log)[/]")
        raise typer.Exit(2)
    if not yes and not typer.confirm(
        f"Erase profile {profile_id} and everything held about the person? "
        "This cannot be undone.",
        err=True,
    ):
        err.print("not erased")
        raise typer.Exit(1)
    try:
        with get_engine().begin() as conn:
            report = erase_profile(conn, profile_id, actor=CLI_ACTOR, reason=reason.strip())
    except (ProfileNotFound, ProfileAlreadyErased) as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    merged = report.erased_profile_ids[1:]
    err.print(
        f"[green]erased profile {report.profile_id}[/]"
        + (f" (and merged profiles {', '.join(map(str, merged))})" if merged else "")
    )
    deleted = ", ".join(f"{n} {t}" for t, n in report.rows_deleted.items() if n)
    err.print(f"  deleted: {deleted or 'nothing'}")
    err.print(
        f"  consent records reduced to evidence: {report.consent_records_reduced}; "
        f"addresses suppressed: {report.addresses_suppressed}; "
        f"inbox envelopes redacted: {report.inbox_envelopes_redacted}"
    )
    for job in report.destination_jobs:
        err.print(f"  erasure queued for {job.connection}" + (
            "" if job.job_id is not None else " (already queued)"))
    print(json.dumps(report.as_dict(), indent=2))


@privacy_app.command("export")
def privacy_export(
    profile_id: Annotated[int, typer.Argument(help="Profile id (a merged-away id works too)")],
    output: Annotated[
        Path | None, typer.Option(help="File to write (default: standard output)")
    ] = None,
) -> None:
    """Everything held about a person, consent proofs and audit entries included, as JSON."""
    from guestlist.privacy.erase import ProfileNotFound
    from guestlist.privacy.export import export_profile
    from guestlist.store.engine import get_engine

    try:
        with get_engine().begin() as conn:
            data = export_profile(conn, profile_id, actor=CLI_ACTOR)
    except ProfileNotFound as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if output is None:
        print(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        err.print(f"exported profile {data['profile']['id']} to {output}")


@privacy_app.command("verify-ledger")
def privacy_verify_ledger() -> None:
    """Check the consent ledger's hash chains (C-2a); exit code 1 when one is broken."""
    from rich.table import Table

    from guestlist.privacy.legal_hold import checkpoint_count
    from guestlist.privacy.report import ledger_check
    from guestlist.store.engine import get_engine, read_connection

    with read_connection(get_engine()) as conn:
        result = ledger_check(conn, max_problems=10_000)
        purged = checkpoint_count(conn)
    if purged:
        err.print(
            f"{purged} chains purged after their legal hold (P-3a); where each ended is "
            "kept in consent_chain_checkpoints"
        )
    if result.ok:
        err.print(f"[green]ledger intact[/]: {result.records_checked} records checked")
        return
    table = Table(title=f"{result.problem_count} problems in {result.records_checked} records")
    for column in ("record", "chain (profile)", "seq", "problem"):
        table.add_column(column)
    for p in result.problems:
        table.add_row(str(p.record_id), str(p.chain_id), str(p.seq), p.problem)
    Console().print(table)
    raise typer.Exit(1)


@privacy_app.command("purge")
def privacy_purge(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would go; change nothing")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text")] = False,
) -> None:
    """Run the retention purges now: inbox payloads and review flags (P-4), consent
    evidence past its legal hold (P-3a). The worker runs them daily."""
    from guestlist.privacy.legal_hold import purge_expired_evidence
    from guestlist.privacy.retention import run_retention
    from guestlist.store.engine import get_engine
    from guestlist.store.types import utcnow

    settings = get_settings()
    engine = get_engine()
    now = utcnow()
    retention = run_retention(
        engine,
        inbox_retention_days=settings.inbox_retention_days,
        review_days=settings.inactive_profile_review_days,
        now=now,
        dry_run=dry_run,
        actor=CLI_ACTOR,
    )
    hold = purge_expired_evidence(
        engine,
        hold_days=settings.consent_legal_hold_days,
        now=now,
        dry_run=dry_run,
        actor=CLI_ACTOR,
    )
    if as_json:
        print(json.dumps({**retention.as_dict(), "legal_hold": hold.as_dict()}, indent=2))
        return
    would = "would be " if dry_run else ""
    inbox, review = retention.inbox, retention.review
    print(
        f"inbox (kept {inbox.retention_days} days): {inbox.deleted} envelopes {would}deleted, "
        f"{inbox.emptied} {would}emptied (idempotency key kept)"
    )
    print(
        f"review (inactive {review.review_days} days): {review.flagged} {would}flagged, "
        f"{review.cleared} {would}cleared, {review.flagged_total} flagged in all"
    )
    expiry = "" if hold.next_expiry is None else f"; next expiry {hold.next_expiry.date()}"
    print(
        f"legal hold ({hold.hold_days} days): {hold.records} consent records of "
        f"{hold.profiles} erased people in {hold.chains} chains {would}purged, "
        f"{hold.still_held} people still held{expiry}"
    )
    if dry_run:
        err.print("dry run: nothing was changed")


@privacy_app.command("review")
def privacy_review(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many to list")] = 100,
    after: Annotated[
        int | None, typer.Option(help="Continue after this profile id (the last one listed)")
    ] = None,
) -> None:
    """Profiles flagged for review: no activity and no granted consent for the review
    period (P-4). Flags are refreshed daily and by `guestlist privacy purge`."""
    from rich.table import Table

    from guestlist.privacy.retention import review_queue
    from guestlist.store.engine import get_engine, read_connection

    with read_connection(get_engine()) as conn:
        items = review_queue(
            conn,
            review_days=get_settings().inactive_profile_review_days,
            after_id=after,
            limit=limit,
        )
    if as_json:
        print(json.dumps([item.as_dict() for item in items], indent=2))
        return
    if not items:
        err.print("no profiles awaiting review")
        return
    table = Table(title=f"{len(items)} profiles awaiting review (P-4)")
    for column in ("profile", "flagged", "last seen", "created", "reason"):
        table.add_column(column)
    for item in items:
        table.add_row(
            str(item.profile_id),
            item.flagged_at.date().isoformat(),
            item.last_seen_at.date().isoformat(),
            item.created_at.date().isoformat(),
            item.reason or "",
        )
    Console(width=200).print(table)
    if len(items) == limit:
        err.print(f"more: --after {items[-1].profile_id}")


@report_app.command("compliance")
def report_compliance(
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="Also write the report as CSV to this file")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")] = False,
    days: Annotated[int, typer.Option(min=1, max=366, help="Days of opt-outs to show")] = 30,
    verify_ledger: Annotated[
        bool, typer.Option("--verify-ledger/--no-verify-ledger", help="Check the hash chains")
    ] = True,
) -> None:
    """Consent per channel, opt-outs per day, the age verification funnel, the ledger check."""
    from guestlist.privacy.report import compliance_report
    from guestlist.store.engine import get_engine, read_connection

    with read_connection(get_engine()) as conn:
        report = compliance_report(conn, days=days, verify=verify_ledger)
    if csv_file is not None:
        csv_file.write_text(report.to_csv(), encoding="utf-8")
        err.print(f"wrote {csv_file}")
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        _print_report(report.as_dict())


def _print_report(data: dict[str, Any]) -> None:
    from rich.table import Table

    out = Console()
    s = data["summary"]
    out.print(
        f"[bold]Compliance report[/] {data['generated_at']}: {s['live_profiles']} live profiles, "
        f"{s['erased_profiles']} erased, {s['suppressed_addresses']} suppressed addresses"
    )
    sections: list[tuple[str, list[dict[str, Any]]]] = [
        ("Consent by channel and purpose", data["consent"]),
        (f"Opt-outs per day (last {data['days']} days, UTC)",
         [d for d in data["opt_outs"] if d["total"]] or data["opt_outs"][-1:]),
        ("Age verification", data["age_verification"]),
        ("Minimum ages awaiting review", data["unverified_minimum_ages"]),
    ]
    for title, rows in sections:
        if not rows:
            out.print(f"{title}: none")
            continue
        table = Table(title=title)
        for column in rows[0]:
            table.add_column(column)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row.values()))
        out.print(table)
    ledger = data["ledger"]
    if not ledger["checked"]:
        out.print("Ledger: not checked")
    elif ledger["ok"]:
        out.print(f"Ledger: [green]intact[/] ({ledger['records_checked']} records)")
    else:
        out.print(
            f"Ledger: [red]{ledger['problem_count']} problems[/] in "
            f"{ledger['records_checked']} records (guestlist privacy verify-ledger)"
        )


def _safe_url() -> str:
    from sqlalchemy.engine import make_url

    return make_url(get_settings().database_url).render_as_string(hide_password=True)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(app())
