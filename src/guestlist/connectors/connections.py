"""Connections: one account at one platform, its settings and encrypted credentials.

`add` validates settings with the platform's Pydantic model, generates the webhook
secret where the vendor lets us choose it, creates the connection's source (its
events carry it, with the default phone region), and keeps credentials (`SecretStr`
fields) as one Fernet token. What leaves this module for display (`ConnectionInfo`)
names which secrets are set, never their values.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypedDict, Unpack

import orjson
from pydantic import SecretStr, ValidationError
from sqlalchemy import Connection, Engine, Row, delete, select, update

from guestlist.audit import SYSTEM, audit
from guestlist.connectors._http.ratelimit import forget_limiter
from guestlist.connectors.base import Connector, ConnectorSettings
from guestlist.connectors.registry import connector_for
from guestlist.inbox.store import waiting_counts
from guestlist.keys import ensure_source
from guestlist.settings import get_settings
from guestlist.store.crypto import decrypt, encrypt
from guestlist.store.tables import connection_log, connection_streams, connections, sources
from guestlist.store.types import utcnow

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.@-]{0,99}$")


class SettingsInvalid(ValueError):
    """A setting is missing, unknown or malformed; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UnknownConnection(LookupError):
    def __init__(self, ref: object) -> None:
        super().__init__(f"no connection {ref!r}")
        self.ref = ref


class NameTaken(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"a connection called {name!r} exists already")
        self.name = name


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """A connection as it may be shown: settings without secret values."""

    id: int
    platform: str
    name: str
    source_id: int
    settings: dict[str, Any]
    secrets_set: list[str]
    created_at: datetime
    updated_at: datetime
    streams: list[dict[str, Any]] = field(default_factory=list)
    # Envelopes of this connection still to process, and those that failed.
    inbox: dict[str, int] = field(default_factory=dict)
    webhook_url_override: str | None = None

    @property
    def webhook_url(self) -> str:
        return self.webhook_url_override or webhook_url(self.platform, self.id)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "platform": self.platform,
            "name": self.name,
            "webhook_url": self.webhook_url,
            "settings": self.settings,
            "secrets_set": self.secrets_set,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "streams": self.streams,
            "inbox": self.inbox,
        }


def webhook_url(platform: str, connection_id: int) -> str:
    return f"{get_settings().public_url.rstrip('/')}/hooks/{platform}/{connection_id}"


def secret_fields(model: type[ConnectorSettings]) -> list[str]:
    """The settings typed `SecretStr` (or `SecretStr | None`): credentials."""
    names = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        args = getattr(annotation, "__args__", ())
        if annotation is SecretStr or SecretStr in args:
            names.append(name)
    return names


