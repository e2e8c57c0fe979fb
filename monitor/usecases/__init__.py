"""Use cases: what one command does, whatever edge (REST route, panel, script) asks for it.

A use case reads what it judges from the store, judges it with the pure core (monitor.clinical.session,
monitor.clinical.rules, ...), and writes the change in one transaction guarded in SQL by the
version it read (``UPDATE ... WHERE id = :id AND version = :expected``). When another change
got in between, the guarded write matches no row, the transaction is rolled back and the use
case runs again from the read: a command that lost a race is judged on the state the winner
left, so it gets exactly the answer it would get had it arrived second (docs/api.md, "Repeats
and races").

Use cases answer with plain data or raise a :class:`Refusal`; the edges translate those (the
REST routes map them to ``ApiError`` with the same code and message, monitor/edges/api/deps.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

# The API's table of stable codes is the one vocabulary of refusals, whatever the edge.
from monitor.core.errors import ErrorCode

T = TypeVar("T")

# Each lost race means another command was stored; twenty in a row on one record is far
# beyond what people at a bedside produce, so past that the command is refused (``conflict``)
# rather than retried for ever.
MAX_ATTEMPTS: Final = 20


@dataclass(frozen=True, slots=True)
class Actor:
    """Who gives the command: the name the record keeps and the role the rules read."""

    name: str
    role: str


class Refusal(Exception):
    """A command refused: ``code`` is the stable code of the API's error table, ``message``
    is for people, ``detail`` the code's own keys (docs/api.md)."""

    def __init__(self, code: ErrorCode | str, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.code = str(code)
        self.message = message
        self.detail = detail


class NotFound(Refusal):
    """The command names something that does not exist (HTTP 404)."""


class Invalid(Refusal):
    """A field of the command is not acceptable (HTTP 422); ``loc`` says which."""

    def __init__(self, loc: Sequence[str | int], message: str, kind: str = "value_error") -> None:
        super().__init__(ErrorCode.INVALID_REQUEST, message)
        self.loc = list(loc)
        self.kind = kind


class Forbidden(Refusal):
    """The caller's role may not do this (HTTP 403)."""


class Conflict(Refusal):
    """The command does not fit the current state (HTTP 409)."""


class Stale(Exception):
    """The guarded write found the record changed since it was read: judge it again."""


async def retried(attempt: Callable[[], Awaitable[T]], what: str) -> T:
    """Run ``attempt`` (read, judge, guarded write) until it is not :class:`Stale`, at most
    :data:`MAX_ATTEMPTS` times; then refuse with ``conflict``."""
    for _ in range(MAX_ATTEMPTS):
        try:
            return await attempt()
        except Stale:
            # Let the commands that got in first finish their own work before judging again.
            await asyncio.sleep(0)
    raise Conflict(ErrorCode.CONFLICT, f"{what} kept changing while this was judged; try again")
