"""Live media outputs: HTTP-FLV, WebSocket-FLV, fMP4 over WebSocket (for MSE) and HLS (fMP4).

Each connection is one hub viewer. Frames are taken in batches (everything queued since the last
loop turn) and written as one chunk/message per batch for FLV, so a busy server does one socket
write per turn per viewer instead of one per frame. Authorisation is the short-lived play token
from `POST /channels/{id}/play`, checked with `platform.media.check_token` (browsers cannot put
headers on <video>/WebSocket requests, so the token rides in the URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import Response, StreamingResponse

from xueliang.api.deps import StreamId, get_platform
from xueliang.api.errors import ApiError
from xueliang.media.flv import FlvMuxer
from xueliang.media.fmp4 import Fmp4Muxer
from xueliang.media.frame import Frame

router = APIRouter(prefix="/media", tags=["media"])

BATCH = 64
# WebSocket close codes: 1008 policy violation (bad token), 4404 unknown stream, 1000 stream ended.
WS_BAD_TOKEN = 1008
WS_NOT_FOUND = 4404


def _media(platform: Any) -> Any:
    media = getattr(platform, "media", None)
    if media is None:
        raise ApiError(503, "media service not running", "unavailable")
    return media


def _authorised_hub(platform: Any, stream_id: str, token: str | None) -> Any:
    media = _media(platform)
    if not token or not media.check_token(stream_id, token):
        raise ApiError(403, "invalid or expired play token", "forbidden")
    hub = media.hub(stream_id)
    if hub is None:
        raise ApiError(404, f"stream {stream_id} not found (start it with POST /channels/{{id}}/play)", "not_found")
    return hub


def _flv_muxer(hub: Any) -> tuple[FlvMuxer, bytes]:
    muxer = FlvMuxer(hub.video_codec, hub.audio_codec)
    return muxer, muxer.header(width=hub.width or 0, height=hub.height or 0)


@router.get("/{stream_id}.flv", summary="HTTP-FLV live stream",
            responses={200: {"content": {"video/x-flv": {}}}})
async def http_flv(
    stream_id: StreamId, request: Request,
    token: Annotated[str | None, Query(max_length=512, description="play token")] = None,
) -> StreamingResponse:
    hub = _authorised_hub(get_platform(request), stream_id, token)

    async def body() -> AsyncIterator[bytes]:
        # Viewer added inside the generator so the `finally` always removes it (also when the
        # client disconnects: Starlette cancels the generator).
        viewer = hub.add_viewer()
        try:
            muxer, head = _flv_muxer(hub)
            yield head
            while True:
                batch = await viewer.get_batch(BATCH)
                if batch is None:
                    return
                chunk = b"".join([muxer.tag(f) for f in batch])
                if chunk:
                    yield chunk
        finally:
            hub.remove_viewer(viewer)

    return StreamingResponse(body(), media_type="video/x-flv",
                             headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"})


async def _ws_open(ws: WebSocket, stream_id: str) -> Any:
    """Check token and stream before accepting; close with a reason when refused."""
    try:
        if not stream_id.replace("_", "").replace("-", "").replace(".", "").isalnum() or len(stream_id) > 80:
            raise ApiError(404, "invalid stream id", "not_found")
        hub = _authorised_hub(get_platform(ws), stream_id, ws.query_params.get("token"))
    except ApiError as exc:
        await ws.close(code=WS_BAD_TOKEN if exc.status in (401, 403) else WS_NOT_FOUND, reason=exc.detail[:100])
        return None
    await ws.accept()
    return hub


async def _pump(ws: WebSocket, hub: Any, produce: Callable[[Any], Coroutine[Any, Any, None]]) -> None:
    """Run `produce(viewer)` until the stream ends or the client leaves, then clean up."""
    viewer = hub.add_viewer()

    async def watch() -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while (await ws.receive())["type"] != "websocket.disconnect":
                pass

    producer = asyncio.create_task(produce(viewer))
    watcher = asyncio.create_task(watch())
    try:
        await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (producer, watcher):
            t.cancel()
        for t in (producer, watcher):
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError, OSError):
                await t
        hub.remove_viewer(viewer)
        with contextlib.suppress(Exception):
            await ws.close(1000, "stream ended")


@router.websocket("/{stream_id}.flv")
async def ws_flv(ws: WebSocket, stream_id: str) -> None:
    """WebSocket-FLV: the same byte stream as HTTP-FLV, one binary message per batch."""
    hub = await _ws_open(ws, stream_id)
    if hub is None:
        return

    async def produce(viewer: Any) -> None:
        muxer, head = _flv_muxer(hub)
        await ws.send_bytes(head)
        while True:
            batch = await viewer.get_batch(BATCH)
            if batch is None:
                return
            chunk = b"".join([muxer.tag(f) for f in batch])
            if chunk:
                await ws.send_bytes(chunk)

    await _pump(ws, hub, produce)


class Fmp4Session:
    """State of one fMP4 viewer: waits for a keyframe, announces the codec, sends init + fragments.

    Fragments are one frame each (lowest latency) but held back by one frame so each sample's
    duration is the true distance to the next frame: MSE treats a dts jump of more than two
    frame durations as a discontinuity and drops frames until the next keyframe.
    """

    def __init__(self, codec: str, width: int, height: int) -> None:
        self.muxer = Fmp4Muxer(codec, width, height)
        self.started = False
        self.pending: Frame | None = None

    def announce(self) -> str:
        m = self.muxer
        return json.dumps({"codec": m.codec_string, "mime": m.mime_type, "width": m.width, "height": m.height})

    def feed(self, frame: Frame) -> list[str | bytes]:
        """Messages (JSON text, then binary) to send for this frame."""
        m = self.muxer
        out: list[str | bytes] = []
        if not frame.is_video or frame.codec != m.video_codec:
            return out  # fMP4 output is video-only for now
        if not self.started:
            if not frame.keyframe or not m.update_parameter_sets(frame):
                return out
            self.started = True
            out.append(self.announce())
            out.append(m.init_segment())
        elif frame.keyframe and m.update_parameter_sets(frame):
            # New SPS/PPS (resolution change): flush what we hold, re-announce, new init segment.
            out.extend(self._flush(frame.dts))
            out.append(self.announce())
            out.append(m.init_segment())
        out.extend(self._flush(frame.dts))
        self.pending = frame
        return out

    def _flush(self, next_dts: int) -> list[str | bytes]:
        prev = self.pending
        if prev is None:
            return []
        self.pending = None
        d = next_dts - prev.dts
        if d > 0 and hasattr(self.muxer, "_last_duration"):
            self.muxer._last_duration = d  # duration of the single sample of this fragment
        frag = self.muxer.fragment([prev])
        return [frag] if frag else []


@router.websocket("/{stream_id}.mp4")
async def ws_fmp4(ws: WebSocket, stream_id: str) -> None:
    """fMP4 over WebSocket for MediaSource: a JSON text message `{codec, mime, width, height}`,
    the init segment, then one moof+mdat per frame. A new JSON + init pair follows when the
    stream's parameter sets change."""
    hub = await _ws_open(ws, stream_id)
    if hub is None:
        return
    codec = hub.video_codec
    if codec not in ("h264", "h265"):
        await ws.close(code=WS_NOT_FOUND, reason="stream has no H.264/H.265 video")
        return

    async def produce(viewer: Any) -> None:
        sess = Fmp4Session(codec, hub.width or 0, hub.height or 0)
        while True:
            batch = await viewer.get_batch(BATCH)
            if batch is None:
                return
            for frame in batch:
                for msg in sess.feed(frame):
                    if isinstance(msg, str):
                        await ws.send_text(msg)
                    else:
                        await ws.send_bytes(msg)

    await _pump(ws, hub, produce)


