from __future__ import annotations

from sqlalchemy import MetaData, Table

# Deterministic constraint names so Alembic migrations agree across databases.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


def profile_scoped_tables() -> list[Table]:
    """Tables whose rows belong to one profile (see the package docstring)."""
    return [t for t in metadata.sorted_tables if t.info.get("profile_scoped")]
