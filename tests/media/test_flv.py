"""FLV muxer output decoded by PyAV's ffmpeg (which reads enhanced FLV HEVC since 6.1)."""

from __future__ import annotations

import io
import struct

import av
import pytest
from _frames import make_aac, make_frames, make_pcma

from xueliang.media.flv import FlvMuxer, adts_to_asc, split_adts
from xueliang.media.frame import Frame


def _decode(data: bytes) -> tuple[dict[str, str], int, int, tuple[int, int], list[int]]:
    video = audio = 0
    size = (0, 0)
    vts: list[int] = []
    with av.open(io.BytesIO(data), format="flv") as ic:
        codecs = {s.type: s.codec_context.name for s in ic.streams}
        for pkt in ic.demux():
            if pkt.stream.type == "video" and pkt.pts is not None:
                vts.append(int(pkt.pts))
            for f in pkt.decode():
                if pkt.stream.type == "video":
                    video += 1
                    size = (f.width, f.height)  # type: ignore[union-attr]
                else:
                    audio += 1
    return codecs, video, audio, size, vts


def _tags(data: bytes) -> list[tuple[int, int, bytes]]:
    assert data[:3] == b"FLV"
    pos = struct.unpack(">I", data[5:9])[0] + 4
    out = []
    while pos + 11 <= len(data):
        t = data[pos]
        size = int.from_bytes(data[pos + 1 : pos + 4], "big")
        ts = int.from_bytes(data[pos + 4 : pos + 7], "big") | (data[pos + 7] << 24)
        body = data[pos + 11 : pos + 11 + size]
        assert struct.unpack(">I", data[pos + 11 + size : pos + 15 + size])[0] == 11 + size
        out.append((t, ts, body))
        pos += 15 + size
    assert pos == len(data)
    return out


@pytest.mark.parametrize("bframes", [0, 2])
def test_h264_with_pcma(bframes: int) -> None:
    frames = make_frames("h264", 320, 240, count=50, gop=25, bframes=bframes)
    audio = make_pcma(2.0, start_pts=frames[0].dts)
    mux = FlvMuxer("h264", "pcma")
    allf = sorted(frames + audio, key=lambda f: f.dts)
    data = mux.header(width=320, height=240, fps=25) + b"".join(mux.tag(f) for f in allf)
    codecs, nv, na, size, vts = _decode(data)
    assert codecs == {"video": "h264", "audio": "pcm_alaw"}
    assert nv == 50 and na == 50 and size == (320, 240)
    assert min(vts) >= 0 and vts[0] <= 80  # stream starts near 0 ms
    tags = _tags(data)
    video_tags = [b for t, _, b in tags if t == 9]
    assert video_tags[0][:2] == b"\x17\x00"  # AVC sequence header first
    assert sum(1 for b in video_tags if b[1] == 1) == 50  # one NALU tag per frame
    if bframes:
        assert any(int.from_bytes(b[2:5], "big") > 0 for b in video_tags if b[1] == 1)  # composition time


@pytest.mark.parametrize("bframes", [0, 2])
def test_h265_enhanced_flv_with_aac(bframes: int) -> None:
    frames = make_frames("h265", 320, 240, count=50, gop=25, bframes=bframes)
    audio = make_aac(2.0, start_pts=frames[0].dts)
    mux = FlvMuxer("h265", "aac")
    allf = sorted(frames + audio, key=lambda f: f.dts)
    data = mux.header() + b"".join(mux.tag(f) for f in allf)
    codecs, nv, na, size, _ = _decode(data)
    assert codecs == {"video": "hevc", "audio": "aac"}
    assert nv == 50 and size == (320, 240)
    assert na >= len(audio) - 2
    tags = _tags(data)
    first_video = next(b for t, _, b in tags if t == 9)
    assert first_video[0] & 0x80 and first_video[1:5] == b"hvc1" and first_video[0] & 0x0F == 0
    first_audio = next(b for t, _, b in tags if t == 8)
    assert first_audio[:2] == b"\xaf\x00"


def test_sequence_header_resent_on_sps_change() -> None:
    a = make_frames("h264", 320, 240, count=25, gop=25)
    b = make_frames("h264", 640, 360, count=25, gop=25)
    shift = a[-1].dts + 3600 - b[0].dts
    b = [Frame(f.codec, f.pts + shift, f.dts + shift, f.data, f.keyframe) for f in b]
    mux = FlvMuxer("h264")
    data = mux.header() + b"".join(mux.tag(f) for f in a + b)
    seq = [b_ for t, _, b_ in _tags(data) if t == 9 and b_[1] == 0]
    assert len(seq) == 2
    # a keyframe repeating the same SPS does not resend it
    mux2 = FlvMuxer("h264")
    data2 = mux2.header() + b"".join(mux2.tag(f) for f in make_frames("h264", 320, 240, count=50, gop=10))
    assert len([1 for t, _, b_ in _tags(data2) if t == 9 and b_[1] == 0]) == 1
    _, nv, _, size, _ = _decode(data)
    assert nv == 50 and size == (640, 360)


def test_frames_before_first_keyframe_are_dropped_and_timestamps_start_at_zero() -> None:
    frames = make_frames("h264", 320, 240, count=50, gop=25)
    mux = FlvMuxer("h264")
    out = [mux.tag(f) for f in frames[5:]]
    assert all(o == b"" for o in out[:20])
    assert mux.dropped_before_keyframe == 20
    tags = _tags(mux.header() + b"".join(out))
    assert tags[0][1] == 0


def test_adts_helpers() -> None:
    frames = make_aac(0.5, sample_rate=16000)
    asc = adts_to_asc(frames[0].data)
    assert (asc[0] >> 3) == 2  # AAC LC
    assert ((asc[0] & 7) << 1 | asc[1] >> 7) == 8  # 16 kHz index
    two = frames[0].data + frames[1].data
    parts = split_adts(two)
    assert len(parts) == 2 and parts[0][1] == 16000
    with pytest.raises(ValueError):
        adts_to_asc(b"\x00" * 7)


def test_rejects_unknown_codecs() -> None:
    with pytest.raises(ValueError):
        FlvMuxer("vp9")
    with pytest.raises(ValueError):
        FlvMuxer("h264", "opus")


def test_extended_timestamp_after_4_6_hours() -> None:
    frames = make_frames("h264", 320, 240, count=2, gop=25)
    mux = FlvMuxer("h264")
    mux.tag(frames[0])
    late = frames[1]
    hours = 5 * 3600 * 90000
    out = mux.tag(Frame("h264", late.pts + hours, late.dts + hours, late.data, False))
    tags = _tags(mux.header() + out)
    want = (late.dts + hours - frames[0].dts) // 90
    assert want > 0xFFFFFF and tags[0][1] == want
