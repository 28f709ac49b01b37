"""fMP4 init segment + fragments decoded by PyAV (format mp4)."""

from __future__ import annotations

import io
import struct

import av
import pytest
from _frames import make_frames

from xueliang.media.fmp4 import Fmp4Muxer


def _boxes(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        size = struct.unpack(">I", data[pos : pos + 4])[0]
        assert size >= 8
        out.append(data[pos + 4 : pos + 8])
        pos += size
    assert pos == len(data)
    return out


@pytest.mark.parametrize("codec", ["h264", "h265"])
@pytest.mark.parametrize("bframes", [0, 2])
def test_fragments_decode(codec: str, bframes: int) -> None:
    frames = make_frames(codec, 322, 242, count=50, gop=25, bframes=bframes)
    mux = Fmp4Muxer(codec, 0, 0)
    assert mux.update_parameter_sets(frames[0])
    init = mux.init_segment()
    assert _boxes(init) == [b"ftyp", b"moov"]
    frags = [mux.fragment(frames[:25]), mux.fragment(frames[25:40]), mux.fragment(frames[40:])]
    for fr in frags:
        assert _boxes(fr) == [b"moof", b"mdat"]
    with av.open(io.BytesIO(init + b"".join(frags)), format="mp4") as ic:
        vs = ic.streams.video[0]
        assert vs.codec_context.name == ("h264" if codec == "h264" else "hevc")
        decoded = list(ic.decode(vs))
    assert len(decoded) == 50
    assert (decoded[0].width, decoded[0].height) == (322, 242)
    pts = sorted(int(f.pts) for f in decoded)  # type: ignore[arg-type]
    assert pts[1] - pts[0] == 3600  # 25 fps on the 90 kHz timescale
    assert mux.codec_string.startswith("avc1." if codec == "h264" else "hvc1.")


def test_init_needs_parameter_sets() -> None:
    mux = Fmp4Muxer("h264", 320, 240)
    with pytest.raises(ValueError):
        mux.init_segment()
    frames = make_frames("h264", 320, 240, count=3)
    assert not mux.update_parameter_sets(frames[1])  # not a keyframe
    frag = mux.fragment(frames)  # learns from the keyframe inside
    assert frag and mux.init_segment()


def test_fragment_per_frame_mse_style() -> None:
    """One fragment per frame (the low-latency WebSocket mode) still decodes to every frame."""
    frames = make_frames("h264", 320, 240, count=30, gop=10)
    mux = Fmp4Muxer("h264", 320, 240)
    mux.update_parameter_sets(frames[0])
    data = mux.init_segment() + b"".join(mux.fragment([f]) for f in frames)
    with av.open(io.BytesIO(data), format="mp4") as ic:
        assert len(list(ic.decode(video=0))) == 30


def test_next_dts_sets_last_sample_duration() -> None:
    frames = make_frames("h264", 320, 240, count=3, gop=10)
    mux = Fmp4Muxer("h264", 320, 240)
    mux.update_parameter_sets(frames[0])
    frag = mux.fragment([frames[0]], next_dts=frames[0].dts + 7200)
    # trun (version 1) first entry: duration, size, flags, cts -> duration right after the 20-byte header
    i = frag.index(b"trun")
    assert struct.unpack(">I", frag[i + 16 : i + 20])[0] == 7200
