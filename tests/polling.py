"""Waiting by polling for a condition, never sleep-then-assert (README.md, Development)."""

from __future__ import annotations

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
