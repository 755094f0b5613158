"""Identity resolution: the graph, its limits, blocked values and merges (both DBs)."""

from __future__ import annotations

import itertools
import pickle
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from guestlist.canonical import CanonicalEvent, ExternalId
from guestlist.identity.graph import BatchResolver, EventIdentity
from guestlist.identity.merge import live_profile_id
from guestlist.identity.normalize import Identifier
from guestlist.identity.rules import IdentityRules
from guestlist.profiles.apply import apply_events, drop_seen
from guestlist.store.tables import events, identifiers, profile_merges, profiles, traits

T0 = datetime(2026, 1, 1, tzinfo=UTC)
_ids = itertools.count(1)


def ev(type_: str = "identify", minutes: int = 0, **kw: Any) -> CanonicalEvent:
    return CanonicalEvent(
        type=type_,
        message_id=kw.pop("message_id", f"m{next(_ids)}"),
        timestamp=T0 + timedelta(minutes=minutes),
        received_at=T0,
        source_id=1,
        **kw,
    )


def run(engine: Engine, *batch: CanonicalEvent, rules: IdentityRules | None = None) -> list[int]:
    with engine.begin() as conn:
        fresh = drop_seen(conn, batch)
        found = BatchResolver(conn, rules or IdentityRules()).resolve(fresh)
        apply_events(conn, fresh, found)
        return [f.profile_id for f in found]


def live_profiles(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).where(profiles.c.merged_into.is_(None))) or 0)


def test_same_email_in_two_spellings_is_one_profile(engine: Engine) -> None:
    a = run(engine, ev(user_id="u1", traits={"email": "Ann.Lee+shop@Gmail.com"}))
    b = run(engine, ev(anonymous_id="x", traits={"email": "annlee@gmail.com"}))
    assert a == b
    assert live_profiles(engine) == 1


def test_anonymous_then_identified_merges_through_shared_email(engine: Engine) -> None:
    [anon] = run(engine, ev(anonymous_id="anon-1", traits={"email": "bo@shop.ca"}))
    [known] = run(engine, ev(user_id="u-9", traits={"phone": "+1 416 555 0199"}))
    [both] = run(engine, ev(user_id="u-9", traits={"email": "bo@shop.ca"}))
    assert both == min(anon, known)
    assert live_profiles(engine) == 1
    with engine.connect() as conn:
        merge = conn.execute(select(profile_merges)).one()
        assert merge.reason == "shared_identifier"
        assert (merge.identifier_kind, merge.identifier_key) == ("email", "bo@shop.ca")
        assert live_profile_id(conn, max(anon, known)) == both
        kinds = sorted(
            r.kind
            for r in conn.execute(select(identifiers).where(identifiers.c.profile_id == both))
        )
        assert kinds == ["anonymous_id", "email", "phone", "user_id"]
        assert (
            conn.scalar(select(func.count()).select_from(events).where(events.c.profile_id == both))
            == 3
        )


def test_user_id_limit_keeps_two_people_apart(engine: Engine) -> None:
    """Two user ids sharing an email are two accounts: at most one user_id per profile."""
    [a] = run(engine, ev(user_id="u-1", traits={"email": "family@shop.com"}))
    [b] = run(engine, ev(user_id="u-2", traits={"email": "family@shop.com"}))
    assert a != b
    assert live_profiles(engine) == 2


def test_shared_household_phone_does_not_fuse_people_with_different_birthdays(
    engine: Engine,
) -> None:
    phone = "+1 604 555 0142"
    [mom] = run(
        engine,
        ev(
            traits={"email": "mom@shop.com", "phone": phone, "birthday": "1970-03-02"},
            anonymous_id="a1",
        ),
    )
    [kid] = run(
        engine,
        ev(
            traits={"email": "kid@shop.com", "phone": phone, "birthday": "2001-07-09"},
            anonymous_id="a2",
        ),
    )
    assert mom != kid
    with engine.connect() as conn:
        holders = conn.scalars(
            select(identifiers.c.profile_id).where(identifiers.c.key == "+16045550142")
        ).all()
    assert sorted(holders) == sorted([mom, kid])  # both hold the number (C-6, SMS-2)
    # A later text from the shared phone alone picks one profile but merges nothing.
    run(
        engine,
        ev(
            "track",
            name="Inbound Message",
            anonymous_id="sms",
            context={"traits": {"phone": phone}},
        ),
    )
    assert live_profiles(engine) == 2


