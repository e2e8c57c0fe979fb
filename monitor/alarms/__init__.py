"""Vigil's alarm engine: pure rules and lifecycle (engine, with levels, readings and
tracking; lifecycle), clinic configuration (config) and the offline ``alarm-report``
(report). docs/alarms.md states every rule."""

from monitor.alarms.config import ClinicConfig, ConfigError, load_config, parse_config
from monitor.alarms.engine import AlarmEngine, Level, UnknownAlarm, build_levels
from monitor.alarms.lifecycle import Event, LifecycleError, State

__all__ = [
    "AlarmEngine",
    "ClinicConfig",
    "ConfigError",
    "Event",
    "Level",
    "LifecycleError",
    "State",
    "UnknownAlarm",
    "build_levels",
    "load_config",
    "parse_config",
]
