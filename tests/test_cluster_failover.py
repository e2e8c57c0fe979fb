"""Multi-instance mode (docs/deployment.md): two real monitors share PostgreSQL and Redis; a panel on
either sees every reading and alarm once; a killed owner's beds are taken over within 10 s
with no alarm lost or doubled; acks work through either instance."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
import websockets

from monitor.core.model import parse_rfc3339
from monitor.wire.device import encode_heartbeat
from tests.conftest import (
    MonitorProcess,
    clinic_config,
    create_pg_database,
    drop_pg_database,
    post_event,
)
from tests.polling import apoll, astays, poll
from tests.wsclient import Device

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

REDIS_URL = "redis://127.0.0.1:6379/0"


class Ward:
    """Two monitors (a, b) on one fresh PostgreSQL database and a Redis prefix of their own."""

    def __init__(
        self,
        factory: Callable[..., MonitorProcess],
        db_url: str,
        prefix: str,
        args: Sequence[str] = (),
    ) -> None:
        self.prefix = prefix
        self.redis = redis.Redis.from_url(REDIS_URL, decode_responses=True)

        def start(name: str) -> MonitorProcess:
            return factory(
                db_url=db_url,
                args=["--redis", REDIS_URL, *args],
                env={"VIGIL_INSTANCE_ID": name, "VIGIL_REDIS_PREFIX": prefix},
            )

        self.a = start("a")
        self.b = start("b")

    def owner(self, bed: str) -> str | None:
        return self.redis.get(f"{self.prefix}:lease:{bed}")  # type: ignore[return-value]

    async def wait_owner(self, bed: str, name: str, within: float) -> float:
        """Seconds until ``name`` holds the bed's lease (fails after ``within`` seconds)."""
        t0 = time.monotonic()
        while self.owner(bed) != name:
            assert time.monotonic() - t0 < within, f"{name} did not take {bed}: {self.owner(bed)}"
            await asyncio.sleep(0.1)
        return time.monotonic() - t0


@contextlib.contextmanager
def _ward(factory: Callable[..., MonitorProcess], args: Sequence[str] = ()) -> Iterator[Ward]:
    db_url = create_pg_database()
    prefix = f"vigil-test-{uuid.uuid4().hex[:10]}"
    w = Ward(factory, db_url, prefix, args)
    try:
        yield w
    finally:
        w.a.kill()
        w.b.kill()
        keys = list(w.redis.scan_iter(match=f"{prefix}:*"))
        if keys:
            w.redis.delete(*keys)
        w.redis.close()
        drop_pg_database(db_url)


@pytest.fixture
def ward(server_factory: Callable[..., MonitorProcess]) -> Iterator[Ward]:
    with _ward(server_factory) as w:
        yield w


class Panel:
    """A feed client that keeps every message it receives, in the background."""

    def __init__(self, server: MonitorProcess) -> None:
        self.url = f"{server.ws_url}/ws/feed?token={server.admin_token}"
        self.messages: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self.hello = asyncio.Event()

    async def _run(self) -> None:
        async with websockets.connect(self.url) as ws:
            async for raw in ws:
                msg = json.loads(raw)
                self.messages.append(msg)
                if msg["type"] == "hello":
                    self.hello.set()

    async def __aenter__(self) -> Panel:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.hello.wait(), 5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with pytest.raises((asyncio.CancelledError, websockets.ConnectionClosed)):
            await self._task

    def readings(self, device: str) -> list[int]:
        return [
            m["seq"] for m in self.messages if m["type"] == "reading" and m["device_id"] == device
        ]

    def alarms(self, bed: str, signal: str = "spo2") -> list[dict[str, Any]]:
        return [
            m["alarm"]
            for m in self.messages
            if m["type"] == "alarm"
            and m["alarm"]["bed"] == bed
            and m["alarm"]["signal"] == signal
            and m["alarm"]["kind"] == "physiological"
        ]

    async def wait(self, pred: Callable[[], bool], within: float = 10.0) -> None:
        t0 = time.monotonic()
        while not pred():
            assert time.monotonic() - t0 < within, "the panel did not see it in time"
            await asyncio.sleep(0.05)


