"""The simulated ward runs the clinic's protocols (docs/protocols.md, docs/simulators.md)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from monitor.alarms.config import load_config
from monitor.clinical import rules as pm
from simulators.demo import protocol_timeline
from simulators.nurse import checklist_data, session_script
from simulators.physiology import MINUTE, Timeline
from simulators.scenarios import make_plan

# A warped device sends faster than the default flood limit allows (docs/simulators.md).
FAST = {"device_rate_per_s": 100000, "device_rate_burst": 100000}
CONFIG = load_config(None)
PUBLIC = {pid: p.public() for pid, p in CONFIG.protocols.items()}


def test_each_protocol_gets_the_session_layout_its_discharge_time_needs() -> None:
    """docs/protocols.md: esketamine is dosed over its planned 10 min and monitored at least
    120 min from dosing; iv-ketamine keeps 40 min and its 30 min after the infusion."""
    tl = Timeline()
    esk = protocol_timeline(tl, PUBLIC["esketamine"])
    assert esk.infusion_s == 10 * MINUTE and esk.end - esk.infusion_start > 120 * MINUTE
    iv = protocol_timeline(tl, PUBLIC["iv-ketamine"])
    assert iv.infusion_s == 40 * MINUTE and iv.end - iv.infusion_end > 30 * MINUTE
    assert protocol_timeline(tl, None) == tl


@pytest.mark.parametrize("pid", ["iv-ketamine", "esketamine"])
def test_the_simulated_nurse_fills_the_checklist_and_records_the_scales(pid: str) -> None:
    """docs/protocols.md: checklist before dosing (values the protocol accepts), the MOAA/S and
    CADSS its checkpoints ask for, and a MOAA/S 5 before discharge."""
    protocol = PUBLIC[pid]
    plan = make_plan("normal", 3, protocol_timeline(Timeline(), protocol))
    acts = session_script(plan, protocol)
    kinds = [a.type for a in acts]
    assert kinds.index("checklist") < kinds.index("infusion_start")
    data = checklist_data(protocol, 1_790_000_000.0, 72.0)
    assert pm.parse_checklist(CONFIG.protocols[pid], data) == data
    assert set(data) == {i["id"] for i in protocol["checklist"]}
    tl = plan.timeline
    last_moaas = [a for a in acts if a.type == "observation" and "moaas" in a.data][-1]
    assert last_moaas.data == {"moaas": 5} and tl.infusion_end < last_moaas.s < tl.end
    if pid == "esketamine":
        at40 = [a.data for a in acts if a.s == tl.infusion_start + 40 * MINUTE]
        assert {"cadss6"} <= {k for d in at40 for k in d} and any("moaas" in d for d in at40)


def test_the_demo_ward_runs_both_protocols_on_the_real_monitor(
    app_factory: Any, tmp_path: Path
) -> None:
    """docs/protocols.md: demo --protocols iv-ketamine,esketamine: each bed runs its protocol,
    its checklist done, dosing accepted, and its session ended (over a blocked discharge only
    with an audited reason)."""
    # The simulator is the process under test; the monitor is the app in this process.
    srv = app_factory(**FAST)
    lines = ["device_id,token"]
    for i in (1, 2):
        lines.append(f"sim-bed-{i}-mon,{srv.add_device(f'sim-bed-{i}-mon', f'bed-{i}')}")
    (tmp_path / "tokens.csv").write_text("\n".join(lines) + "\n")
    srv.add_user("sim-charge", "charge", "sim-charge-password")
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "simulators", "demo", "--beds", "2", "--beds-scenarios",
         "normal,normal", "--url", srv.ws_url, "--speed", "600", "--sessions", "1",
         "--tokens", "tokens.csv", "--user", "sim-charge", "--password", "sim-charge-password",
         "--state-dir", "state", "--protocols", "iv-ketamine,esketamine"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert time.monotonic() - t0 < 90
    for bed, pid in (("bed-1", "iv-ketamine"), ("bed-2", "esketamine")):
        sessions = srv.get("/api/sessions", bed=bed)["sessions"]
        assert len(sessions) == 1, sessions
        s = sessions[0]
        assert s["protocol"] == pid and s["phase"] == "ended"
        assert s["checklist"] and all(i["done"] for i in s["checklist"])
        kinds = [e["type"] for e in s["events"]]
        assert "infusion_start" in kinds, done.stderr[-4000:]
        assert kinds.index("checklist") < kinds.index("infusion_start") < kinds.index("end")
        doses = [e["data"] for e in s["events"] if e["type"] == "dose"]
        assert doses and all(d["drug"] == CONFIG.protocols[pid].dosing.drug for d in doses)  # type: ignore[union-attr]
        end = next(e for e in s["events"] if e["type"] == "end")
        audit = srv.get("/api/audit", session=s["id"])["entries"]
        overrides = [e for e in audit if e["action"] == "discharge_override"]
        if (end["data"] or {}).get("override_reason"):
            assert overrides and overrides[0]["detail"]["reason"]
        else:
            assert not overrides
    esk = srv.get("/api/sessions", bed="bed-2")["sessions"][0]
    bp40 = next(c for c in esk["checkpoints"] if c["id"] == "bp-40")
    assert bp40["status"] == "done" and bp40["satisfied_by"]["type"] == "reading"
