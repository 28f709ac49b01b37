"""StreamHub fan-out: many viewers, slow-viewer trimming, mid-stream join, close."""

from __future__ import annotations

import asyncio

from _frames import make_frames, make_pcma

from xueliang.media.frame import Frame
from xueliang.media.hub import StreamHub


def _video(count: int = 100, gop: int = 25) -> list[Frame]:
    return make_frames("h264", 320, 240, count=count, gop=gop)


async def test_codec_info_and_many_viewers() -> None:
    frames = _video(50)
    hub = StreamHub("s1")
    viewers = [hub.add_viewer() for _ in range(50)]
    for f in frames:
        hub.push(f)
    assert hub.video_codec == "h264" and (hub.width, hub.height) == (320, 240)
    assert hub.viewers == 50
    for v in viewers:
        got = [await v.get() for _ in range(50)]
        assert [g.pts for g in got if g] == [f.pts for f in frames]
    st = hub.stats()
    assert st["frames"] == 50 and st["viewers"] == 50 and st["dropped"] == 0 and st["keyframes"] == 2


async def test_join_mid_stream_starts_at_keyframe() -> None:
    frames = _video(60, gop=25)
    hub = StreamHub("s2")
    for f in frames[:40]:
        hub.push(f)
    v = hub.add_viewer()
    first = await v.get()
    assert first is not None and first.keyframe and first.pts == frames[25].pts
    for f in frames[40:]:
        hub.push(f)
    rest = [await v.get() for _ in range(60 - 26)]
    assert [r.pts for r in rest if r] == [f.pts for f in frames[26:]]
    assert v.dropped == 0


async def test_join_before_first_keyframe_waits_for_it() -> None:
    frames = _video(60, gop=25)
    hub = StreamHub("s3")
    v = hub.add_viewer()
    for f in frames[1:30]:  # the stream's first keyframe was lost
        hub.push(f)
    first = await v.get()
    assert first is not None and first.keyframe and first.pts == frames[25].pts
    assert v.dropped == 24


async def test_slow_viewer_trimmed_fast_viewer_gets_everything() -> None:
    frames = _video(150, gop=25)
    gop_bytes = max(sum(len(f.data) for f in frames[i : i + 25]) for i in range(0, 150, 25))
    hub = StreamHub("s4", max_viewer_buffer=gop_bytes + 2000)
    fast = hub.add_viewer()
    slow = hub.add_viewer()
    got_fast: list[Frame] = []

    async def reader() -> None:
        while (f := await fast.get()) is not None:
            got_fast.append(f)

    task = asyncio.create_task(reader())
    for f in frames:
        hub.push(f)
        await asyncio.sleep(0)  # the fast viewer runs between frames; the slow one never reads
    hub.close("done")
    await asyncio.wait_for(task, 5)
    assert [f.pts for f in got_fast] == [f.pts for f in frames]
    assert fast.dropped == 0
    got_slow = []
    while (f := await slow.get()) is not None:
        got_slow.append(f)
    assert slow.dropped > 0 and slow.trims > 0
    assert got_slow[0].keyframe  # trimmed to a keyframe: still decodable
    assert len(got_slow) + slow.dropped == len(frames)
    assert got_slow[-1].pts == frames[-1].pts  # and it is live
    assert hub.stats()["dropped"] == slow.dropped


async def test_gop_larger_than_buffer_waits_for_next_keyframe() -> None:
    frames = _video(60, gop=30)
    limit = 3 * max(len(frames[0].data), len(frames[30].data))
    assert sum(len(f.data) for f in frames[:30]) > limit
    hub = StreamHub("s5", max_viewer_buffer=limit)
    v = hub.add_viewer()
    for f in frames[:33]:
        hub.push(f)
    first = await v.get()
    assert first is not None and first.keyframe and first.pts == frames[30].pts
    assert v.dropped == 30
    # a keyframe alone over the limit is still delivered
    tiny = StreamHub("s5b", max_viewer_buffer=100)
    tv = tiny.add_viewer()
    tiny.push(frames[0])
    got = await asyncio.wait_for(tv.get(), 1)
    assert got is not None and got.keyframe


async def test_close_ends_every_viewer_and_late_joiners() -> None:
    hub = StreamHub("s6")
    viewers = [hub.add_viewer() for _ in range(10)]
    waits = [asyncio.create_task(v.get()) for v in viewers]
    await asyncio.sleep(0)
    hub.close("bye")
    assert await asyncio.wait_for(asyncio.gather(*waits), 2) == [None] * 10
    late = hub.add_viewer()
    assert await late.get() is None and late.reason == "bye"
    hub.push(_video(1)[0])  # ignored after close
    assert hub.stats()["frames"] == 0


