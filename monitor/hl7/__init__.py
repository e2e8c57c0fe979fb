"""HL7 v2 interfaces: IHE PCD-01 observations in (``pcd01``), MLLP transport (``mllp``)."""

from monitor.hl7.pcd01 import (
    Hl7Error,
    Hl7ErrorCode,
    IgnoredObx,
    Pcd01Result,
    build_ack,
    derive_seq,
    parse_pcd01,
)

__all__ = [
    "Hl7Error",
    "Hl7ErrorCode",
    "IgnoredObx",
    "Pcd01Result",
    "build_ack",
    "derive_seq",
    "parse_pcd01",
]
