"""Request bodies as they are validated, so /openapi.json describes exactly what is accepted.

- Session events are a union discriminated by ``type``; each type has its own ``data`` model.
  Observations carry one or more kinds (MOAA/S, CADSS-6, a side effect, a medication, a note;
  scales and sources in docs/api.md).
- Bodies bounded by the clinic configuration (per-session limit overrides, the audio pause)
  are built from that configuration when the app is made: the API, the alarm engine and the
  document read the same numbers, so they cannot disagree.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator
from typing_extensions import TypedDict

from monitor.alarms.config import DIRECTIONS, PRIORITIES, ClinicConfig
from monitor.core.model import ID_PATTERN, SIGNAL_RANGES

# The same rule as monitor/core/model.py's ID_PATTERN, in the form JSON Schema and pydantic share.
ID_REGEX: Final = ID_PATTERN.pattern
IdField = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_REGEX)]

# Every string the API takes refuses NUL (monitor/edges/api/deps.py: PostgreSQL cannot store it);
# free text says so in the document too, so that generated requests respect it.
NO_NUL: Final = r"^[^\x00]*$"


def text(max_length: int, min_length: int = 1) -> Any:
    """A free-text field: bounded, no NUL."""
    return Field(min_length=min_length, max_length=max_length, pattern=NO_NUL)


# A free-form object beside a phase event: bounded so a client cannot store megabytes.
MAX_DATA_CHARS: Final = 4000

# Declared so generators and clients produce RFC 3339; parsed (and refused) in the route.
TIMESTAMP: Final[dict[str, Any]] = {"format": "date-time", "examples": ["2026-11-23T15:00:01.000Z"]}


# JSON without NUL is what StrictRequest (monitor/edges/api/deps.py) lets through; the document
# says so for keys and top-level strings (a recursive schema defeats client generators).
NoNulText = Annotated[str, Field(pattern=NO_NUL)]
NoNulKeys: Final[dict[str, Any]] = {"propertyNames": {"pattern": NO_NUL}}
# One level of nesting, of scalars: deep enough for what clients record beside an event,
# and every string in it is declared NUL-free.
DataScalar = NoNulText | int | float | bool | None
DataValue = (
    DataScalar
    | list[DataScalar]
    | Annotated[dict[str, DataScalar], Field(json_schema_extra=NoNulKeys)]
)
# The string half of an optional timestamp, so the format sits where generators read it.
Timestamp = Annotated[str, Field(max_length=40, json_schema_extra=TIMESTAMP)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _signal_field(signal: str) -> Any:
    lo, hi = SIGNAL_RANGES[signal]
    return (float, Field(default=None, ge=lo, le=hi, allow_inf_nan=False))


# A session's baseline: any of the signals, each within what a body can show (docs/protocol.md).
Baseline: type[BaseModel] = create_model(
    "Baseline",
    __config__=ConfigDict(extra="forbid"),
    **{signal: _signal_field(signal) for signal in SIGNAL_RANGES},
)


# A questionnaire's item answers: exactly as many integers 0-3 as it has items (monitor.clinical.scores).
ItemScore = Annotated[int, Field(ge=0, le=3, strict=True)]
Phq9Items = Annotated[list[ItemScore], Field(min_length=9, max_length=9)]
Gad7Items = Annotated[list[ItemScore], Field(min_length=7, max_length=7)]


class Observation(TypedDict, total=False):
    """What a nurse observed; only the kinds given are stored (a missing one: not assessed).

    MOAA/S 0-5 (5 responds readily to name, 0 no response to pain); CADSS-6 0-24 (six items
    scored 0-4); PHQ-9 as its 9 item answers 0-3 and GAD-7 as its 7 (the monitor stores the
    totals beside them, docs/course.md); the REMS form's yes/no answers (sedation,
    dissociation, respiratory depression, a serious adverse event) and an adverse event's
    description. Numbers are strict: ``"4"`` or ``true`` is not a score."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    moaas: Annotated[int, Field(ge=0, le=5, strict=True)]
    cadss6: Annotated[int, Field(ge=0, le=24, strict=True)]
    phq9: Phq9Items
    gad7: Gad7Items
    side_effect: Annotated[str, text(200)]
    medication: Annotated[str, text(500)]
    note: Annotated[str, text(2000)]
    sedation: Annotated[bool, Field(strict=True)]
    dissociation: Annotated[bool, Field(strict=True)]
    respiratory_depression: Annotated[bool, Field(strict=True)]
    serious_adverse_event: Annotated[bool, Field(strict=True)]
    adverse_event: Annotated[str, text(1000)]


