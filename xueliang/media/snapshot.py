"""Snapshots: decode a keyframe to JPEG off the event loop.

Decoding even one 1080p keyframe takes tens of milliseconds of CPU; on the loop that would stall
every stream and every SIP transaction. So decoding runs in a small process pool (created on
first use, at most 2 workers, forkserver so the workers never inherit the loop's threads and
sockets). The worker gets plain bytes and returns JPEG bytes.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xueliang.media.frame import Frame

MAX_WORKERS = 2
_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()

_DECODERS = {"h264": "h264", "h265": "hevc"}


class SnapshotError(RuntimeError):
    """Nothing decodable in the frames given (no keyframe, corrupt data, unknown codec)."""


def _get_pool() -> ProcessPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            _pool = ProcessPoolExecutor(max_workers=MAX_WORKERS, mp_context=ctx)
        return _pool


def shutdown_pool() -> None:
    """Stop the worker processes (platform shutdown, tests)."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.shutdown(wait=True, cancel_futures=True)
            _pool = None


def decode_to_jpeg(payloads: list[bytes], codec: str, quality: int = 85, max_width: int = 0) -> bytes:
    """Worker side: decode Annex-B access units and JPEG-encode the first picture.

    Runs in a pool process; importable and callable directly too (tests, CLI tools).
    """
    import av
    import cv2

    name = _DECODERS.get(codec)
    if name is None:
        raise SnapshotError(f"cannot snapshot codec {codec!r}")
    ctx: Any = av.CodecContext.create(name, "r")
    picture = None
    try:
        for data in [*payloads, None]:
            pkt = None if data is None else av.Packet(data)
            try:
                frames = ctx.decode(pkt)
            except av.error.FFmpegError:  # type: ignore[attr-defined]
                continue
            if frames:
                picture = frames[0]
                break
    finally:
        del ctx
    if picture is None:
        raise SnapshotError("no decodable picture in the frames given")
    img = picture.to_ndarray(format="bgr24")  # type: ignore[union-attr]
    if max_width and img.shape[1] > max_width:
        h = round(img.shape[0] * max_width / img.shape[1])
        img = cv2.resize(img, (max_width, h), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", img, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    if not ok:
        raise SnapshotError("JPEG encoding failed")
    return bytes(buf)


async def snapshot_jpeg(frames: list[Frame], codec: str, *, quality: int = 85, max_width: int = 0) -> bytes:
    """JPEG of the first picture of `frames` (a GOP starting at a keyframe; usually just the
    keyframe). Decoding runs in the process pool. Raises SnapshotError when nothing decodes."""
    payloads = [f.data for f in frames if f.codec == codec]
    start = next((i for i, f in enumerate(f for f in frames if f.codec == codec) if f.keyframe), None)
    if start is None:
        raise SnapshotError("snapshot needs a keyframe")
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_get_pool(), decode_to_jpeg, payloads[start:], codec, quality, max_width)


def snapshot_name(channel_id: str, when: datetime | None = None) -> str:
    """`<channel>_<UTC yyyymmddTHHMMSS.mmmZ>.jpg`: sorts by time within a channel."""
    when = (when or datetime.now(UTC)).astimezone(UTC)
    safe = "".join(c for c in channel_id if c.isalnum() or c in "-_") or "channel"
    return f"{safe}_{when.strftime('%Y%m%dT%H%M%S')}.{when.microsecond // 1000:03d}Z.jpg"


def store_snapshot(jpeg: bytes, channel_id: str, dir: str | os.PathLike[str], when: datetime | None = None) -> Path:
    """Write the JPEG under `dir/<channel>/` atomically (temp file + rename); returns its path."""
    folder = Path(dir) / ("".join(c for c in channel_id if c.isalnum() or c in "-_") or "channel")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / snapshot_name(channel_id, when)
    tmp = path.with_suffix(".jpg.tmp")
    tmp.write_bytes(jpeg)
    os.replace(tmp, path)
    return path
