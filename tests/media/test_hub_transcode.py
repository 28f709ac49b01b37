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


async def test_transcoded_stream_follows_source_hub() -> None:
    from xueliang.media.transcode import TranscodedStream

    src = make_frames("h265", 320, 240, count=50, gop=25)
    source = StreamHub("cam1")
    for f in src[:30]:  # already running: the rendition starts from the source's GOP cache
        source.push(f)
    ts = TranscodedStream(source)
    await ts.start()
    assert ts.hub.stream_id == "cam1.h264" and transcode.active_transcoders() == 1
    viewer = ts.hub.add_viewer()
    for f in src[30:]:
        source.push(f)
    got: list[Frame] = []
    while len(got) < 20:
        batch = await asyncio.wait_for(viewer.get_batch(), 20)
        assert batch is not None
        got += batch
    assert got[0].keyframe and got[0].codec == "h264" and got[0].pts == src[25].pts
    source.close("camera gone")
    for _ in range(200):
        if ts.hub.closed:
            break
        await asyncio.sleep(0.02)
    assert ts.hub.closed and source.viewers == 0
    await ts.stop()
    assert transcode.active_transcoders() == 0


async def test_g711_to_aac_with_video_passthrough() -> None:
    """The common GB camera (H.264 + G.711) made browser-audible: video untouched, audio -> AAC."""
    video = make_frames("h264", 320, 240, count=50, gop=25)
    audio = make_pcma(2.0, start_pts=video[0].dts)
    got: list[Frame] = []
    tc = Transcoder(got.append, src_codec="h264", video=False, audio_to_aac=True)
    assert transcode.active_transcoders() == 0  # audio-only transcoding is not counted
    for f in sorted(video + audio, key=lambda f: f.dts):
        tc.push(f)
    for _ in range(200):
        if sum(1 for f in got if f.codec == "aac") >= 14 and sum(1 for f in got if f.is_video) == 50:
            break
        await asyncio.sleep(0.02)
    await tc.aclose()
    vids = [f for f in got if f.is_video]
    aacs = [f for f in got if f.codec == "aac"]
    assert [f.data for f in vids] == [f.data for f in video]  # passed through untouched
    assert len(aacs) >= 14  # 2 s at 8 kHz = 15.6 AAC frames of 1024 samples, minus encoder delay
    assert aacs[0].pts == audio[0].pts and aacs[1].pts - aacs[0].pts == 11520
    decoded = list(av.open(io.BytesIO(b"".join(a.data for a in aacs)), format="aac").decode(audio=0))
    assert len(decoded) >= 13 and decoded[0].sample_rate == 8000
    mux = FlvMuxer("h264", "aac")  # and it muxes as FLV audio for mpegts.js
    data = mux.header() + b"".join(mux.tag(f) for f in sorted(got, key=lambda f: f.dts))
    with av.open(io.BytesIO(data), format="flv") as ic:
        assert {s.codec_context.name for s in ic.streams} == {"h264", "aac"}
