"""Clinic alarm configuration: YAML in, a validated model out (pure, apart from reading the file).

The shipped defaults are monitor/clinic.default.yaml; docs/alarms.md explains every setting.
Limits can differ per phase (``phases``) and per session (``overrides``, only within
``override_bounds`` and never switching an alarm off).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from monitor.clinical.protocols import Protocol
from monitor.clinical.scores import CourseRules
from monitor.core.model import CONTINUOUS_SIGNALS, PRIORITY_RANK, SIGNALS, Direction, Priority

DEFAULT_CONFIG_PATH: Final = Path(__file__).resolve().parent.parent / "clinic.default.yaml"
PHASES: Final = ("baseline", "infusion", "recovery")
DIRECTIONS: Final = (Direction.LOW, Direction.HIGH)
PRIORITIES: Final = (Priority.LOW, Priority.MEDIUM, Priority.HIGH)
# Pulse rate has no limits of its own: the heart-rate limits judge whichever rate
# ``rate.sources`` picks, so one tachycardia is one alarm whichever sensor shows it.
RATE_SIGNAL_ALIASES: Final = frozenset({"pr"})


class ConfigError(ValueError):
    """The clinic configuration (or a per-session override) is not acceptable."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Thresholds(_Strict):
    """Thresholds of one direction of one signal, one per priority (None = no alarm there)."""

    low: float | None = None
    medium: float | None = None
    high: float | None = None
    # For a ``high`` direction: alarm at value >= threshold instead of > (``sbp >= 180``).
    # For a ``low`` direction: alarm at value <= threshold instead of <.
    inclusive: bool = False

    def by_priority(self) -> dict[Priority, float]:
        return {p: v for p in PRIORITIES if (v := getattr(self, p.value)) is not None}


class SignalLimits(_Strict):
    low: Thresholds | None = None
    high: Thresholds | None = None

    def direction(self, name: Direction) -> Thresholds | None:
        return self.low if name == Direction.LOW else self.high


class RelativeRule(_Strict):
    """Advisory alarm when a signal rises more than ``above_pct`` % over the session baseline."""

    signal: str
    above_pct: float = Field(gt=0)
    priority: Priority = Priority.LOW
    # Condition delay for a continuous signal; None = the signal's medium delay.
    delay_s: float | None = Field(default=None, ge=0)


class NoDataRule(_Strict):
    timeout_s: float = Field(default=10, gt=0)
    priority: Priority = Priority.MEDIUM


class NoSpo2Rule(_Strict):
    timeout_s: float = Field(default=30, gt=0)
    priority: Priority = Priority.MEDIUM


class StaleCuffRule(_Strict):
    after_s: float = Field(default=900, gt=0)
    phases: tuple[str, ...] = ("infusion",)
    priority: Priority = Priority.LOW


class ArtefactRule(_Strict):
    count: int = Field(default=3, ge=1)
    window_s: float = Field(default=60, gt=0)
    priority: Priority = Priority.LOW


class TechnicalRules(_Strict):
    no_data: NoDataRule = NoDataRule()
    no_spo2: NoSpo2Rule = NoSpo2Rule()
    stale_cuff: StaleCuffRule = StaleCuffRule()
    artefact: ArtefactRule = ArtefactRule()


class Disagreement(_Strict):
    """HR and pulse rate apart by more than ``margin`` /min in every paired reading for
    ``delay_s`` (device time): a technical alarm, ended once they agree for ``clear_s``."""

    margin: float = Field(default=20, gt=0)
    delay_s: float = Field(default=30, ge=0)
    clear_s: float = Field(default=30, ge=0)
    priority: Priority = Priority.LOW


class RateRule(_Strict):
    """Which rate the heart-rate limits judge: the first of ``sources`` present on the bed
    (seen within ``continuous_max_gap_s`` of device time). Never a mix of two sources."""

    sources: tuple[Literal["hr", "pr"], ...] = ("hr", "pr")
    disagreement: Disagreement = Disagreement()

    @model_validator(mode="after")
    def _distinct(self) -> RateRule:
        if not self.sources or len(set(self.sources)) != len(self.sources):
            raise ValueError("rate.sources: name hr and/or pr, each once")
        return self


class RespirationRule(_Strict):
    """A low-RR alarm from the impedance RR alone is kept at ``alone_priority``; it takes the
    priority its limits give once SpO2 has fallen by ``spo2_drop`` (or is beyond its own
    limit), HR has changed by ``hr_change`` from the onset, or the condition has lasted
    ``duration_s``. ``enabled: false`` judges RR at face value."""

    enabled: bool = True
    alone_priority: Priority = Priority.LOW
    spo2_drop: float = Field(default=3, gt=0)
    hr_change: float = Field(default=20, gt=0)
    duration_s: float = Field(default=240, ge=0)


