"""Request bodies read with a cap per endpoint, while streaming and before any parsing.

A declared Content-Length over the cap is refused before a byte is read; a body
that grows past it is refused without reading the rest. Parsing errors (bad JSON,
too deep, too many fields) are the client's: 400, never 500.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

FORM_CAP = 16 * 1024  # every form drip serves fits many times over
WEBHOOK_CAP = 5 * 1024 * 1024  # SendGrid batches are a few hundred KiB at most


async def read_capped(request: Request, cap: int) -> bytes:
    """The whole body, or HTTPException 413 as soon as it is known to exceed ``cap`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPException(400)
        if int(declared) > cap:
            raise HTTPException(413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise HTTPException(413)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    """The decoded JSON document; ValueError for anything else, absurd nesting included."""
    try:
        return json.loads(body)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def parse_form(body: bytes, *, max_fields: int) -> FormData:
    """An ``application/x-www-form-urlencoded`` body (what every drip form posts); 400 when malformed."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=max_fields
        )
    except ValueError:
        raise HTTPException(400) from None
    fields: list[tuple[str, str | UploadFile]] = list(pairs)
    return FormData(fields)


async def read_form(request: Request, *, max_fields: int, cap: int = FORM_CAP) -> FormData:
    return parse_form(await read_capped(request, cap), max_fields=max_fields)
