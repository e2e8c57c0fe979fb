"""Settings: read once (CLI options over VIGIL_* environment variables) and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DB = "sqlite:///./data/vigil.db"


class Settings(BaseSettings):
    """Everything the monitor reads from outside. Unsafe combinations are refused."""

    model_config = SettingsConfigDict(env_prefix="VIGIL_", extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    db: str = DEFAULT_DB
    clinic_config: Path | None = None
    hl7_port: Annotated[int | None, Field(ge=0, le=65535)] = None
    hl7_host: str | None = None

    # Device websocket limits (contract: 64 KiB frames by default).
    frame_max_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 64 * 1024
    # A 1 Hz device sends ~2 frames/s; a store-and-forward backlog or a replay at --speed 600
    # sends hundreds. Past this sustained rate a device is flooding and is disconnected.
    device_rate_per_s: Annotated[float, Field(gt=0)] = 1000.0
    device_rate_burst: Annotated[float, Field(gt=0)] = 2000.0
    device_idle_timeout_s: Annotated[float, Field(gt=0)] = 120.0
    auth_timeout_s: Annotated[float, Field(gt=0)] = 10.0

    # Feed fan-out: a panel that falls this many messages behind is dropped.
    feed_queue_max: Annotated[int, Field(ge=16)] = 2048
    feed_ping_s: Annotated[float, Field(gt=0)] = 2.0

    # Ingest: readings committed together; a batch never waits for more than it has.
    commit_batch_max: Annotated[int, Field(ge=1, le=10_000)] = 500
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    tick_interval_s: Annotated[float, Field(gt=0)] = 1.0

    access_token_ttl_s: Annotated[int, Field(ge=60)] = 12 * 3600
    login_attempts_per_minute: Annotated[int, Field(ge=1)] = 10
    retention_days: Annotated[int | None, Field(ge=1)] = None

    redis_url: str | None = None
    instance_id: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")] = None
    # Namespace of every Redis key and channel: deployments (or tests) sharing a Redis apart.
    redis_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")] = "vigil"

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Tests only: arms fault points (monitor.faults), e.g. "after_alarm_commit=kill". Inert
    # when unset, as in every deployment.
    faults: str | None = None
    cors_origins: list[str] = []

    @field_validator("db")
    @classmethod
    def _db_url(cls, v: str) -> str:
        if not (v.startswith("sqlite:///") or v.startswith(("postgresql://", "postgres://"))):
            raise ValueError("db must be sqlite:///PATH or a postgresql:// DSN")
        return v

    @model_validator(mode="after")
    def _safe(self) -> Settings:
        if self.db.startswith("sqlite") and self.redis_url:
            raise ValueError("multi-instance mode (redis_url) needs PostgreSQL, not SQLite")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.db.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        return Path(self.db.removeprefix("sqlite:///"))