class _Event(_Body):
    at: Timestamp | None = Field(
        default=None,
        description="When it happened (RFC 3339); default now, at most 5 minutes ahead.",
    )


class _PhaseEvent(_Event):
    data: Annotated[dict[str, DataValue], Field(json_schema_extra=NoNulKeys)] | None = Field(
        default=None, description="Free-form details recorded with the event (4000 chars)."
    )

    @model_validator(mode="after")
    def _small(self) -> _PhaseEvent:
        if self.data is not None and len(repr(self.data)) > MAX_DATA_CHARS:
            raise ValueError("data is too large")
        return self


class InfusionStart(_PhaseEvent):
    type: Literal["infusion_start"]


class InfusionPauseData(BaseModel):
    model_config = ConfigDict(extra="allow")

    # Why dosing was paused (the administration record, docs/protocols.md "Doses"); shown in
    # the report. Optional: a pause is never refused for want of one.
    reason: str | None = Field(default=None, min_length=1, max_length=1000, pattern=NO_NUL)


class InfusionPause(_PhaseEvent):
    """Pauses dosing; ``data.reason`` says why (shown in the report's administration record)."""

    type: Literal["infusion_pause"]
    data: InfusionPauseData | None = None  # type: ignore[assignment]


class InfusionResume(_PhaseEvent):
    type: Literal["infusion_resume"]


class InfusionStop(_PhaseEvent):
    """Ends the infusion; the session moves to recovery."""

    type: Literal["infusion_stop"]


class End(_PhaseEvent):
    """Ends the session; the bed can take the next patient."""

    type: Literal["end"]


class ObservationEvent(_Event):
    type: Literal["observation"]
    data: Observation | None = None


class ChecklistEvent(_Event):
    """Pre-dose checklist answers, ``{ITEM_ID: VALUE}`` with the ids of the session's
    protocol (GET /api/protocols): ``confirm`` true, ``text`` a non-empty string, ``number`` a
    number, ``time`` an RFC 3339 time; checked against the protocol (docs/protocols.md)."""

    type: Literal["checklist"]
    data: Annotated[dict[str, DataValue], Field(min_length=1, json_schema_extra=NoNulKeys)]


class DischargeRequest(_PhaseEvent):
    """The nurse asks to discharge: anchors the protocol's pre-discharge checkpoints."""

    type: Literal["discharge_request"]


# The data of the event types whose data a protocol rule reads, one model each
# (docs/protocols.md). Other keys are kept as given: clients may record more than the rules
# read.
class InfusionStartData(BaseModel):
    model_config = ConfigDict(extra="allow")

    # A prescriber's decision to dose over a high pre-dose BP (both needed, audited).
    prescriber: str | None = Field(default=None, max_length=128, pattern=NO_NUL)
    reason: str | None = Field(default=None, max_length=1000, pattern=NO_NUL)


class EndData(BaseModel):
    model_config = ConfigDict(extra="allow")

    # A charge nurse's or admin's decision to end over a blocked discharge (audited).
    override_reason: str | None = Field(default=None, max_length=1000, pattern=NO_NUL)


class DoseData(_Body):
    """One administration (docs/protocols.md "Doses"); the monitor completes the figures."""

    drug: str | None = Field(default=None, min_length=1, max_length=64, pattern=NO_NUL)
    route: Literal["iv", "intranasal"] | None = None
    mg_per_kg: float | None = Field(default=None, gt=0, le=10, strict=True)
    total_mg: float | None = Field(default=None, gt=0, le=5000, strict=True)
    concentration_mg_ml: float | None = Field(default=None, gt=0, le=1000, strict=True)
    rate: str | None = Field(default=None, min_length=1, max_length=64, pattern=NO_NUL)
    lot: str | None = Field(default=None, min_length=1, max_length=64, pattern=NO_NUL)
    override_reason: str | None = Field(default=None, max_length=1000, pattern=NO_NUL)


