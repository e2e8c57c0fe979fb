"""The record: the schema and its migrations, the store (one SQLAlchemy Core code path for
SQLite, the embedded default, and PostgreSQL), idempotency keys, and what is made from the
record (``report``: HTML, CSV, FHIR; ``recordings`` and ``alarm_report``: replays)."""
