"""A login flood from a process of its own: `python -m tests.flood_logins HOST PORT NAME N`.

Opens N connections, says `ready`, waits for a line on standard input, then sends N wrong
password logins for NAME at once (one per connection) and prints one JSON list of
``[status, retry_after, code]``. Separate from the test's process so that the test's own
ack timing measures the monitor, not the client making the flood.
"""

from __future__ import annotations

import asyncio
import json
import sys
from urllib.parse import urlencode


async def one(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> list[object]:
    writer.write(request)
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(
        (k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])
    )
    code = None
    try:
        detail = json.loads(body).get("detail")
        code = detail.get("code") if isinstance(detail, dict) else None
    except ValueError:
        pass
    return [status, headers.get("retry-after"), code]


async def main(host: str, port: int, name: str, n: int) -> None:
    conns = [await asyncio.open_connection(host, port) for _ in range(n)]
    requests = []
    for i in range(n):
        body = urlencode({"username": name, "password": f"wrong-{i}"}).encode()
        requests.append(
            b"POST /api/auth/token HTTP/1.1\r\n"
            + f"Host: {host}:{port}\r\n".encode()
            + b"Content-Type: application/x-www-form-urlencoded\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    results = await asyncio.gather(
        *(one(r, w, q) for (r, w), q in zip(conns, requests, strict=True))
    )
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])))