class DoseEvent(_Event):
    type: Literal["dose"]
    data: DoseData


class RemsSign(_Body):
    """Sign a session's REMS monitoring record (docs/course.md): a complete one as it is; an
    incomplete one only by charge or admin with a ``reason`` (audited)."""

    reason: str | None = Field(default=None, min_length=1, max_length=1000, pattern=NO_NUL)


EVENT_DATA: Final[dict[str, type[BaseModel]]] = {
    "infusion_start": InfusionStartData,
    "end": EndData,
}

SessionEvent = Annotated[
    InfusionStart
    | InfusionPause
    | InfusionResume
    | InfusionStop
    | End
    | ObservationEvent
    | ChecklistEvent
    | DischargeRequest
    | DoseEvent,
    Field(discriminator="type"),
]


def event_data(event: BaseModel) -> dict[str, Any] | None:
    """The ``data`` to store, as the client sent it (an observation: only the kinds given)."""
    data = getattr(event, "data", None)
    if isinstance(data, BaseModel):
        return data.model_dump(exclude_none=True)
    return dict(data) if data is not None else None


# --- bodies bounded by the clinic configuration ----------------------------------------


def limits_update_model(config: ClinicConfig) -> type[BaseModel]:
    """The PUT limits body: per signal the clinic lets a session override, per direction and
    priority a threshold within the clinic's ``override_bounds``; never null (a session
    cannot switch an alarm off). Cross-threshold rules (a more severe priority lies further
    out), which JSON Schema cannot state, are :func:`monitor.alarms.config.check_consistent`'s, run by the route
    once the session is known to be open."""
    signals: dict[str, Any] = {}
    for signal, (lo, hi) in config.override_bounds.items():
        threshold = (float, Field(default=None, ge=lo, le=hi, allow_inf_nan=False))
        name = signal.capitalize()
        by_priority = create_model(  # type: ignore[call-overload]
            f"{name}Thresholds",
            __config__=ConfigDict(extra="forbid"),
            **{p.value: threshold for p in PRIORITIES},
        )
        directions = create_model(  # type: ignore[call-overload]
            f"{name}Override",
            __config__=ConfigDict(extra="forbid"),
            **{d.value: (by_priority, Field(default=None)) for d in DIRECTIONS},
        )
        signals[signal] = (directions, Field(default=None))

    overrides_model = create_model(
        "LimitOverrides",
        __config__=ConfigDict(extra="forbid"),
        **signals,
    )
    return create_model(
        "LimitsUpdate",
        __config__=ConfigDict(extra="forbid"),
        overrides=(overrides_model, ...),
        # Why the limits change (the panel asks for it); kept in the audit log.
        reason=(
            str | None,
            Field(default=None, min_length=1, max_length=1000, pattern=NO_NUL),
        ),
    )


def audio_pause_model(config: ClinicConfig) -> type[BaseModel]:
    """The audio-pause body: seconds up to the clinic's ``audio_pause_max_s`` (default its
    ``audio_pause_s``), the same bound the engine enforces."""
    # Unknown keys are ignored here, as they always were.
    return create_model(
        "AudioPause",
        seconds=(
            float | None,
            Field(
                default=None,
                gt=0,
                le=config.audio_pause_max_s,
                allow_inf_nan=False,
                description=f"Default {config.audio_pause_s:g} s (the clinic's audio_pause_s).",
            ),
        ),
    )


class LoginForm(_Body):
    """The OAuth2 password grant's form (RFC 6749 4.3.2) as it is checked: a user name and a
    password, both non-empty (an empty form field is a missing one), no NUL; ``grant_type``,
    if given, is ``password``; the optional client fields; nothing else."""

    username: str = text(256)
    password: str = text(1024)
    grant_type: str = Field(default="password", pattern="^password$")
    scope: str = Field(default="", max_length=1024, pattern=NO_NUL)
    client_id: str | None = Field(default=None, max_length=256, pattern=NO_NUL)
    client_secret: str | None = Field(default=None, max_length=1024, pattern=NO_NUL)
