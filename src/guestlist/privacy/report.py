"""The compliance report (issue 3, point 8): what a shop shows an auditor.

Sections, each computed in the database (never by loading every profile):

- `consent`: per channel and purpose, how many live profiles are granted, withdrawn,
  denied, pending, expired (implied consent past its expiry, C-7) or unknown (no
  record at all, C-4). A profile with several addresses on a channel counts once, by
  the rule of `consent.ledger.channel_status`: granted if any address is, else
  withdrawn, denied, expired, pending in that order.
- `opt_outs`: withdrawn records per day (UTC, by event time) and channel over the last
  N days, and how many of them the suppression screen wrote (P-3) rather than a person
  or a source; erased people's reduced records still count.
- `age_verification`: live profiles by the verification level of the date of birth
  that counts (A-3, A-5), weakest first, with `none` for no age record, and how many
  are at or above each level.
- `unverified_minimum_ages`: rows of the age table still awaiting review (A-1).
- `ledger`: the hash-chain check of the whole consent ledger (C-2a).
- `summary`: live, erased and merged-away profiles, suppressed addresses.

`ComplianceReport.as_dict()` is the JSON form; `to_csv()` writes one section per table,
each introduced by a `# <section>` line and its header row, sections separated by a
blank line (docs/privacy.md).
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, case, func, select

from guestlist.age import VerificationLevel, default_policy
from guestlist.consent.ledger import CHANNELS, PURPOSES, SECRET_NAME, verify_ledger
from guestlist.privacy.suppression import RECORDED_BY as SUPPRESSION_RECORDER
from guestlist.store.tables import (
    age_state,
    consent_records,
    consent_state,
    installation_secrets,
    profiles,
    suppressions,
)
from guestlist.store.types import utcnow

STATUSES = ("granted", "withdrawn", "denied", "pending", "expired")
# channel_status's precedence: the first status a profile holds on a channel counts.
_PRECEDENCE = ("granted", "withdrawn", "denied", "expired", "pending")
MAX_LEDGER_PROBLEMS = 1000


@dataclass(frozen=True)
class ConsentRow:
    channel: str
    purpose: str
    granted: int
    withdrawn: int
    denied: int
    pending: int
    expired: int
    unknown: int


@dataclass(frozen=True)
class OptOutDay:
    day: date
    by_channel: dict[str, int]
    total: int
    by_suppression: int


@dataclass(frozen=True)
class AgeLevelRow:
    level: str  # a VerificationLevel value, or "none"
    profiles: int
    at_or_above: int


@dataclass(frozen=True)
class UnverifiedRule:
    jurisdiction: str
    category: str
    minimum_age: int | None
    prohibited: bool
    source: str
    note: str


@dataclass(frozen=True)
class LedgerProblemRow:
    record_id: int
    chain_id: int
    seq: int
    problem: str


@dataclass(frozen=True)
class LedgerCheck:
    checked: bool
    records_checked: int
    problem_count: int
    problems: list[LedgerProblemRow]  # the first MAX_LEDGER_PROBLEMS

    @property
    def ok(self) -> bool:
        return self.problem_count == 0


@dataclass(frozen=True)
class Summary:
    live_profiles: int
    erased_profiles: int
    merged_profiles: int
    suppressed_addresses: int


@dataclass
class ComplianceReport:
    generated_at: datetime
    days: int
    summary: Summary
    consent: list[ConsentRow] = field(default_factory=list)
    opt_outs: list[OptOutDay] = field(default_factory=list)
    age_verification: list[AgeLevelRow] = field(default_factory=list)
    unverified_minimum_ages: list[UnverifiedRule] = field(default_factory=list)
    ledger: LedgerCheck = field(default_factory=lambda: LedgerCheck(False, 0, 0, []))

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (ISO dates and times)."""
        return {
            "generated_at": self.generated_at.isoformat(),
            "days": self.days,
            "summary": asdict(self.summary),
            "consent": [asdict(r) for r in self.consent],
            "opt_outs": [
                {
                    "day": d.day.isoformat(),
                    **d.by_channel,
                    "total": d.total,
                    "by_suppression": d.by_suppression,
                }
                for d in self.opt_outs
            ],
            "age_verification": [asdict(r) for r in self.age_verification],
            "unverified_minimum_ages": [asdict(r) for r in self.unverified_minimum_ages],
            "ledger": {
                "checked": self.ledger.checked,
                "ok": self.ledger.ok,
                "records_checked": self.ledger.records_checked,
                "problem_count": self.ledger.problem_count,
                "problems": [asdict(p) for p in self.ledger.problems],
            },
        }

    def to_csv(self) -> str:
        """Every section as a table: `# name`, header, rows; a blank line between."""
        data = self.as_dict()
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")

        def section(name: str, header: list[str], rows: list[list[Any]]) -> None:
            if out.tell():
                writer.writerow([])
            writer.writerow([f"# {name}"])
            writer.writerow(header)
            writer.writerows(rows)

        summary = {"generated_at": data["generated_at"], "days": self.days, **data["summary"]}
        section("summary", list(summary), [list(summary.values())])
        consent_header = ["channel", "purpose", *STATUSES, "unknown"]
        section(
            "consent",
            consent_header,
            [[row[k] for k in consent_header] for row in data["consent"]],
        )
        opt_header = ["day", *CHANNELS, "total", "by_suppression"]
        section("opt_outs", opt_header, [[d[k] for k in opt_header] for d in data["opt_outs"]])
        section(
            "age_verification",
            ["level", "profiles", "at_or_above"],
            [[r["level"], r["profiles"], r["at_or_above"]] for r in data["age_verification"]],
        )
        rule_header = ["jurisdiction", "category", "minimum_age", "prohibited", "source", "note"]
        section(
            "unverified_minimum_ages",
            rule_header,
            [[r[k] for k in rule_header] for r in data["unverified_minimum_ages"]],
        )
        ledger = data["ledger"]
        section(
            "ledger",
            ["checked", "ok", "records_checked", "problem_count"],
            [[ledger["checked"], ledger["ok"], ledger["records_checked"], ledger["problem_count"]]],
        )
        section(
            "ledger_problems",
            ["record_id", "chain_id", "seq", "problem"],
            [[p["record_id"], p["chain_id"], p["seq"], p["problem"]] for p in ledger["problems"]],
        )
        return out.getvalue()


