"""Storage: one SQLAlchemy Core code path for SQLite (embedded default) and PostgreSQL."""