def test_phone_merges_when_birthdays_agree(engine: Engine) -> None:
    [a] = run(
        engine, ev(anonymous_id="a", traits={"phone": "+14155552671", "birthday": "1990-05-05"})
    )
    [b] = run(
        engine, ev(anonymous_id="b", traits={"phone": "+14155552671", "birthday": "1990-05-05"})
    )
    assert a == b


@pytest.mark.parametrize("value", ["null", "anonymous", "-1", "0"])
def test_blocked_user_ids_never_join_profiles(engine: Engine, value: str) -> None:
    [a] = run(engine, ev(user_id=value, traits={"email": "one@shop.com"}))
    [b] = run(engine, ev(user_id=value, traits={"email": "two@shop.com"}))
    assert a != b
    with engine.connect() as conn:
        issue = conn.execute(select(events.c.issues).limit(1)).scalar_one()
    assert issue[0]["field"] == "userId"
    assert "blocked" in issue[0]["error"]


def test_placeholder_email_at_the_till_never_joins(engine: Engine) -> None:
    [a] = run(engine, ev(anonymous_id="p1", traits={"email": "noemail@store.com"}))
    [b] = run(engine, ev(anonymous_id="p2", traits={"email": "noemail@store.com"}))
    assert a != b


def test_invalid_identifier_keeps_the_event_and_flags_it(engine: Engine) -> None:
    [pid] = run(engine, ev(user_id="u-5", traits={"email": "bob@", "phone": "12"}))
    with engine.connect() as conn:
        row = conn.execute(select(events)).one()
        trait_rows = {r.name: r.value for r in conn.execute(select(traits))}
    assert row.profile_id == pid
    assert {i["field"] for i in row.issues} == {"traits.email", "traits.phone"}
    assert trait_rows["email"] == "bob@"  # the trait is kept as sent


def test_alias_merges_explicitly_even_across_user_ids(engine: Engine) -> None:
    [old] = run(engine, ev(user_id="old-id", traits={"email": "x1@shop.com"}))
    [new] = run(engine, ev(user_id="new-id", traits={"email": "x2@shop.com"}))
    [merged] = run(engine, ev("alias", user_id="new-id", previous_id="old-id"))
    assert merged == min(old, new)
    with engine.connect() as conn:
        assert conn.execute(select(profile_merges.c.reason)).scalar_one() == "alias"


def test_after_an_alias_both_user_ids_keep_finding_the_merged_profile(engine: Engine) -> None:
    # The alias takes the profile past the user_id limit; later events for either id
    # must not be refused by that limit and split the person again.
    run(engine, ev(user_id="old-id"), ev(user_id="new-id"))
    [merged] = run(engine, ev("alias", user_id="new-id", previous_id="old-id"))
    later = run(engine, ev(user_id="old-id"), ev(user_id="new-id"), ev("track", user_id="old-id",
                                                                      name="Order Completed"))
    assert later == [merged, merged, merged]
    assert live_profiles(engine) == 1
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).where(events.c.issues.is_not(None))) == 0


def test_alias_of_unknown_anonymous_id_attaches_it(engine: Engine) -> None:
    [pid] = run(engine, ev("alias", user_id="u-77", previous_id="anon-77"))
    [again] = run(engine, ev("track", name="Viewed", anonymous_id="anon-77"))
    assert pid == again


