"""H.265 hub -> Transcoder -> H.264 hub, the path used for browsers without HEVC in MSE.

(The transcoder's tests live under the hub's file pattern because that is how it is used.)
"""

from __future__ import annotations

import asyncio
import io

import av
import pytest
from _frames import make_frames, make_pcma

from xueliang.media import transcode
from xueliang.media.flv import FlvMuxer
from xueliang.media.frame import Frame
from xueliang.media.hub import StreamHub
from xueliang.media.transcode import Transcoder, TranscoderLimitError


async def test_h265_to_h264_through_hubs() -> None:
    src = make_frames("h265", 320, 240, count=50, gop=25, bframes=2)
    audio = make_pcma(2.0, start_pts=src[0].dts)
    out_hub = StreamHub("h264-rendition")
    viewer = out_hub.add_viewer()
    tc = Transcoder(out_hub.push)
    for f in sorted(src + audio, key=lambda f: f.dts):
        tc.push(f)
    got: list[Frame] = []
    deadline = asyncio.get_running_loop().time() + 20
    while (sum(1 for f in got if f.is_video) < 45 or sum(1 for f in got if not f.is_video) < len(audio)) and (
        asyncio.get_running_loop().time() < deadline
    ):
        batch = await asyncio.wait_for(viewer.get_batch(), 20)
        assert batch is not None
        got += batch
    await tc.aclose()
    video = [f for f in got if f.is_video]
    assert out_hub.video_codec == "h264" and (out_hub.width, out_hub.height) == (320, 240)
    assert video[0].keyframe and all(f.codec == "h264" for f in video)
    assert sum(1 for f in got if f.codec == "pcma") == len(audio)  # audio passed through
    # IDRs follow the source keyframes (the second one is at source frame 25)
    key_pts = [f.pts for f in video if f.keyframe]
    assert src[25].pts in key_pts
    # and the result plays: mux to FLV, decode with ffmpeg
    mux = FlvMuxer("h264", "pcma")
    data = mux.header() + b"".join(mux.tag(f) for f in got)
    with av.open(io.BytesIO(data), format="flv") as ic:
        decoded = list(ic.decode(video=0))
    assert len(decoded) == len(video) and decoded[0].width == 320
    assert transcode.active_transcoders() == 0


async def test_transcoder_limit() -> None:
    old = transcode.MAX_TRANSCODERS
    transcode.set_max_transcoders(2)
    sink: list[Frame] = []
    try:
        a = Transcoder(sink.append)
        b = Transcoder(sink.append)
        with pytest.raises(TranscoderLimitError, match="limit 2"):
            Transcoder(sink.append)
        await a.aclose()
        c = Transcoder(sink.append)  # a slot was freed
        await b.aclose()
        await c.aclose()
    finally:
        transcode.set_max_transcoders(old)
    assert transcode.active_transcoders() == 0
