"""Settings: read once (CLI options over VIGIL_* environment variables) and passed down."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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

    # Ingest: readings committed together. A batch that is not full waits this long for
    # more before it commits (group commit): on a ward at 1 Hz nearly every reading was its
    # own transaction, and the per-transaction work cost a third of the monitor's CPU at 500
    # beds. 10 ms: CPU per reading at 1,000 beds 540 -> 400 µs against 2 ms, ack p99 ~20 ms,
    # well inside the 100 ms the ack and the alarm promise (docs/performance.md, "Group
    # commit"). 0: commit whatever is queued at once.
    commit_batch_max: Annotated[int, Field(ge=1, le=10_000)] = 500
    commit_linger_ms: Annotated[float, Field(ge=0, le=50)] = 10.0
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    # How long a SQLite write waits for another connection's lock before the store gives up
    # (the write is then refused as unavailable, counted and shown on /health).
    sqlite_busy_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    tick_interval_s: Annotated[float, Field(gt=0)] = 1.0

    # Short lifetimes are for tests and kiosks; a shift is 12 h.
    access_token_ttl_s: Annotated[int, Field(ge=1)] = 12 * 3600
    # Failed logins allowed per user name, and per client address, in a sliding minute.
    # The address budget is larger: several nurses behind one NAT mistype now and then.
    login_attempts_per_minute: Annotated[int, Field(ge=1)] = 10
    login_attempts_per_address_per_minute: Annotated[int, Field(ge=1)] = 30
    # Password hashing (argon2: ~50 ms and 64 MiB, in 4 lanes) runs in this many threads,
    # never on the event loop; logins past ``login_queue_max`` waiting for a thread are refused
    # (503), not queued. One keeps a flood's hashing from crowding the loop's CPU and memory
    # bandwidth (docs/security.md) and still checks 10-20 logins a second.
    login_hash_workers: Annotated[int, Field(ge=1, le=16)] = 1
    # The argon2id profile of new password hashes (monitor.core.security.PasswordHashing):
    # RFC 9106's low-memory option by default; OWASP's minimum for a small box (and the test
    # suite, which hashes hundreds). Both are published as safe; see docs/security.md.
    login_hash_profile: Literal["rfc9106-low-memory", "owasp-minimum"] = "rfc9106-low-memory"
    login_queue_max: Annotated[int, Field(ge=1)] = 64
    # How often an open feed re-checks its token (revoked, expired, user disabled).
    feed_auth_check_s: Annotated[float, Field(gt=0, le=5)] = 1.0
    # Peers whose X-Forwarded-For / X-Forwarded-Proto are believed (the panel, a TLS proxy):
    # addresses or CIDR networks. Empty: nobody's, the connecting address is the client's.
    forwarded_allow_ips: Annotated[list[str], NoDecode] = []
    retention_days: Annotated[int | None, Field(ge=1)] = None

    redis_url: str | None = None
    instance_id: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")] = None
    # Namespace of every Redis key and channel: deployments (or tests) sharing a Redis apart.
    redis_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")] = "vigil"

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Tests only: arms fault points (monitor.core.faults), e.g. "after_alarm_commit=kill". Inert
    # when unset, as in every deployment.
    faults: str | None = None
    cors_origins: list[str] = []

    @field_validator("db")
    @classmethod
    def _db_url(cls, v: str) -> str:
        if not (v.startswith("sqlite:///") or v.startswith(("postgresql://", "postgres://"))):
            raise ValueError("db must be sqlite:///PATH or a postgresql:// DSN")
        return v

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _ips(cls, v: object) -> object:
        # "10.0.0.5, 10.1.0.0/16" from the command line or the environment.
        if isinstance(v, str):
            v = [x.strip() for x in v.split(",") if x.strip()]
        if isinstance(v, list):
            for x in v:
                if x == "*":
                    raise ValueError("'*' would trust every client's X-Forwarded-For")
                try:
                    ipaddress.ip_network(str(x), strict=False)
                except ValueError:
                    raise ValueError(f"{x!r} is not an IP address or network") from None
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
