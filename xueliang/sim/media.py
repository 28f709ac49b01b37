"""The simulated device's media: real PS over RTP, paced like a camera, over UDP or RFC 4571 TCP.

`MediaSender` loops the test video (`xueliang.media.testvideo`), muxes each frame with `PsMuxer`
(pack header per frame, PSM before keyframes), packetizes it (one RTP timestamp per frame, marker on
the last packet) and sends it at `fps`. Pacing uses one `loop.call_at` per frame against an absolute
schedule (no sleep per packet, no drift); a stalled loop skips ahead instead of bursting.

Transports, named from the device's point of view as in the SDP answer:
`udp` sends datagrams to `remote`; `tcp-active` connects to `remote` (the platform listens, the GB
default) and reconnects a few times if the platform drops it; `tcp-passive` listens on
`local_port` (0/None: any) and streams to whoever connects (the platform connects).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any, cast

from xueliang.media.frame import Frame
from xueliang.media.ps_mux import PsMuxer, packetize
from xueliang.media.rtp import frame_rfc4571
from xueliang.media.testvideo import make_test_audio, make_test_video

__all__ = ["MediaSender"]

log = logging.getLogger(__name__)

_MAX_TCP_BACKLOG = 2 * 1024 * 1024


class _TcpSink(asyncio.Protocol):
    def __init__(self, sender: MediaSender) -> None:
        self.sender = sender
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # no isinstance check: uvloop's transports are not asyncio.Transport subclasses
        self.transport = cast(asyncio.Transport, transport)
        self.sender._on_tcp_connected(self)

    def data_received(self, data: bytes) -> None:  # RTCP or junk from the platform: ignored
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        self.sender._on_tcp_lost(self)


class MediaSender:
    """Sends a looping test video as GB/T 28181 PS/RTP until `stop()`."""

    def __init__(self, *, codec: str = "h264", ssrc: int, transport: str = "udp",
                 remote: tuple[str, int] | None = None, local_port: int | None = None, fps: int = 25,
                 width: int = 640, height: int = 360, seconds: float = 4, audio: bool = False,
                 local_host: str = "0.0.0.0", mtu: int = 1400, bitrate: int | None = None,
                 frames: list[Frame] | None = None, reconnect_attempts: int = 3) -> None:
        if transport not in ("udp", "tcp-active", "tcp-passive"):
            raise ValueError(f"transport must be udp, tcp-active or tcp-passive, not {transport!r}")
        if transport != "tcp-passive" and remote is None:
            raise ValueError(f"{transport} needs a remote address")
        self.codec = codec
        self.ssrc = ssrc
        self.transport = transport
        self.remote = remote
        self.fps = fps
        self.width = width
        self.height = height
        self.seconds = seconds
        self.audio = audio
        self.local_host = local_host
        self.mtu = mtu
        self.bitrate = bitrate
        self.reconnect_attempts = reconnect_attempts
        self._local_port = local_port or 0
        self._frames = frames
        self._audio: list[Frame] = []
        self._muxer = PsMuxer(codec, "pcma" if audio else None)
        self._seq = random.randrange(0x10000)
        self._pts0 = random.randrange(1 << 32)
        self._n = 0
        self._n0 = 0
        self._t0 = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._tcp: _TcpSink | None = None
        self._running = False
        self._need_key = True
        self._tasks: set[asyncio.Task[Any]] = set()
        self.frames_sent = 0
        self.packets_sent = 0
        self.bytes_sent = 0
        self.frames_dropped = 0

    @property
    def local_port(self) -> int:
        return self._local_port

    async def start(self) -> None:
        """Prepare the video, open the transport and start sending (tcp-passive: once connected)."""
        loop = asyncio.get_running_loop()
        if self._frames is None:
            self._frames = await loop.run_in_executor(
                None, lambda: make_test_video(self.codec, self.width, self.height, self.fps, self.seconds,
                                              bitrate=self.bitrate))
        if self.audio:
            self._audio = make_test_audio(1, ptime_ms=1000 // self.fps)
        self._running = True
        if self.transport == "udp":
            assert self.remote is not None
            tr, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                        local_addr=(self.local_host, self._local_port),
                                                        remote_addr=self.remote)
            self._udp = tr
            self._local_port = tr.get_extra_info("sockname")[1]
            self._begin()
        elif self.transport == "tcp-active":
            await self._connect()
        else:
            self._server = await loop.create_server(lambda: _TcpSink(self), self.local_host, self._local_port,
                                                    reuse_address=True)
            self._local_port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop sending and close every socket. Idempotent."""
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(BaseException):
                await t
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None and self._tcp.transport is not None:
            self._tcp.transport.close()
        self._tcp = None
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
        await asyncio.sleep(0)

    # -- connection handling ----------------------------------------------------------------------

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.remote is not None
        last: Exception | None = None
        for attempt in range(max(1, self.reconnect_attempts)):
            try:
                await loop.create_connection(lambda: _TcpSink(self), self.remote[0], self.remote[1])
                return
            except OSError as exc:
                last = exc
                if attempt + 1 < self.reconnect_attempts:
                    await asyncio.sleep(0.5)
        raise ConnectionError(f"sim media: cannot connect to {self.remote[0]}:{self.remote[1]}: {last}")

    def _on_tcp_connected(self, sink: _TcpSink) -> None:
        if not self._running:
            if sink.transport is not None:
                sink.transport.close()
            return
        old = self._tcp
        self._tcp = sink
        if old is not None and old.transport is not None:
            old.transport.close()
        if self.transport == "tcp-active" and self._local_port == 0 and sink.transport is not None:
            self._local_port = sink.transport.get_extra_info("sockname")[1]
        self._need_key = True
        if self._timer is None:
            self._begin()

    def _on_tcp_lost(self, sink: _TcpSink) -> None:
        if sink is not self._tcp:
            return
        self._tcp = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._running and self.transport == "tcp-active":
            task = asyncio.get_running_loop().create_task(self._reconnect())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _reconnect(self) -> None:
        await asyncio.sleep(0.5)
        if not self._running:
            return
        try:
            await self._connect()
        except ConnectionError as exc:
            log.info("%s; giving up", exc)

    # -- pacing and sending -----------------------------------------------------------------------

    def _begin(self) -> None:
        loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        self._n0 = self._n
        self._tick()

    def _tick(self) -> None:
        self._timer = None
        if not self._running:
            return
        loop = asyncio.get_running_loop()
        self._send_frame(self._n)
        self._n += 1
        due = self._t0 + (self._n - self._n0) / self.fps
        now = loop.time()
        if now - due > 1.0:  # the loop stalled: skip ahead rather than burst a second of video
            self._t0 = now
            self._n0 = self._n
            due = now
        self._timer = loop.call_at(due, self._tick)

    def _send_frame(self, n: int) -> None:
        frames = self._frames
        assert frames
        src = frames[n % len(frames)]
        step = 90000 // self.fps
        pts = self._pts0 + n * step
        if self._need_key and not src.keyframe:
            self.frames_dropped += 1
            return
        self._need_key = False
        frame = Frame(self.codec, pts, pts, src.data, src.keyframe)
        packets, self._seq = packetize(self._muxer.mux(frame), seq=self._seq, ts=pts, ssrc=self.ssrc, mtu=self.mtu)
        if self._audio:
            a = self._audio[n % len(self._audio)]
            ap, self._seq = packetize(self._muxer.mux(Frame("pcma", pts, pts, a.data, True)), seq=self._seq,
                                      ts=pts, ssrc=self.ssrc, mtu=self.mtu)
            packets += ap
        if self._udp is not None:
            sendto = self._udp.sendto
            for p in packets:
                sendto(p)
        elif self._tcp is not None and self._tcp.transport is not None:
            tr = self._tcp.transport
            if tr.get_write_buffer_size() > _MAX_TCP_BACKLOG:
                self.frames_dropped += 1
                self._need_key = True  # resume at the next keyframe, as a camera's encoder would
                return
            tr.write(frame_rfc4571(packets))
        else:
            return
        self.frames_sent += 1
        self.packets_sent += len(packets)
        self.bytes_sent += sum(len(p) for p in packets)
