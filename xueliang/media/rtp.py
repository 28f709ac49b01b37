"""RTP (RFC 3550) parsing and building, a small reorder buffer, and RFC 4571 stream framing.

Sans-I/O: bytes in, packets out, no sockets and no clocks, so everything here is tested and fuzzed
without a network. The receive path runs once per datagram (about 360 per second per 4 Mbit/s
stream), so the common case is kept to a handful of attribute accesses: `parse_rtp` reads the fixed
header with one `struct.unpack_from` and slices the payload as a memoryview (no copy).
"""

from __future__ import annotations

import struct

__all__ = [
    "FramingError",
    "Reorderer",
    "Rfc4571Framer",
    "RtpPacket",
    "parse_rtp",
    "rtp_header",
]

_HDR = struct.Struct("!BBHII")
_SEQ_TS_SSRC = struct.Struct("!HII")


class RtpPacket:
    """One parsed RTP packet. `payload` is a view into the received buffer (no copy)."""

    __slots__ = ("marker", "payload", "pt", "seq", "ssrc", "ts")

    def __init__(self, seq: int, ts: int, ssrc: int, pt: int, marker: bool, payload: memoryview) -> None:
        self.seq = seq
        self.ts = ts
        self.ssrc = ssrc
        self.pt = pt
        self.marker = marker
        self.payload = payload

    def __repr__(self) -> str:
        return (f"RtpPacket(seq={self.seq}, ts={self.ts}, ssrc={self.ssrc:#010x}, pt={self.pt}, "
                f"marker={self.marker}, payload={len(self.payload)}B)")


def parse_rtp(buf: bytes | memoryview) -> RtpPacket | None:
    """Parse an RTP packet; None for anything that is not a well-formed RTP v2 packet.

    CSRC lists and header extensions are skipped, padding is removed. The payload is a memoryview
    of `buf`, so `buf` should be immutable (bytes) if the payload is kept beyond the call.
    """
    n = len(buf)
    if n < 12:
        return None
    b0 = buf[0]
    if b0 & 0xC0 != 0x80:
        return None
    off = 12 + ((b0 & 0x0F) << 2)
    if b0 & 0x10:  # header extension: 16-bit profile, 16-bit length in 32-bit words
        if off + 4 > n:
            return None
        off += 4 + ((buf[off + 2] << 8 | buf[off + 3]) << 2)
    end = n
    if b0 & 0x20:  # padding: last byte counts the padding bytes, itself included
        pad = buf[n - 1]
        if pad == 0:
            return None
        end -= pad
    if off > end:
        return None
    seq, ts, ssrc = _SEQ_TS_SSRC.unpack_from(buf, 2)
    b1 = buf[1]
    return RtpPacket(seq, ts, ssrc, b1 & 0x7F, b1 >= 0x80, memoryview(buf)[off:end])


def rtp_header(seq: int, ts: int, ssrc: int, pt: int = 96, marker: bool = False) -> bytes:
    """A 12-byte RTP v2 header without CSRC, extension or padding."""
    return _HDR.pack(0x80, (pt & 0x7F) | (0x80 if marker else 0), seq & 0xFFFF, ts & 0xFFFFFFFF,
                     ssrc & 0xFFFFFFFF)


class Reorderer:
    """Puts UDP packets back in sequence order with a small window.

    Why small: live video prefers a lost packet to a stall, so a gap is given up as soon as
    `window` later packets are waiting (about 90 ms at 4 Mbit/s for the default 32). Counts:
    `lost` (sequence numbers given up), `late` (arrived after being given up, dropped),
    `duplicate` (already delivered or already waiting, dropped), `reordered` (arrived out of
    order but delivered in order), `resets` (sequence jumped so far that the source was assumed to
    have restarted). 16-bit wrap-around is handled by modular arithmetic.
    """

    __slots__ = ("_expected", "_pending", "_skipped", "duplicate", "late", "lost", "max_jump", "reordered",
                 "resets", "window")

    def __init__(self, window: int = 32, max_jump: int = 3000) -> None:
        self.window = max(1, window)
        self.max_jump = max_jump
        self._expected: int | None = None
        self._pending: dict[int, RtpPacket] = {}
        self._skipped: set[int] = set()
        self.lost = 0
        self.late = 0
        self.duplicate = 0
        self.reordered = 0
        self.resets = 0

    def push(self, pkt: RtpPacket) -> list[RtpPacket]:
        """Add one packet; returns the packets now deliverable, in order (often just `[pkt]`)."""
        seq = pkt.seq
        exp = self._expected
        if seq == exp and not self._pending:
            self._expected = (seq + 1) & 0xFFFF
            return [pkt]
        if exp is None:
            self._expected = (seq + 1) & 0xFFFF
            return [pkt]
        d = (seq - exp) & 0xFFFF
        if d == 0:
            out = [pkt]
            self._expected = (seq + 1) & 0xFFFF
            self._drain(out)
            return out
        if d < 0x8000:  # ahead of what we expect
            if d > self.max_jump:
                return self._reset(pkt)
            if seq in self._pending:
                self.duplicate += 1
                return []
            self._pending[seq] = pkt
            self.reordered += 1
            if len(self._pending) <= self.window:
                return []
            return self._give_up_gap()
        behind = 0x10000 - d
        if seq in self._skipped:
            self._skipped.discard(seq)
            self.late += 1
            return []
        if behind > self.max_jump:
            return self._reset(pkt)
        self.duplicate += 1
        return []

    def flush(self) -> list[RtpPacket]:
        """Deliver everything waiting, giving up the gaps (end of stream)."""
        out: list[RtpPacket] = []
        while self._pending:
            out.extend(self._give_up_gap())
        return out

    def flush_gaps(self) -> list[list[RtpPacket]]:
        """Like `flush`, but one run of consecutive packets per given-up gap, so a consumer can mark
        each discontinuity (the PS demuxer must resynchronise after every gap)."""
        runs: list[list[RtpPacket]] = []
        while self._pending:
            runs.append(self._give_up_gap())
        return runs

    def _drain(self, out: list[RtpPacket]) -> None:
        pending = self._pending
        exp = self._expected
        while exp in pending:
            out.append(pending.pop(exp))  # type: ignore[arg-type]
            exp = (exp + 1) & 0xFFFF  # type: ignore[operator]
        self._expected = exp

    def _give_up_gap(self) -> list[RtpPacket]:
        exp = self._expected
        assert exp is not None
        first = min(self._pending, key=lambda s: (s - exp) & 0xFFFF)
        gap = (first - exp) & 0xFFFF
        self.lost += gap
        skipped = self._skipped
        for k in range(gap):
            skipped.add((exp + k) & 0xFFFF)
        if len(skipped) > 4 * self.window:  # bounded memory: forget the oldest gaps
            keep = sorted(skipped, key=lambda s: (first - s) & 0xFFFF)[: 2 * self.window]
            self._skipped = set(keep)
        self._expected = first
        out: list[RtpPacket] = []
        self._drain(out)
        return out

    def _reset(self, pkt: RtpPacket) -> list[RtpPacket]:
        self.resets += 1
        out = self.flush()
        self._skipped.clear()
        out.append(pkt)
        self._expected = (pkt.seq + 1) & 0xFFFF
        return out