async def send(dev: Device, seq0: int, t0: float, n: int, spo2: float) -> None:
    for i in range(n):
        ack = await dev.reading(seq0 + i, {"spo2": spo2, "hr": 80}, ts=t0 + i)
        assert ack == {"type": "ack", "seq": seq0 + i}, ack


def active_spo2(server: MonitorProcess, bed: str) -> list[dict[str, Any]]:
    return [
        a
        for a in server.get("/api/alarms", bed=bed, active="true")["alarms"]
        if a["signal"] == "spo2" and a["kind"] == "physiological"
    ]


@pytest.fixture
async def panels(ward: Ward) -> AsyncIterator[tuple[Panel, Panel]]:
    async with Panel(ward.a) as pa, Panel(ward.b) as pb:
        yield pa, pb


async def test_panels_on_both_instances_see_each_reading_and_alarm_once(
    ward: Ward, panels: tuple[Panel, Panel]
) -> None:
    """Readings sent to B reach a panel on A once; the alarm is raised once; ack via A works."""
    pa, pb = panels
    token = ward.a.add_device("c1-mon", "c1-bed")
    t0 = time.time() - 120
    async with Device(ward.b.ws_url, "c1-mon", token) as dev:
        await send(dev, 1, t0, 1, 97)
        await ward.wait_owner("c1-bed", "b", within=3)  # the device's instance claims its bed
        await send(dev, 2, t0 + 1, 19, 82)
        for p in (pa, pb):
            await p.wait(lambda p=p: len(p.readings("c1-mon")) >= 20 and p.alarms("c1-bed"))
        # Nothing doubled arrives: each reading and the one alarm stay once, for a second.
        await astays(
            lambda: all(
                sorted(p.readings("c1-mon")) == list(range(1, 21)) and len(p.alarms("c1-bed")) == 1
                for p in (pa, pb)
            ),
            1.0,
        )
        for p in (pa, pb):
            assert sorted(p.readings("c1-mon")) == list(range(1, 21))
            (raised,) = p.alarms("c1-bed")
            assert raised["priority"] == "high" and raised["state"] == "active"
        (stored,) = active_spo2(ward.a, "c1-bed")
        assert stored["id"] == raised["id"]
        beds = {b["id"]: b for b in ward.a.get("/api/beds")}
        assert [a["id"] for a in beds["c1-bed"]["alarms"]] == [raised["id"]]
        assert beds["c1-bed"]["latest"]["spo2"]["value"] == 82

        r = ward.a.post(f"/api/alarms/{raised['id']}/ack")  # A does not own the bed
        assert r.status_code == 200, r.text
        assert r.json()["acknowledged_by"] == "admin"
        for p in (pa, pb):
            await p.wait(lambda p=p: any(a["acknowledged_at"] for a in p.alarms("c1-bed")))
        await astays(lambda: all(len(p.alarms("c1-bed")) == 2 for p in (pa, pb)), 0.5)
        for p in (pa, pb):
            assert [a["state"] for a in p.alarms("c1-bed")] == ["active", "acknowledged"]
        pause = ward.a.post("/api/beds/c1-bed/audio-pause", {"seconds": 30})
        assert pause.status_code == 200 and pause.json()["bed"] == "c1-bed"


