"""What keeps one client of ``mmlightning serve`` from harming another: limits checked before a request is read,
a time limit per request, and each request of a dynamic batch answered on its own.

- :class:`RequestGuard` (ASGI middleware): a 413 from the declared ``Content-Length`` before any of the body is
  read, a 400 for a JSON body that does not parse, a 504 for a request not answered within ``--timeout``.
- :class:`Refused`: a request refused alone. The model's ``decode_request`` and ``predict`` return it in the
  request's place instead of raising (which would fail every request batched with it).
- :class:`IsolatingLoop`: LitServe's batched loop, which sends a :class:`Refused` as that request's own error.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from litserve.loops.simple_loops import BatchedLoop
from litserve.utils import LitAPIStatus, PickleableHTTPException


@dataclass(frozen=True)
class Refused:
    """One request's error (its status and a message about that request only), in its place in a batch."""

    status: int
    detail: str


class IsolatingLoop(BatchedLoop):
    """Batches requests as LitServe does; a request answered with :class:`Refused` gets its own 4xx or 5xx while the
    others of its batch get their predictions."""

    def put_response(self, transport: Any, response_queue_id: int, uid: str, response_data: Any, status: Any,
                     response_type: Any) -> None:  # fmt: skip
        if isinstance(response_data, Refused) and status == LitAPIStatus.OK:
            response_data = PickleableHTTPException(response_data.status, response_data.detail)
            status = LitAPIStatus.ERROR
        super().put_response(transport, response_queue_id, uid, response_data, status, response_type)


class RequestGuard:
    """Before LitServe sees a request: a 413 from the declared ``Content-Length`` alone, before any of the body is
    read; a JSON body that does not parse is a 400 saying where it broke (LitServe would answer 500); a request
    not answered within ``timeout`` seconds is a 504."""

    def __init__(self, app: Any, max_size: int, timeout: float = 30.0) -> None:
        self.app, self.max_size, self.timeout = app, max_size, timeout

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        started = False

        async def sending(message: Any) -> None:
            nonlocal started
            started = started or message.get("type") == "http.response.start"
            await send(message)

        try:
            await asyncio.wait_for(self._checked(scope, receive, sending), self.timeout)
        except asyncio.TimeoutError:
            if not started:
                detail = f"the request was not answered within {self.timeout:g} s (--timeout)"
                await self._answer(504, detail, scope, receive, send)

    async def _checked(self, scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_size:
            detail = f"the request is {int(declared)} bytes, over the limit of {self.max_size} (--max_payload_size)"
            return await self._answer(413, detail, scope, receive, send)
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if kind not in (b"application/json", b"multipart/form-data"):
            detail = "send the row as JSON (content-type: application/json) or as a multipart form (curl -F)"
            return await self._answer(415, f"{detail}, not {kind.decode('latin-1') or 'no content type'}", scope,
                                      receive, send)  # fmt: skip
        body, more = bytearray(), True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_size:
                detail = f"the request is over the limit of {self.max_size} bytes (--max_payload_size)"
                return await self._answer(413, detail, scope, receive, send)
        problem = await _unreadable(kind, bytes(body), scope)
        if problem:
            return await self._answer(400, problem, scope, receive, send)
        sent = False

        async def replay() -> Any:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    async def _answer(status: int, detail: str, scope: Any, receive: Any, send: Any) -> None:
        from fastapi.responses import JSONResponse

        await JSONResponse({"detail": detail}, status_code=status, headers={"connection": "close"})(
            scope, receive, send
        )


async def _unreadable(kind: bytes, body: bytes, scope: Any) -> str | None:
    """Why a JSON or multipart body cannot be read (None: it can), before LitServe tries (it would answer 500)."""
    if kind == b"application/json":
        try:
            json.loads(body)
        except (ValueError, RecursionError) as err:
            return f"the body is not valid JSON ({err})"
        return None
    from starlette.datastructures import Headers
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def chunks() -> Any:
        yield body

    try:
        form = await MultiPartParser(Headers(scope=scope), chunks()).parse()
        await form.close()
    except (MultiPartException, ValueError, KeyError) as err:
        return f"the body is not a valid multipart form ({err})"
    return None