def test_external_ids_resolve(engine: Engine) -> None:
    [a] = run(
        engine,
        ev(external_ids=[ExternalId("shopify:customer", "123")], traits={"first_name": "Ann"}),
    )
    [b] = run(
        engine,
        ev("track", name="Order Completed", external_ids=[ExternalId("shopify:customer", "123")]),
    )
    assert a == b


def test_merges_inside_one_batch(engine: Engine) -> None:
    ids = run(
        engine,
        ev(anonymous_id="a", traits={"email": "p@shop.com"}),
        ev(anonymous_id="b", traits={"phone": "+14155550123"}),
        ev(anonymous_id="b", traits={"email": "p@shop.com"}),
        ev("track", name="Order Completed", anonymous_id="a"),
    )
    assert len(set(ids)) == 1
    assert live_profiles(engine) == 1


def test_merge_keeps_the_newer_trait_by_event_time(engine: Engine) -> None:
    run(engine, ev(minutes=10, anonymous_id="a", traits={"email": "t@shop.com", "city": "Late"}))
    run(
        engine,
        ev(
            minutes=5,
            anonymous_id="b",
            traits={"phone": "+14155550124", "city": "Early", "tier": "gold"},
        ),
    )
    [pid] = run(engine, ev(minutes=1, anonymous_id="b", traits={"email": "t@shop.com"}))
    with engine.connect() as conn:
        rows = {
            r.name: r.value for r in conn.execute(select(traits).where(traits.c.profile_id == pid))
        }
    assert rows["city"] == "Late"
    assert rows["tier"] == "gold"


def test_weaker_identifier_over_its_limit_is_not_attached(engine: Engine) -> None:
    rules = IdentityRules(limits={"phone": 1, "email": 5, "user_id": 1})
    [a] = run(
        engine,
        ev(anonymous_id="z", traits={"email": "a@shop.com", "phone": "+14155550101"}),
        rules=rules,
    )
    [b] = run(
        engine,
        ev(anonymous_id="y", traits={"email": "a@shop.com", "phone": "+14155550102"}),
        rules=rules,
    )
    assert a == b
    with engine.connect() as conn:
        phones = conn.scalars(select(identifiers.c.key).where(identifiers.c.kind == "phone")).all()
        issues = conn.execute(select(events.c.issues).order_by(events.c.id.desc())).first()
    assert phones == ["+14155550101"]
    assert issues is not None and issues[0][0]["error"] == "not attached: limit reached"


def test_stronger_identifier_over_its_limit_starts_a_new_profile(engine: Engine) -> None:
    """As in Segment Unify: the weaker identifier is dropped from the match instead."""
    rules = IdentityRules(limits={"email": 1, "user_id": 1})
    [a] = run(engine, ev(anonymous_id="z", traits={"email": "a@shop.com"}), rules=rules)
    [b] = run(engine, ev(anonymous_id="z", traits={"email": "b@shop.com"}), rules=rules)
    assert a != b


def test_redelivered_message_id_is_applied_once(engine: Engine) -> None:
    run(engine, ev(message_id="dup", user_id="u1", traits={"plan": "a"}))
    run(engine, ev(message_id="dup", user_id="u1", traits={"plan": "b"}))
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(events)) == 1
        assert conn.scalar(select(traits.c.value).where(traits.c.name == "plan")) == "a"


def test_an_event_identity_survives_pickling_whole() -> None:
    """An import's reader process hands these to the storing process."""
    found = EventIdentity(
        identifiers=[Identifier("email", "jo@shop.ca", "Jo@Shop.ca")],
        issues=[{"field": "traits.phone", "error": "not a phone number"}],
        facts={"dob": "1990-01-02"},
        profile_id=7,
        created=True,
    )
    # Every field differs from its default, so a field left out of pickling would show.
    assert all(getattr(found, f.name) != getattr(EventIdentity(), f.name) for f in fields(found))
    assert pickle.loads(pickle.dumps(found)) == found
