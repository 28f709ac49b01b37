"""asyncio RTP receivers for GB/T 28181 media: UDP, TCP passive and TCP active (RFC 4571).

One `RtpIngest` per stream: packets -> (reorder, UDP only) -> `PsDemuxer` -> `on_frame(frame)`.
Everything runs on the event loop (uvloop in production) with no task per packet and no thread:
`datagram_received` / `data_received` do the whole job synchronously. Per-datagram work is kept
minimal (DESIGN.md budgets about 7 µs per packet for receive + demux + remux): one header parse,
an SSRC compare, the in-order fast path of the reorderer and the demuxer's append; jitter and
timing work happen once per RTP timestamp (once per frame), not per packet.

Field behaviour handled here: devices that send another SSRC than the `y=` line (accepted while
they are the only source, counted, logged once), garbage datagrams (counted), TCP devices that
reconnect (passive mode waits `reconnect_grace` seconds before reporting the peer gone), devices that
are slow to start listening (active mode retries the connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections.abc import Callable
from typing import Any, cast

from xueliang.media.frame import Frame
from xueliang.media.ps_demux import PsDemuxer
from xueliang.media.rtp import FramingError, Reorderer, Rfc4571Framer, RtpPacket, parse_rtp

__all__ = ["RtpIngest"]

log = logging.getLogger(__name__)

_RCVBUF = 4 * 1024 * 1024
_SEQ_TS_SSRC = struct.Struct("!HII").unpack_from


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, ingest: RtpIngest) -> None:
        self.ingest = ingest
        # the transport calls this per datagram: bind the ingest's handler directly (one call less)
        self.datagram_received = ingest._on_datagram  # type: ignore[method-assign]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.ingest._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:  # ICMP errors etc.: not fatal for a receiver
        self.ingest.socket_errors += 1


class _TcpProtocol(asyncio.Protocol):
    def __init__(self, ingest: RtpIngest) -> None:
        self.ingest = ingest
        self.framer = Rfc4571Framer()
        self.transport: asyncio.Transport | None = None
        self.peer: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # no isinstance check: uvloop's transports are not asyncio.Transport subclasses
        self.transport = cast(asyncio.Transport, transport)
        self.peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        self.ingest._on_connect(self)

    def data_received(self, data: bytes) -> None:
        ingest = self.ingest
        if ingest._conn is not self:
            return
        try:
            packets = self.framer.feed(data)
        except FramingError as exc:
            ingest.framing_errors += 1
            log.warning("rtp ingest port %s: %s; closing the connection from %s", ingest.port, exc, self.peer)
            if self.transport is not None:
                self.transport.close()
            return
        on_packet = ingest._on_tcp_packet
        for p in packets:
            on_packet(p)

    def connection_lost(self, exc: Exception | None) -> None:
        self.ingest._on_disconnect(self, exc)


class RtpIngest:
    """Receives one GB/T 28181 PS-over-RTP stream and delivers access units to `on_frame`.

    `transport` and `port` describe what the play session negotiated; the `start_*` method that is
    called decides what actually happens (and updates `port` to the bound port when 0 was asked).
    """

    def __init__(self, *, on_frame: Callable[[Frame], None], on_close: Callable[[str], None] | None = None,
                 transport: str = "udp", port: int = 0, expected_ssrc: int | None = None,
                 reorder_window: int = 32, reconnect_grace: float = 5.0, connect_attempts: int = 5,
                 connect_interval: float = 0.5, source_switch_after: float = 2.0) -> None:
        self.transport = transport
        self.port = port
        self.expected_ssrc = expected_ssrc
        self.on_frame = on_frame
        self.on_close = on_close
        self.reconnect_grace = reconnect_grace
        self.connect_attempts = connect_attempts
        self.connect_interval = connect_interval
        self.source_switch_after = source_switch_after
        self.demux = PsDemuxer()
        self._feed = self.demux.feed
        self._reorder = Reorderer(reorder_window)
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._conn: _TcpProtocol | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._closed_reported = False
        # state of the single accepted source
        self._ssrc: int | None = None
        self._ssrc_logged = False
        self._mismatch_total = 0
        self._mismatch_since: int | None = None
        self._tcp_seq: int | None = None
        self._last_ts: int | None = None
        self._last_transit = 0.0
        self._last_arrival = 0.0
        self._jitter = 0.0
        # counters
        self.packets = 0
        self.bytes = 0
        self.frames = 0
        self.video_frames = 0
        self.invalid = 0
        self.foreign = 0
        self.tcp_lost = 0
        self.tcp_reordered = 0
        self.connections = 0
        self.framing_errors = 0
        self.socket_errors = 0
        self.callback_errors = 0
        self.source_switches = 0
        self.first_packet_at: float | None = None
        self._rate_mark = (time.monotonic(), 0, 0)
        self._bitrate = 0.0
        self._fps = 0.0

    # -- starting and stopping --------------------------------------------------------------------

    async def start_udp(self, host: str, port: int) -> None:
        """Listen for RTP datagrams on host:port (port 0: any; `self.port` tells which)."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self), local_addr=(host, port))
        self._udp = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        self.port = transport.get_extra_info("sockname")[1]
        self.transport = "udp"

    async def start_tcp_passive(self, host: str, port: int) -> None:
        """Listen on host:port for the device's TCP connection (and its reconnections)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _TcpProtocol(self), host, port, reuse_address=True,
                                                backlog=4)
        self.port = self._server.sockets[0].getsockname()[1]
        self.transport = "tcp-passive"

    async def start_tcp_active(self, remote_host: str, remote_port: int) -> None:
        """Connect to the device's media port; devices often listen only after their 200 OK, so retry."""
        loop = asyncio.get_running_loop()
        self.transport = "tcp-active"
        last: Exception | None = None
        for attempt in range(max(1, self.connect_attempts)):
            if self._closing:
                raise ConnectionError("ingest closed while connecting")
            try:
                await loop.create_connection(lambda: _TcpProtocol(self), remote_host, remote_port)
                return
            except OSError as exc:
                last = exc
                if attempt + 1 < self.connect_attempts:
                    await asyncio.sleep(self.connect_interval)
        raise ConnectionError(f"cannot connect to the device's media port {remote_host}:{remote_port} "
                              f"after {self.connect_attempts} attempts: {last}")

    async def close(self) -> None:
        """Stop receiving; `on_close` is not called for a close we asked for. Idempotent."""
        self._closing = True
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._conn is not None and self._conn.transport is not None:
            self._conn.transport.close()
        self._conn = None
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
        # deliver what is still held: packets waiting behind a gap, then the demuxer's last frame
        try:
            for run in self._reorder.flush_gaps():
                self.demux.discontinuity()
                for p in run:
                    self._deliver(self._feed(p.payload, p.marker))
            self._deliver(self.demux.flush())
        except Exception:
            self._callback_error()
        await asyncio.sleep(0)  # let transports finish closing

    # -- statistics -------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        t0, b0, f0 = self._rate_mark
        if now - t0 >= 1.0:
            self._bitrate = (self.bytes - b0) * 8 / (now - t0)
            self._fps = (self.video_frames - f0) / (now - t0)
            self._rate_mark = (now, self.bytes, self.video_frames)
        mismatch = self._mismatch_total
        if self._mismatch_since is not None:
            mismatch += self.packets - self.foreign - self._mismatch_since
        r = self._reorder
        return {
            "transport": self.transport, "port": self.port,
            "packets": self.packets, "bytes": self.bytes, "frames": self.frames,
            "lost": r.lost + self.tcp_lost, "reordered": r.reordered + self.tcp_reordered,
            "late": r.late, "duplicate": r.duplicate,
            "ssrc": self._ssrc, "expected_ssrc": self.expected_ssrc, "ssrc_mismatch": mismatch,
            "foreign": self.foreign, "invalid": self.invalid,
            "bitrate": round(self._bitrate), "fps": round(self._fps, 2),
            "jitter": round(self._jitter / 90.0, 3),  # ms
            "first_packet_at": self.first_packet_at,
            # seconds since the last new RTP timestamp (sampled per frame): a UDP stream that went
            # quiet has no connection to lose, so the session watches this instead of on_close
            "idle": round(now - self._last_arrival, 3) if self.first_packet_at is not None else None,
            "connections": self.connections, "framing_errors": self.framing_errors,
            "video_codec": self.demux.video_codec, "audio_codec": self.demux.audio_codec,
            "demux": self.demux.stats,
        }

    # -- packet path ------------------------------------------------------------------------------

    def _on_datagram(self, data: bytes, addr: Any = None) -> None:
        # Fast path, the usual camera packet: plain 12-byte header, current source, next in order.
        # It skips the RtpPacket object and the reorderer call (their state is updated in place).
        if len(data) > 12 and data[0] == 0x80:
            seq, ts, ssrc = _SEQ_TS_SSRC(data, 2)
            r = self._reorder
            if ssrc == self._ssrc and seq == r._expected and not r._pending:
                r._expected = (seq + 1) & 0xFFFF
                self.packets += 1
                self.bytes += len(data)
                if ts != self._last_ts:
                    self._new_timestamp(ts)
                try:
                    frames = self._feed(memoryview(data)[12:], data[1] >= 0x80)
                    if frames:
                        self._deliver(frames)
                except Exception:
                    self._callback_error()
                return
        self._on_datagram_slow(data)

    def _on_datagram_slow(self, data: bytes) -> None:
        pkt = parse_rtp(data)
        if pkt is None:
            self.invalid += 1
            return
        self.packets += 1
        self.bytes += len(data)
        if pkt.ssrc != self._ssrc and not self._accept_source(pkt):
            return
        if pkt.ts != self._last_ts:
            self._new_timestamp(pkt.ts)
        try:
            r = self._reorder
            lost = r.lost + r.resets
            ready = r.push(pkt)
            if r.lost + r.resets != lost:
                self.demux.discontinuity()   # a gap was given up: resync instead of gluing garbage
            for p in ready:
                frames = self._feed(p.payload, p.marker)
                if frames:
                    self._deliver(frames)
        except Exception:  # a bug must not kill the socket: count, log once
            self._callback_error()

    def _on_tcp_packet(self, data: memoryview) -> None:
        # Fast path as for UDP: plain header, current source, the sequence number we expect.
        if len(data) > 12 and data[0] == 0x80:
            seq, ts, ssrc = _SEQ_TS_SSRC(data, 2)
            if ssrc == self._ssrc and seq == self._tcp_seq:
                self._tcp_seq = (seq + 1) & 0xFFFF
                self.packets += 1
                self.bytes += len(data) + 2
                if ts != self._last_ts:
                    self._new_timestamp(ts)
                try:
                    frames = self._feed(data[12:], data[1] >= 0x80)
                    if frames:
                        self._deliver(frames)
                except Exception:
                    self._callback_error()
                return
        pkt = parse_rtp(data)
        if pkt is None:
            self.invalid += 1
            return
        self.packets += 1
        self.bytes += len(data) + 2
        if pkt.ssrc != self._ssrc and not self._accept_source(pkt):
            return
        seq = pkt.seq
        exp = self._tcp_seq
        if seq != exp and exp is not None:
            d = (seq - exp) & 0xFFFF
            if d < 0x8000:
                self.tcp_lost += d  # the device dropped them before sending (TCP itself loses nothing)
                self.demux.discontinuity()
            else:
                self.tcp_reordered += 1
        self._tcp_seq = (seq + 1) & 0xFFFF
        if pkt.ts != self._last_ts:
            self._new_timestamp(pkt.ts)
        try:
            frames = self._feed(pkt.payload, pkt.marker)
            if frames:
                self._deliver(frames)
        except Exception:
            self._callback_error()

    def _deliver(self, frames: list[Frame]) -> None:
        on_frame = self.on_frame
        for f in frames:
            self.frames += 1
            if f.is_video:
                self.video_frames += 1
            try:
                on_frame(f)
            except Exception:
                self._callback_error()

    def _callback_error(self) -> None:
        self.callback_errors += 1
        if self.callback_errors == 1:
            log.exception("rtp ingest port %s: error while handling media (further errors counted only)", self.port)

    def _new_timestamp(self, ts: int) -> None:
        """RFC 3550 interarrival jitter, sampled on the first packet of each RTP timestamp (frame).

        Why per frame: a PS frame is sent as a burst of packets sharing one timestamp, so the
        per-packet formula mostly measures the burst length; per frame it measures the network.
        """
        now = time.monotonic()
        if self.first_packet_at is None:
            self.first_packet_at = time.time()
            self._rate_mark = (now, 0, 0)
        self._last_arrival = now
        transit = now * 90000.0 - ts
        if self._last_ts is not None:
            d = transit - self._last_transit
            # 32-bit RTP timestamp wrap: bring the difference back into range
            if d > 2**31:
                d -= 2**32
            elif d < -(2**31):
                d += 2**32
            self._jitter += (abs(d) - self._jitter) / 16.0
        self._last_transit = transit
        self._last_ts = ts

    def _accept_source(self, pkt: RtpPacket) -> bool:
        """Decide about a packet whose SSRC differs from the stream's current source."""
        ssrc = pkt.ssrc
        expected = self.expected_ssrc
        if self._ssrc is None:
            self._lock(ssrc)
            return True
        if expected is not None and ssrc == expected:
            self._switch(ssrc, "the expected SSRC appeared")
            return True
        if time.monotonic() - self._last_arrival > self.source_switch_after:
            self._switch(ssrc, "the previous source went silent")
            return True
        self.foreign += 1
        return False

    def _lock(self, ssrc: int) -> None:
        self._ssrc = ssrc
        expected = self.expected_ssrc
        if expected is not None and ssrc != expected:
            self._mismatch_since = self.packets - self.foreign - 1
            if not self._ssrc_logged:
                self._ssrc_logged = True
                log.info("rtp ingest port %s: SSRC %d (%#010x) instead of the expected %d; accepting it as the "
                         "only source", self.port, ssrc, ssrc, expected)

    def _switch(self, ssrc: int, why: str) -> None:
        self.source_switches += 1
        log.info("rtp ingest port %s: source SSRC %s -> %s (%s)", self.port, self._ssrc, ssrc, why)
        if self._mismatch_since is not None:
            self._mismatch_total += self.packets - self.foreign - 1 - self._mismatch_since
            self._mismatch_since = None
        self._deliver(self.demux.flush())
        self.demux.reset()
        self._reorder = Reorderer(self._reorder.window)
        self._tcp_seq = None
        self._last_ts = None
        self._lock(ssrc)

    # -- TCP connection events --------------------------------------------------------------------

    def _on_connect(self, conn: _TcpProtocol) -> None:
        if self._closing:
            if conn.transport is not None:
                conn.transport.close()
            return
        self.connections += 1
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        old = self._conn
        self._conn = conn
        if old is not None:
            log.info("rtp ingest port %s: new connection from %s replaces %s", self.port, conn.peer, old.peer)
            if old.transport is not None:
                old.transport.close()
        if self.connections > 1:
            # a reconnection starts at a packet boundary: drop the partial frame of the old one
            self._deliver(self.demux.flush())
            self.demux.reset()
            self._tcp_seq = None

    def _on_disconnect(self, conn: _TcpProtocol, exc: Exception | None) -> None:
        if conn is not self._conn or self._closing:
            return
        self._conn = None
        reason = f"peer {conn.peer} closed the connection" + (f" ({exc})" if exc else "")
        if self.transport == "tcp-passive" and self.reconnect_grace > 0:
            loop = asyncio.get_running_loop()
            self._close_timer = loop.call_later(self.reconnect_grace, self._report_close, reason)
        else:
            self._report_close(reason)

    def _report_close(self, reason: str) -> None:
        self._close_timer = None
        if self._closing or self._closed_reported:
            return
        self._closed_reported = True
        self._deliver(self.demux.flush())
        if self.on_close is not None:
            try:
                self.on_close(reason)
            except Exception:
                log.exception("rtp ingest port %s: on_close failed", self.port)
