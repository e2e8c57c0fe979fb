"""Device time for simulated devices, optionally warped.

With ``speed`` X device time runs X times faster than wall time, starting at
``device_start`` (usually in the past: the monitor rejects a ``ts`` more than 5 minutes
ahead of its clock). Device time is capped at wall time: once a warped run catches up with
the present it continues in real time, so no reading is ever stamped in the future.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class WarpClock:
    def __init__(
        self,
        speed: float = 1.0,
        device_start: float | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._wall = wall
        self.wall_start = wall()
        self.device_start = self.wall_start if device_start is None else device_start

    def device_at(self, wall_t: float) -> float:
        """Device time at wall time ``wall_t``: the warped line, never past the wall clock."""
        return min(self.device_start + (wall_t - self.wall_start) * self.speed, wall_t)

    def now(self) -> float:
        return self.device_at(self._wall())

    def wall_at(self, device_t: float) -> float:
        """The earliest wall time at which device time reaches ``device_t``."""
        return max(self.wall_start + (device_t - self.device_start) / self.speed, device_t)

    def seconds_until(self, device_t: float) -> float:
        return max(0.0, self.wall_at(device_t) - self._wall())
