"""Small PyAV encoder for media-output tests (until/besides `xueliang.media.testvideo`).

Encodes a moving, non-uniform pattern so decoders, snapshots and players have real pictures to
work on. Output is Annex-B with parameter sets in-band before every keyframe, as a camera sends.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import av
import numpy as np

from xueliang.media.frame import Frame

_ENCODERS = {"h264": "libx264", "h265": "libx265"}


def _picture(i: int, width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[..., 0] = ((x + 4 * i) % 256).astype(np.uint8)
    img[..., 1] = ((y + 2 * i) % 256).astype(np.uint8)
    img[..., 2] = (((x // 16 + y // 16 + i // 5) % 2) * 200).astype(np.uint8)
    # a moving white box
    bx = (i * 7) % max(1, width - 40)
    img[20:60, bx : bx + 40] = 255
    return img


@lru_cache(maxsize=16)
def _encode(codec: str, width: int, height: int, fps: int, count: int, gop: int, bframes: int) -> tuple[Frame, ...]:
    ctx = av.CodecContext.create(_ENCODERS[codec], "w")
    ctx.width = width
    ctx.height = height
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = Fraction(1, 90000)
    ctx.framerate = Fraction(fps, 1)
    ctx.gop_size = gop
    ctx.max_b_frames = bframes
    if codec == "h264":
        ctx.options = {"preset": "ultrafast", "tune": "zerolatency" if bframes == 0 else "film",
                       "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}"}
    else:
        ctx.options = {"preset": "ultrafast", "x265-params":
                       f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}:repeat-headers=1:log-level=error"}
    step = 90000 // fps
    out: list[Frame] = []

    def collect(packets: list[av.Packet]) -> None:
        for p in packets:
            pts = int(p.pts) if p.pts is not None else 0
            dts = int(p.dts) if p.dts is not None else pts
            out.append(Frame(codec=codec, pts=pts + 10 * step, dts=dts + 10 * step, data=bytes(p),
                             keyframe=bool(p.is_keyframe)))

    for i in range(count):
        vf = av.VideoFrame.from_ndarray(_picture(i, width, height), format="rgb24").reformat(format="yuv420p")
        vf.pts = i * step
        collect(ctx.encode(vf))
    collect(ctx.encode(None))
    return tuple(out)


def make_frames(codec: str = "h264", width: int = 320, height: int = 240, fps: int = 25, count: int = 50,
                gop: int = 25, bframes: int = 0) -> list[Frame]:
    """`count` encoded video frames; a keyframe every `gop` frames. Cached per arguments."""
    return [Frame(f.codec, f.pts, f.dts, f.data, f.keyframe)
            for f in _encode(codec, width, height, fps, count, gop, bframes)]


def make_pcma(seconds: float = 2.0, start_pts: int = 0, chunk_ms: int = 40) -> list[Frame]:
    """A-law audio chunks (a tone) as a GB device sends them."""
    n = int(seconds * 1000 / chunk_ms)
    samples = 8 * chunk_ms
    frames = []
    for i in range(n):
        t = np.arange(i * samples, (i + 1) * samples) / 8000.0
        pcm = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
        frames.append(Frame("pcma", start_pts + i * chunk_ms * 90, start_pts + i * chunk_ms * 90,
                            _alaw(pcm), True))
    return frames


def _alaw(pcm: np.ndarray) -> bytes:
    ctx = av.CodecContext.create("pcm_alaw", "w")
    ctx.sample_rate = 8000
    ctx.format = "s16"
    ctx.layout = "mono"
    af = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    af.sample_rate = 8000
    return b"".join(bytes(p) for p in ctx.encode(af))


def make_aac(seconds: float = 2.0, start_pts: int = 0, sample_rate: int = 16000) -> list[Frame]:
    """ADTS AAC frames, one per Frame."""
    import io

    buf = io.BytesIO()
    with av.open(buf, "w", format="adts") as oc:
        st = oc.add_stream("aac", rate=sample_rate)
        st.layout = "mono"  # type: ignore[union-attr]
        total = int(seconds * sample_rate)
        t = np.arange(total) / sample_rate
        pcm = (np.sin(2 * np.pi * 440 * t) * 0.3).astype(np.float32)
        for off in range(0, total, 1024):
            chunk = pcm[off : off + 1024]
            af = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="fltp", layout="mono")
            af.sample_rate = sample_rate
            af.pts = off
            for p in st.encode(af):  # type: ignore[union-attr]
                oc.mux(p)
        for p in st.encode(None):  # type: ignore[union-attr]
            oc.mux(p)
    data = buf.getvalue()
    frames = []
    pos = 0
    i = 0
    while pos + 7 <= len(data):
        length = ((data[pos + 3] & 3) << 11) | (data[pos + 4] << 3) | (data[pos + 5] >> 5)
        pts = start_pts + i * 1024 * 90000 // sample_rate
        frames.append(Frame("aac", pts, pts, data[pos : pos + length], True))
        pos += length
        i += 1
    return frames