class FramingError(ValueError):
    """The RFC 4571 stream cannot be resynchronised (too much garbage): close the connection."""


class Rfc4571Framer:
    """Splits a TCP byte stream of 2-byte-length-prefixed RTP packets (RFC 4571).

    Fed arbitrary chunks (ideally large reads); returns memoryviews of whole packets, which stay
    valid because they view immutable bytes. A length below 12 or a body that is not RTP v2 means
    the framing was lost (a device bug, or garbage): the framer searches forward for a plausible
    length + RTP header (counted in `resyncs`, bytes in `skipped`) and raises `FramingError` once
    more than `max_garbage` bytes went by without finding one.
    """

    __slots__ = ("_garbage", "_rest", "max_garbage", "packets", "resyncs", "skipped", "validate")

    def __init__(self, *, validate: bool = True, max_garbage: int = 256 * 1024) -> None:
        self._rest = b""
        self._garbage = 0
        self.validate = validate
        self.max_garbage = max_garbage
        self.packets = 0
        self.resyncs = 0
        self.skipped = 0

    def feed(self, data: bytes | bytearray | memoryview) -> list[memoryview]:
        """Add bytes; returns the complete packets now available (without their length prefix)."""
        if self._rest:
            data = self._rest + bytes(data)
        elif not isinstance(data, bytes):
            data = bytes(data)
        n = len(data)
        mv = memoryview(data)
        out: list[memoryview] = []
        i = 0
        validate = self.validate
        while i + 2 <= n:
            length = data[i] << 8 | data[i + 1]
            if validate and (length < 12 or (i + 2 < n and data[i + 2] & 0xC0 != 0x80)):
                j = self._resync(data, i)
                if j < 0:
                    drop = max(0, n - i - 2)
                    self.skipped += drop
                    self._garbage += drop
                    i += drop
                    break
                self.skipped += j - i
                self._garbage += j - i
                i = j
                continue
            end = i + 2 + length
            if end > n:
                break
            out.append(mv[i + 2 : end])
            self._garbage = 0
            i = end
        self.packets += len(out)
        self._rest = data[i:] if i < n else b""
        if len(self._rest) > 0x10000 + 2:  # cannot happen with valid lengths; keep memory bounded
            self._rest = self._rest[-(0x10000 + 2):]
        return out

    def _resync(self, data: bytes, i: int) -> int:
        """Offset of the next plausible packet start after `i`, or -1 (garbage budget checked)."""
        self.resyncs += 1
        n = len(data)
        pos = i + 3
        while True:
            j = data.find(b"\x80", pos)  # RTP v2 without padding/extension/CSRC: the usual first byte
            if j < 0:
                break
            pos = j + 1
            start = j - 2
            length = data[start] << 8 | data[start + 1]
            if length >= 12 and (start + 2 + length >= n or self._plausible(data, start + 2 + length)):
                return start
        if self._garbage + (n - i) > self.max_garbage:
            raise FramingError(f"RFC 4571 framing lost: {self._garbage + n - i} bytes without a valid RTP packet")
        return -1

    @staticmethod
    def _plausible(data: bytes, k: int) -> bool:
        if k + 3 > len(data):
            return True
        return (data[k] << 8 | data[k + 1]) >= 12 and data[k + 2] & 0xC0 == 0x80

    def clear(self) -> None:
        """Forget buffered bytes (new connection)."""
        self._rest = b""


def frame_rfc4571(packets: list[bytes]) -> bytes:
    """Join RTP packets into one RFC 4571 byte string (2-byte big-endian length before each)."""
    parts: list[bytes] = []
    for p in packets:
        parts.append(len(p).to_bytes(2, "big"))
        parts.append(p)
    return b"".join(parts)
