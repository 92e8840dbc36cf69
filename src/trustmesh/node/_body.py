"""Reading a request body with a size limit and a deadline (a client that sends
too much, or too slowly, is refused without holding the node)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request

from trustmesh._problems import Problem


async def read_limited(request: Request, limit: int, timeout: float) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise Problem("oversized", f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0

    async def collect() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Problem("oversized", f"the body is larger than {limit} bytes")
            chunks.append(chunk)

    try:
        await asyncio.wait_for(collect(), timeout)
    except TimeoutError:
        raise Problem("bad-request", f"the body did not arrive within {timeout:g} s") from None
    return b"".join(chunks)