# ---------------------------------------------------------------------------------------- HLS

HLS_FIRST_SEGMENTS = 2  # segments a new playlist waits for: players start a few segments behind live
HLS_WAIT = 10.0


def _hls(platform: Any, stream_id: str, token: str | None, start: bool = False) -> Any:
    """The stream's HLS segmenter after the token check (started on demand when `start`).

    A token the play-token check accepted once keeps working for this stream while its segmenter
    runs: HLS clients poll the same URLs longer than a play token lives.
    """
    media = _media(platform)
    manager = getattr(media, "hls", None)
    if manager is None:
        raise ApiError(503, "HLS output not available", "unavailable")
    seg = manager.get(stream_id)
    known = bool(token) and seg is not None and token in seg.tokens
    if not known and (not token or not media.check_token(stream_id, token)):
        raise ApiError(403, "invalid or expired play token", "forbidden")
    hub = media.hub(stream_id)
    if hub is None:
        raise ApiError(404, f"stream {stream_id} not found (start it with POST /channels/{{id}}/play)", "not_found")
    if hub.video_codec not in ("h264", "h265"):
        raise ApiError(409, "HLS needs H.264 or H.265 video", "conflict")
    if seg is None or seg.hub is not hub:
        if not start:
            raise ApiError(404, "HLS not running for this stream: load the playlist first", "not_found")
        seg = manager.ensure(hub)
    if token and token not in seg.tokens and len(seg.tokens) < 256:
        seg.tokens.add(token)
    seg.touch()
    return seg