class Escalation(_Strict):
    high_s: float = Field(default=60, gt=0)
    medium_s: float = Field(default=180, gt=0)

    def after(self, priority: Priority) -> float | None:
        if priority == Priority.HIGH:
            return self.high_s
        if priority == Priority.MEDIUM:
            return self.medium_s
        return None


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in base.items()}
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _check_limits(limits: Mapping[str, SignalLimits], where: str) -> None:
    for signal, sl in limits.items():
        if signal not in SIGNALS:
            raise ValueError(f"{where}: unknown signal {signal!r}")
        for direction in DIRECTIONS:
            th = sl.direction(direction)
            if th is None:
                continue
            values = th.by_priority()
            ordered = sorted(values, key=lambda p: PRIORITY_RANK[p])
            # A more severe priority must sit further out than a less severe one.
            for lesser, greater in zip(ordered, ordered[1:], strict=False):
                a, b = values[lesser], values[greater]
                if (direction is Direction.LOW and b > a) or (
                    direction is Direction.HIGH and b < a
                ):
                    raise ValueError(
                        f"{where}: {signal}.{direction}: the {greater} threshold ({b:g}) must lie "
                        f"beyond the {lesser} threshold ({a:g})"
                    )


class ClinicConfig(_Strict):
    version: Literal[1] = 1
    limits: dict[str, SignalLimits]
    phases: dict[str, dict[str, Any]] = Field(default_factory=dict)
    delays: dict[str, dict[Priority, float]] = Field(default_factory=dict)
    off_delays: dict[str, float] = Field(default_factory=dict)
    continuous_max_gap_s: float = Field(default=10, gt=0)
    hysteresis: dict[str, float] = Field(default_factory=dict)
    relative: tuple[RelativeRule, ...] = ()
    rate: RateRule = RateRule()
    respiration: RespirationRule = RespirationRule()
    latch_high: bool = False
    audio_pause_s: float = Field(default=120, gt=0)
    audio_pause_max_s: float = Field(default=300, gt=0)
    escalation: Escalation = Escalation()
    technical: TechnicalRules = TechnicalRules()
    override_bounds: dict[str, tuple[float, float]] = Field(default_factory=dict)
    # Session types (monitor.clinical.protocols, docs/protocols.md). A config without any gets one
    # protocol, ``basic``, that gates nothing: the session is the plain timer.
    protocols: dict[str, Protocol] = Field(default_factory=dict)
    default_protocol: str = "basic"
    # Across a patient's sessions: the responder rule (monitor.clinical.scores, docs/course.md).
    course: CourseRules = CourseRules()

    @model_validator(mode="before")
    @classmethod
    def _protocol_ids(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        protocols = data.get("protocols")
        if protocols is None:
            protocols = {"basic": {"label": "Session timer only (no protocol gates)"}}
        if not isinstance(protocols, Mapping):
            return data  # the field's own validation says why
        filled = {
            key: ({**body, "id": key} if isinstance(body, Mapping) else body)
            for key, body in protocols.items()
        }
        return {**data, "protocols": filled}

    @model_validator(mode="after")
    def _consistent(self) -> ClinicConfig:
        _check_limits(self.limits, "limits")
        for phase, body in self.phases.items():
            if phase not in PHASES:
                raise ValueError(f"phases: unknown phase {phase!r} (one of {', '.join(PHASES)})")
            if set(body) - {"limits"}:
                raise ValueError(f"phases.{phase}: only 'limits' can differ per phase")
        for phase in self.phases:
            self.limits_for(phase)  # raises on a bad override
        for signal, by_priority in self.delays.items():
            if signal not in CONTINUOUS_SIGNALS:
                raise ValueError(f"delays: only continuous signals have delays, not {signal!r}")
            if any(v < 0 for v in by_priority.values()):
                raise ValueError(f"delays.{signal}: delays cannot be negative")
        for signal, secs in self.off_delays.items():
            if signal not in CONTINUOUS_SIGNALS or secs < 0:
                raise ValueError(f"off_delays: bad entry {signal!r}: {secs!r}")
        for table in (self.limits, *(b.get("limits") or {} for b in self.phases.values())):
            if RATE_SIGNAL_ALIASES & set(table):
                raise ValueError("limits: pr is judged with hr's limits (see rate.sources)")
        for signal, margin in self.hysteresis.items():
            if signal not in SIGNALS or margin < 0:
                raise ValueError(f"hysteresis: bad entry {signal!r}: {margin!r}")
        for rule in self.relative:
            if rule.signal not in SIGNALS:
                raise ValueError(f"relative: unknown signal {rule.signal!r}")
        for phase in self.technical.stale_cuff.phases:
            if phase not in PHASES:
                raise ValueError(f"technical.stale_cuff.phases: unknown phase {phase!r}")
        for signal, (lo, hi) in self.override_bounds.items():
            if signal not in SIGNALS or lo > hi:
                raise ValueError(f"override_bounds: bad entry {signal!r}: [{lo}, {hi}]")
        if self.audio_pause_s > self.audio_pause_max_s:
            raise ValueError("audio_pause_s cannot exceed audio_pause_max_s")
        if self.default_protocol not in self.protocols:
            raise ValueError(f"default_protocol {self.default_protocol!r} is not in protocols")
        for pid, protocol in self.protocols.items():
            for phase, plan in protocol.phases.items():
                if plan.limits:
                    try:
                        self.limits_for(phase, plan.limits)
                    except ConfigError as e:
                        raise ValueError(f"protocols.{pid}.phases.{phase}.limits: {e}") from None
        return self

    def session_overrides(
        self, protocol_id: str | None, phase: str | None, overrides: Mapping[str, Any] | None
    ) -> dict[str, Any] | None:
        """The overrides in force for a session in a phase: its protocol's limits for the
        phase (docs/protocols.md), with the session's own overrides over them."""
        protocol = self.protocols.get(protocol_id or "")
        base = protocol.phase_limits(phase) if protocol is not None else {}
        if not base:
            return dict(overrides) if overrides else None
        return _deep_merge(base, overrides or {})

    def stale_cuff_s(self, protocol_id: str | None, phase: str | None) -> float | None:
        """A session's stale-cuff time in a phase from its protocol (docs/protocols.md);
        None leaves the clinic's technical.stale_cuff rule in force."""
        protocol = self.protocols.get(protocol_id or "")
        return protocol.stale_cuff_s(phase) if protocol is not None else None

    def protocol(self, protocol_id: str | None) -> Protocol | None:
        """A protocol by id (None = the default); None when the clinic has no such protocol."""
        return self.protocols.get(protocol_id or self.default_protocol)

    # --- limits in force ---

    def limits_for(
        self, phase: str | None = None, overrides: Mapping[str, Any] | None = None
    ) -> dict[str, SignalLimits]:
        """Limits in force for a phase (None = no session) with per-session overrides applied."""
        raw: dict[str, Any] = {s: sl.model_dump() for s, sl in self.limits.items()}
        if phase in self.phases:
            raw = _deep_merge(raw, self.phases[phase].get("limits") or {})
        if overrides:
            raw = _deep_merge(raw, self.check_overrides(overrides))
        try:
            merged = {s: SignalLimits.model_validate(v or {}) for s, v in raw.items()}
            _check_limits(merged, f"limits for phase {phase}")
        except (ValidationError, ValueError) as exc:
            raise ConfigError(str(exc)) from None
        return merged

    def check_overrides(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """Validate per-session overrides (same shape as ``limits``); returns a normalised copy.

        Raises ConfigError when a threshold leaves its clinic bounds, would switch an alarm
        off, or names something unknown.
        """
        if not isinstance(overrides, Mapping):
            raise ConfigError("overrides must be an object")
        out: dict[str, Any] = {}
        for signal, directions in overrides.items():
            bounds = self.override_bounds.get(signal)
            if bounds is None:
                raise ConfigError(f"{signal}: the clinic does not allow overriding this signal")
            if not isinstance(directions, Mapping):
                raise ConfigError(f"{signal}: expected an object of directions")
            for direction, by_priority in directions.items():
                if direction not in DIRECTIONS or not isinstance(by_priority, Mapping):
                    raise ConfigError(f"{signal}: unknown direction {direction!r}")
                for priority, value in by_priority.items():
                    if priority not in PRIORITIES:
                        raise ConfigError(f"{signal}.{direction}: unknown priority {priority!r}")
                    if isinstance(value, bool) or not isinstance(value, int | float):
                        raise ConfigError(
                            f"{signal}.{direction}.{priority}: a number is required "
                            "(a session cannot switch an alarm off)"
                        )
                    lo, hi = bounds
                    if not lo <= value <= hi:
                        raise ConfigError(
                            f"{signal}.{direction}.{priority}: {value:g} is outside the clinic's "
                            f"bounds {lo:g}..{hi:g}"
                        )
                    out.setdefault(signal, {}).setdefault(direction, {})[priority] = float(value)
        return out

    def delay(self, signal: str, priority: Priority) -> float:
        """Condition delay (device seconds) of a continuous signal at a priority; 0 for cuff."""
        if signal not in CONTINUOUS_SIGNALS:
            return 0.0
        by_priority = self.delays.get(signal, {})
        if priority in by_priority:
            return float(by_priority[priority])
        # A priority without its own delay (e.g. an absolute low-priority limit) waits as long
        # as the least severe priority that has one, never less.
        known = [float(v) for v in by_priority.values()]
        return max(known) if known else 0.0

    def off_delay(self, signal: str) -> float:
        """Seconds (device time) an alarm's condition must stay clear before the alarm ends."""
        return float(self.off_delays.get(signal, 0.0))

    def margin(self, signal: str) -> float:
        return float(self.hysteresis.get(signal, 0.0))


def parse_config(data: Any, where: str = "clinic config") -> ClinicConfig:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    try:
        return ClinicConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_config(path: str | Path | None = None) -> ClinicConfig:
    """Read and validate a clinic configuration; None = the shipped defaults."""
    p = DEFAULT_CONFIG_PATH if path is None else Path(path)
    with p.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    return parse_config(data, str(p))


def check_consistent(config: ClinicConfig, overrides: dict[str, Any]) -> None:
    """Within a direction a more severe priority lies further out, in every phase the session
    may reach with these overrides (the configuration's own rule); ValueError if not."""
    for phase in (None, *PHASES):
        try:
            config.limits_for(phase, overrides)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
