"""`python -m dashboard`: serve the nurse's panel with uvicorn (never Dash's debug server)."""

from __future__ import annotations

import sys

import uvicorn

from dashboard.app import create_app
from dashboard.settings import parse_settings


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(argv)
    app = create_app(settings)
    uvicorn.run(
        app.server,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        # The panel holds no long-lived streams (the browser talks to the feed directly),
        # so a short grace period is enough and keeps restarts quick.
        timeout_graceful_shutdown=3,
        access_log=False,
        # Believe X-Forwarded-For only from the configured proxy: the address the panel
        # forwards to the monitor's login limit and audit log must be the browser's.
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=list(settings.forwarded_allow_ips),
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
