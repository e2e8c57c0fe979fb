"""The panel's composition root: the FastAPI server with the proxy to the monitor
(dashboard/proxy.py) and the feed relay (dashboard/relay.py), and the Dash app on it with its
page shell and callbacks (dashboard/callbacks.py).

Everything shown comes from the monitor at the moment it is asked for; the panel keeps no
data of its own. Live values do not pass through here: the browser opens the monitor's feed
itself (assets/vigil.js), by way of the relay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from dash import Dash, dcc, html
from fastapi import FastAPI

from dashboard import callbacks, widgets
from dashboard.client import MonitorClient
from dashboard.constants import constants_json
from dashboard.proxy import add_proxy_routes
from dashboard.relay import FEED_PATH, add_feed_relay
from dashboard.security import SecurityHeaders
from dashboard.sessions import Sessions
from dashboard.settings import PanelSettings
from monitor.alarms.config import load_config

ASSETS = Path(__file__).parent / "assets"


def create_app(settings: PanelSettings | None = None) -> Dash:
    settings = settings or PanelSettings()
    monitor = MonitorClient(settings.monitor_url, settings.request_timeout_s)
    sessions = Sessions(monitor)
    constants = constants_json(load_config(settings.clinic_config))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await monitor.aclose()

    server = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    add_proxy_routes(server, monitor, sessions)
    add_feed_relay(server, settings, sessions)

    app = Dash(
        __name__,
        # Dash's stubs name Flask only; it serves from any ASGI/WSGI server object it is given.
        server=server,  # type: ignore[arg-type]
        title="Vigil \u2013 ward",
        assets_folder=str(ASSETS),
        suppress_callback_exceptions=True,
        update_title=None,  # type: ignore[arg-type]  # None: no "Updating..." title
        serve_locally=True,
    )
    # The page's language, for screen readers (and axe's html-has-lang rule).
    app.index_string = app.index_string.replace("<html>", '<html lang="en">', 1)
    app.layout = html.Div(
        id="root",
        children=[
            dcc.Location(id="url"),
            # Who is logged in (name and role, for the page); never the token, which only
            # the HttpOnly cookie holds (dashboard/sessions.py).
            dcc.Store(id="auth", storage_type="session"),
            dcc.Store(id="tz", data=0),
            dcc.Store(id="ctx-sink"),
            # What the browser's renderer needs, once (dashboard/constants.py).
            html.Div(
                id="vigil-config",
                hidden=True,
                **widgets.attrs({"data-feed-path": FEED_PATH, "data-constants": constants}),
            ),
            html.Div(id="page"),
        ],
    )
    callbacks.register(app, monitor, sessions)
    # Hashed lazily, at the first request: by then every inline script Dash writes is known.
    server.add_middleware(SecurityHeaders, script_hashes=app.csp_hashes)
    # Dash's FastAPI backend runs this setup (asset scan, script tags) on the first request
    # to "/" or a /_dash- route only: a first visit straight to /bed/X after a restart would
    # get a page without vigil.js, i.e. without live data. Do it now instead.
    app._setup_server()
    return app
