"""httpx for the tests, with one TLS context shared by every client.

httpx builds a TLS context for each client it makes, loading certifi's CA bundle (~50 ms of
CPU), even for plain-http URLs; ``httpx.get`` and friends make a client per call. Profiled, a
quarter of an in-process API module's CPU went there. Tests that talk TLS to a CA of their
own pass their own ``verify``.
"""

from __future__ import annotations

import ssl
from typing import Any

import certifi
import httpx

TLS = ssl.create_default_context(cafile=certifi.where())


def _kw(kw: dict[str, Any]) -> dict[str, Any]:
    kw.setdefault("verify", TLS)
    return kw


def request(method: str, url: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, url, **_kw(kw))


def get(url: str, **kw: Any) -> httpx.Response:
    return httpx.get(url, **_kw(kw))


def post(url: str, **kw: Any) -> httpx.Response:
    return httpx.post(url, **_kw(kw))


def put(url: str, **kw: Any) -> httpx.Response:
    return httpx.put(url, **_kw(kw))


def patch(url: str, **kw: Any) -> httpx.Response:
    return httpx.patch(url, **_kw(kw))


def delete(url: str, **kw: Any) -> httpx.Response:
    return httpx.delete(url, **_kw(kw))


def options(url: str, **kw: Any) -> httpx.Response:
    return httpx.options(url, **_kw(kw))


def Client(**kw: Any) -> httpx.Client:  # noqa: N802  (stands in for the class)
    return httpx.Client(**_kw(kw))


def AsyncClient(**kw: Any) -> httpx.AsyncClient:  # noqa: N802
    return httpx.AsyncClient(**_kw(kw))
