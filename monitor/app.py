"""The FastAPI application: built by a factory from settings; nothing happens at import."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from monitor.alarms import AlarmEngine, load_config
from monitor.edges.api import (
    admin,
    auth,
    bounded,
    course,
    errors,
    openapi,
    reports,
    sessions,
    ward,
    ws,
)
from monitor.edges.api.guards import NoStoreMiddleware
from monitor.pipeline.hub import Hub
from monitor.pipeline.service import Monitor, instance_name
from monitor.records.store import Store
from monitor.settings import Settings

log = logging.getLogger("vigil")


def create_app(settings: Settings) -> FastAPI:
    # Read once: the lifespan's engine and the API's bounded bodies share this object.
    config = load_config(settings.clinic_config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await Store.from_settings(settings)
        engine = AlarmEngine(config)
        hub = Hub(settings.feed_queue_max)
        instance_id = instance_name(settings)
        if settings.redis_url:
            # Multi-instance: a gate in front of the plain engine, given to the pipeline
            # when it is built; the cluster is handed the pipeline once that has started.
            from monitor.cluster import connect

            cluster = connect(settings, store, instance_id)
            monitor = Monitor(
                settings, store, engine, hub, instance_id=instance_id, gate=cluster, relay=cluster
            )
            await monitor.start()
            await cluster.start(monitor)
            extras: list[Any] = [cluster.stop]
            log.info("multi-instance mode: feed and alarm ownership shared through Redis")
        else:
            monitor = Monitor(settings, store, engine, hub, instance_id=instance_id)
            await monitor.start()
            extras = []
        app.state.monitor = monitor
        extras += await start_extras(monitor)
        log.info("monitor ready on %s:%s (%s)", settings.host, settings.port, store.dialect)
        try:
            yield
        finally:
            for stop in reversed(extras):
                await stop()
            await monitor.stop()
            await store.close()
            await app.state.login_guard.aclose()

    app = FastAPI(
        title="Vigil monitor",
        version="0.1.0",
        description=(
            "In-session vital-signs monitor for infusion clinics. Not a certified medical "
            "device: the bedside monitor stays the primary alarm."
        ),
        lifespan=lifespan,
        # operationId = the route function's name: readable names in generated clients.
        generate_unique_id_function=_operation_id,
    )
    errors.install(app)
    app.state.settings = settings
    app.state.login_guard = auth.LoginGuard(settings)
    app.add_middleware(auth.LoginGate, guard=app.state.login_guard)
    app.add_middleware(NoStoreMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        )

    @app.get("/health", tags=["health"])
    async def health(request: Request) -> JSONResponse:
        """200 while every pipeline stage is healthy, else 503 naming the failing stages."""
        monitor: Monitor | None = getattr(request.app.state, "monitor", None)
        if monitor is None:
            return JSONResponse({"status": "starting", "failing": ["startup"]}, status_code=503)
        body = monitor.health_json()
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    for module in (auth, ward, sessions, reports, admin, ws, course):
        app.include_router(module.router)
    app.include_router(bounded.router_for(config))
    openapi.declare_clinic_choices(app, config)
    return app


def _operation_id(route: APIRoute) -> str:
    return route.name


async def start_extras(monitor: Monitor) -> list[Any]:
    """Optional edges (HL7 listener, retention sweeper); returns their stop functions."""
    stops: list[Any] = []
    settings = monitor.settings
    if settings.hl7_port is not None:
        from monitor.edges.hl7 import start_hl7

        server = await start_hl7(monitor, settings.hl7_host or settings.host, settings.hl7_port)

        async def stop_hl7() -> None:
            server.close()
            await server.wait_closed()

        stops.append(stop_hl7)
        log.info("HL7 PCD-01 (MLLP) listening on port %s", settings.hl7_port)
    if settings.retention_days is not None:
        task = asyncio.create_task(retention_sweeper(monitor, settings.retention_days))

        async def stop_sweeper() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        stops.append(stop_sweeper)
    return stops


async def retention_sweeper(monitor: Monitor, days: int, every_s: float = 3600.0) -> None:
    """Delete readings older than the retention period, at start and then hourly."""
    while True:
        try:
            n = await monitor.store.delete_readings_before(monitor.clock() - days * 86_400)
            if n:
                log.info("retention: deleted %d readings older than %d days", n, days)
        except Exception:
            log.exception("retention sweep failed")
        await asyncio.sleep(every_s)
