"""OpenAPI links: from the operations that produce ids (sessions, alarms, devices, users,
beds) to those that take them, so a generated client or a stateful tester can chain
admit -> event -> report. Operation ids are the route functions' names (monitor/app.py).

The error answers are declared beside the routes: per router what every route of it can
answer (monitor/edges/api/errors.py ``COMMON``), per route the rest (404, 409, 429).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from fastapi import FastAPI

from monitor.edges.api import idempotency

if TYPE_CHECKING:
    from monitor.alarms import ClinicConfig

_SESSION_CONSUMERS: Final = (
    "get_session",
    "add_event",
    "get_limits",
    "put_limits",
    "report",
    "report_as_csv",
    "report_as_fhir",
    "get_rems",
    "get_rems_page",
    "sign_rems",
    "mark_rems_filed",
)
_PATIENT_CONSUMERS: Final = ("get_patient", "get_patient_fhir")
_BED_QUERIES: Final = ("list_readings", "list_alarms", "list_sessions")


def _session_links(expr: str) -> dict[str, Any]:
    return {
        f"session_{target}": {"operationId": target, "parameters": {"session_id": expr}}
        for target in _SESSION_CONSUMERS
    }


def _patient_links(expr: str) -> dict[str, Any]:
    return {
        f"patient_{target}": {"operationId": target, "parameters": {"patient_id": expr}}
        for target in _PATIENT_CONSUMERS
    }


def _bed_links(expr: str) -> dict[str, Any]:
    links: dict[str, Any] = {
        f"bed_{target}": {"operationId": target, "parameters": {"query.bed": expr}}
        for target in _BED_QUERIES
    }
    links["bed_audio_pause"] = {"operationId": "audio_pause", "parameters": {"bed_id": expr}}
    links["bed_create_session"] = {"operationId": "create_session", "requestBody": {"bed": expr}}
    return links


# operation -> status -> links. Expressions are OpenAPI runtime expressions.
LINKS: Final[Mapping[str, Mapping[str, dict[str, Any]]]] = {
    "create_session": {
        "201": {
            **_session_links("$response.body#/id"),
            **_patient_links("$response.body#/patient_id"),
        }
    },
    "list_sessions": {
        "200": {
            **_session_links("$response.body#/sessions/0/id"),
            **_patient_links("$response.body#/sessions/0/patient_id"),
        }
    },
    "get_session": {
        "200": {
            **_session_links("$response.body#/id"),
            **_patient_links("$response.body#/patient_id"),
        }
    },
    "rems_pending": {
        "200": {
            **_session_links("$response.body#/records/0/session_id"),
            **_patient_links("$response.body#/records/0/patient_id"),
        }
    },
    "add_event": {"200": _session_links("$response.body#/id")},
    "list_beds": {"200": _bed_links("$response.body#/0/id")},
    "list_alarms": {
        "200": {
            "alarm_acknowledge": {
                "operationId": "acknowledge",
                "parameters": {"alarm_id": "$response.body#/alarms/0/id"},
            }
        }
    },
    "add_device": {
        "201": {
            "device_revoke": {
                "operationId": "revoke_device",
                "parameters": {"device_id": "$response.body#/device_id"},
            },
            **_bed_links("$response.body#/bed"),
        }
    },
    "add_user": {
        "201": {
            "user_login": {
                "operationId": "login",
                "requestBody": {
                    "username": "$response.body#/name",
                    "password": "$request.body#/password",
                },
            }
        }
    },
}


def links(operation: str) -> dict[str, Any]:
    """The ``openapi_extra`` of a route: its links to the operations that take its ids."""
    return {
        "responses": {
            status: {"links": dict(by_name)} for status, by_name in LINKS[operation].items()
        }
    }


def declare_clinic_choices(app: FastAPI, config: ClinicConfig) -> None:
    """Name in /openapi.json the choices that come from the clinic configuration, which a
    static model cannot know: the protocol ids an admission takes. The route still checks them
    (422 ``invalid``); this only lets a generated client or a fuzzer offer the right ones."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        prop = schema["components"]["schemas"]["SessionCreate"]["properties"]["protocol"]
        for branch in prop.get("anyOf", [prop]):
            if branch.get("type") == "string":
                branch["enum"] = sorted(config.protocols)
        for path, operations in schema["paths"].items():
            for method, op in operations.items():
                if idempotency.takes_key(method.upper(), path):
                    op.setdefault("parameters", []).append(idempotency.documented_header())
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
