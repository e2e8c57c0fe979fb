"""Vigil's nurse's panel: a Dash app that reads from and commands the monitor over HTTP.

The browser takes live updates straight from the monitor's feed websocket (assets/vigil.js);
this package renders pages and forwards commands. It keeps no state of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dashboard.settings import PanelSettings


def create_app(settings: PanelSettings | None = None) -> Any:
    """Build the panel (imports Dash lazily so `import dashboard` stays cheap)."""
    from dashboard.app import create_app as _create

    return _create(settings)
