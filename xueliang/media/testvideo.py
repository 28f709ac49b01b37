"""Test video for the simulator, tests and benchmarks: a moving picture with a visible clock.

Encoded with PyAV (libx264 / libx265 when the build has them, the native encoder names as a
fallback) the way a camera would send it: Annex-B, parameter sets before every keyframe, one
keyframe a second (GOP = fps), no B-frames, zero-latency tuning. Encoding costs seconds, so the
result is cached under `var/testvideo/` (or `$XUELIANG_VAR_DIR/testvideo/`) keyed by every parameter.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, cast

import av
import numpy as np

from xueliang.media.frame import Frame

if TYPE_CHECKING:
    from av.video.codeccontext import VideoCodecContext

__all__ = ["alaw_encode", "make_test_audio", "make_test_video"]

_CACHE_MAGIC = b"XLTV1\n"
_memo: dict[str, tuple[Frame, ...]] = {}
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
_REC = struct.Struct("!qqBI")
_ENCODERS = {"h264": ("libx264", "h264"), "h265": ("libx265", "hevc", "libkvazaar")}


def _cache_dir() -> Path:
    base = Path(os.environ.get("XUELIANG_VAR_DIR", "var"))
    d = base / "testvideo"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _encoder_name(codec: str) -> str:
    names = _ENCODERS.get(codec)
    if names is None:
        raise ValueError(f"unsupported test video codec {codec!r} (h264 or h265)")
    available = av.codecs_available
    for name in names:
        if name in available:
            return name
    raise RuntimeError(f"no {codec} encoder in this PyAV build (tried {', '.join(names)})")


_DIGITS = {  # 3x5 bitmap font, enough for a clock and a frame counter
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111", "3": "111001111001111",
    "4": "101101111001001", "5": "111100111001111", "6": "111100111101111", "7": "111001010010010",
    "8": "111101111101111", "9": "111101111001111", ":": "000010000010000", ".": "000000000000010",
    " ": "000000000000000", "#": "101111101111101",
}


def _draw_text(img: np.ndarray, text: str, x: int, y: int, scale: int) -> None:
    """Draw white-on-black digits with numpy (no font files, no cv2 dependency at run time)."""
    h, w = img.shape[:2]
    cw = 4 * scale
    x0 = max(0, x - scale)
    y0 = max(0, y - scale)
    img[y0 : min(h, y + 6 * scale), x0 : min(w, x + cw * len(text) + scale)] = 0
    for k, ch in enumerate(text):
        bits = _DIGITS.get(ch, _DIGITS[" "])
        for r in range(5):
            for c in range(3):
                if bits[r * 3 + c] == "1":
                    yy = y + r * scale
                    xx = x + k * cw + c * scale
                    img[yy : min(h, yy + scale), xx : min(w, xx + scale)] = 255


def _picture(i: int, fps: int, width: int, height: int, grid: tuple[np.ndarray, np.ndarray],
             noise: np.ndarray | None) -> np.ndarray:
    y, x = grid
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[..., 0] = (x + 3 * i) & 0xFF
    img[..., 1] = (y + 2 * i) & 0xFF
    img[..., 2] = (((x >> 5) + (y >> 5) + i // fps) & 1) * 180
    if noise is not None:  # texture that moves: keeps the bitrate close to a real scene
        sh = (i * 5) % noise.shape[1]
        img += np.roll(noise, sh, axis=1)[:height, :width, None]
    box = max(8, height // 8)
    bx = (i * 9) % max(1, width - box)
    by = (height - box) // 2
    img[by : by + box, bx : bx + box] = (255, 255, 0)
    scale = max(2, height // 90)
    secs = i / fps
    text = f"{int(secs // 60):02d}:{secs % 60:05.2f} #{i:05d}"
    _draw_text(img, text, 2 * scale, 2 * scale, scale)
    return img


def _encode(codec: str, width: int, height: int, fps: int, count: int, bitrate: int | None) -> list[Frame]:
    enc = _encoder_name(codec)
    ctx = cast("VideoCodecContext", av.CodecContext.create(enc, "w"))
    ctx.width = width
    ctx.height = height
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = Fraction(1, 90000)
    ctx.framerate = Fraction(fps, 1)
    ctx.gop_size = fps
    ctx.max_b_frames = 0
    if bitrate:
        ctx.bit_rate = bitrate
    opts: dict[str, str] = {}
    if enc == "libx264":
        params = f"keyint={fps}:min-keyint={fps}:scenecut=0:bframes=0:repeat-headers=1"
        if bitrate:
            kb = bitrate // 1000
            params += f":vbv-maxrate={kb}:vbv-bufsize={kb // 2}:nal-hrd=cbr:filler=0"
        opts = {"preset": "veryfast", "tune": "zerolatency", "x264-params": params}
    elif enc == "libx265":
        params = f"keyint={fps}:min-keyint={fps}:scenecut=0:bframes=0:repeat-headers=1:log-level=error"
        if bitrate:
            kb = bitrate // 1000
            params += f":vbv-maxrate={kb}:vbv-bufsize={kb // 2}"
        opts = {"preset": "ultrafast", "tune": "zerolatency", "x265-params": params}
    ctx.options = opts
    step = 90000 // fps
    grid = np.mgrid[0:height, 0:width].astype(np.uint32)
    gy, gx = grid[0], grid[1]
    noise = None
    if bitrate:
        rng = np.random.default_rng(28181)
        noise = (rng.integers(0, 24, size=(height, width * 2), dtype=np.uint8))
    frames: list[Frame] = []

    def collect(packets: list[av.Packet]) -> None:
        for p in packets:
            pts = int(p.pts) if p.pts is not None else len(frames) * step
            dts = int(p.dts) if p.dts is not None else pts
            frames.append(Frame(codec, pts, dts, bytes(p), bool(p.is_keyframe)))

    for i in range(count):
        img = _picture(i, fps, width, height, (gy, gx), noise)
        vf = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        vf.pts = i * step
        collect(ctx.encode(vf))
    collect(ctx.encode(None))
    return frames


def _save(path: Path, frames: list[Frame]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(_CACHE_MAGIC)
        for fr in frames:
            f.write(_REC.pack(fr.pts, fr.dts, 1 if fr.keyframe else 0, len(fr.data)))
            f.write(fr.data)
    os.replace(tmp, path)


def _load(path: Path, codec: str) -> list[Frame] | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if not data.startswith(_CACHE_MAGIC):
        return None
    frames = []
    pos = len(_CACHE_MAGIC)
    n = len(data)
    while pos < n:
        if pos + _REC.size > n:
            return None
        pts, dts, key, size = _REC.unpack_from(data, pos)
        pos += _REC.size
        if pos + size > n:
            return None
        frames.append(Frame(codec, pts, dts, data[pos : pos + size], bool(key)))
        pos += size
    return frames


def make_test_video(codec: str = "h264", width: int = 640, height: int = 360, fps: int = 25, seconds: float = 4,
                    *, bitrate: int | None = None) -> list[Frame]:
    """Encoded test video frames (first frame is a keyframe with parameter sets); cached on disk.

    `bitrate` (bit/s) asks for a constant-rate stream with texture, for benchmarks; without it the
    encoder's default quality gives small frames, good for tests.
    """
    count = max(1, round(seconds * fps))
    key = f"{codec}-{width}x{height}-{fps}-{count}-{bitrate or 0}-v1"
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    path = _cache_dir() / f"{codec}_{width}x{height}_{fps}fps_{count}f_{bitrate or 0}_{digest}.bin"
    key = str(path.resolve())
    # one encode per process even when many simulated devices ask at once (from executor threads)
    with _locks_guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        memo = _memo.get(key)
        if memo is not None:
            return list(memo)
        frames = _load(path, codec)
        if not frames:
            frames = _encode(codec, width, height, fps, count, bitrate)
            _save(path, frames)
        if len(_memo) >= 8:
            _memo.pop(next(iter(_memo)))
        _memo[key] = tuple(frames)
        return list(frames)


_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)


def alaw_encode(pcm: np.ndarray) -> bytes:
    """G.711 A-law of 16-bit linear samples (vectorised form of the ITU-T G.711 segment rule)."""
    x = pcm.astype(np.int32) >> 3  # 13-bit domain
    mask = np.where(x >= 0, 0xD5, 0x55)
    mag = np.where(x >= 0, x, -x - 1)
    seg = np.searchsorted(_ALAW_SEG_END, mag, side="left")
    mant = np.where(seg < 2, mag >> 1, mag >> np.maximum(seg, 1)) & 0x0F
    code = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | mant)
    return (code ^ mask).astype(np.uint8).tobytes()


def make_test_audio(seconds: float = 4, *, ptime_ms: int = 40, start_pts: int = 0, tone_hz: float = 1000.0) -> list[Frame]:
    """G.711 A-law frames of a tone, `ptime_ms` each, PTS on the 90 kHz clock."""
    per = 8 * ptime_ms
    n = max(1, int(seconds * 1000 // ptime_ms))
    t = np.arange(n * per) / 8000.0
    pcm = (np.sin(2 * np.pi * tone_hz * t) * 12000).astype(np.int16)
    data = alaw_encode(pcm)
    out = []
    for k in range(n):
        pts = start_pts + k * ptime_ms * 90
        out.append(Frame("pcma", pts, pts, data[k * per : (k + 1) * per], True))
    return out


if __name__ == "__main__":  # pragma: no cover - manual check
    t0 = time.perf_counter()
    fr = make_test_video()
    print(len(fr), sum(len(f.data) for f in fr), time.perf_counter() - t0)
