"""NAL helpers against real encoder output (PyAV) and hand-made edge cases."""

from __future__ import annotations

import io

import av
import pytest
from _frames import make_frames

from xueliang.media import nal


def test_split_annexb_start_code_forms() -> None:
    data = b"\x00\x00\x00\x01\x67\xaa\x00\x00\x01\x68\xbb\x00\x00\x00\x00\x01\x65\xcc\xdd"
    assert nal.split_annexb(data) == [b"\x67\xaa", b"\x68\xbb", b"\x65\xcc\xdd"]
    assert nal.split_annexb(b"") == []
    assert nal.split_annexb(b"\x00\x00\x01") == []
    # junk before the first start code is ignored
    assert nal.split_annexb(b"\x12\x34\x00\x00\x01\x09\xf0") == [b"\x09\xf0"]


def test_unescape_rbsp() -> None:
    assert nal.unescape_rbsp(b"\x00\x00\x03\x00\x00\x03\x01") == b"\x00\x00\x00\x00\x01"
    assert nal.unescape_rbsp(b"\x00\x00\x03\x03") == b"\x00\x00\x03"


@pytest.mark.parametrize("codec", ["h264", "h265"])
@pytest.mark.parametrize(("width", "height"), [(320, 240), (322, 242), (1920, 1080)])
def test_sps_size_matches_decoder(codec: str, width: int, height: int) -> None:
    frames = make_frames(codec, width, height, count=2, gop=10)
    key = frames[0]
    assert key.keyframe and nal.is_keyframe(codec, key.data)
    assert not nal.is_keyframe(codec, frames[1].data)
    ps = nal.extract_parameter_sets(codec, nal.split_annexb(key.data))
    assert ps.complete(codec)
    info = nal.parse_sps(codec, ps.sps[0])
    assert (info.width, info.height) == (width, height)


def test_h264_high_profile_sps_with_crop() -> None:
    """A high-profile SPS (chroma/bit-depth fields present) with cropping, from libx264 medium."""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = 1280, 720, "yuv420p"
    from fractions import Fraction

    ctx.time_base = Fraction(1, 25)
    ctx.options = {"preset": "medium", "profile": "high"}
    import numpy as np

    vf = av.VideoFrame.from_ndarray(np.zeros((720, 1280, 3), np.uint8), format="rgb24").reformat(format="yuv420p")
    vf.pts = 0
    data = b"".join(bytes(p) for p in [*ctx.encode(vf), *ctx.encode(None)])
    ps = nal.extract_parameter_sets("h264", nal.split_annexb(data))
    info = nal.parse_h264_sps(ps.sps[0])
    assert info.profile_idc == 100
    assert (info.width, info.height) == (1280, 720)  # 720 = 45 MBs, no crop; 1080 case above crops
    rec = nal.avc_decoder_config(ps.sps, ps.pps)
    assert rec[1] == 100 and len(rec) > 11 + len(ps.sps[0]) + len(ps.pps[0])


def test_sps_garbage_raises() -> None:
    with pytest.raises(ValueError):
        nal.parse_h264_sps(b"\x67\x42")
    with pytest.raises(ValueError):
        nal.parse_h265_sps(b"\x42\x01" + b"\xff" * 20)


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_decoder_config_and_avcc_decode(codec: str) -> None:
    """avcC/hvcC as extradata + length-prefixed samples decode in ffmpeg (PyAV)."""
    frames = make_frames(codec, 320, 240, count=10, gop=10)
    ps = nal.extract_parameter_sets(codec, nal.split_annexb(frames[0].data))
    ctx = av.CodecContext.create("h264" if codec == "h264" else "hevc", "r")
    ctx.extradata = nal.decoder_config(codec, ps)
    decoded = []
    for f in frames:
        sample = nal.annexb_to_avcc(codec, f.data)
        # no parameter sets and no start codes left in the sample
        units = _length_prefixed_units(sample)
        assert units and not any(nal.nal_type(codec, n) in nal.parameter_set_types(codec) for n in units)
        decoded += ctx.decode(av.Packet(sample))
    decoded += ctx.decode(None)
    assert len(decoded) == 10
    assert (decoded[0].width, decoded[0].height) == (320, 240)


def test_codec_strings() -> None:
    for codec, prefix in (("h264", "avc1."), ("h265", "hvc1.1.")):
        frames = make_frames(codec, 320, 240, count=1)
        ps = nal.extract_parameter_sets(codec, nal.split_annexb(frames[0].data))
        assert nal.codec_string(codec, ps).startswith(prefix)


def _length_prefixed_units(sample: bytes) -> list[bytes]:
    units, pos = [], 0
    while pos < len(sample):
        n = int.from_bytes(sample[pos : pos + 4], "big")
        units.append(sample[pos + 4 : pos + 4 + n])
        pos += 4 + n
    assert pos == len(sample)
    return units


def test_to_avcc_roundtrip_lengths() -> None:
    out = nal.to_avcc([b"\x65abc", b"\x41" * 300])
    buf = io.BytesIO(out)
    sizes = []
    while True:
        head = buf.read(4)
        if not head:
            break
        n = int.from_bytes(head, "big")
        sizes.append(n)
        buf.read(n)
    assert sizes == [4, 300]