async def test_a_killed_owner_is_replaced_within_ten_seconds_without_losing_or_doubling(
    ward: Ward,
) -> None:
    """SIGKILL the owner of a bed in alarm: B owns it within 10 s, the alarm stays once, a new
    desaturation raises exactly one new alarm, and acks work on the new owner."""
    token = ward.a.add_device("f-mon", "f-bed")
    t0 = time.time() - 200
    async with Panel(ward.b) as pb:
        async with Device(ward.a.ws_url, "f-mon", token) as dev:
            await send(dev, 1, t0, 1, 97)
            await ward.wait_owner("f-bed", "a", within=3)
            await send(dev, 2, t0 + 1, 19, 82)
            await pb.wait(lambda: bool(pb.alarms("f-bed")))
        (before,) = active_spo2(ward.b, "f-bed")

        ward.a.kill()
        killed = time.monotonic()
        async with Device(ward.b.ws_url, "f-mon", token) as dev:
            seq, ts = 20, t0 + 20
            # The patient stays desaturated while the lease runs out; readings keep coming.
            while ward.owner("f-bed") != "b":
                assert time.monotonic() - killed < 10, f"no takeover: {ward.owner('f-bed')}"
                await send(dev, seq, ts, 1, 82)
                seq, ts = seq + 1, ts + 1
                await asyncio.sleep(0.25)
            await send(dev, seq, ts, 3, 82)
            seq, ts = seq + 3, ts + 3

            # No second alarm is raised for the same desaturation, on the new owner or its panel.
            def once() -> bool:
                ids = {a["id"] for a in pb.alarms("f-bed")}
                return len(active_spo2(ward.b, "f-bed")) == 1 and ids == {before["id"]}

            await apoll(once, timeout=5)
            await astays(once, 0.5)
            (after,) = active_spo2(ward.b, "f-bed")
            assert after["id"] == before["id"] and after["state"] == "active"
            assert {a["id"] for a in pb.alarms("f-bed")} == {before["id"]}

            r = ward.b.post(f"/api/alarms/{before['id']}/ack")
            assert r.status_code == 200, r.text
            assert r.json()["acknowledged_by"] == "admin"

            # Recovers for longer than the 15 s SpO2 off-delay: the acknowledged alarm ends.
            await send(dev, seq, ts, 17, 97)
            await send(dev, seq + 17, ts + 17, 13, 82)  # a new desaturation
            await pb.wait(lambda: len({a["id"] for a in pb.alarms("f-bed")}) == 2)
            await astays(lambda: len({a["id"] for a in pb.alarms("f-bed")}) == 2, 0.5)
        (new,) = active_spo2(ward.b, "f-bed")
        assert new["id"] != before["id"]
        assert [a["state"] for a in pb.alarms("f-bed") if a["id"] == new["id"]] == ["active"]
        old = [a["state"] for a in pb.alarms("f-bed") if a["id"] == before["id"]]
        assert old == ["active", "acknowledged", "ended"]


async def test_device_activity_seen_by_a_non_owner_reaches_the_owner(
    ward: Ward, panels: tuple[Panel, Panel]
) -> None:
    """The owner judges "no data" from heartbeats another instance receives: a device beating
    on A raises nothing, a silent one on A raises one technical alarm (owner B, contract 10 s)."""
    pa, _ = panels
    tokens = {d: ward.a.add_device(d, "h-bed") for d in ("h-mon1", "h-mon2", "h-mon3")}
    async with Device(ward.b.ws_url, "h-mon1", tokens["h-mon1"]) as d1:
        assert (await d1.reading(1, {"hr": 70}))["type"] == "ack"
        await ward.wait_owner("h-bed", "b", within=3)
        async with (
            Device(ward.a.ws_url, "h-mon2", tokens["h-mon2"]) as d2,
            Device(ward.a.ws_url, "h-mon3", tokens["h-mon3"]) as d3,
        ):
            assert (await d2.reading(1, {"hr": 71}))["type"] == "ack"
            assert (await d3.reading(1, {"hr": 72}))["type"] == "ack"
            quiet_since = time.monotonic()
            while time.monotonic() - quiet_since < 13:
                for dev in (d1, d2):
                    await dev.ws.send(encode_heartbeat(dev.device_id, time.time()))
                await asyncio.sleep(1.0)

            def no_data(device: str) -> list[dict[str, Any]]:
                return [
                    m["alarm"]
                    for m in pa.messages
                    if m["type"] == "alarm"
                    and m["alarm"]["signal"] == "device"
                    and m["alarm"]["device_id"] == device
                ]

            (raised,) = no_data("h-mon3")
            assert raised["kind"] == "technical" and raised["bed"] == "h-bed"
            assert no_data("h-mon2") == [] and no_data("h-mon1") == []
            active = ward.a.get("/api/alarms", bed="h-bed", active="true")["alarms"]
            assert [a["device_id"] for a in active if a["signal"] == "device"] == ["h-mon3"]
            assert ward.owner("h-bed") == "b"


