"""Waiting by polling for a condition, never sleep-then-assert (README.md, Development)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(fn: Callable[[], T], timeout: float = 30.0, interval: float = 0.1) -> T:
    """Call ``fn`` until it returns something truthy and return that; fail with its last
    answer once ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout} s; last: {last!r}")
        time.sleep(interval)


async def apoll(fn: Callable[[], T], timeout: float = 30.0, interval: float = 0.05) -> T:
    """``poll`` for async tests: awaits between the calls, so the loop's other tasks (a
    client, a tiny server) run meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout} s; last: {last!r}")
        await asyncio.sleep(interval)


async def astays(fn: Callable[[], T], duration: float, interval: float = 0.05) -> T:
    """Check that ``fn`` stays truthy for ``duration`` seconds and return its last answer; fail
    at its first falsy answer. An absence (nothing doubled, nothing late) can only be shown
    over a window: this one fails as soon as the thing shows up."""
    deadline = time.monotonic() + duration
    while True:
        last = fn()
        if not last:
            raise AssertionError(f"condition broke within {duration} s; last: {last!r}")
        if time.monotonic() > deadline:
            return last
        await asyncio.sleep(interval)
