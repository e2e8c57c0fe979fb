"""``Idempotency-Key`` on the API's POST and PUT requests (docs/api.md, "Idempotency-Key").

A client that may send a request twice (a retry after a timeout, a double-tap the panel could
not stop) sends a key of its own choosing. The first request with a key, per user, runs; every
later one with the same key gets the first answer, status and body, with
``Idempotent-Replayed: true``, and changes nothing. A key sent again with another method, path
or body is refused (422 ``invalid_request``, the field's type ``idempotency_key_reused``). A repeat that arrives while the first is
still running waits for its answer.

Rules:
- The key is claimed (monitor/records/idempotency.py) before the request runs, so of two requests
  racing with one key exactly one runs, on either engine.
- Only a success (2xx) is kept. A refusal (4xx) or a failure (5xx) changed nothing and frees
  the key: a repeat, or a request that was waiting on it, is judged anew on the state as it is
  then (a pre-dose check refused, then passed once the cuff BP is in).
- A claim whose request never answered (the monitor stopped while it ran) is answered 409
  ``idempotency_key_unresolved`` after a minute: its effect may or may not be stored, and the
  client must look (GET the session) instead of repeating blindly.
- Keys are kept for 24 hours.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from monitor.core.errors import ErrorCode
from monitor.edges.api.errors import ApiError, http_error, invalid, validation_error
from monitor.pipeline.service import Monitor
from monitor.records.idempotency import PENDING, Claim

HEADER: Final = "Idempotency-Key"
REPLAYED: Final = "Idempotent-Replayed"
METHODS: Final = frozenset({"POST", "PUT"})
# Printable ASCII, no spaces: what clients generate (UUIDs, ULIDs, random tokens).
_KEY = re.compile(r"[!-~]{1,128}")
KEEP_S: Final = 24 * 3600.0
UNRESOLVED_AFTER_S: Final = 60.0
_WAIT_STEP_S: Final = 0.05
# Rounds of "the first request freed the key, claim it again" before giving up: each round
# judges one request, so this bounds a burst of refused repeats.
MAX_CLAIMS: Final = 50
# Logins and logouts are not changes a repeat could duplicate; they take no key.
_EXEMPT: Final = frozenset({"/api/auth/token", "/api/auth/logout"})

Handler = Callable[[Request], Awaitable[Response]]


def takes_key(method: str, path: str) -> bool:
    """Whether an operation takes the header: the changes, not logging in or out."""
    return method in METHODS and path not in _EXEMPT


def applies(request: Request) -> bool:
    return HEADER.lower() in request.headers and takes_key(request.method, request.url.path)


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _fingerprint(request: Request, body: bytes) -> str:
    h = hashlib.sha256()
    for part in (request.method, request.url.path, request.url.query):
        h.update(part.encode())
        h.update(b"\0")
    h.update(body)
    return h.hexdigest()


def _replay(claim: Claim) -> Response:
    return JSONResponse(claim.body, status_code=claim.status, headers={REPLAYED: "true"})


async def _answer_of(handler: Handler, request: Request) -> Response:
    """The handler's answer as a response: refusals it raises become their error body here,
    so that the first answer can be kept whatever it was."""
    try:
        return await handler(request)
    except RequestValidationError as e:
        return validation_error(e)
    except HTTPException as e:
        return http_error(e)


async def run(request: Request, handler: Handler) -> Response:
    """Run ``handler`` for ``request`` at most once per (user, Idempotency-Key) with success."""
    key = request.headers[HEADER.lower()]
    if not _KEY.fullmatch(key):
        raise invalid(["header", HEADER], "must be 1 to 128 printable ASCII characters")
    monitor: Monitor = request.app.state.monitor
    token = _bearer(request)
    user = await monitor.store.user_by_access_token(token, monitor.clock()) if token else None
    if user is None:
        # Not logged in: the handler answers the 401 (nothing to repeat).
        return await handler(request)
    keys = monitor.store.idempotency
    fingerprint = _fingerprint(request, await request.body())
    for _ in range(MAX_CLAIMS):
        claim = await keys.claim(user.name, key, fingerprint, monitor.clock(), keep_s=KEEP_S)
        if claim is None:
            break
        answered = await _answer_of_first(monitor, user.name, key, fingerprint, claim)
        if answered is not None:
            return _replay(answered)
        # The first request was refused or failed and freed the key: judge this one itself.
    else:
        raise ApiError(409, ErrorCode.CONFLICT, "requests with this key keep failing; try again")
    try:
        response = await _answer_of(handler, request)
    except BaseException:
        await keys.release(user.name, key)
        raise
    if response.status_code >= 400:
        # Refused or failed: nothing was changed, and a repeat is judged anew (the state it
        # was refused on may have changed: a cuff BP taken since, say).
        await keys.release(user.name, key)
        return response
    await keys.answer(user.name, key, response.status_code, _json_body(response), request.url.path)
    return response


def _json_body(response: Response) -> Any:
    raw = bytes(response.body) if response.body else b""
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return {"text": raw.decode("utf-8", "replace")}


async def _answer_of_first(
    monitor: Monitor, user: str, key: str, fingerprint: str, claim: Claim
) -> Claim | None:
    """The first request's kept answer, waited for while it runs; None once it freed the key."""
    if claim.request != fingerprint:
        # A 422 like any unacceptable field; the field's ``type`` names the reason.
        raise invalid(
            ["header", HEADER], "was already used with another request", "idempotency_key_reused"
        )
    found: Claim | None = claim
    while found is not None and found.status == PENDING:
        if monitor.clock() - found.created_at > UNRESOLVED_AFTER_S:
            raise ApiError(
                409,
                ErrorCode.IDEMPOTENCY_KEY_UNRESOLVED,
                "the first request with this key never answered; look at what it changed "
                "before sending it again with a new key",
            )
        await asyncio.sleep(_WAIT_STEP_S)
        found = await monitor.store.idempotency.get(user, key)
    return found


def documented_header() -> dict[str, Any]:
    """The header as an OpenAPI parameter, for the operations that take it."""
    return {
        "name": HEADER,
        "in": "header",
        "required": False,
        "description": "Makes a repeat of this request safe: the first answer is kept and "
        "replayed (docs/api.md, Idempotency-Key).",
        "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[!-~]+$"},
    }
