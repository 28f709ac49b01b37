"""make_test_video: real encoded video, one keyframe a second, a clock that changes, disk cache."""

from __future__ import annotations

import itertools
from pathlib import Path

import av
import numpy as np
import pytest

from xueliang.media.ps_demux import is_keyframe
from xueliang.media.testvideo import alaw_encode, make_test_audio, make_test_video


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_video_decodes_with_gop_and_clock(codec: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XUELIANG_VAR_DIR", str(tmp_path))
    frames = make_test_video(codec, 320, 180, 10, 2)
    assert len(frames) == 20
    assert [i for i, f in enumerate(frames) if f.keyframe] == [0, 10]      # GOP = fps
    assert all(f.keyframe == is_keyframe(f.data, codec) for f in frames)   # parameter sets in-band
    assert all(f.data.startswith((b"\x00\x00\x00\x01", b"\x00\x00\x01")) for f in frames)  # Annex-B
    assert [f.pts for f in frames] == [i * 9000 for i in range(20)] and all(f.dts == f.pts for f in frames)
    ctx = av.CodecContext.create("hevc" if codec == "h265" else "h264", "r")
    pics = []
    for f in frames:
        pics += [p.to_ndarray(format="rgb24") for p in ctx.decode(av.Packet(f.data))]  # type: ignore[attr-defined]
    assert len(pics) == 20 and pics[0].shape == (180, 320, 3)
    clock = [p[2:16, 2:150] for p in pics]        # the clock/counter area, top left
    assert all(np.abs(a.astype(int) - b.astype(int)).mean() > 1 for a, b in itertools.pairwise(clock))
    # cached: a second call reads the file instead of encoding
    cache = list((tmp_path / "testvideo").glob(f"{codec}_320x180_*"))
    assert len(cache) == 1
    again = make_test_video(codec, 320, 180, 10, 2)
    assert [f.data for f in again] == [f.data for f in frames]


def test_bitrate_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XUELIANG_VAR_DIR", str(tmp_path))
    frames = make_test_video("h264", 320, 180, 25, 2, bitrate=1_000_000)
    bits = sum(len(f.data) for f in frames) * 8 / 2
    assert 600_000 < bits < 1_400_000


def test_corrupt_cache_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XUELIANG_VAR_DIR", str(tmp_path))
    frames = make_test_video("h264", 160, 96, 5, 1)
    (path,) = (tmp_path / "testvideo").glob("h264_160x96_*")
    path.write_bytes(path.read_bytes()[:100])
    from xueliang.media import testvideo

    testvideo._memo.clear()   # forget the in-process copy: read the (now corrupt) file
    assert [f.data for f in make_test_video("h264", 160, 96, 5, 1)] == [f.data for f in frames]


def test_audio_is_alaw_tone() -> None:
    frames = make_test_audio(1, ptime_ms=20)
    assert len(frames) == 50 and all(len(f.data) == 160 and f.codec == "pcma" for f in frames)
    assert frames[1].pts - frames[0].pts == 1800
    ctx = av.CodecContext.create("pcm_alaw", "r")
    ctx.sample_rate = 8000  # type: ignore[attr-defined]
    ctx.layout = "mono"  # type: ignore[attr-defined]
    pcm = np.concatenate([fr.to_ndarray().ravel() for f in frames for fr in ctx.decode(av.Packet(f.data))])  # type: ignore[attr-defined]
    assert len(pcm) == 8000 and 8000 < np.abs(pcm).max() < 13000
    assert alaw_encode(np.array([0, -1, 32767, -32768], dtype=np.int16)) == bytes([0xD5, 0x55, 0xAA, 0x2A])
