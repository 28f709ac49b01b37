"""Live events for the console: Server-Sent Events and a WebSocket twin.

Both carry `{"type", "at", "data"}` JSON per event. Each client gets its own bounded subscription
on the EventBus, so a stalled browser loses events (counted by the bus) instead of slowing the
signalling core. The access token may come as `?token=` here because EventSource and browser
WebSockets cannot send an Authorization header.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from xueliang.api.deps import User, current_user_or_query, get_platform, user_from_token
from xueliang.api.errors import ApiError
from xueliang.security import rights

router = APIRouter(tags=["events"])

PING_SECONDS = 15.0
TYPES = Query(max_length=500, pattern=r"^[a-z._,]*$",
              description="comma-separated event types to receive (all when absent)")


def _types(value: str | None) -> set[str] | None:
    names = {t.strip() for t in (value or "").split(",") if t.strip()}
    return names or None


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)


@router.get("/events", summary="Server-Sent Events stream (EventSource)",
            responses={200: {"content": {"text/event-stream": {}}}})
async def sse(
    request: Request,
    user: Annotated[User, Depends(current_user_or_query)],
    types: Annotated[str | None, TYPES] = None,
) -> StreamingResponse:
    if not rights.allows(user.role, rights.VIEWER):
        raise ApiError(403, "forbidden", "forbidden")
    bus = get_platform(request).events
    wanted = _types(types)

    async def stream() -> AsyncIterator[str]:
        # Subscribed inside the generator so the `finally` always pairs with it.
        sub = bus.subscribe(types=wanted)
        try:
            yield "retry: 3000\n: connected\n\n"
            while True:
                try:
                    ev = await asyncio.wait_for(sub.get(), PING_SECONDS)
                except TimeoutError:
                    yield ": ping\n\n"
                    continue
                if ev is None:
                    return
                yield f"event: message\ndata: {_dumps(ev.as_json())}\n\n"
        finally:
            sub.close()

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def ws_user(ws: WebSocket) -> User | None:
    """Authenticate a WebSocket from `?token=` or the Authorization header; close 1008 when refused."""
    token = ws.query_params.get("token")
    auth = ws.headers.get("authorization", "")
    if not token and auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    try:
        return await user_from_token(get_platform(ws), token)
    except ApiError as exc:
        await ws.close(code=1008, reason=exc.detail[:100])
        return None


@router.websocket("/events/ws")
async def events_ws(ws: WebSocket) -> None:
    user = await ws_user(ws)
    if user is None:
        return
    await ws.accept()
    sub = get_platform(ws).events.subscribe(types=_types(ws.query_params.get("types")))

    async def watch_disconnect() -> None:
        # The client only listens; reading is how we learn it went away, which ends `sub`.
        try:
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return
        except (WebSocketDisconnect, RuntimeError):
            return
        finally:
            sub.close()

    watcher = asyncio.create_task(watch_disconnect())
    try:
        async for ev in sub:
            await ws.send_text(_dumps(ev.as_json()))
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        sub.close()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
        with contextlib.suppress(Exception):
            await ws.close()
