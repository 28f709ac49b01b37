"""Snapshots decoded in the process pool, checked with OpenCV."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from _frames import make_frames

from xueliang.media.snapshot import SnapshotError, shutdown_pool, snapshot_jpeg, snapshot_name, store_snapshot


@pytest.fixture(scope="module", autouse=True)
def _pool() -> object:
    yield
    shutdown_pool()


@pytest.mark.parametrize("codec", ["h264", "h265"])
async def test_snapshot_from_keyframe(codec: str) -> None:
    frames = make_frames(codec, 320, 240, count=30, gop=25)
    jpeg = await snapshot_jpeg([frames[25]], codec)
    assert jpeg[:2] == b"\xff\xd8"
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (240, 320, 3)
    assert float(img.std()) > 20  # a real picture, not a grey/black frame


async def test_snapshot_gop_and_resize() -> None:
    frames = make_frames("h264", 640, 360, count=30, gop=25)
    # leading non-keyframes are skipped: decoding starts at the keyframe
    jpeg = await snapshot_jpeg(frames[20:30], "h264", max_width=320)
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (180, 320, 3)


async def test_snapshot_errors() -> None:
    frames = make_frames("h264", 320, 240, count=5, gop=25)
    with pytest.raises(SnapshotError):
        await snapshot_jpeg(frames[1:5], "h264")  # no keyframe
    from xueliang.media.frame import Frame

    with pytest.raises(SnapshotError):
        await snapshot_jpeg([Frame("h264", 0, 0, b"\x00\x00\x01\x65garbage", True)], "h264")


def test_store_snapshot(tmp_path: Path) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    p = store_snapshot(b"\xff\xd8jpeg", "34020000001320000001", tmp_path, when)
    assert p.read_bytes() == b"\xff\xd8jpeg"
    assert p.parent.name == "34020000001320000001"
    assert p.name == "34020000001320000001_20260102T030405.678Z.jpg"
    assert snapshot_name("../evil", when).startswith("evil_")


@pytest.mark.parametrize("codec", ["h264", "h265"])
async def test_snapshot_of_simulator_video(codec: str) -> None:
    """The simulator's test video (moving pattern + clock) snapshots to its own size."""
    from xueliang.media.testvideo import make_test_video

    frames = make_test_video(codec, 640, 360, 25, seconds=1)
    jpeg = await snapshot_jpeg(frames[:1], codec)
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (360, 640, 3) and float(img.std()) > 10
