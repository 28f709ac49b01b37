"""PsMuxer and packetize: structure, interoperability with ffmpeg, RTP rules of GB/T 28181-2022."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from xueliang.media.frame import Frame
from xueliang.media.ps_mux import PsMuxer, crc32_mpeg2, packetize
from xueliang.media.rtp import parse_rtp
from xueliang.media.testvideo import make_test_audio, make_test_video

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"


def test_crc_matches_a_camera_psm() -> None:
    path = FIXTURES / "ps" / "rtp_ps_camera_first_packet_256B.bin"
    if not path.exists():
        pytest.skip(f"fixture not found at {path}")
    raw = path.read_bytes()[12:]
    i = raw.index(b"\x00\x00\x01\xbc")
    length = int.from_bytes(raw[i + 4 : i + 6], "big")
    psm = raw[i : i + 6 + length]
    # this camera writes the CRC little-endian (see fixtures README); the value is the MPEG-2 CRC
    assert crc32_mpeg2(psm[:-4]) == int.from_bytes(psm[-4:], "little") == 0xB95485CB


def test_structure_of_keyframe_and_delta() -> None:
    mux = PsMuxer("h265", "pcma")
    key = mux.mux(Frame("h265", 3600, 3600, b"\x00\x00\x00\x01\x40\x01", True))
    delta = mux.mux(Frame("h265", 7200, 7200, b"\x00\x00\x00\x01\x02\x01", False))
    audio = mux.mux(Frame("pcma", 7200, 7200, b"\xd5" * 320, True))
    assert key.startswith(b"\x00\x00\x01\xba") and b"\x00\x00\x01\xbb" in key and b"\x00\x00\x01\xbc" in key
    i = key.index(b"\x00\x00\x01\xbc")
    psm = key[i : i + 6 + int.from_bytes(key[i + 4 : i + 6], "big")]
    assert crc32_mpeg2(psm[:-4]) == int.from_bytes(psm[-4:], "big")
    assert bytes((0x24, 0xE0)) in psm and bytes((0x90, 0xC0)) in psm
    assert delta.startswith(b"\x00\x00\x01\xba") and b"\x00\x00\x01\xbc" not in delta
    assert b"\x00\x00\x01\xc0" in audio


def test_packetize_rules() -> None:
    ps = bytes(range(256)) * 20   # 5120 bytes
    pkts, nxt = packetize(ps, seq=65534, ts=0x1_0000_0005, ssrc=0x1234, mtu=1400)
    parsed = [parse_rtp(p) for p in pkts]
    assert all(p is not None for p in parsed)
    assert [p.seq for p in parsed] == [65534, 65535, 0, 1]   # type: ignore[union-attr]
    assert nxt == 2
    assert {p.ts for p in parsed} == {5}                      # type: ignore[union-attr]
    assert [p.marker for p in parsed] == [False, False, False, True]  # type: ignore[union-attr]
    assert all(len(p) <= 1400 for p in pkts)
    assert b"".join(bytes(p.payload) for p in parsed) == ps   # type: ignore[union-attr]
    one, nxt = packetize(b"x", seq=9, ts=1, ssrc=1)
    assert len(one) == 1 and nxt == 10 and parse_rtp(one[0]).marker  # type: ignore[union-attr]


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_ffmpeg_reads_our_ps(codec: str, tmp_path: Path) -> None:
    if shutil.which("ffprobe") is None:
        pytest.skip("ffprobe not installed")
    frames = make_test_video(codec, 320, 180, 25, 2)
    audio = make_test_audio(2, start_pts=frames[0].pts)
    mux = PsMuxer(codec, "pcma")
    path = tmp_path / "ours.mpg"
    path.write_bytes(b"".join(mux.mux(v) + mux.mux(a) for v, a in zip(frames, audio, strict=False)))
    res = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json", "-f", "mpeg",
                          str(path)], capture_output=True, text=True, timeout=60, check=True)
    streams = {s["codec_type"]: s for s in json.loads(res.stdout)["streams"]}
    v = streams["video"]
    assert v["codec_name"] == ("hevc" if codec == "h265" else "h264")
    assert (v["width"], v["height"]) == (320, 180)
    assert int(v["nb_read_frames"]) == len(frames)
    # ffmpeg's mpeg demuxer finds the 0xC0 stream but maps stream type 0x90 only for some vendors'
    # files, so it names it mp2; the PSM itself is checked in test_structure_of_keyframe_and_delta
    assert "audio" in streams
