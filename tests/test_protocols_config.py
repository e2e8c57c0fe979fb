"""Protocols as clinic data: the shipped protocols and the validation that stops a bad one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.alarms import ConfigError, load_config, parse_config
from monitor.alarms.config import DEFAULT_CONFIG_PATH
from monitor.clinical.protocols import Anchor, CheckpointKind, ItemKind


def _with_protocol(pid: str, **changes: Any) -> dict[str, Any]:
    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    data["protocols"][pid] = {**data["protocols"][pid], **changes}
    return data


def test_the_default_clinic_ships_iv_ketamine_and_esketamine() -> None:
    """docs/protocols.md: esketamine discharge not before 120 min after dosing starts, a bp
    checkpoint 40 min after dosing starts, a pre-dose BP threshold of 140/90."""
    cfg = load_config(None)
    assert {"iv-ketamine", "esketamine"} <= set(cfg.protocols)
    esk = cfg.protocols["esketamine"]
    assert esk.discharge.after is not None
    assert esk.discharge.after.anchor is Anchor.INFUSION_START and esk.discharge.after.min == 120
    bp40 = [c for c in esk.checkpoints if c.kind is CheckpointKind.BP]
    assert any(c.anchor is Anchor.INFUSION_START and c.offset_min == 40 for c in bp40)
    assert esk.predose_bp is not None and (esk.predose_bp.sbp, esk.predose_bp.dbp) == (140, 90)
    assert {i.kind for i in cfg.protocols["iv-ketamine"].checklist} == set(ItemKind)


def test_the_default_protocol_gates_nothing_so_a_plain_admission_keeps_working() -> None:
    """docs/protocols.md "The default protocol": admitting without a protocol is the timer."""
    cfg = load_config(None)
    basic = cfg.protocol(None)
    assert basic is not None and basic.id == cfg.default_protocol == "basic"
    assert not basic.checklist and basic.predose_bp is None and not basic.checkpoints
    assert basic.discharge.model_dump(exclude_none=True) == {}


def test_a_config_without_protocols_gets_the_basic_one() -> None:
    """A clinic file written before protocols existed still starts (docs/protocols.md)."""
    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    del data["protocols"], data["default_protocol"]
    cfg = parse_config(data)
    assert list(cfg.protocols) == ["basic"] and cfg.default_protocol == "basic"


@pytest.mark.parametrize(
    ("pid", "changes", "message"),
    [
        ("esketamine", {"checklist": [{"id": "x", "label": "X", "kind": "tick"}]}, "kind"),
        (
            "esketamine",
            {"checklist": [{"id": "a", "label": "A", "kind": "confirm"}] * 2},
            "unique",
        ),
        ("esketamine", {"predose_bp": {"sbp": 0, "dbp": 90}}, "greater than 0"),
        (
            "esketamine",
            {
                "checkpoints": [
                    {"id": "c", "kind": "bp", "anchor": "lunch", "offset_min": 5, "window_min": 2}
                ]
            },
            "anchor",
        ),
        (
            "iv-ketamine",
            {
                "checkpoints": [
                    {
                        "id": "c",
                        "kind": "bp",
                        "anchor": "infusion_start",
                        "offset_min": 5,
                        "window_min": 5,
                        "every_min": 5,
                        "within": "infusion",
                    }
                ]
            },
            "overlap",
        ),
        ("iv-ketamine", {"phases": {"induction": {}}}, "unknown phase"),
        (
            "iv-ketamine",
            {"phases": {"infusion": {"limits": {"spo2": {"low": {"medium": 50}}}}}},
            "bounds",
        ),
        ("iv-ketamine", {"discharge": {"escort_item": "nobody"}}, "escort_item"),
        ("iv-ketamine", {"discharge": {"hr": [110, 50]}}, "hr"),
        ("iv-ketamine", {"label": ""}, "label"),
        ("esketamine", {"dosing": {"drug": "esketamine", "route": "intranasal"}}, "device_mg"),
        (
            "iv-ketamine",
            {"dosing": {"drug": "ketamine", "route": "iv", "weight_item": "consent"}},
            "weight_item",
        ),
    ],
)
def test_bad_protocols_are_refused_with_a_reason(
    pid: str, changes: dict[str, Any], message: str
) -> None:
    """docs/protocols.md: a protocol is validated at start like the limits."""
    with pytest.raises(ConfigError, match=message):
        parse_config(_with_protocol(pid, **changes))


def test_an_unknown_default_protocol_is_refused() -> None:
    """docs/protocols.md: default_protocol names one of the clinic's protocols."""
    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    data["default_protocol"] = "ketamine"
    with pytest.raises(ConfigError, match="default_protocol"):
        parse_config(data)


def test_a_bad_protocol_stops_the_monitor_with_the_reason(tmp_path: Path) -> None:
    """docs/protocols.md: the monitor does not start on a bad protocol and says why."""
    path = tmp_path / "clinic.yaml"
    data = _with_protocol("esketamine", predose_bp={"sbp": 140, "dbp": 90, "colour": "red"})
    path.write_text(yaml.safe_dump(data))
    proc = subprocess.run(
        [sys.executable, "-m", "monitor", "serve", "--port", "0", "--config", str(path)]
        + ["--db", f"sqlite:///{tmp_path / 'v.db'}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "protocols.esketamine.predose_bp.colour" in out
