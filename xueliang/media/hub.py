"""StreamHub: one live stream fanned out to any number of viewers.

The ingest calls `push(frame)` on the event loop for every access unit. The hub keeps a GOP
cache (frames since the last video keyframe, bounded) so a new viewer starts at once with a
decodable picture, remembers parameter sets and the picture size, and appends the frame to every
viewer's queue. Fan-out is one deque append per viewer and never awaits: a viewer that cannot
keep up is trimmed on its own (its queue cut to the latest keyframe it holds, or emptied until
the next one arrives) and the dropped frames are counted against it alone. The other viewers
and the ingest never wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from xueliang.media import nal as nalmod
from xueliang.media.frame import Frame


class Viewer:
    """One consumer of a hub: a bounded (in bytes) queue of frames and a waiter.

    `get()` returns the next frame, or None when the stream has ended (hub closed) or the viewer
    was removed. Queue trimming only ever drops whole GOPs' heads, so what a viewer receives is
    always decodable from its first frame on.
    """

    __slots__ = ("_ended", "_hub", "_need_key", "_queue", "_waiter", "buffered", "dropped", "frames_out",
                 "joined_at", "max_buffer", "reason", "trims")

    def __init__(self, hub: StreamHub | None, max_buffer: int) -> None:
        self._hub = hub
        self._queue: deque[Frame] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._need_key = True
        self._ended = False
        self.max_buffer = max_buffer
        self.buffered = 0
        self.dropped = 0
        self.trims = 0
        self.frames_out = 0
        self.reason = ""
        self.joined_at = time.time()

    # -------------------------------------------------------------- producer side (hub)

    def _put(self, frame: Frame, key: bool) -> None:
        if self._need_key:
            if not key:
                self.dropped += 1
                return
            self._need_key = False
        self._queue.append(frame)
        self.buffered += len(frame.data)
        if self.buffered > self.max_buffer:
            self._trim()
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _trim(self) -> None:
        """Cut the queue to its latest keyframe; if even that GOP is too big, empty it and wait
        for the next keyframe."""
        q = self._queue
        hub = self._hub
        has_video = hub is not None and hub.video_codec is not None
        self.trims += 1
        keep_from = -1
        for i in range(len(q) - 1, -1, -1):
            f = q[i]
            if f.keyframe and (f.is_video or not has_video):
                keep_from = i
                break
        if keep_from >= 0:
            for _ in range(keep_from):
                self.buffered -= len(q.popleft().data)
            self.dropped += keep_from
            if self.buffered <= self.max_buffer or len(q) == 1:
                return  # a lone keyframe bigger than the limit is still kept: nothing else to show
        self.dropped += len(q)
        q.clear()
        self.buffered = 0
        self._need_key = True

    def _end(self, reason: str) -> None:
        self._ended = True
        self.reason = reason
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    # -------------------------------------------------------------- consumer side

    @property
    def ended(self) -> bool:
        return self._ended

    def __len__(self) -> int:
        return len(self._queue)

    async def get(self) -> Frame | None:
        """Next frame, waiting for one; None when the stream ended."""
        while True:
            if self._queue:
                f = self._queue.popleft()
                self.buffered -= len(f.data)
                self.frames_out += 1
                return f
            if self._ended:
                return None
            await self._wait()

    async def get_batch(self, max_frames: int = 256) -> list[Frame] | None:
        """Every queued frame (at least one, up to `max_frames`), waiting when empty; None at
        the end. Lets a writer send one socket write per loop turn instead of one per frame."""
        while not self._queue:
            if self._ended:
                return None
            await self._wait()
        q = self._queue
        n = min(len(q), max_frames)
        out = [q.popleft() for _ in range(n)]
        self.buffered -= sum(len(f.data) for f in out)
        self.frames_out += n
        return out

    async def _wait(self) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiter = fut
        try:
            await fut
        finally:
            self._waiter = None

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[Frame]:
        while True:
            f = await self.get()
            if f is None:
                return
            yield f

    def close(self) -> None:
        """Leave the hub (same as `hub.remove_viewer(self)`)."""
        if self._hub is not None:
            self._hub.remove_viewer(self)
        else:
            self._end("closed")

    def stats(self) -> dict[str, Any]:
        return {"buffered_bytes": self.buffered, "queued": len(self._queue), "dropped": self.dropped,
                "trims": self.trims, "frames_out": self.frames_out, "joined_at": self.joined_at}


class StreamHub:
    """Fan-out point of one live stream (see module docstring)."""

    def __init__(self, stream_id: str, *, max_viewer_buffer: int = 4 * 1024 * 1024,
                 gop_max_bytes: int = 16 * 1024 * 1024, gop_max_frames: int = 1500) -> None:
        self.stream_id = stream_id
        self.max_viewer_buffer = max_viewer_buffer
        self.gop_max_bytes = gop_max_bytes
        self.gop_max_frames = gop_max_frames
        self.video_codec: str | None = None
        self.audio_codec: str | None = None
        self.width = 0
        self.height = 0
        self.parameter_sets: nalmod.ParameterSets | None = None
        self.last_keyframe: Frame | None = None
        self.last_keyframe_at = 0.0
        self.closed = False
        self.close_reason = ""
        self.created_at = time.time()
        self.on_viewers_changed: Callable[[StreamHub], None] | None = None
        self._viewers: list[Viewer] = []
        self._gop: list[Frame] = []
        self._gop_bytes = 0
        self._key_waiters: list[asyncio.Future[bool]] = []
        # counters
        self.frames = 0
        self.bytes = 0
        self.keyframes = 0
        self.video_frames = 0
        self._dropped_gone = 0
        self._gop_overflows = 0
        self._win_start = time.monotonic()
        self._win_frames = 0
        self._win_bytes = 0
        self._fps = 0.0
        self._bitrate = 0.0

    # ------------------------------------------------------------------ ingest side

    def push(self, frame: Frame) -> None:
        """Take one frame from the ingest: update codec info, GOP cache, fan out. Never awaits."""
        if self.closed:
            return
        size = len(frame.data)
        self.frames += 1
        self.bytes += size
        self._win_bytes += size
        if frame.is_video:
            self.video_frames += 1
            self._win_frames += 1
            if self.video_codec != frame.codec:
                self.video_codec = frame.codec
                self.parameter_sets = None
            key = frame.keyframe
            if key:
                frame = self._on_keyframe(frame)
        else:
            if self.audio_codec is None:
                self.audio_codec = frame.codec
            key = frame.keyframe and self.video_codec is None
        if key:
            self._gop = [frame]
            self._gop_bytes = size
        elif self._gop:
            self._gop.append(frame)
            self._gop_bytes += size
            if self._gop_bytes > self.gop_max_bytes or len(self._gop) > self.gop_max_frames:
                self._gop = []
                self._gop_bytes = 0
                self._gop_overflows += 1
        for v in self._viewers:
            v._put(frame, key)
        now = time.monotonic()
        if now - self._win_start >= 1.0:
            span = now - self._win_start
            self._fps = self._win_frames / span
            self._bitrate = self._win_bytes * 8 / span
            self._win_start = now
            self._win_frames = 0
            self._win_bytes = 0

    def _on_keyframe(self, frame: Frame) -> Frame:
        """Remember parameter sets and size; make sure the cached keyframe carries them."""
        codec = frame.codec
        self.keyframes += 1
        nals = nalmod.split_annexb(frame.data)
        ps = nalmod.extract_parameter_sets(codec, nals)
        if ps.complete(codec):
            if self.parameter_sets is None or ps.sps != self.parameter_sets.sps:
                try:
                    info = nalmod.parse_sps(codec, ps.sps[0])
                    self.width, self.height = info.width, info.height
                except ValueError:
                    pass
            self.parameter_sets = ps
        elif self.parameter_sets is not None:
            # Camera sent the sets once (or out of band): prepend them so late joiners can decode.
            frame = Frame(codec, frame.pts, frame.dts, self.parameter_sets.annexb() + frame.data, True)
        self.last_keyframe = frame
        self.last_keyframe_at = time.time()
        if self._key_waiters:
            for w in self._key_waiters:
                if not w.done():
                    w.set_result(True)
            self._key_waiters.clear()
        return frame

    # ------------------------------------------------------------------ viewers

    def add_viewer(self, max_buffer: int | None = None) -> Viewer:
        """A new viewer, primed with the GOP cache (so its first frame is a keyframe)."""
        v = Viewer(self, max_buffer or self.max_viewer_buffer)
        if self.closed:
            v._end(self.close_reason or "closed")
            return v
        has_video = self.video_codec is not None
        for f in self._gop:
            v._put(f, f.keyframe and (f.is_video or not has_video))
        self._viewers.append(v)
        if self.on_viewers_changed is not None:
            self.on_viewers_changed(self)
        return v

    def remove_viewer(self, v: Viewer) -> None:
        try:
            self._viewers.remove(v)
        except ValueError:
            return
        self._dropped_gone += v.dropped
        v._end("removed")
        if self.on_viewers_changed is not None:
            self.on_viewers_changed(self)

    @property
    def viewers(self) -> int:
        return len(self._viewers)

    def viewer_list(self) -> list[Viewer]:
        return list(self._viewers)

    # ------------------------------------------------------------------ lifecycle

    def close(self, reason: str = "") -> None:
        """End the stream: every viewer's `get()` returns None once its queue is drained."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        for v in self._viewers:
            self._dropped_gone += v.dropped
            v._end(reason or "closed")
        self._viewers = []
        self._gop = []
        for w in self._key_waiters:
            if not w.done():
                w.set_result(False)
        self._key_waiters.clear()

    async def wait_keyframe(self, timeout: float) -> bool:
        """True once a keyframe is cached (at once if one is), False on timeout or close."""
        if self._gop and self.last_keyframe is not None:
            return True
        if self.closed:
            return False
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._key_waiters.append(fut)
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return False
        finally:
            with contextlib.suppress(ValueError):
                self._key_waiters.remove(fut)

    @property
    def gop_frames(self) -> int:
        return len(self._gop)

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        span = now - self._win_start
        fps, bitrate = self._fps, self._bitrate
        if span > 2.0:  # stalled stream: the last window is stale
            fps = self._win_frames / span
            bitrate = self._win_bytes * 8 / span
        return {
            "stream_id": self.stream_id,
            "video_codec": self.video_codec,
            "audio_codec": self.audio_codec,
            "width": self.width,
            "height": self.height,
            "frames": self.frames,
            "video_frames": self.video_frames,
            "keyframes": self.keyframes,
            "bytes": self.bytes,
            "fps": round(fps, 2),
            "bitrate": int(bitrate),
            "viewers": len(self._viewers),
            "dropped": self._dropped_gone + sum(v.dropped for v in self._viewers),
            "gop_frames": len(self._gop),
            "gop_bytes": self._gop_bytes,
            "gop_overflows": self._gop_overflows,
            "closed": self.closed,
        }
