"""Thin async client for the monitor's HTTP API, always with the logged-in user's token."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import httpx
import orjson


class MonitorError(Exception):
    """The monitor refused or could not be reached; `status` 0 means unreachable."""

    def __init__(self, status: int, detail: str, code: str | None = None, info: Any = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        # The monitor's stable error code and the rest of its envelope (``missing``,
        # ``blocked_by``, ``next_at``...): the bed page words a refusal from these.
        self.code = code
        self.info: dict[str, Any] = info if isinstance(info, dict) else {}


def event_key(session: Mapping[str, Any], body: Any) -> str | None:
    """The Idempotency-Key of a session command sent from a page showing ``session``: the same
    press on the same view of the session (a double-click, two callbacks of one click) sends
    the same key, so the monitor runs it once and answers both alike (docs/api.md,
    "Idempotency-Key"); another command, or the same one after the session changed, another
    key. None when the view carries no version to tell them apart."""
    sid, version = session.get("id"), session.get("version")
    if not isinstance(sid, int) or not isinstance(version, int):
        return None
    digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]
    return f"panel-s{sid}-v{version}-{digest}"


KEEPALIVE_LIMITS = httpx.Limits(keepalive_expiry=2.0)


class MonitorClient:
    def __init__(self, base_url: str, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        # Idle connections are dropped before the monitor's 5 s keep-alive (uvicorn's default)
        # closes them: at equal expiries a call can go out on a socket the server is closing
        # and fail with "Server disconnected without sending a response".
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout_s, limits=KEEPALIVE_LIMITS
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        token: str | None,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, str] | None = None,
        client_addr: str | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        if client_addr:
            # One value, set (never appended): the monitor believes it only from the peers
            # in its --forwarded-allow-ips, i.e. from this panel (docs/security.md).
            headers["X-Forwarded-For"] = client_addr
        try:
            resp = await self._http.request(
                method, path, headers=headers, json=json, params=params, data=data
            )
        except httpx.HTTPError as exc:
            raise MonitorError(0, f"monitor unreachable: {exc.__class__.__name__}") from exc
        if resp.status_code >= 400:
            raise _refusal(resp)
        return resp

    async def get(self, path: str, token: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return (await self.request("GET", path, token, params=clean)).json()

    async def post(
        self, path: str, token: str, body: Any = None, *, idempotency_key: str | None = None
    ) -> Any:
        resp = await self.request(
            "POST",
            path,
            token,
            json=body if body is not None else {},
            idempotency_key=idempotency_key,
        )
        return resp.json() if resp.content else None

    async def put(self, path: str, token: str, body: Any) -> Any:
        resp = await self.request("PUT", path, token, json=body)
        return resp.json() if resp.content else None

    async def login(
        self, username: str, password: str, client_addr: str | None = None
    ) -> dict[str, Any]:
        resp = await self.request(
            "POST",
            "/api/auth/token",
            None,
            data={"username": username, "password": password},
            client_addr=client_addr,
        )
        body = resp.json()
        if not isinstance(body, dict) or "access_token" not in body:
            raise MonitorError(502, "login answer without a token")
        return body

    async def logout(self, token: str) -> None:
        """Revoke the token at the monitor (a token already gone is as good as revoked)."""
        try:
            await self.request("POST", "/api/auth/logout", token, json={})
        except MonitorError as exc:
            if exc.status != 401:
                raise


def _refusal(resp: httpx.Response) -> MonitorError:
    """The monitor's refusal from one read of its answer: the message, and the envelope's code
    and fields (docs/api.md) when the answer has one."""
    status = resp.status_code
    try:
        body = resp.json()
    except ValueError:
        return MonitorError(status, resp.text[:200] or resp.reason_phrase)
    if not isinstance(body, dict) or "detail" not in body:
        return MonitorError(status, str(body)[:200])
    detail = body["detail"]
    if not isinstance(detail, dict):
        return MonitorError(status, detail if isinstance(detail, str) else str(detail))
    # The monitor's error shape (docs/api.md): {"detail": {"code", "message", ...}}.
    message = detail["message"] if isinstance(detail.get("message"), str) else str(detail)
    code = detail.get("code")
    return (
        MonitorError(status, message, code, detail)
        if isinstance(code, str)
        else MonitorError(status, message)
    )
