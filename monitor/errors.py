"""Errors that cross stages."""

from __future__ import annotations


class Unavailable(RuntimeError):
    """A stage could not make something durable (the store failed or the monitor is stopping).
    Devices get the protocol's ``unavailable`` error and send the reading again; people get
    503 with code ``unavailable``."""
