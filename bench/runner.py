"""Run a load generator in a process of its own (spawned: nothing shared with the server)."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from collections.abc import Callable
from typing import Any


def in_process(
    fn: Callable[[dict[str, Any]], dict[str, Any]], cfg: dict[str, Any], timeout: float
) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        return pool.submit(fn, cfg).result(timeout=timeout)


def background(
    fn: Callable[[dict[str, Any]], dict[str, Any]], cfg: dict[str, Any]
) -> multiprocessing.process.BaseProcess:
    """Start one whose result is not needed (load while something else is measured);
    the caller terminates it."""
    proc = multiprocessing.get_context("spawn").Process(target=fn, args=(cfg,), daemon=True)
    proc.start()
    return proc
