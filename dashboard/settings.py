"""Panel settings: CLI options over VIGIL_* environment variables, read once and passed down."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_MONITOR_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True, slots=True)
class PanelSettings:
    """Where the panel listens and where it finds the monitor (the one source of truth)."""

    host: str = "127.0.0.1"
    port: int = 8050
    monitor_url: str = DEFAULT_MONITOR_URL
    # Where this server reaches the monitor's feed websocket (it relays it to the browser at
    # /panel/feed). None: the monitor URL with ws(s):// and /ws/feed.
    feed_url: str | None = None
    request_timeout_s: float = 5.0
    # Peers (a TLS proxy) whose X-Forwarded-For the panel believes; the address it then
    # forwards to the monitor at login. Empty: the connecting address.
    forwarded_allow_ips: tuple[str, ...] = ()
    # The clinic config the monitor reads (VIGIL_CLINIC_CONFIG; None: the shipped defaults):
    # the tiles' stale ages and faint limit lines come from it, never from panel code.
    clinic_config: str | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.monitor_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"monitor URL must be http(s)://HOST[:PORT], not {self.monitor_url!r}")
        if self.feed_url is not None:
            feed = urlsplit(self.feed_url)
            if feed.scheme not in ("ws", "wss") or not feed.hostname:
                raise ValueError(f"feed URL must be ws(s)://HOST[:PORT]/..., not {self.feed_url!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be within 0..65535")

    @property
    def monitor_port(self) -> int:
        parts = urlsplit(self.monitor_url)
        if parts.port is not None:
            return parts.port
        return 443 if parts.scheme == "https" else 80

    @property
    def feed_scheme(self) -> str:
        return "wss" if urlsplit(self.monitor_url).scheme == "https" else "ws"

    @property
    def monitor_feed_url(self) -> str:
        if self.feed_url:
            return self.feed_url
        parts = urlsplit(self.monitor_url)
        return f"{self.feed_scheme}://{parts.netloc}{parts.path.rstrip('/')}/ws/feed"


def parse_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> PanelSettings:
    """Options win over the environment (VIGIL_PANEL_HOST/PORT, VIGIL_MONITOR_URL,
    VIGIL_PANEL_FEED_URL, VIGIL_PANEL_FORWARDED_ALLOW_IPS)."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="python -m dashboard", description="Vigil nurse's panel (talks to the monitor)."
    )
    parser.add_argument("--host", default=env.get("VIGIL_PANEL_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env.get("VIGIL_PANEL_PORT", "8050")))
    parser.add_argument(
        "--monitor-url", default=env.get("VIGIL_MONITOR_URL", DEFAULT_MONITOR_URL).rstrip("/")
    )
    parser.add_argument(
        "--feed-url",
        default=env.get("VIGIL_PANEL_FEED_URL") or None,
        help="the monitor's feed websocket as this server reaches it, to relay it to the "
        "browser (default: the monitor URL with ws(s):// and /ws/feed)",
    )
    parser.add_argument(
        "--forwarded-allow-ips",
        default=env.get("VIGIL_PANEL_FORWARDED_ALLOW_IPS", ""),
        help="comma-separated proxies whose X-Forwarded-For the panel believes (default none)",
    )
    args = parser.parse_args(argv)
    return PanelSettings(
        host=args.host,
        port=args.port,
        monitor_url=args.monitor_url.rstrip("/"),
        feed_url=args.feed_url,
        clinic_config=env.get("VIGIL_CLINIC_CONFIG") or None,
        forwarded_allow_ips=tuple(
            x.strip() for x in str(args.forwarded_allow_ips).split(",") if x.strip()
        ),
    )