def _live() -> ColumnElement[bool]:
    return and_(profiles.c.merged_into.is_(None), profiles.c.erased_at.is_(None))


def _summary(conn: Connection) -> Summary:
    row = conn.execute(
        select(
            func.count().filter(_live()).label("live"),
            func.count().filter(profiles.c.erased_at.is_not(None)).label("erased"),
            func.count()
            .filter(profiles.c.merged_into.is_not(None), profiles.c.erased_at.is_(None))
            .label("merged"),
        ).select_from(profiles)
    ).one()
    addresses = conn.scalar(select(func.count(func.distinct(suppressions.c.identifier_hash))))
    return Summary(int(row.live), int(row.erased), int(row.merged), int(addresses or 0))


def consent_counts(conn: Connection, *, now: datetime, live_profiles: int) -> list[ConsentRow]:
    """Per channel and purpose, profiles by their status on it (see the module doc)."""
    effective = case(
        (
            and_(
                consent_state.c.status == "granted",
                consent_state.c.expires_at.is_not(None),
                consent_state.c.expires_at <= now,
            ),
            "expired",
        ),
        else_=consent_state.c.status,
    )
    rank = case({s: i for i, s in enumerate(_PRECEDENCE)}, value=effective, else_=len(_PRECEDENCE))
    per_profile = (
        select(
            consent_state.c.profile_id,
            consent_state.c.channel,
            consent_state.c.purpose,
            func.min(rank).label("rank"),
        )
        .join(profiles, profiles.c.id == consent_state.c.profile_id)
        .where(_live())
        .group_by(consent_state.c.profile_id, consent_state.c.channel, consent_state.c.purpose)
        .subquery()
    )
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for r in conn.execute(
        select(
            per_profile.c.channel, per_profile.c.purpose, per_profile.c.rank, func.count()
        ).group_by(per_profile.c.channel, per_profile.c.purpose, per_profile.c.rank)
    ):
        status = _PRECEDENCE[r.rank] if r.rank < len(_PRECEDENCE) else "unknown"
        counts.setdefault((r.channel, r.purpose), {})[status] = int(r[3])
    purposes = list(PURPOSES) + sorted({p for _, p in counts} - set(PURPOSES))
    channels = list(CHANNELS) + sorted({c for c, _ in counts} - set(CHANNELS))
    rows = []
    for channel in channels:
        for purpose in purposes:
            got = counts.get((channel, purpose), {})
            known = {s: got.get(s, 0) for s in STATUSES}
            rows.append(
                ConsentRow(
                    channel,
                    purpose,
                    unknown=max(live_profiles - sum(got.values()), 0) + got.get("unknown", 0),
                    **known,
                )
            )
    return rows


