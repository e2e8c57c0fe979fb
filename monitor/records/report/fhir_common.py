"""What every FHIR R4 builder of the report shares (docs/integration.md "FHIR export"): the
code systems, the stable ids and the Observation category, so a session's Bundle, its
protocol part and the course all spell them the same way."""

from __future__ import annotations

import uuid
from typing import Any, Final

LOINC: Final = "http://loinc.org"
UCUM: Final = "http://unitsofmeasure.org"
CATEGORY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
_NAMESPACE: Final = uuid.UUID("6f1d7f8e-3a6b-5c2e-9d41-5a0c1b7e2f10")


def stable_uuid(*parts: object) -> str:
    """A UUID v5 of stable keys, so the same record exports to the same ids."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(str(p) for p in parts)))


def category(code: str, display: str) -> list[dict[str, Any]]:
    """An Observation's ``category`` (such as ``vital-signs`` or ``survey``)."""
    return [
        {"coding": [{"system": CATEGORY_SYSTEM, "code": code, "display": display}], "text": display}
    ]
