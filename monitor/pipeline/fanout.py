"""Fan-out stage: what the pipeline tells panels, as typed events.

The hub (``monitor.pipeline.hub``) delivers feed text to this instance's panels. In multi-instance
mode a ``Relay`` also hears each event as data (never by parsing the feed text), so other
instances can show it and the owner of a bed can judge a reading stored elsewhere.
A fault in delivery is counted on /health and never stops the stage that published.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final, Protocol

from monitor.core.faults import Faults, Point
from monitor.core.model import Alarm, Reading
from monitor.pipeline.health import Health, Stage
from monitor.pipeline.hub import Hub
from monitor.wire import feed

log = logging.getLogger("vigil.fanout")


class Relay(Protocol):
    def reading(self, reading: Reading) -> None: ...

    def alarm(self, alarm: Alarm) -> None: ...

    def session(self, session_id: int, message: str) -> None: ...


class FanOut:
    def __init__(
        self,
        hub: Hub,
        health: Health,
        faults: Faults,
        clock: Callable[[], float],
        relay: Relay | None = None,
    ) -> None:
        self.hub = hub
        self.health = health
        self.faults = faults
        self.clock = clock
        # Fixed at construction: None in single-instance mode (the composition root decides).
        self.relay: Final[Relay | None] = relay
        health.use(Stage.FANOUT)

    def _deliver(self, message: str) -> None:
        try:
            self.faults.hit(Point.FANOUT)
            self.hub.deliver(message)
        except Exception as e:
            log.exception("feeding panels failed")
            self.health.failed(Stage.FANOUT, self.clock(), type(e).__name__)
        else:
            if not self.health.stages[Stage.FANOUT].ok:
                self.health.ok(Stage.FANOUT, self.clock())

    def _relay(self, send: Callable[[], None]) -> None:
        try:
            send()
        except Exception as e:
            log.exception("relaying to the other instances failed")
            self.health.failed(Stage.REDIS, self.clock(), type(e).__name__)

    def reading(self, reading: Reading) -> None:
        self._deliver(feed.reading_message(reading))
        if (relay := self.relay) is not None:
            self._relay(lambda: relay.reading(reading))

    def alarm(self, alarm: Alarm) -> None:
        self._deliver(feed.alarm_message(alarm))
        if (relay := self.relay) is not None:
            self._relay(lambda: relay.alarm(alarm))

    def session(self, body: dict[str, Any]) -> None:
        message = feed.session_message(body)
        self._deliver(message)
        if (relay := self.relay) is not None:
            self._relay(lambda: relay.session(int(body["id"]), message))

    def local(self, message: str) -> None:
        """Only this instance's panels (pings, this instance's health, a peer's relayed text)."""
        self._deliver(message)

    def drop_all(self, reason: str) -> None:
        for client in tuple(self.hub.clients):
            client.drop(reason)
