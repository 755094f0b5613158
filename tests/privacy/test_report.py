"""The compliance report (both databases)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, update

from guestlist.age import default_policy
from guestlist.canonical import CanonicalEvent
from guestlist.pipeline import process_events
from guestlist.privacy.erase import erase_profile
from guestlist.privacy.report import compliance_report
from guestlist.store.tables import age_state, consent_records
from tests.privacy.conftest import profile_of

NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)


def consent(mid: str, user: str, at: datetime, **props: Any) -> CanonicalEvent:
    return CanonicalEvent(
        type="track",
        name="Consent Updated",
        message_id=mid,
        timestamp=at,
        received_at=at,
        source_id=1,
        user_id=user,
        properties=props,
    )


def identify(mid: str, user: str, **traits: Any) -> CanonicalEvent:
    return CanonicalEvent(
        type="identify",
        message_id=mid,
        timestamp=NOW - timedelta(days=30),
        received_at=NOW,
        source_id=1,
        user_id=user,
        traits=traits,
    )


def load(engine: Engine) -> None:
    day = timedelta(days=1)
    batch = [
        identify("i1", "granted", email="g@example.com", phone="+14155552671"),
        identify("i2", "withdrawn", email="w@example.com"),
        identify("i3", "expired", email="x@example.com"),
        identify("i4", "pending", email="p@example.com"),
        identify("i5", "unknown", email="u@example.com"),
        identify("i6", "erased", email="e@example.com"),
        # Two addresses on one channel: granted on one counts the profile as granted.
        identify("i7", "mixed", email="m1@example.com"),
        consent("c1", "granted", NOW - 3 * day, channel="sms", status="granted"),
        consent("c2", "withdrawn", NOW - 5 * day, channel="email", status="granted"),
        consent("c3", "withdrawn", NOW - 2 * day, channel="email", status="withdrawn"),
        consent(
            "c4",
            "expired",
            NOW - 400 * day,
            channel="email",
            status="granted",
            kind="implied",
            expires_at=(NOW - 10 * day).isoformat(),
        ),
        consent("c5", "pending", NOW - day, channel="email", status="pending"),
        consent("c6", "mixed", NOW - 2 * day, channel="email", status="withdrawn"),
        consent(
            "c7", "mixed", NOW - day, channel="email", status="granted", identifier="m2@example.com"
        ),
        consent(
            "c8",
            "erased",
            NOW - 2 * day,
            channel="sms",
            status="withdrawn",
            identifier="+14155552672",
        ),
        consent("c9", "granted", NOW - 40 * day, channel="sms", status="withdrawn"),  # old
    ]
    with engine.begin() as conn:
        process_events(conn, batch)
    verified = profile_of(engine, "user_id", "granted")
    with engine.begin() as conn:
        conn.execute(age_state.delete())  # the birthday-less profiles have no age state
        conn.execute(
            age_state.insert().values(
                profile_id=verified,
                dob=date(1980, 1, 1),
                level="id_document",
                jurisdiction="US-CA",
                conflict=False,
                updated_at=NOW,
            )
        )
    erased = profile_of(engine, "user_id", "erased")
    with engine.begin() as conn:
        erase_profile(conn, erased, actor="cli", reason="x")


def test_consent_counts_per_channel_and_purpose(engine: Engine) -> None:
    load(engine)
    with engine.connect() as conn:
        report = compliance_report(conn, now=NOW, days=7)
    assert report.summary.live_profiles == 6 and report.summary.erased_profiles == 1
    assert report.summary.suppressed_addresses == 2  # e@example.com and its sms number
    rows = {(r.channel, r.purpose): r for r in report.consent}
    email = rows[("email", "marketing")]
    assert (
        email.granted,
        email.withdrawn,
        email.denied,
        email.pending,
        email.expired,
        email.unknown,
    ) == (1, 1, 0, 1, 1, 2)
    sms = rows[("sms", "marketing")]
    assert (sms.granted, sms.withdrawn, sms.unknown) == (1, 0, 5)
    assert rows[("push", "transactional")].unknown == 6


def test_opt_outs_per_day_in_the_window(engine: Engine) -> None:
    load(engine)
    with engine.connect() as conn:
        report = compliance_report(conn, now=NOW, days=7)
    assert [d.day for d in report.opt_outs] == [
        date(2026, 6, 9) + timedelta(days=i) for i in range(7)
    ]
    by_day = {d.day: d for d in report.opt_outs}
    two_days_ago = by_day[date(2026, 6, 13)]
    # Two email withdrawals and the erased person's sms one (evidence, P-3a) that day.
    assert (two_days_ago.by_channel["email"], two_days_ago.by_channel["sms"]) == (2, 1)
    assert two_days_ago.total == 3 and two_days_ago.by_suppression == 0
    assert sum(d.total for d in report.opt_outs) == 3  # the 40-day-old one is outside


def test_age_funnel_unverified_rows_and_ledger(engine: Engine) -> None:
    load(engine)
    with engine.connect() as conn:
        report = compliance_report(conn, now=NOW, days=7)
    funnel = {r.level: (r.profiles, r.at_or_above) for r in report.age_verification}
    assert funnel["none"] == (5, 6)
    assert funnel["id_document"] == (1, 1)
    assert funnel["dob_provided"] == (0, 1) and funnel["in_person_id"] == (0, 0)
    assert len(report.unverified_minimum_ages) == len(default_policy().unverified())
    assert report.ledger.checked and report.ledger.ok and report.ledger.records_checked == 9
    with engine.begin() as conn:
        conn.execute(
            update(consent_records)
            .where(consent_records.c.seq == 1)
            .values(status="granted", event_time=NOW)
        )
    with engine.connect() as conn:
        broken = compliance_report(conn, now=NOW).ledger
    assert not broken.ok and broken.problem_count >= 1
    assert broken.problems[0].problem == "content changed after it was written"


def test_json_and_csv_forms(engine: Engine) -> None:
    load(engine)
    with engine.connect() as conn:
        report = compliance_report(conn, now=NOW, days=3, verify=False)
    data = report.as_dict()
    assert data["ledger"]["checked"] is False
    assert data["opt_outs"][-1] == {
        "day": "2026-06-15",
        "email": 0,
        "sms": 0,
        "whatsapp": 0,
        "phone": 0,
        "postal": 0,
        "push": 0,
        "total": 0,
        "by_suppression": 0,
    }
    sections: dict[str, list[list[str]]] = {}
    current: list[list[str]] = []
    for row in csv.reader(io.StringIO(report.to_csv())):
        if row and row[0].startswith("# "):
            current = sections.setdefault(row[0][2:], [])
        elif row:
            current.append(row)
    assert list(sections) == [
        "summary",
        "consent",
        "opt_outs",
        "age_verification",
        "unverified_minimum_ages",
        "ledger",
        "ledger_problems",
    ]
    assert sections["consent"][0] == [
        "channel",
        "purpose",
        "granted",
        "withdrawn",
        "denied",
        "pending",
        "expired",
        "unknown",
    ]
    email = next(r for r in sections["consent"] if r[:2] == ["email", "marketing"])
    assert email[2:] == ["1", "1", "0", "1", "1", "2"]
    assert len(sections["opt_outs"]) == 1 + 3
    assert sections["ledger_problems"] == [["record_id", "chain_id", "seq", "problem"]]
