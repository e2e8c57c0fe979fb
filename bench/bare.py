"""The baseline: a bare FastAPI websocket endpoint that only parses each frame and acks it.

Served with exactly the monitor's uvicorn settings (monitor/cli.py: uvloop, httptools,
``ws="websockets"``, same frame limit), so the ratio to it is what the monitor's own work
(validation, durable storage, alarms, fan-out) costs. `python -m bench.bare --port PORT`.
"""

from __future__ import annotations

import argparse

import orjson
import uvicorn
from fastapi import FastAPI, WebSocket
from starlette.websockets import WebSocketDisconnect


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.websocket("/ws/device")
    async def device(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                # orjson, as the monitor uses: the ratio then prices the monitor's work, not
                # a choice of parser.
                msg = orjson.loads(await ws.receive_text())
                await ws.send_text(orjson.dumps({"type": "ack", "seq": msg.get("seq")}).decode())
        except WebSocketDisconnect:
            return

    return app


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.bare")
    p.add_argument("--port", type=int, required=True)
    a = p.parse_args()
    uvicorn.run(
        create_app(),
        host="127.0.0.1",
        port=a.port,
        loop="uvloop",
        http="httptools",
        ws="websockets",
        ws_max_size=64 * 1024,
        timeout_graceful_shutdown=5,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
