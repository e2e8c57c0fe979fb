"""The panel's feed relay: the browser's live feed websocket, relayed from the monitor's with
the session's token so the token never reaches the page (docs/panel.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import websockets
from fastapi import FastAPI, WebSocket
from websockets.exceptions import InvalidHandshake

from dashboard.sessions import COOKIE, Sessions, tag
from dashboard.settings import PanelSettings

log = logging.getLogger("vigil.panel")
FEED_PATH = "/panel/feed"


def add_feed_relay(server: FastAPI, settings: PanelSettings, sessions: Sessions) -> None:
    """``/panel/feed``: the browser's live feed, relayed from the monitor's with the session's
    token, so the token never reaches the page. Messages pass through as they are; the panel
    adds no buffer of its own (a browser that does not keep up stops the relay reading, and
    the monitor drops it as it would drop a slow panel)."""

    @server.websocket(FEED_PATH)
    async def feed_relay(ws: WebSocket) -> None:
        origin = ws.headers.get("origin")
        if origin and urlsplit(origin).netloc != ws.headers.get("host"):
            # Another site's page opening our feed with the user's cookie (SameSite=Strict
            # already stops that in browsers; this stops it in the rest).
            await ws.close(code=1008, reason="cross-origin feed refused")
            return
        cookie = ws.cookies.get(COOKIE)
        session = None
        if cookie and ws.query_params.get("session") == tag(cookie):
            session = await sessions.get(cookie)  # else: the cookie is another tab's login
        await ws.accept()
        if session is None:
            await ws.close(code=1008, reason="not logged in")
            return
        code, reason = 1013, "monitor unreachable"
        try:
            async with websockets.connect(
                batched(settings.monitor_feed_url),
                additional_headers={"Authorization": f"Bearer {session.token}"},
                open_timeout=settings.request_timeout_s,
                max_size=None,  # the monitor's hello holds every bed; it is trusted
            ) as upstream:
                code, reason = await _relay(ws, upstream)
        except (OSError, TimeoutError, InvalidHandshake):
            log.info("feed relay: monitor unreachable")
        if code == 1008:
            sessions.drop_token(session.token)
        if code in (1005, 1006) or not 1000 <= code <= 4999:
            code, reason = 1013, "connection to the monitor lost"
        with contextlib.suppress(Exception):
            await ws.close(code=code, reason=reason[:120])


def batched(url: str) -> str:
    """The monitor's feed URL asking for ``batch`` frames (docs/protocol.md, "Panel feed"):
    the readings of one commit reach the page as one frame, which the page unpacks in order
    (vigil.js ``handle``)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "batch"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("batch", "1")])))


async def _relay(ws: WebSocket, upstream: Any) -> tuple[int, str]:
    """Monitor -> browser until either side goes; the monitor's close code and reason."""

    async def down() -> None:
        async for message in upstream:
            await ws.send_text(message if isinstance(message, str) else message.decode())

    async def browser_gone() -> None:
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass  # the browser sends nothing the monitor needs

    tasks = [asyncio.create_task(down()), asyncio.create_task(browser_gone())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
    if tasks[1] in done:
        return 1000, "browser left"
    return upstream.close_code or 1006, upstream.close_reason or ""
