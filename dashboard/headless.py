"""How Vigil starts headless Chromium (screenshots, browser tests, the panel benchmark).

Debian's chromium, never a downloaded build. As root it needs --no-sandbox; on this
network the background-networking flags stop it from calling out at every start.
"""

from __future__ import annotations

import os

CHROMIUM = os.environ.get("VIGIL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