_HLS_HEADERS = {"Access-Control-Allow-Origin": "*"}


@router.get("/{stream_id}/index.m3u8", summary="HLS live playlist (fMP4 segments, video only)",
            responses={200: {"content": {"application/vnd.apple.mpegurl": {}}}}, response_class=Response)
async def hls_playlist(
    stream_id: StreamId, request: Request,
    token: Annotated[str | None, Query(max_length=512, description="play token")] = None,
) -> Response:
    seg = _hls(get_platform(request), stream_id, token, start=True)
    if not await seg.wait_segments(HLS_FIRST_SEGMENTS, HLS_WAIT) and not seg.segments:
        raise ApiError(504, f"no complete HLS segment of {stream_id} within {HLS_WAIT:.0f} s", "timeout")
    seg.touch()
    query = f"token={token}" if token else ""
    return Response(seg.playlist(query), media_type="application/vnd.apple.mpegurl",
                    headers={**_HLS_HEADERS, "Cache-Control": "no-cache"})


@router.get("/{stream_id}/init.mp4", summary="HLS init segment (ftyp+moov)",
            responses={200: {"content": {"video/mp4": {}}}}, response_class=Response)
async def hls_init(
    stream_id: StreamId, request: Request,
    token: Annotated[str | None, Query(max_length=512, description="play token")] = None,
    v: Annotated[int | None, Query(ge=0, description="init version (after a parameter-set change)")] = None,
) -> Response:
    seg = _hls(get_platform(request), stream_id, token)
    data = seg.init(v)
    if data is None:
        raise ApiError(404, "init segment gone (reload the playlist)", "not_found")
    return Response(data, media_type="video/mp4", headers={**_HLS_HEADERS, "Cache-Control": "max-age=60"})


@router.get("/{stream_id}/seg{seq}.m4s", summary="HLS media segment (moof+mdat)",
            responses={200: {"content": {"video/iso.segment": {}}}}, response_class=Response)
async def hls_segment(
    stream_id: StreamId, seq: int, request: Request,
    token: Annotated[str | None, Query(max_length=512, description="play token")] = None,
) -> Response:
    seg = _hls(get_platform(request), stream_id, token)
    s = seg.segment(seq)
    if s is None:
        raise ApiError(404, f"segment {seq} not (or no longer) available", "not_found")
    return Response(s.data, media_type="video/iso.segment", headers={**_HLS_HEADERS, "Cache-Control": "max-age=60"})
