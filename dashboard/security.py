"""The panel's response headers: what the browser may run, frame, send and keep.

The Content-Security-Policy allows only the panel's own scripts: its files, plus the few
inline scripts Dash writes into the page, by their SHA-256 (``Dash.csp_hashes``). Styles may
be inline (Plotly and Dash's components set style attributes; styles run no code). The page
connects only to its own origin (the panel relays the feed). No page may be framed (clickjacking), nothing
is sniffed into a script, no Referer leaves the panel, and no answer but the static assets
may be cached (the callbacks' answers carry patient data).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

STATIC_PREFIXES = ("/assets/", "/_dash-component-suites/", "/_favicon.ico")


def feed_origin(host_header: str) -> str:
    """The relayed feed (/panel/feed) is on the page's own origin; CSP's 'self' covers ws and
    wss there in current browsers, named here for older ones."""
    host = host_header or "localhost"
    return f"ws://{host} wss://{host}"


def content_security_policy(script_hashes: Sequence[str], connect: str) -> str:
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self' " + " ".join(script_hashes),
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: blob:",
            "font-src 'self' data:",
            f"connect-src 'self' {connect}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class SecurityHeaders:
    """Pure ASGI middleware (the panel's websocket-free FastAPI server)."""

    def __init__(self, app: Any, script_hashes: Callable[[], Sequence[str]]) -> None:
        self.app = app
        self.script_hashes = script_hashes
        self._hashes: Sequence[str] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
        if self._hashes is None:
            self._hashes = list(self.script_hashes())
        extra = [
            (
                b"content-security-policy",
                content_security_policy(self._hashes, feed_origin(host)).encode(),
            ),
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
        ]
        if not path.startswith(STATIC_PREFIXES):
            extra.append((b"cache-control", b"no-store"))
        drop = {k for k, _ in extra}

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in drop]
                message = {**message, "headers": headers + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)