def validate_settings(connector: Connector, raw: Mapping[str, Any]) -> ConnectorSettings:
    try:
        return connector.settings_model.model_validate(dict(raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            known = ", ".join(sorted(connector.settings_model.model_fields))
            message = f"unknown setting for {connector.slug} (settings: {known})"
        raise SettingsInvalid(where, message) from None


def _split(connector: Connector, settings: ConnectorSettings) -> tuple[dict[str, Any], bytes]:
    hidden = secret_fields(connector.settings_model)
    public = settings.model_dump(mode="json", exclude=set(hidden))
    plain = {
        name: value.get_secret_value()
        for name in hidden
        if isinstance(value := getattr(settings, name), SecretStr)
    }
    return public, encrypt(orjson.dumps(plain))


def _info(
    row: Row[Any],
    streams: list[dict[str, Any]] | None = None,
    waiting: dict[str, int] | None = None,
) -> ConnectionInfo:
    plain = orjson.loads(decrypt(bytes(row.secrets)))
    return ConnectionInfo(
        id=int(row.id),
        platform=row.platform,
        name=row.name,
        source_id=int(row.source_id),
        settings=dict(row.settings),
        secrets_set=sorted(plain),
        created_at=row.created_at,
        updated_at=row.updated_at,
        streams=streams or [],
        inbox=waiting or {},
    )


def add(
    engine: Engine,
    platform: str,
    name: str,
    raw_settings: Mapping[str, Any],
    *,
    actor: str = SYSTEM,
) -> tuple[ConnectionInfo, str | None]:
    """Create a connection; returns it and the webhook secret when we generated one."""
    connector = connector_for(platform)
    if not NAME.match(name):
        raise SettingsInvalid(
            "name", "1-100 characters: letters, digits, space, _ . @ -, starting with a letter "
            "or digit",
        )
    raw = dict(raw_settings)
    generated = None
    if connector.generates_webhook_secret and not raw.get("webhook_secret"):
        generated = secrets.token_urlsafe(32)
        raw["webhook_secret"] = generated
    settings = validate_settings(connector, raw)
    public, sealed = _split(connector, settings)
    now = utcnow()
    with engine.begin() as conn:
        if conn.scalar(select(connections.c.id).where(connections.c.name == name)) is not None:
            raise NameTaken(name)
        source_id = ensure_source(
            conn, f"connection:{name}", kind="connection", default_region=settings.default_region
        )
        conn.execute(
            update(sources)
            .where(sources.c.id == source_id)
            .values(default_region=settings.default_region)
        )
        new_id = conn.execute(
            connections.insert()
            .values(
                platform=platform,
                name=name,
                source_id=source_id,
                settings=public,
                secrets=sealed,
                created_at=now,
                updated_at=now,
            )
            .returning(connections.c.id)
        ).scalar_one()
        audit(
            conn,
            "connection.added",
            actor=actor,
            detail={"connection_id": int(new_id), "platform": platform, "name": name},
        )
        row = conn.execute(select(connections).where(connections.c.id == new_id)).one()
    info = _info(row)
    if connector.secret_in_path and settings.webhook_secret is not None:
        # Shown once, on creation: the URL to paste holds the secret.
        info = replace(
            info, webhook_url_override=f"{info.webhook_url}/"
            f"{settings.webhook_secret.get_secret_value()}"
        )
    return info, generated


def _row(conn: Connection, ref: int | str) -> Row[Any]:
    query = select(connections)
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        query = query.where(connections.c.id == int(ref))
    else:
        query = query.where(connections.c.name == ref)
    row = conn.execute(query).first()
    if row is None:
        raise UnknownConnection(ref)
    return row


def stream_states(conn: Connection, connection_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(connection_streams)
        .where(connection_streams.c.connection_id == connection_id)
        .order_by(connection_streams.c.stream)
    )
    return [
        {
            "stream": r.stream,
            "status": r.status,
            "run": r.run,
            "pages": r.pages,
            "records": r.records,
            "total": r.total,
            "started_at": r.started_at.isoformat() if r.started_at else None,
            "updated_at": r.updated_at.isoformat(),
            "finished_at": r.finished_at.isoformat() if r.finished_at else None,
            "error": r.error,
        }
        for r in rows
    ]


def get(conn: Connection, ref: int | str) -> ConnectionInfo:
    """A connection by id or name, with its streams' progress and its waiting envelopes."""
    row = _row(conn, ref)
    return _info(row, stream_states(conn, int(row.id)), waiting_counts(conn, int(row.source_id)))


def list_all(conn: Connection) -> list[ConnectionInfo]:
    return [_info(r) for r in conn.execute(select(connections).order_by(connections.c.id))]


Loaded = tuple[Connector, Any, ConnectionInfo]
# Decrypted, validated connections by id, as of their `updated_at`: every webhook
# delivery loads its connection, and decrypting and validating settings each time
# cost more than storing the delivery.
_loaded: dict[int, tuple[datetime, bytes, Loaded]] = {}


def load(conn: Connection, ref: int | str) -> Loaded:
    """The connector, the full settings (secrets decrypted) and the connection."""
    row = _row(conn, ref)
    cached = _loaded.get(int(row.id))
    sealed = bytes(row.secrets)
    if cached is not None and cached[0] == row.updated_at and cached[1] == sealed:
        return cached[2]
    connector = connector_for(row.platform)
    plain = orjson.loads(decrypt(sealed))
    settings = connector.settings_model.model_validate({**dict(row.settings), **plain})
    loaded = (connector, settings, _info(row))
    if len(_loaded) > 1000:
        _loaded.clear()
    _loaded[int(row.id)] = (row.updated_at, sealed, loaded)
    return loaded


def remove(engine: Engine, ref: int | str, *, actor: str = SYSTEM) -> ConnectionInfo:
    """Delete a connection, its checkpoints and log. Its source and what it brought stay."""
    with engine.begin() as conn:
        row = _row(conn, ref)
        info = _info(row)
        conn.execute(delete(connection_log).where(connection_log.c.connection_id == info.id))
        conn.execute(
            delete(connection_streams).where(connection_streams.c.connection_id == info.id)
        )
        conn.execute(delete(connections).where(connections.c.id == info.id))
        forget_limiter(info.platform, info.id)
        _loaded.pop(info.id, None)
        audit(
            conn,
            "connection.removed",
            actor=actor,
            detail={"connection_id": info.id, "platform": info.platform, "name": info.name},
        )
    return info


_LOG = connection_log.insert()


class LogFields(TypedDict, total=False):
    status: int | None
    delivery_id: str | None
    detail: str | None
    inbox_id: int | None


def log_event(
    conn: Connection, connection_id: int, kind: str, outcome: str, **fields: Unpack[LogFields]
) -> None:
    conn.execute(_LOG, log_entry(connection_id, kind, outcome, **fields))


def log_entry(
    connection_id: int,
    kind: str,
    outcome: str,
    *,
    status: int | None = None,
    delivery_id: str | None = None,
    detail: str | None = None,
    inbox_id: int | None = None,
) -> dict[str, Any]:
    """One connection log row, for `log_events`."""
    return {
        "connection_id": connection_id,
        "at": utcnow(),
        "kind": kind,
        "outcome": outcome,
        "status": status,
        "delivery_id": delivery_id[:200] if delivery_id else None,
        "detail": detail[:2000] if detail else None,
        "inbox_id": inbox_id,
    }


def log_events(conn: Connection, entries: Sequence[dict[str, Any]]) -> None:
    if entries:
        conn.execute(_LOG, list(entries))


def log_entries(
    conn: Connection, connection_id: int, *, limit: int = 100, before_id: int | None = None
) -> list[dict[str, Any]]:
    """The newest entries first."""
    query = (
        select(connection_log)
        .where(connection_log.c.connection_id == connection_id)
        .order_by(connection_log.c.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(connection_log.c.id < before_id)
    return [
        {
            "id": int(r.id),
            "at": r.at.isoformat(),
            "kind": r.kind,
            "outcome": r.outcome,
            "status": r.status,
            "delivery_id": r.delivery_id,
            "detail": r.detail,
            "inbox_id": r.inbox_id,
        }
        for r in conn.execute(query)
    ]


def check_connection(engine: Engine, ref: int | str) -> tuple[bool, str]:
    """`connections test`: one cheap authenticated call; the outcome is logged."""
    from guestlist.connectors._http.client import VendorError
    from guestlist.connectors.base import ConnectorError

    with engine.connect() as conn:
        connector, settings, info = load(conn, ref)
    try:
        with connector.client(settings, connection_id=info.id) as client:
            message = connector.check(client, settings)
        ok = True
    except NotImplementedError as exc:
        ok, message = False, str(exc)
    except (VendorError, ConnectorError) as exc:
        ok, message = False, str(exc)
    with engine.begin() as conn:
        log_event(conn, info.id, "test", "ok" if ok else "failed", detail=message)
    return ok, message