async def test_wait_keyframe() -> None:
    frames = _video(30)
    hub = StreamHub("s7")
    assert not await hub.wait_keyframe(0.05)
    waiter = asyncio.create_task(hub.wait_keyframe(2))
    await asyncio.sleep(0)
    hub.push(frames[0])
    assert await waiter
    assert await hub.wait_keyframe(0.01)
    hub2 = StreamHub("s8")
    w2 = asyncio.create_task(hub2.wait_keyframe(2))
    await asyncio.sleep(0)
    hub2.close()
    assert not await w2


async def test_audio_follows_video_keyframes_and_parameter_sets_restored() -> None:
    frames = _video(50)
    audio = make_pcma(2.0, start_pts=frames[0].dts)
    hub = StreamHub("s9")
    # A keyframe without in-band SPS/PPS: the hub must give late joiners the remembered ones.
    stripped = frames[25].data[frames[25].data.find(b"\x00\x00\x00\x01\x06") :]
    assert stripped and b"\x00\x00\x00\x01\x67" not in stripped
    frames[25] = Frame("h264", frames[25].pts, frames[25].dts, stripped, True)
    for f in sorted(frames[:30] + audio[:30], key=lambda f: f.dts):
        hub.push(f)
    assert hub.audio_codec == "pcma"
    v = hub.add_viewer()
    first = await v.get()
    assert first is not None and first.is_video and first.keyframe
    assert first.data.startswith(b"\x00\x00\x00\x01\x67")


async def test_remove_viewer_and_batch_get() -> None:
    frames = _video(10)
    changes: list[int] = []
    hub = StreamHub("s10")
    hub.on_viewers_changed = lambda h: changes.append(h.viewers)
    v = hub.add_viewer()
    for f in frames:
        hub.push(f)
    batch = await v.get_batch(max_frames=4)
    assert batch is not None and len(batch) == 4
    batch = await v.get_batch()
    assert batch is not None and len(batch) == 6 and v.buffered == 0
    v.close()
    assert await v.get() is None
    assert changes == [1, 0]


async def test_rate_stats() -> None:
    frames = _video(30)
    hub = StreamHub("s11")
    for f in frames[:25]:
        hub.push(f)
    await asyncio.sleep(1.05)
    hub.push(frames[25])
    st = hub.stats()
    assert 15 < st["fps"] < 27
    assert st["bitrate"] > 0 and st["bytes"] == sum(len(f.data) for f in frames[:26])


async def test_slow_tcp_client_does_not_slow_fast_one() -> None:
    """Real sockets on 127.0.0.1: an HTTP-FLV-like writer per client (as the API does). One client
    stops reading (its TCP window fills, its writer blocks in drain); the other gets every frame."""
    import socket

    from xueliang.media.flv import FlvMuxer

    frames = make_frames("h264", 640, 360, count=150, gop=25)
    hub = StreamHub("tcp", max_viewer_buffer=100_000)
    assert sum(len(f.data) for f in frames) > 500_000
    viewers = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # small kernel send buffer: a client that stops reading blocks its writer quickly
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        v = hub.add_viewer()
        viewers.append(v)
        mux = FlvMuxer("h264")
        writer.write(mux.header())
        try:
            while (batch := await v.get_batch()) is not None:
                writer.write(b"".join([mux.tag(f) for f in batch]))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            hub.remove_viewer(v)
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def fast_client() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        data = await asyncio.wait_for(reader.read(), 20)  # until the server closes (hub closed)
        writer.close()
        pos, tags = 13, 0
        while pos + 11 <= len(data):
            size = int.from_bytes(data[pos + 1 : pos + 4], "big")
            tags += data[pos] == 9 and data[pos + 12] == 1  # AVC NALU tags
            pos += 15 + size
        return tags

    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", port))  # never reads
    fast = asyncio.create_task(fast_client())
    for _ in range(200):
        if len(viewers) == 2:
            break
        await asyncio.sleep(0.01)
    assert len(viewers) == 2
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for f in frames:
        hub.push(f)
        await asyncio.sleep(0.002)
    push_time = loop.time() - t0
    stats = hub.stats()
    hub.close("done")
    assert await fast == 150
    dropped = [v.dropped for v in viewers]
    assert sorted(dropped)[0] == 0 and sorted(dropped)[1] > 0, dropped
    assert stats["dropped"] == max(dropped)
    assert push_time < 5  # the producer never waited for the slow client
    slow.close()
    server.close()
