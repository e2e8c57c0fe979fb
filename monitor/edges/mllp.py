"""The MLLP edge: HL7 messages over TCP, framed 0x0B ... 0x1C 0x0D, one ACK per message.

Transport is python-hl7's asyncio MLLP server (``hl7.mllp.start_hl7_server``); this module
adds what a monitor needs around it: a size limit, an ACK for every block (even garbage, so
a gateway never waits on a silent socket), and a default handler that turns
``parse_pcd01`` plus a storage callback into the right ACK code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from hl7.mllp import start_hl7_server

from monitor.wire.pcd01 import (
    Hl7Error,
    Hl7ErrorCode,
    Pcd01Result,
    ack_for_error,
    build_ack,
    parse_pcd01,
)

log = logging.getLogger("monitor.wire.pcd01")

START_BLOCK: Final = b"\x0b"
END_BLOCK: Final = b"\x1c\x0d"
# PCD-01 messages are a few kilobytes; a megabyte is generous and still bounds memory.
DEFAULT_MAX_MESSAGE_BYTES: Final = 1024 * 1024

Handler = Callable[[str], Awaitable[str]]
# Stores a parsed message's readings (``result.readings``, of device ``result.device_name``;
# those whose seq is in ``result.corrections`` replace stored values) and returns once they
# are durable.
StoreCallback = Callable[[Pcd01Result], Awaitable[None]]


class UnknownDeviceError(Exception):
    """Raised by a store callback when no bed has this device name: answered with AR."""


class StorageError(Exception):
    """Raised by a store callback when the readings could not be stored: answered with AE."""


def decode_payload(payload: bytes) -> str:
    """HL7 text from a block: UTF-8 (PCD-01 profiles declare it), else Latin-1, never failing."""
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return payload.decode("latin-1")


def make_handler(
    store_callback: StoreCallback, *, clock: Callable[[], float] = time.time
) -> Handler:
    """A handler that parses PCD-01, stores through ``store_callback`` and answers the ACK.

    AA once ``store_callback`` returned (the readings are stored), with a warning ERR for
    each value-bearing row not stored (``Pcd01Result.warnings``); AR for a message type
    Vigil does not take or an unknown device (``UnknownDeviceError``); AE for anything
    else (content errors, ``StorageError``, unexpected exceptions). The callback may also
    raise ``Hl7Error`` to refuse with its own code.
    """

    async def handle(message_text: str) -> str:
        now = clock()
        try:
            result = parse_pcd01(message_text, now=now)
        except Hl7Error as exc:
            log.info("HL7 message refused: %s", exc)
            return ack_for_error(message_text, exc, now=now)
        try:
            await store_callback(result)
        except UnknownDeviceError as exc:
            detail = str(exc) or f"device {result.device_name!r} is not registered to a bed"
            log.info("HL7 message from unknown device %r", result.device_name)
            return build_ack(
                message_text, "AR", detail, now=now, error_code=Hl7ErrorCode.UNKNOWN_DEVICE
            )
        except Hl7Error as exc:
            return ack_for_error(message_text, exc, now=now)
        except StorageError as exc:
            log.warning("HL7 readings not stored: %s", exc)
            return build_ack(
                message_text,
                "AE",
                str(exc) or "readings could not be stored",
                now=now,
                error_code=Hl7ErrorCode.STORAGE_FAILED,
            )
        except Exception:
            log.exception("HL7 store callback failed")
            return build_ack(
                message_text,
                "AE",
                "readings could not be stored",
                now=now,
                error_code=Hl7ErrorCode.STORAGE_FAILED,
            )
        if result.warnings:
            log.info(
                "HL7 message %r stored with %d rows not stored",
                result.control_id,
                len(result.warnings),
            )
        return build_ack(message_text, "AA", now=now, warnings=result.warnings)

    return handle


async def serve_mllp(
    host: str,
    port: int,
    handler: Handler,
    *,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    idle_timeout: float | None = None,
    clock: Callable[[], float] = time.time,
) -> asyncio.Server:
    """Listen for MLLP on ``host:port``; each message's ACK is whatever ``handler`` returns.

    Messages on one connection are handled in order (MLLP is request/answer). A block over
    ``max_message_bytes`` is answered with AR and the connection closed, since its framing
    is lost; a block without the start byte gets AE and the connection carries on. With
    ``idle_timeout`` a connection that sends nothing for that long is closed.
    """
    connections: set[asyncio.Task[None]] = set()

    async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")

        def send(ack: str) -> None:
            writer.write(START_BLOCK + ack.encode("utf-8") + END_BLOCK)

        try:
            while True:
                try:
                    block = await asyncio.wait_for(reader.readuntil(END_BLOCK), idle_timeout)
                except asyncio.IncompleteReadError as exc:
                    if exc.partial.strip():
                        log.info(
                            "MLLP peer %s closed mid-message (%d bytes)", peer, len(exc.partial)
                        )
                    return
                except asyncio.LimitOverrunError:
                    log.warning(
                        "MLLP peer %s sent a message over %d bytes", peer, max_message_bytes
                    )
                    send(
                        build_ack(
                            None,
                            "AR",
                            f"message exceeds {max_message_bytes} bytes",
                            now=clock(),
                            error_code=Hl7ErrorCode.PARSE_ERROR,
                        )
                    )
                    await writer.drain()
                    return
                except TimeoutError:
                    log.info("MLLP peer %s idle, closing", peer)
                    return
                start = block.find(START_BLOCK)
                if start < 0 or block[:start].strip():
                    # Stray bytes between blocks (a sender's newline) are tolerated; data is not.
                    send(
                        build_ack(
                            None,
                            "AE",
                            "block does not begin with the MLLP start byte 0x0B",
                            now=clock(),
                            error_code=Hl7ErrorCode.PARSE_ERROR,
                        )
                    )
                    await writer.drain()
                    continue
                text = decode_payload(block[start + 1 : -len(END_BLOCK)])
                try:
                    ack = await handler(text)
                except Exception:
                    log.exception("HL7 handler failed")
                    ack = build_ack(
                        text,
                        "AE",
                        "internal error",
                        now=clock(),
                        error_code=Hl7ErrorCode.INTERNAL_ERROR,
                    )
                send(ack)
                await writer.drain()
        except (ConnectionError, OSError) as exc:
            log.info("MLLP peer %s dropped: %s", peer, exc)
        finally:
            writer.close()

    def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Keep a strong reference: the event loop holds tasks only weakly.
        task = asyncio.get_running_loop().create_task(serve_connection(reader, writer))
        connections.add(task)
        task.add_done_callback(connections.discard)

    server: asyncio.Server = await start_hl7_server(on_connect, host, port, limit=max_message_bytes)
    return server
