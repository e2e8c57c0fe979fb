"""The panel's small building blocks: shown/hidden styles, data-* attributes, a command's
message, a number field, an override reason, the browser's UTC offset.

A leaf module (it imports nothing from dashboard): layout, bedpage, rems and the callbacks use
it, so the page modules import one way (tests/test_import_layers.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from dash import dcc, html

from monitor.core.model import Role

HIDDEN: Final[dict[str, str]] = {"display": "none"}
SHOWN: Final[dict[str, str]] = {}
OVERRIDE_ROLES: Final[frozenset[str]] = frozenset({Role.CHARGE, Role.ADMIN})
# dcc.Input writes autocomplete="off" unless told otherwise, which axe-core finds invalid on a
# number field (a serious violation); an empty value leaves the browser's default.
NO_AUTOCOMPLETE: Final = ""


def attrs(values: Mapping[str, str]) -> dict[str, Any]:
    """data-* and aria-* attributes for a Dash component (they can only go as keywords)."""
    return dict(values)


def message(text: str, *, error: bool = False) -> html.Div:
    """A command's outcome under its form; ``data-error`` tells the tests and the styles which."""
    return html.Div(
        text, className="error" if error else "ok", **attrs({"data-error": str(error).lower()})
    )


def tz_offset(tz: Any) -> int:
    """The browser's offset in minutes from its store; 0 (UTC) before the browser reports it."""
    return int(tz) if isinstance(tz, int | float) else 0


def number_field(label: str, input_id: str, **bounds: Any) -> list[Any]:
    """A form's label and its number box (``min``/``max``/``step`` as given), autocomplete left
    to the browser (see NO_AUTOCOMPLETE)."""
    return [
        html.Label(label, htmlFor=input_id),
        dcc.Input(id=input_id, type="number", autoComplete=NO_AUTOCOMPLETE, **bounds),
    ]


def override_reason(
    fields_id: str, input_id: str, label: str = "Override reason (charge nurse or admin)"
) -> html.Div:
    """The reason box an override needs, hidden until the callbacks show it to OVERRIDE_ROLES."""
    return html.Div(
        id=fields_id,
        style=HIDDEN,
        children=[
            html.Label(label, htmlFor=input_id),
            dcc.Input(id=input_id, type="text", maxLength=1000),
        ],
    )


def dom_id(ident: Mapping[str, str]) -> str:
    """The DOM id Dash gives a pattern-matching id (keys sorted, compact JSON), for labels."""
    return json.dumps(dict(ident), sort_keys=True, separators=(",", ":"))
