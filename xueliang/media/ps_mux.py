"""MPEG-2 Program Stream muxer and RTP packetizer, as a GB/T 28181 device sends media (sans-I/O).

Used by the device simulator and by tests/benchmarks to produce the byte streams that real
cameras produce: a pack header before every frame, a system header and a program stream map before
every keyframe (so a receiver that joins late learns the codecs at the next GOP), video PES split
below the 16-bit PES length, PTS (and DTS when it differs), and RTP packets that all carry the
frame's timestamp with the marker bit on the last one (GB/T 28181-2022 asks for exactly that).
"""

from __future__ import annotations

import struct

from xueliang.media.frame import Frame

__all__ = ["CODEC_STREAM_TYPES", "PsMuxer", "crc32_mpeg2", "packetize"]

CODEC_STREAM_TYPES: dict[str, int] = {"h264": 0x1B, "h265": 0x24, "pcma": 0x90, "pcmu": 0x91, "aac": 0x0F}
_VIDEO_SID = 0xE0
_AUDIO_SID = 0xC0
_MASK33 = (1 << 33) - 1


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        c = i << 24
        for _ in range(8):
            c = ((c << 1) ^ 0x04C11DB7) if c & 0x80000000 else (c << 1)
        table.append(c & 0xFFFFFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2 (poly 0x04C11DB7, init all ones, not reflected) as the PSM carries it."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[((crc >> 24) ^ b) & 0xFF]
    return crc


def _ts_bytes(prefix: int, ts: int) -> bytes:
    ts &= _MASK33
    return bytes((
        (prefix << 4) | ((ts >> 29) & 0x0E) | 1,
        (ts >> 22) & 0xFF,
        ((ts >> 14) & 0xFE) | 1,
        (ts >> 7) & 0xFF,
        ((ts << 1) & 0xFE) | 1,
    ))


def pack_header(scr: int, mux_rate: int) -> bytes:
    """MPEG-2 pack header (14 bytes, no stuffing). `mux_rate` in units of 50 bytes/s."""
    scr &= _MASK33
    return bytes((
        0, 0, 1, 0xBA,
        0x44 | ((scr >> 27) & 0x38) | ((scr >> 28) & 0x03),
        (scr >> 20) & 0xFF,
        ((scr >> 12) & 0xF8) | 0x04 | ((scr >> 13) & 0x03),
        (scr >> 5) & 0xFF,
        ((scr << 3) & 0xF8) | 0x04,
        0x01,
        (mux_rate >> 14) & 0xFF,
        (mux_rate >> 6) & 0xFF,
        ((mux_rate << 2) & 0xFC) | 0x03,
        0xF8,
    ))


class PsMuxer:
    """Frames in, PS bytes out: one `mux()` call per frame (video access unit or audio chunk).

    `video_codec` / `audio_codec` declare what the PSM lists; a frame of another codec updates the
    declaration (and the next PSM). `max_pes_payload` keeps each PES below the 16-bit length.
    """

    def __init__(self, video_codec: str | None = "h264", audio_codec: str | None = None, *,
                 mux_rate: int = 0x3FFFFF >> 4, max_pes_payload: int = 65000, psm_every_audio: int = 50) -> None:
        self.video_codec = video_codec
        self.audio_codec = audio_codec
        self.mux_rate = mux_rate
        self.max_pes_payload = max(16, min(max_pes_payload, 65535 - 13))
        self.psm_every_audio = psm_every_audio
        self._psm_version = 0
        self._sent_psm = False
        self._audio_since_psm = 0

    def mux(self, frame: Frame) -> bytes:
        """PS bytes for one frame: pack header (+ system header + PSM) + PES packet(s)."""
        parts = [pack_header(frame.dts, self.mux_rate)]
        if frame.is_video:
            if frame.codec != self.video_codec:
                self.video_codec = frame.codec
                self._psm_version = (self._psm_version + 1) & 0x1F
                self._sent_psm = False
            if frame.keyframe or not self._sent_psm:
                parts.append(self.system_header())
                parts.append(self.psm())
                self._sent_psm = True
                self._audio_since_psm = 0
            self._pes(parts, _VIDEO_SID, frame.data, frame.pts, frame.dts)
        else:
            if frame.codec != self.audio_codec:
                self.audio_codec = frame.codec
                self._psm_version = (self._psm_version + 1) & 0x1F
                self._sent_psm = False
            self._audio_since_psm += 1
            if not self._sent_psm or (self.video_codec is None and self._audio_since_psm >= self.psm_every_audio):
                parts.append(self.system_header())
                parts.append(self.psm())
                self._sent_psm = True
                self._audio_since_psm = 0
            self._pes(parts, _AUDIO_SID, frame.data, frame.pts, frame.pts)
        return b"".join(parts)

    def _pes(self, parts: list[bytes], sid: int, data: bytes, pts: int, dts: int) -> None:
        step = self.max_pes_payload
        n = len(data)
        first = True
        off = 0
        while first or off < n:
            chunk = data[off : off + step]
            off += step
            if first:
                if dts != pts:
                    hdr = b"\x80\xc0\x0a" + _ts_bytes(3, pts) + _ts_bytes(1, dts)
                else:
                    hdr = b"\x80\x80\x05" + _ts_bytes(2, pts)
                first = False
            else:
                hdr = b"\x80\x00\x00"
            parts.append(struct.pack("!IH", 0x100 | sid, len(hdr) + len(chunk)))
            parts.append(hdr)
            parts.append(chunk)

    def system_header(self) -> bytes:
        streams = b""
        if self.video_codec:
            streams += bytes((_VIDEO_SID, 0xE0, 0x80))   # P-STD scale 1 (1024 B), 128 KiB
        if self.audio_codec:
            streams += bytes((_AUDIO_SID, 0xC0, 0x20))   # P-STD scale 0 (128 B), 4 KiB
        rb = self.mux_rate
        body = bytes((
            0x80 | ((rb >> 15) & 0x7F), (rb >> 7) & 0xFF, ((rb << 1) & 0xFE) | 1,
            (1 if self.audio_codec else 0) << 2,
            0xE0 | (1 if self.video_codec else 0),
            0x7F,
        )) + streams
        return b"\x00\x00\x01\xbb" + len(body).to_bytes(2, "big") + body

    def psm(self) -> bytes:
        es = b""
        if self.video_codec:
            es += bytes((CODEC_STREAM_TYPES[self.video_codec], _VIDEO_SID, 0, 0))
        if self.audio_codec:
            es += bytes((CODEC_STREAM_TYPES[self.audio_codec], _AUDIO_SID, 0, 0))
        body = bytes((0x80 | self._psm_version, 0xFF, 0, 0)) + len(es).to_bytes(2, "big") + es
        length = len(body) + 4
        head = b"\x00\x00\x01\xbc" + length.to_bytes(2, "big") + body
        return head + crc32_mpeg2(head).to_bytes(4, "big")


def packetize(ps: bytes, *, seq: int, ts: int, ssrc: int, pt: int = 96, mtu: int = 1400) -> tuple[list[bytes], int]:
    """Split one frame's PS bytes into RTP packets of at most `mtu` bytes.

    Every packet carries `ts`; the last one has the marker bit. Returns (packets, next_seq).
    """
    room = max(1, mtu - 12)
    n = len(ps)
    count = max(1, -(-n // room))
    ts &= 0xFFFFFFFF
    ssrc &= 0xFFFFFFFF
    pt &= 0x7F
    pack = struct.Struct("!BBHII").pack
    out = []
    mv = memoryview(ps)
    for k in range(count):
        last = k == count - 1
        hdr = pack(0x80, pt | 0x80 if last else pt, (seq + k) & 0xFFFF, ts, ssrc)
        out.append(hdr + mv[k * room : (k + 1) * room])
    return out, (seq + count) & 0xFFFF
