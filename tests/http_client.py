"""httpx for the tests, with one TLS context shared by every client.

httpx builds a TLS context for each client it makes, loading certifi's CA bundle (~50 ms of
CPU), even for plain-http URLs; ``httpx.get`` and friends make a client per call. Profiled, a
quarter of an in-process API module's CPU went there. Tests that talk TLS to a CA of their
own pass their own ``verify``.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import certifi
import httpx

from dashboard.client import KEEPALIVE_LIMITS

TLS = ssl.create_default_context(cafile=certifi.where())


def request(method: str, url: str, **kw: Any) -> httpx.Response:
    """``httpx.request`` with the shared context (unless ``verify`` is given)."""
    kw.setdefault("verify", TLS)
    return httpx.request(method, url, **kw)


get = functools.partial(request, "GET")
post = functools.partial(request, "POST")
put = functools.partial(request, "PUT")
patch = functools.partial(request, "PATCH")
delete = functools.partial(request, "DELETE")
options = functools.partial(request, "OPTIONS")


def Client(**kw: Any) -> httpx.Client:  # noqa: N802  (stands in for the class)
    kw.setdefault("verify", TLS)
    # Below the server's keep-alive, as the panel's client does (dashboard/client.py).
    kw.setdefault("limits", KEEPALIVE_LIMITS)
    return httpx.Client(**kw)


def AsyncClient(**kw: Any) -> httpx.AsyncClient:  # noqa: N802
    kw.setdefault("verify", TLS)
    kw.setdefault("limits", KEEPALIVE_LIMITS)
    return httpx.AsyncClient(**kw)
