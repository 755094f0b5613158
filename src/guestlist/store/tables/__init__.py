"""All tables, split by domain, on one MetaData.

A table that holds data about one person carries `profile_id` and is marked
`info={"profile_scoped": True}`: merges move its rows and erasure deletes them,
without either having to know the table by name.
"""

from guestlist.store.tables.age_data import age_records, age_state
from guestlist.store.tables.base import metadata, profile_scoped_tables
from guestlist.store.tables.connections import connection_log, connection_streams, connections
from guestlist.store.tables.consent import (
    consent_chain_checkpoints,
    consent_records,
    consent_state,
    consent_texts,
)
from guestlist.store.tables.identity import identifiers, profile_merges, profiles
from guestlist.store.tables.inbox import inbox
from guestlist.store.tables.jobs import job_schedule, jobs
from guestlist.store.tables.keys import api_keys, sources
from guestlist.store.tables.privacy import (
    audit_log,
    installation_secrets,
    profile_links,
    suppressions,
)
from guestlist.store.tables.profile_data import events, traits
from guestlist.store.tables.segments import (
    computed_traits,
    fact_columns,
    profile_facts,
    segment_changes,
    segment_memberships,
    segment_rechecks,
    segments,
)
from guestlist.store.tables.zapier import zapier_subscriptions

__all__ = [
    "age_records",
    "age_state",
    "api_keys",
    "audit_log",
    "computed_traits",
    "connection_log",
    "connection_streams",
    "connections",
    "consent_chain_checkpoints",
    "consent_records",
    "consent_state",
    "consent_texts",
    "events",
    "fact_columns",
    "identifiers",
    "inbox",
    "installation_secrets",
    "job_schedule",
    "jobs",
    "metadata",
    "profile_facts",
    "profile_links",
    "profile_merges",
    "profile_scoped_tables",
    "profiles",
    "segment_changes",
    "segment_memberships",
    "segment_rechecks",
    "segments",
    "sources",
    "suppressions",
    "traits",
    "zapier_subscriptions",
]
