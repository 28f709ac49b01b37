"""HLS with fMP4 segments, cut live from a StreamHub (the path for iOS Safari and other players
that speak HLS but not FLV or MSE).

One `HlsSegmenter` per stream is a viewer of the stream's hub: it cuts a segment at every video
keyframe (so each segment starts with an IDR and decodes on its own), muxes it with `Fmp4Muxer`
and keeps the last `max_segments` in memory. The playlist is a plain live EXT-X-VERSION 7
playlist (EXT-X-MAP, no blocking reload, no partial segments): latency is about the segment
duration (the camera's GOP) times the segments a player stays behind live (three, for most).

A segmenter starts on the first playlist request and stops by itself when nobody has asked for
the playlist, the init segment or a segment for `idle_timeout` seconds; while it runs it holds a
hub viewer, so the media service's idle reaper sees the stream as watched. Video only: audio
frames are ignored (the fMP4 muxer writes one video track).

Play tokens: HLS clients poll the same URLs for as long as they play, longer than a play token
lives. A token that `check_token` accepted once is remembered by the segmenter and keeps working
for that stream while the segmenter runs (a live session is not cut when its token expires).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from xueliang.media.fmp4 import TIMESCALE, Fmp4Muxer
from xueliang.media.frame import Frame

log = logging.getLogger("xueliang.media.hls")

MAX_SEGMENTS = 6
MAX_SEGMENT_FRAMES = 3000  # a camera with no keyframe for this long: cut anyway to bound memory
MAX_KNOWN_TOKENS = 256


@dataclass(frozen=True, slots=True)
class HlsSegment:
    """One fMP4 media segment (moof+mdat) starting with a keyframe."""

    seq: int
    data: bytes
    duration: float  # seconds
    init_version: int  # which init segment decodes it (changes with the parameter sets)
    wall_time: float  # time.time() when its first frame reached us (EXT-X-PROGRAM-DATE-TIME)
    frames: int


class HlsSegmenter:
    """Live fMP4 segments and playlist of one hub (see module docstring)."""

    def __init__(self, hub: Any, *, max_segments: int = MAX_SEGMENTS, idle_timeout: float = 30.0,
                 on_stop: Callable[[HlsSegmenter], None] | None = None) -> None:
        self.hub = hub
        self.stream_id: str = hub.stream_id
        self.max_segments = max(3, max_segments)
        self.idle_timeout = idle_timeout
        self.on_stop = on_stop
        self.segments: deque[HlsSegment] = deque()
        self.inits: dict[int, bytes] = {}
        self.init_version = -1
        self.target_duration = 1
        self.next_seq = 0
        self.last_access = time.monotonic()
        self.started_at = time.time()
        self.closed = False
        self.reason = ""
        self.tokens: set[str] = set()
        self.requests = 0
        self._muxer: Fmp4Muxer | None = None
        self._pending: list[Frame] = []
        self._pending_wall = 0.0
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"hls {self.stream_id}")

    def touch(self) -> None:
        """A client asked for something: keep running."""
        self.last_access = time.monotonic()
        self.requests += 1

    async def stop(self, reason: str = "stopped") -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._finish(reason)

    def _finish(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.reason = reason
        self._changed.set()
        log.info("HLS of %s stopped: %s", self.stream_id, reason)
        if self.on_stop is not None:
            self.on_stop(self)

    async def _run(self) -> None:
        viewer = self.hub.add_viewer()
        reason = "stream ended"
        try:
            while True:
                try:
                    batch = await asyncio.wait_for(viewer.get_batch(), 1.0)
                except TimeoutError:
                    batch = []
                if batch is None:
                    break
                for f in batch:
                    self._feed(f)
                if time.monotonic() - self.last_access >= self.idle_timeout:
                    reason = f"idle: no HLS request for {self.idle_timeout:.0f} s"
                    break
        finally:
            self.hub.remove_viewer(viewer)
            self._finish(reason)

    # ------------------------------------------------------------------ segmenting

    def _feed(self, frame: Frame) -> None:
        if not frame.is_video or frame.codec not in ("h264", "h265"):
            return  # video only: the fMP4 muxer writes a single video track
        if self._muxer is None or self._muxer.video_codec != frame.codec:
            if not frame.keyframe:
                return
            self._muxer = Fmp4Muxer(frame.codec, self.hub.width or 0, self.hub.height or 0)
            self._pending = []
            if not self._muxer.update_parameter_sets(frame):
                self._muxer = None
                return
            self._new_init()
        elif frame.keyframe or len(self._pending) >= MAX_SEGMENT_FRAMES:
            self._cut(frame.dts)
            if frame.keyframe and self._muxer.update_parameter_sets(frame):
                self._new_init()  # new SPS/PPS (resolution change): a discontinuity in the playlist
        if not self._pending:
            self._pending_wall = time.time()
        self._pending.append(frame)

    def _new_init(self) -> None:
        assert self._muxer is not None
        self.init_version += 1
        self.inits[self.init_version] = self._muxer.init_segment()

    def _cut(self, next_dts: int) -> None:
        frames, self._pending = self._pending, []
        if not frames or self._muxer is None:
            return
        data = self._muxer.fragment(frames, next_dts=next_dts)
        if not data:
            return
        span = next_dts - frames[0].dts
        duration = span / TIMESCALE if 0 < span < 3600 * TIMESCALE else len(frames) / 25
        # Start time on the wall clock: the cut happens live (at the next keyframe's arrival), so
        # "now - duration" is right even for the first segment, made from the hub's GOP cache.
        wall = min(self._pending_wall, time.time() - duration)
        seg = HlsSegment(self.next_seq, data, duration, self.init_version, wall, len(frames))
        self.next_seq += 1
        self.segments.append(seg)
        while len(self.segments) > self.max_segments:
            self.segments.popleft()
        live_inits = {s.init_version for s in self.segments} | {self.init_version}
        for v in [v for v in self.inits if v not in live_inits]:
            del self.inits[v]
        # EXT-X-TARGETDURATION must not shrink during a session: it only grows.
        self.target_duration = max(self.target_duration, math.ceil(duration - 1e-3))
        self._changed.set()
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ client side

    async def wait_segments(self, n: int, timeout: float) -> bool:
        """True once `n` segments exist (a player wants a few before it starts)."""
        end = time.monotonic() + timeout
        while len(self.segments) < n and not self.closed:
            left = end - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return len(self.segments) >= n

    def segment(self, seq: int) -> HlsSegment | None:
        for s in self.segments:
            if s.seq == seq:
                return s
        return None

    def init(self, version: int | None = None) -> bytes | None:
        return self.inits.get(self.init_version if version is None else version)

    def playlist(self, query: str = "") -> str:
        """The live media playlist; `query` (e.g. "token=...") is appended to every URI."""
        q = f"?{query}" if query else ""
        amp = f"{q}&" if q else "?"
        segs = list(self.segments)
        lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{self.target_duration}",
                 f"#EXT-X-MEDIA-SEQUENCE:{segs[0].seq if segs else self.next_seq}",
                 "#EXT-X-INDEPENDENT-SEGMENTS"]
        if segs:
            lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{segs[0].init_version}")
        current = None
        for s in segs:
            if s.init_version != current:
                if current is not None:
                    lines.append("#EXT-X-DISCONTINUITY")
                current = s.init_version
                lines.append(f'#EXT-X-MAP:URI="init.mp4{amp}v={s.init_version}"')
            stamp = datetime.fromtimestamp(s.wall_time, UTC).isoformat(timespec="milliseconds")
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{stamp.replace('+00:00', 'Z')}")
            lines.append(f"#EXTINF:{s.duration:.3f},")
            lines.append(f"seg{s.seq}.m4s{q}")
        return "\n".join(lines) + "\n"

    def stats(self) -> dict[str, Any]:
        return {"stream_id": self.stream_id, "segments": len(self.segments), "next_seq": self.next_seq,
                "target_duration": self.target_duration, "requests": self.requests,
                "idle_for": round(time.monotonic() - self.last_access, 1), "closed": self.closed,
                "durations": [round(s.duration, 3) for s in self.segments]}


class HlsManager:
    """The running segmenters, one per stream id; starts one on demand."""

    def __init__(self, idle_timeout: float = 30.0, max_segments: int = MAX_SEGMENTS) -> None:
        self.idle_timeout = idle_timeout
        self.max_segments = max_segments
        self._segmenters: dict[str, HlsSegmenter] = {}

    def get(self, stream_id: str) -> HlsSegmenter | None:
        s = self._segmenters.get(stream_id)
        return s if s is not None and not s.closed else None

    def ensure(self, hub: Any) -> HlsSegmenter:
        """The segmenter of `hub`'s stream, started if needed (also when the hub was replaced)."""
        s = self.get(hub.stream_id)
        if s is not None and s.hub is hub:
            return s
        if s is not None:
            s.on_stop = None
            asyncio.get_running_loop().create_task(s.stop("stream restarted"))
        s = HlsSegmenter(hub, max_segments=self.max_segments, idle_timeout=self.idle_timeout,
                         on_stop=self._forget)
        self._segmenters[hub.stream_id] = s
        s.start()
        return s

    def _forget(self, s: HlsSegmenter) -> None:
        if self._segmenters.get(s.stream_id) is s:
            del self._segmenters[s.stream_id]

    async def stop(self, stream_id: str, reason: str = "stopped") -> None:
        s = self._segmenters.pop(stream_id, None)
        if s is not None:
            await s.stop(reason)

    async def shutdown(self) -> None:
        for sid in list(self._segmenters):
            await self.stop(sid, "shutdown")

    def stats(self) -> list[dict[str, Any]]:
        return [s.stats() for s in self._segmenters.values()]
