"""HL7 PCD-01 over MLLP into the real monitor (contract: --hl7-port, ACK AA/AE/AR)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import websockets

from tests.conftest import free_port
from tests.wsclient import feed_until

DATA = Path(__file__).parent / "data" / "hl7"
MLLP_SEND = Path(sys.executable).parent / "mllp_send"
DEVICE = "080019FFFE3ED02D172.16.172.135"  # OBX-18 of the shipped IHE message


def send(path: Path, port: int) -> str:
    r = subprocess.run(
        [str(MLLP_SEND), "--loose", "--file", str(path), "--port", str(port), "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


async def test_pcd01_message_is_stored_acked_and_pushed(server_factory) -> None:  # type: ignore[no-untyped-def]
    """The shipped IHE message is stored once (even resent), answered AA, and reaches the feed."""
    hl7_port = free_port()
    s = server_factory(args=["--hl7-port", str(hl7_port)])
    s.add_device(DEVICE, "chair-7")
    async with websockets.connect(f"{s.ws_url}/ws/feed?token={s.admin_token}") as feed:
        await feed_until(feed, lambda m: m["type"] == "hello")
        ack = send(DATA / "pcd01_episodic_nibp.hl7", hl7_port)
        assert "MSA|AA|0104ef190d604db188c3" in ack
        pushed = await feed_until(feed, lambda m: m["type"] == "reading")
    assert pushed["bed"] == "chair-7"
    # 149546 is the cuff's pulse rate: pr (the ECG heart rate hr is another signal).
    assert pushed["values"] == {"sbp": 111, "dbp": 60, "map": 80, "pr": 63}
    assert "MSA|AA" in send(DATA / "pcd01_episodic_nibp.hl7", hl7_port)
    (r,) = s.get("/api/readings", bed="chair-7")["readings"]
    assert r["source"] == "nibp" and r["ts"] == "2011-06-02T04:58:42.000Z"
    beds = {b["id"]: b for b in s.get("/api/beds")}
    assert beds["chair-7"]["latest"]["sbp"]["value"] == 111


def test_unknown_device_and_malformed_messages_get_error_acks(server_factory) -> None:  # type: ignore[no-untyped-def]
    """An unregistered device gets AR; a malformed message AE or AR; nothing is stored."""
    hl7_port = free_port()
    s = server_factory(args=["--hl7-port", str(hl7_port)])
    assert "MSA|AR" in send(DATA / "pcd01_episodic_nibp.hl7", hl7_port)
    s.add_device(DEVICE, "chair-8")
    for bad in ["bad_out_of_range.hl7", "bad_unknown_unit.hl7", "bad_no_values.hl7"]:
        ack = send(DATA / bad, hl7_port)
        assert "MSA|AE" in ack or "MSA|AR" in ack, (bad, ack)
    assert s.get("/api/readings", bed="chair-8")["readings"] == []


def _measured_at(path: Path, epoch: float, control_id: str, out: Path) -> Path:
    """The shipped message, measured at ``epoch`` (whole seconds, UTC) under its own id."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(epoch))
    text = path.read_bytes().replace(b"20110602045842", stamp.encode())
    out.write_bytes(text.replace(b"0104ef190d604db188c3", control_id.encode()))
    return out


def test_a_late_hl7_batch_goes_to_the_bed_the_device_was_bound_to_when_it_measured(
    server_factory: Any, tmp_path: Path
) -> None:
    """Bound to A, then by the command line to B: a message measured after the rebinding is
    B's, and a late one measured before it is A's (docs/reliability.md, "A reading belongs
    to the bed ...")."""
    hl7_port = free_port()
    s = server_factory(args=["--hl7-port", str(hl7_port)])
    s.add_device(DEVICE, "hl7-bind-a")
    assert "MSA|AA" in send(DATA / "pcd01_episodic_nibp.hl7", hl7_port)  # measured in 2011
    measured_on_a = time.time() - 2
    r = subprocess.run(
        [sys.executable, "-m", "monitor", "add-device", DEVICE, "--bed", "hl7-bind-b"]
        + ["--db", s.db_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    measured_on_b = time.time() + 1
    src = DATA / "pcd01_episodic_nibp.hl7"
    after = _measured_at(src, measured_on_b, "bind-after-1", tmp_path / "after.hl7")
    assert "MSA|AA" in send(after, hl7_port)
    late = _measured_at(src, measured_on_a, "bind-late-1", tmp_path / "late.hl7")
    assert "MSA|AA" in send(late, hl7_port)
    on_a = [r["ts"][:4] for r in s.get("/api/readings", bed="hl7-bind-a")["readings"]]
    on_b = s.get("/api/readings", bed="hl7-bind-b")["readings"]
    assert on_a == ["2011", time.strftime("%Y", time.gmtime(measured_on_a))]
    assert len(on_b) == 1