def _day(conn: Connection) -> ColumnElement[str]:
    if conn.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", consent_records.c.event_time), "YYYY-MM-DD")
    # SQLite stores UTC times as ISO text ("2026-05-01 12:00:00.000000").
    return func.substr(consent_records.c.event_time, 1, 10)


def opt_outs_per_day(conn: Connection, *, today: date, days: int) -> list[OptOutDay]:
    """Withdrawn records by UTC event day and channel, `days` days up to `today`."""
    first = today - timedelta(days=days - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=1)
    day = _day(conn).label("day")
    by_screen = consent_records.c.recorded_by == SUPPRESSION_RECORDER
    grid: dict[str, dict[str, int]] = {}
    screened: dict[str, int] = {}
    for r in conn.execute(
        select(
            day,
            consent_records.c.channel,
            func.count().label("n"),
            func.count().filter(by_screen).label("screened"),
        )
        .where(
            consent_records.c.status == "withdrawn",
            consent_records.c.event_time >= start,
            consent_records.c.event_time < end,
        )
        .group_by(day, consent_records.c.channel)
    ):
        grid.setdefault(r.day, {})[r.channel] = int(r.n)
        screened[r.day] = screened.get(r.day, 0) + int(r.screened)
    out = []
    for offset in range(days):
        d = first + timedelta(days=offset)
        counts = grid.get(d.isoformat(), {})
        by_channel = {c: counts.get(c, 0) for c in CHANNELS}
        out.append(OptOutDay(d, by_channel, sum(counts.values()), screened.get(d.isoformat(), 0)))
    return out


def age_funnel(conn: Connection) -> list[AgeLevelRow]:
    """Live profiles by the verification level that backs their date of birth."""
    counts: dict[str, int] = {}
    for r in conn.execute(
        select(age_state.c.level, func.count())
        .select_from(profiles.outerjoin(age_state, age_state.c.profile_id == profiles.c.id))
        .where(_live())
        .group_by(age_state.c.level)
    ):
        name = r.level or "none"
        counts[name] = counts.get(name, 0) + int(r[1])
    levels = ["none", *(level.value for level in VerificationLevel)]
    extra = sorted(set(counts) - set(levels))  # a level this version does not know
    rows = []
    remaining = sum(counts.values())
    for name in levels + extra:
        n = counts.get(name, 0)
        at_or_above = remaining if name in levels else n
        rows.append(AgeLevelRow(name, n, at_or_above))
        if name in levels:
            remaining -= n
    return rows


def ledger_check(conn: Connection, *, max_problems: int = MAX_LEDGER_PROBLEMS) -> LedgerCheck:
    """verify_ledger over every chain, read-only (the key is read, never created)."""
    key = conn.scalar(
        select(installation_secrets.c.value).where(installation_secrets.c.name == SECRET_NAME)
    )
    if key is None:
        count = conn.scalar(select(func.count()).select_from(consent_records)) or 0
        problems = (
            [LedgerProblemRow(0, 0, 0, f"{count} records but no ledger key to check them with")]
            if count
            else []
        )
        return LedgerCheck(True, int(count), len(problems), problems)
    checked, found = verify_ledger(conn, key=bytes(key))
    return LedgerCheck(
        True,
        checked,
        len(found),
        [LedgerProblemRow(p.record_id, p.chain_id, p.seq, p.problem) for p in found[:max_problems]],
    )


def compliance_report(
    conn: Connection,
    *,
    days: int = 30,
    verify: bool = True,
    now: datetime | None = None,
) -> ComplianceReport:
    """The report as of `now`; `verify=False` skips the ledger check (it reads every
    consent record)."""
    if days < 1:
        raise ValueError("days must be at least 1")
    now = now or utcnow()
    summary = _summary(conn)
    return ComplianceReport(
        generated_at=now,
        days=days,
        summary=summary,
        consent=consent_counts(conn, now=now, live_profiles=summary.live_profiles),
        opt_outs=opt_outs_per_day(conn, today=now.date(), days=days),
        age_verification=age_funnel(conn),
        unverified_minimum_ages=[
            UnverifiedRule(
                r.jurisdiction, r.category, r.minimum_age, r.prohibited, r.source, r.note
            )
            for r in default_policy().unverified()
        ],
        ledger=ledger_check(conn) if verify else LedgerCheck(False, 0, 0, []),
    )


__all__ = [
    "AgeLevelRow",
    "ComplianceReport",
    "ConsentRow",
    "LedgerCheck",
    "OptOutDay",
    "Summary",
    "UnverifiedRule",
    "age_funnel",
    "compliance_report",
    "consent_counts",
    "ledger_check",
    "opt_outs_per_day",
]