async def test_a_backlog_stored_during_a_takeover_gap_is_judged_by_the_new_owner(
    ward: Ward,
) -> None:
    """docs/reliability.md: readings measured half an hour ago (a device's store-and-forward
    backlog) that reach B while A, their bed's owner, lies dead and still holds the lease are
    stored unjudged; B's takeover replays what was received meanwhile and raises their
    alarm, once."""
    token = ward.a.add_device("g-mon", "g-bed")
    async with Device(ward.a.ws_url, "g-mon", token) as dev:
        await send(dev, 1, time.time() - 5, 1, 97)
        await ward.wait_owner("g-bed", "a", within=3)
    ward.a.kill()
    t0 = time.time() - 1800
    async with Device(ward.b.ws_url, "g-mon", token) as dev:
        await send(dev, 2, t0, 20, 82)
    assert ward.owner("g-bed") == "a", "B took over before the backlog arrived: no gap tested"
    await ward.wait_owner("g-bed", "b", within=12)

    def raised() -> list[dict[str, Any]]:
        alarms = ward.b.get("/api/alarms", bed="g-bed")["alarms"]
        return [a for a in alarms if a["signal"] == "spo2" and a["kind"] == "physiological"]

    deadline = time.monotonic() + 5
    while not raised():
        assert time.monotonic() < deadline, "the backlog was never judged"
        await asyncio.sleep(0.1)
    (alarm,) = raised()
    assert alarm["priority"] == "high" and abs(parse_rfc3339(alarm["started_at"]) - (t0 + 10)) < 2


# A protocol whose one checkpoint is overdue about 2.5 s after dosing starts: a checkpoint
# alarm (signal checkpoint, technical, low) to hand over (docs/protocols.md).
CHECKPOINT_PROTOCOL: dict[str, Any] = {
    "label": "Checkpoint handover test",
    "checklist": [],
    "checkpoints": [
        {
            "id": "moaas-1s",
            "kind": "moaas",
            "anchor": "infusion_start",
            "offset_min": 0.02,
            "window_min": 0.02,
        }
    ],
}


@pytest.fixture
def checkpoint_ward(
    server_factory: Callable[..., MonitorProcess], tmp_path: Path
) -> Iterator[Ward]:
    def edit(data: dict[str, Any]) -> None:
        data["protocols"]["handover"] = CHECKPOINT_PROTOCOL

    with _ward(server_factory, ["--config", str(clinic_config(tmp_path, edit))]) as w:
        yield w


async def test_a_checkpoint_alarm_acknowledged_on_the_former_owner_reaches_the_new_owner(
    checkpoint_ward: Ward,
) -> None:
    """docs/deployment.md rule 5: a bed whose lease is lost leaves the former owner's alarm
    stage whole, checkpoint alarms too; an ack sent to the former owner is the new owner's
    to store, and the new owner's live alarm is the acknowledged one."""
    ward = checkpoint_ward
    bed = "k-bed"
    token = ward.a.add_device("k-mon", bed)
    async with Device(ward.a.ws_url, "k-mon", token) as dev:
        await send(dev, 1, time.time() - 1, 1, 97)
        await ward.wait_owner(bed, "a", within=3)
    r = ward.a.post("/api/sessions", {"bed": bed, "patient_label": "K", "protocol": "handover"})
    assert r.status_code == 201, r.text
    sid = int(r.json()["id"])
    assert post_event(ward.a, sid, {"type": "infusion_start"}).status_code == 200

    def checkpoint(srv: MonitorProcess) -> dict[str, Any] | None:
        alarms = srv.get("/api/alarms", bed=bed)["alarms"]
        return next((a for a in alarms if a["signal"] == "checkpoint"), None)

    alarm = poll(lambda: checkpoint(ward.a), timeout=15)
    assert alarm["acknowledged_at"] is None

    # B takes the lease; A finds its renewal refused and hands the bed over.
    ward.redis.set(f"{ward.prefix}:lease:{bed}", "b", px=6000)
    poll(lambda: f"lease of bed {bed} was taken" in ward.a.log_text(), timeout=10)
    poll(lambda: f"rebuilt bed {bed} from the record" in ward.b.log_text(), timeout=10)

    ack = ward.a.post(f"/api/alarms/{alarm['id']}/ack")
    assert ack.status_code == 200, ack.text
    assert ack.json()["acknowledged_by"] == "admin"
    live = checkpoint(ward.b)
    assert live is not None and live["acknowledged_at"] == ack.json()["acknowledged_at"]
    assert live["state"] == "acknowledged"
    entries = ward.a.get("/api/audit", session=sid)["entries"]
    assert [e["target"] for e in entries if e["action"] == "alarm_ack"] == [alarm["id"]]
