"""Pull sources: RTSP / RTMP / HTTP-FLV / HLS / file URLs as channels, through PyAV.

Non-GB cameras and other platforms' streams become channels that feed a StreamHub like any GB
stream. ffmpeg (via PyAV) does the protocol and container work in a worker thread (its reads
block, and it releases the GIL while doing them); packets are turned into our `Frame`s
(Annex-B video via the `*_mp4toannexb` bitstream filters, ADTS AAC, raw G.711, 90 kHz
timestamps kept monotonic across reconnects) and handed to the loop with
`call_soon_threadsafe`. Lost connections are retried with exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from xueliang.media import nal as nalmod
from xueliang.media.frame import Frame

_VIDEO = {"h264": "h264", "hevc": "h265"}
_AUDIO = {"pcm_alaw": "pcma", "pcm_mulaw": "pcmu", "aac": "aac"}
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


def adts_header(asc: bytes, payload_len: int) -> bytes:
    """7-byte ADTS header for one raw AAC frame, from an AudioSpecificConfig."""
    object_type = asc[0] >> 3
    freq_index = ((asc[0] & 7) << 1) | (asc[1] >> 7)
    channels = (asc[1] >> 3) & 0x0F
    length = payload_len + 7
    profile = max(0, min(3, object_type - 1))
    return bytes((
        0xFF, 0xF1,
        (profile << 6) | (freq_index << 2) | (channels >> 2),
        ((channels & 3) << 6) | (length >> 11),
        (length >> 3) & 0xFF,
        ((length & 7) << 5) | 0x1F,
        0xFC,
    ))


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file:")


class PullSource:
    """One pulled stream. `await start()`; frames arrive through `on_frame` on the loop;
    `await stop()` ends it (`on_end(reason)` is called once: "stopped", "ended", "failed: ...").

    `realtime` paces reading by timestamps (default: only for local files, which would otherwise
    be read as fast as the disk allows); `loop_file` restarts a local file at its end (demo
    channels); network sources are reconnected when they end (`reconnect_on_eof`). `max_retries=None` retries forever; the delay doubles from `backoff` up to
    `max_backoff` seconds and is reset after a session that delivered frames.
    """

    def __init__(self, url: str, on_frame: Callable[[Frame], None], *,
                 on_end: Callable[[str], None] | None = None, realtime: bool | None = None,
                 loop_file: bool = False, reconnect: bool = True, max_retries: int | None = None,
                 backoff: float = 0.5, max_backoff: float = 30.0, open_timeout: float = 10.0,
                 read_timeout: float = 5.0, options: dict[str, str] | None = None,
                 reconnect_on_eof: bool | None = None) -> None:
        self.url = url
        self.on_frame = on_frame
        self.on_end = on_end
        self.realtime = _is_local(url) if realtime is None else realtime
        self.loop_file = loop_file
        # End of stream: a local file is done (unless looped); a network source is a live stream
        # whose server went away, so it is reconnected. Explicit False: recorded files over HTTP.
        self.reconnect_on_eof = (loop_file or not _is_local(url)) if reconnect_on_eof is None else reconnect_on_eof
        self.reconnect = reconnect
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.open_timeout = open_timeout
        self.read_timeout = read_timeout
        self.options = dict(options or {})
        self.state = "new"
        self.last_error = ""
        self.video_codec: str | None = None
        self.audio_codec: str | None = None
        self.width = 0
        self.height = 0
        self.frames = 0
        self.bytes = 0
        self.reconnects = 0
        self.started_at = 0.0
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._done: asyncio.Event | None = None
        self._offset = 0  # added to every timestamp so they stay monotonic across sessions
        self._last_dts: int | None = None

    # ------------------------------------------------------------------ loop side

    async def start(self) -> None:
        """Start the worker thread (returns at once; frames follow on this loop)."""
        if self._thread is not None:
            raise RuntimeError("already started")
        self._loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        self.started_at = time.time()
        self._thread = threading.Thread(target=self._run, name=f"xueliang-pull {self.url}", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the worker to stop (no wait); it does at the next packet or read timeout."""
        self._stop.set()

    async def stop(self, timeout: float | None = None) -> None:
        """Stop and wait for the worker to finish (at most `timeout`, default read timeout + 2 s)."""
        self._stop.set()
        if self._done is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), timeout if timeout is not None else
                                       self.read_timeout + 2)

    aclose = stop

    def stats(self) -> dict[str, Any]:
        up = max(1e-6, time.time() - self.started_at) if self.started_at else 0.0
        return {"url": self.url, "state": self.state, "frames": self.frames, "bytes": self.bytes,
                "reconnects": self.reconnects, "last_error": self.last_error,
                "video_codec": self.video_codec, "audio_codec": self.audio_codec,
                "width": self.width, "height": self.height,
                "bitrate": int(self.bytes * 8 / up) if up else 0}

    def _deliver(self, frame: Frame) -> None:
        if not self._stop.is_set():
            self.on_frame(frame)

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # loop closed
            self._loop.call_soon_threadsafe(fn, *args)

    # ------------------------------------------------------------------ worker thread

    def _run(self) -> None:
        failures = 0
        reason = "stopped"
        try:
            while not self._stop.is_set():
                self.state = "connecting"
                before = self.frames
                try:
                    ended = self._session()
                    self.last_error = ""
                except Exception as exc:
                    ended = False
                    self.last_error = f"{type(exc).__name__}: {exc}"
                if self._stop.is_set():
                    break
                if ended and not self.reconnect_on_eof:
                    reason = "ended"
                    break
                if ended and self.loop_file and _is_local(self.url):
                    delay = 0.0
                else:
                    # errors, and the end of a live network stream (the server dropped us): retry
                    if self.frames > before:
                        failures = 0
                    failures += 1
                    if not self.reconnect or (self.max_retries is not None and failures > self.max_retries):
                        reason = "failed: " + (self.last_error or "no data")
                        break
                    delay = min(self.max_backoff, self.backoff * 2 ** (failures - 1))
                self.reconnects += 1
                self.state = "backoff"
                if self._stop.wait(delay):
                    break
        finally:
            self.state = reason.split(":")[0]
            if self.on_end is not None:
                self._post(self.on_end, reason)
            if self._done is not None:
                self._post(self._done.set)

    def _session(self) -> bool:
        """One connection: returns True at end of stream, raises on errors."""
        import av

        opts = {**self.options}
        if self.url.startswith(("rtsp://", "rtsps://")):
            opts.setdefault("rtsp_transport", "tcp")
        container = av.open(self.url, options=opts, timeout=(self.open_timeout, self.read_timeout))
        try:
            return self._read(av, container)
        finally:
            container.close()

    def _read(self, av: Any, container: Any) -> bool:
        vstream = next((s for s in container.streams.video if s.codec_context.name in _VIDEO), None)
        astream = next((s for s in container.streams.audio if s.codec_context.name in _AUDIO), None)
        if vstream is None and astream is None:
            raise ValueError("no H.264/H.265/G.711/AAC stream in source")
        streams = [s for s in (vstream, astream) if s is not None]
        vcodec = _VIDEO[vstream.codec_context.name] if vstream is not None else None
        acodec = _AUDIO[astream.codec_context.name] if astream is not None else None
        self.video_codec, self.audio_codec = vcodec, acodec
        bsf = None
        prefix = b""
        if vstream is not None:
            self.width, self.height = vstream.codec_context.width, vstream.codec_context.height
            extradata = bytes(vstream.codec_context.extradata or b"")
            if extradata.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")):
                prefix = extradata  # already Annex-B (RTSP sprop, MPEG-TS): only prepend on keyframes
            elif extradata:
                bsf = av.BitStreamFilterContext(
                    "h264_mp4toannexb" if vcodec == "h264" else "hevc_mp4toannexb", vstream)
        asc = b""
        if astream is not None and acodec == "aac":
            asc = bytes(astream.codec_context.extradata or b"")
        session_first: int | None = None
        wall0 = time.monotonic()
        self.state = "running"
        for packet in container.demux(*streams):
            if self._stop.is_set():
                return False
            if packet.size == 0:
                continue
            tb = packet.time_base
            raw_ts = packet.dts if packet.dts is not None else packet.pts
            if raw_ts is None or tb is None:
                continue
            dts = int(raw_ts * tb.numerator * 90000 // tb.denominator)
            pts = int(packet.pts * tb.numerator * 90000 // tb.denominator) if packet.pts is not None else dts
            if session_first is None:
                session_first = dts
                if self._last_dts is not None:
                    # keep the clock monotonic across reconnects/loops: continue 40 ms after the last frame
                    self._offset = self._last_dts + 3600 - dts
            dts += self._offset
            pts += self._offset
            if self.realtime:
                due = wall0 + (dts - self._offset - session_first) / 90000
                delay = due - time.monotonic()
                if delay > 0 and self._stop.wait(min(delay, 1.0)):
                    return False
            if packet.stream is vstream:
                assert vcodec is not None
                outs = bsf.filter(packet) if bsf is not None else [packet]
                for p in outs:
                    data = bytes(p)
                    key = bool(p.is_keyframe)
                    if key and prefix and not nalmod.extract_parameter_sets(
                            vcodec, nalmod.split_annexb(data)).sps:
                        data = prefix + data
                    self._emit(Frame(vcodec, pts, dts, data, key))
            else:
                assert acodec is not None
                data = bytes(packet)
                if acodec == "aac" and asc and not (len(data) > 1 and data[0] == 0xFF and data[1] & 0xF0 == 0xF0):
                    data = adts_header(asc, len(data)) + data
                self._emit(Frame(acodec, pts, pts, data, True))
            self._last_dts = max(dts, self._last_dts or dts)
        return True

    def _emit(self, frame: Frame) -> None:
        self.frames += 1
        self.bytes += len(frame.data)
        self._post(self._deliver, frame)
