"""Database access: engine, tables split by domain, Alembic migrations."""
