"""On-demand H.265 -> H.264 transcoding for browsers without HEVC in MediaSource.

Chromium without hardware decoding cannot play HEVC through MSE, so the console asks for an
H.264 rendition and the media service starts one of these. Each transcoder owns a worker thread
(PyAV/ffmpeg release the GIL while decoding and encoding, so the loop keeps running) fed through
a bounded queue; encoded frames come back on the loop via `call_soon_threadsafe`. x264 runs with
`ultrafast` + `zerolatency` (no B-frames, no lookahead): one frame in, one frame out.

Transcoding costs a whole core per few HD streams, so the number of concurrent transcoders is
bounded (`MAX_TRANSCODERS`, settable with `set_max_transcoders`); past it, `Transcoder()` raises
`TranscoderLimitError` and the caller can tell the user why.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from xueliang.media.frame import Frame

MAX_TRANSCODERS = 4
_active = 0
_active_lock = threading.Lock()
_STOP = object()


class TranscoderLimitError(RuntimeError):
    """Too many transcoders running at once."""


def set_max_transcoders(n: int) -> None:
    global MAX_TRANSCODERS
    MAX_TRANSCODERS = max(0, n)


def active_transcoders() -> int:
    return _active


class Transcoder:
    """H.265 frames in (`push`), H.264 frames out (`on_frame`, called on the loop).

    Audio frames pass through unchanged, in order with the video around them; with
    `audio_to_aac` G.711 becomes ADTS AAC (browsers cannot play G.711). `video=False` passes
    video through untouched (an audio-only transcode for H.264 + G.711 cameras). Output pts/dts
    keep the input's 90 kHz clock. A keyframe in the input forces an IDR in the output, so the
    GOP structure (and a hub's GOP cache) follows the camera's. If the worker falls behind by
    more than `max_queue` frames the oldest input is dropped up to the next keyframe (counted).
    """

    def __init__(self, on_frame: Callable[[Frame], None], *, loop: asyncio.AbstractEventLoop | None = None,
                 src_codec: str = "h265", bitrate: int = 0, max_width: int = 0, max_queue: int = 100,
                 on_error: Callable[[BaseException], None] | None = None, video: bool = True,
                 audio_to_aac: bool = False) -> None:
        global _active
        if src_codec not in ("h264", "h265"):
            raise ValueError(f"cannot transcode {src_codec!r}")
        # Only video transcoders count against the limit: G.711 -> AAC costs next to nothing.
        if video:
            with _active_lock:
                if _active >= MAX_TRANSCODERS:
                    raise TranscoderLimitError(
                        f"{_active} transcoders already running (limit {MAX_TRANSCODERS}); "
                        "ask for the original codec or raise the limit")
                _active += 1
        self._released = not video
        self.src_codec = src_codec
        self.on_frame = on_frame
        self.on_error = on_error
        self.bitrate = bitrate
        self.max_width = max_width
        self.video = video
        self.audio_to_aac = audio_to_aac
        self._audio: _AudioToAac | None = None
        self._loop = loop or asyncio.get_running_loop()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self.frames_in = 0
        self.frames_out = 0
        self.dropped = 0
        self.errors = 0
        self.closed = False
        self._done = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name="xueliang-transcode", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ loop side

    def push(self, frame: Frame) -> None:
        """Queue one frame for the worker; never blocks (drops the oldest GOP when full)."""
        if self.closed:
            return
        self.frames_in += 1
        try:
            self._queue.put_nowait(frame)
        except queue.Full:
            self._drop_backlog()
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(frame)

    def _drop_backlog(self) -> None:
        # Empty the backlog; the worker then skips inter frames until the next keyframe.
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
            self.dropped += 1
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_RESYNC)

    async def aclose(self) -> None:
        """Stop the worker and wait for it (flushes nothing: live output only)."""
        self.close()
        await self._done.wait()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put_nowait(_STOP)

    def stats(self) -> dict[str, int]:
        return {"frames_in": self.frames_in, "frames_out": self.frames_out, "dropped": self.dropped,
                "errors": self.errors, "queued": self._queue.qsize()}

    def _release(self) -> None:
        global _active
        with _active_lock:
            if not self._released:
                self._released = True
                _active -= 1

    def _emit(self, frame: Frame) -> None:
        if not self.closed:
            self.frames_out += 1
            self.on_frame(frame)

    # ------------------------------------------------------------------ worker thread

    def _run(self) -> None:
        try:
            self._work()
        except BaseException as exc:  # pragma: no cover - reported to the owner
            self.errors += 1
            if self.on_error is not None:
                self._call(self.on_error, exc)
        finally:
            self._release()
            self._call(self._done.set)

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # loop already closed
            self._loop.call_soon_threadsafe(fn, *args)

    def _work(self) -> None:
        import av

        decoder = av.CodecContext.create("hevc" if self.src_codec == "h265" else "h264", "r")
        encoder: Any = None
        waiting_key = True
        tb = Fraction(1, 90000)
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if item is _RESYNC:
                waiting_key = True
                continue
            frame: Frame = item
            if not frame.is_video:
                if self.audio_to_aac and frame.codec in ("pcma", "pcmu"):
                    if self._audio is None:
                        self._audio = _AudioToAac(av, frame.codec)
                    try:
                        for out in self._audio.convert(frame):
                            self._call(self._emit, out)
                    except av.error.FFmpegError:  # type: ignore[attr-defined]
                        self.errors += 1
                else:
                    self._call(self._emit, frame)
                continue
            if not self.video:
                self._call(self._emit, frame)
                continue
            if frame.codec != self.src_codec:
                continue
            if waiting_key:
                if not frame.keyframe:
                    self.dropped += 1
                    continue
                waiting_key = False
            pkt = av.Packet(frame.data)
            pkt.pts = frame.pts
            pkt.dts = frame.dts
            pkt.time_base = tb
            try:
                pictures = decoder.decode(pkt)
            except av.error.FFmpegError:  # type: ignore[attr-defined]
                self.errors += 1
                waiting_key = True
                continue
            for pic in pictures:
                if encoder is None:
                    encoder = self._open_encoder(av, pic.width, pic.height)
                pts_in = pic.pts if pic.pts is not None else frame.pts
                pic = self._scale(pic, encoder)
                pic.pts = pts_in
                pic.time_base = tb
                key = pic.key_frame
                pic.pict_type = av.video.frame.PictureType.I if key else av.video.frame.PictureType.NONE
                for out in encoder.encode(pic):
                    pts = int(out.pts) if out.pts is not None else frame.pts
                    dts = int(out.dts) if out.dts is not None else pts
                    self._call(self._emit, Frame("h264", pts, dts, bytes(out), bool(out.is_keyframe)))

    def _open_encoder(self, av: Any, width: int, height: int) -> Any:
        if self.max_width and width > self.max_width:
            height = round(height * self.max_width / width / 2) * 2
            width = self.max_width
        enc = av.CodecContext.create("libx264", "w")
        enc.width = width
        enc.height = height
        enc.pix_fmt = "yuv420p"
        enc.time_base = Fraction(1, 90000)
        enc.framerate = Fraction(25, 1)
        enc.gop_size = 250  # IDRs are forced to follow the source's keyframes
        enc.max_b_frames = 0
        opts = {"preset": "ultrafast", "tune": "zerolatency", "x264-params": "scenecut=0:repeat-headers=1"}
        if self.bitrate:
            enc.bit_rate = self.bitrate
        else:
            opts["crf"] = "26"
        enc.options = opts
        enc.open()
        return enc

    @staticmethod
    def _scale(pic: Any, encoder: Any) -> Any:
        if pic.width == encoder.width and pic.height == encoder.height and pic.format.name == "yuv420p":
            return pic
        return pic.reformat(width=encoder.width, height=encoder.height, format="yuv420p")


_RESYNC = object()


class _AudioToAac:
    """G.711 (8 kHz mono) -> ADTS AAC-LC, timestamps continued from the first input frame.

    mpegts.js/MSE cannot play G.711, and GB cameras almost always send it: with this a browser
    can hear the camera. 1024 samples per AAC frame = 128 ms at 8 kHz.
    """

    def __init__(self, av: Any, codec: str) -> None:
        self.dec = av.CodecContext.create("pcm_alaw" if codec == "pcma" else "pcm_mulaw", "r")
        self.dec.sample_rate = 8000
        self.dec.layout = "mono"
        self.enc = av.CodecContext.create("aac", "w")
        self.enc.sample_rate = 8000
        self.enc.layout = "mono"
        self.enc.format = "fltp"
        self.enc.bit_rate = 24000
        self.enc.time_base = Fraction(1, 8000)
        self.enc.open()
        self.asc = bytes(self.enc.extradata or b"\x15\x88")  # AAC-LC, 8 kHz, mono
        self.resampler = av.AudioResampler(format="fltp", layout="mono", rate=8000)
        self.pts0: int | None = None
        self.samples_in = 0
        self.packets_out = 0
        self.av = av

    def convert(self, frame: Frame) -> list[Frame]:
        from xueliang.media.pull import adts_header

        if self.pts0 is None:
            self.pts0 = frame.pts
        out: list[Frame] = []
        for af in self.dec.decode(self.av.Packet(frame.data)):
            for rf in self.resampler.resample(af):
                rf.pts = self.samples_in
                self.samples_in += rf.samples
                for p in self.enc.encode(rf):
                    raw = bytes(p)
                    pts = self.pts0 + self.packets_out * 1024 * 90000 // 8000
                    self.packets_out += 1
                    out.append(Frame("aac", pts, pts, adts_header(self.asc, len(raw)) + raw, True))
        return out


class TranscodedStream:
    """An H.264 rendition of a live H.265 hub: a viewer of `source` feeds a Transcoder that
    feeds a new StreamHub (`self.hub`), which outputs use like any other hub.

    `start()` raises TranscoderLimitError when the limit is reached. The rendition ends (its hub
    closes) when the source ends or `stop()` is called; the owner stops it when its last
    viewer leaves.
    """

    def __init__(self, source: Any, stream_id: str | None = None, **transcoder_kwargs: Any) -> None:
        from xueliang.media.hub import StreamHub

        self.source = source
        self.hub = StreamHub(stream_id or f"{source.stream_id}.h264")
        self._kwargs = transcoder_kwargs
        self.transcoder: Transcoder | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        src_codec = self.source.video_codec or "h265"
        self.transcoder = Transcoder(self.hub.push, src_codec=src_codec, **self._kwargs)
        self._task = asyncio.create_task(self._pump(), name=f"transcode {self.hub.stream_id}")

    async def _pump(self) -> None:
        viewer = self.source.add_viewer()
        tc = self.transcoder
        assert tc is not None
        try:
            while (batch := await viewer.get_batch()) is not None:
                for f in batch:
                    tc.push(f)
        finally:
            self.source.remove_viewer(viewer)
            await tc.aclose()
            self.hub.close("source ended")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        elif self.transcoder is not None:
            await self.transcoder.aclose()
        self.hub.close("stopped")

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"hub": self.hub.stats()}
        if self.transcoder is not None:
            out["transcoder"] = self.transcoder.stats()
        return out
