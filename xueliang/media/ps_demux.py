"""MPEG-2 Program Stream demuxer for GB/T 28181 media (sans-I/O).

Fed RTP payloads in order (split anywhere: a start code, a PES header or a PSM may straddle two
payloads), it yields whole access units as `Frame`s. It understands pack headers (MPEG-2 and
MPEG-1), system headers, the program stream map, and PES packets (MPEG-2 and MPEG-1 headers, PTS and
DTS, stuffing, video PES with length 0).

Why it is shaped like this: at 4 Mbit/s a stream brings about 360 RTP packets a second and most of
them are nothing but the middle of a PES packet. That case is one comparison and one list append
(`feed`'s first three lines); everything else (headers, the PSM, length-0 PES scanned with
`bytes.find`) runs in `_feed_slow`, about once per frame. Payload memoryviews are kept (not copied)
until the frame is joined, so they must view immutable memory (bytes).

Frame boundaries: a video access unit ends when a video PES with a *different* PTS starts (devices
that repeat the PTS on every PES of a frame are fine), on `flush()`, or, for low latency, on an
RTP marker bit passed to `feed(..., marker=True)` when the PES is complete at that point. A device
whose marker bits turn out to lie (a PES without PTS continues the frame after a marker) loses
marker trust for the rest of the stream. Audio PES packets are emitted as soon as they complete.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xueliang.media.frame import Frame

__all__ = ["STREAM_TYPES", "PsDemuxer", "au_boundaries", "guess_video_codec", "is_keyframe"]

STREAM_TYPES: dict[int, str] = {
    0x1B: "h264",
    0x24: "h265",
    0x90: "pcma",
    0x91: "pcmu",
    0x0F: "aac",
}

_WRAP = 1 << 33
_START = b"\x00\x00\x01"
_MAX_AU_PARTS = 16384        # ~20 MB of 1400-byte payloads: a frame that never ends is dropped
_H265_GUESS = frozenset({0, 1, 16, 17, 18, 19, 20, 21, 32, 33, 34, 35, 39, 40})
_H264_GUESS = frozenset({1, 5, 6, 7, 8, 9})


def _discard(_: Any) -> None:
    """Sink for PES bodies nobody wants (private streams, padding, system headers)."""


def _read_ts(d: bytes, k: int) -> int:
    return (((d[k] >> 1) & 0x07) << 30) | (d[k + 1] << 22) | ((d[k + 2] >> 1) << 15) | (d[k + 3] << 7) | (d[k + 4] >> 1)


def _nal_start(data: bytes, start: int, limit: int) -> int:
    """Offset of the first Annex-B NAL start code (zero_byte included) in [start, limit), or -1."""
    pos = start
    while True:
        j = data.find(_START, pos, limit)
        if j < 0 or j + 3 >= limit:
            return -1
        if data[j + 3] < 0x80:
            return j - 1 if j > start and data[j - 1] == 0 else j
        pos = j + 3


def au_boundaries(data: bytes, codec: str) -> list[int]:
    """Offsets where a new access unit begins inside `data` (0 excluded), from the NAL headers.

    A new unit starts at an AUD / parameter set / SEI that follows a slice, or at a slice whose
    first_mb_in_slice (H.264) / first_slice_segment_in_pic_flag (H.265) says it starts a picture.
    """
    cuts: list[int] = []
    pos = 0
    n = len(data)
    seen_vcl = False
    h265 = codec == "h265"
    while True:
        j = data.find(_START, pos)
        if j < 0 or j + 5 >= n:
            break
        pos = j + 3
        h = data[j + 3]
        if h265:
            t = (h >> 1) & 0x3F
            vcl = t < 32
            first = bool(data[j + 5] & 0x80)
            head = t in (32, 33, 34, 35, 39)
        else:
            t = h & 0x1F
            vcl = 1 <= t <= 5
            first = bool(data[j + 4] & 0x80)
            head = t in (6, 7, 8, 9)
        if vcl:
            if first and seen_vcl:
                cuts.append(j - 1 if data[j - 1] == 0 and (not cuts or j - 1 > cuts[-1]) else j)
            seen_vcl = True
        elif head and seen_vcl:
            cuts.append(j - 1 if data[j - 1] == 0 and (not cuts or j - 1 > cuts[-1]) else j)
            seen_vcl = False
    return [c for c in cuts if c > 0]


def is_keyframe(data: bytes, codec: str) -> bool:
    """True when the access unit holds an IDR/IRAP picture or starts with parameter sets.

    Only the leading NAL units are inspected (stops at the first slice), so a big frame costs a few
    `bytes.find` calls, not a scan of the whole slice.
    """
    pos = 0
    n = len(data)
    h265 = codec == "h265"
    for _ in range(24):
        j = data.find(_START, pos)
        if j < 0 or j + 3 >= n:
            return False
        h = data[j + 3]
        if h265:
            t = (h >> 1) & 0x3F
            if 16 <= t <= 21 or t == 32:
                return True
            if t < 32:
                return False
        else:
            t = h & 0x1F
            if t == 5 or t == 7:
                return True
            if 1 <= t <= 4:
                return False
        pos = j + 3
    return False


def guess_video_codec(data: bytes) -> str | None:
    """H.264 or H.265 from the first NAL headers, for streams without a PSM."""
    pos = 0
    n = len(data)
    for _ in range(8):
        j = data.find(_START, pos)
        if j < 0 or j + 4 >= n:
            return None
        h0 = data[j + 3]
        h1 = data[j + 4]
        pos = j + 3
        if h0 & 0x80:
            continue
        if h1 == 0x01 and not h0 & 0x01 and (h0 >> 1) & 0x3F in _H265_GUESS:
            return "h265"
        if h0 & 0x1F in _H264_GUESS:
            return "h264"
    return None


class PsDemuxer:
    """Program-stream bytes in (any split), access units out. Never raises on bad input."""

    def __init__(self) -> None:
        self.video_codec: str | None = None
        self.audio_codec: str | None = None
        self.stream_types: dict[int, int] = {}   # PSM: stream_id -> stream_type
        self._remaining = 0                         # bytes left in the current PES body (known length)
        self._append: Callable[[Any], None] = _discard
        self._kind = 0                              # body being read: 0 discard, 1 video, 2 audio
        self._unbounded = False                     # inside a video PES with PES_packet_length 0
        self._pending = b""                         # header bytes carried over to the next payload
        self._vparts: list[Any] = []
        self._vpts: int | None = None
        self._vdts = 0
        self._last_vpts = 0
        self._aparts: list[Any] = []
        self._apts = 0
        self._last_ts: int | None = None
        self._use_marker = True
        self._marker_flushed = False
        self._guessed = False
        self._min_delta: int | None = None          # smallest PTS step between access units seen
        self._need_pts = False                      # after a loss: skip video PES until one has a PTS
        self._skipped_pes = 0
        # counters (see `stats`)
        self.packs = 0
        self.psm_count = 0
        self.pes_count = 0
        self.video_frames = 0
        self.audio_frames = 0
        self.keyframes = 0
        self.skipped_bytes = 0
        self.resyncs = 0
        self.bad_headers = 0
        self.dropped_frames = 0
        self.marker_lies = 0
        self.damaged_frames = 0

    # -- public API -------------------------------------------------------------------------------

    def feed(self, payload: bytes | memoryview, marker: bool = False) -> list[Frame]:
        """Add the next RTP payload; returns the access units completed by it (often none)."""
        n = len(payload)
        if n < self._remaining:  # the common case: the middle of a PES body
            self._append(payload)
            self._remaining -= n
            return []
        if self._unbounded and not marker and self._kind == 1 and not self._pending and not self._marker_flushed:
            # the middle of a length-0 video PES: one scan; no start code and no possible split
            # start code at the end means the whole payload is frame data
            data = payload if type(payload) is bytes else bytes(payload)
            if n and data[-1] and data.find(_START) < 0:
                self._vparts.append(data)
                if len(self._vparts) > _MAX_AU_PARTS:
                    self._drop_video()
                return []
            return self._feed_slow(data, marker)
        return self._feed_slow(payload, marker)

    def flush(self) -> list[Frame]:
        """End of stream: emit the access unit in progress unless it may be cut short (a PES with
        bytes missing, or a length-0 video PES whose end was never seen; an unfinished audio PES
        is dropped too)."""
        out: list[Frame] = []
        if self._remaining and self._kind == 1:  # the stream stopped inside a video PES: damaged
            self._vparts = []
            self.damaged_frames += 1
        if self._unbounded and self._kind == 1:
            # A length-0 video PES is only known to be complete when the next start code (or a
            # trusted marker, which already emitted it) arrives; at the end of the stream its tail
            # may be lost with nothing after it to tell, so it is dropped rather than risked.
            self._vparts = []
            self.damaged_frames += 1
        self._pending = b""
        self._unbounded = False
        self._remaining = 0
        self._append = _discard
        self._kind = 0
        self._emit_video(out)
        self._aparts = []
        return out

    def reset(self) -> None:
        """Drop partial data (a new connection starts at a packet boundary); keep codec knowledge."""
        self._pending = b""
        self._unbounded = False
        self._remaining = 0
        self._append = _discard
        self._kind = 0
        self._vparts = []
        self._vpts = None
        self._aparts = []
        self._marker_flushed = False
        self._need_pts = True

    def discontinuity(self) -> None:
        """Packets were lost: drop the damaged frame and resynchronise on the next PS start code.

        Without this a PES whose middle is missing would swallow the next headers as body bytes and
        hand out a frame of garbage; instead the partial frame is counted in `damaged_frames` and video
        PES without a PTS (the rest of that frame) are skipped until a new frame starts.
        """
        if self._vparts or self._remaining or self._unbounded or self._pending:
            self.damaged_frames += 1
        self.reset()

    @property
    def stats(self) -> dict[str, int]:
        return {
            "packs": self.packs, "psm": self.psm_count, "pes": self.pes_count,
            "video_frames": self.video_frames, "audio_frames": self.audio_frames, "keyframes": self.keyframes,
            "skipped_bytes": self.skipped_bytes, "resyncs": self.resyncs, "bad_headers": self.bad_headers,
            "dropped_frames": self.dropped_frames, "marker_lies": self.marker_lies,
            "damaged_frames": self.damaged_frames,
        }

    # -- slow path --------------------------------------------------------------------------------

    def _feed_slow(self, payload: bytes | memoryview, marker: bool) -> list[Frame]:
        out: list[Frame] = []
        if self._pending:
            data = self._pending + bytes(payload)
            self._pending = b""
        elif type(payload) is bytes:
            data = payload
        else:
            data = bytes(payload)
        mv = memoryview(data)
        n = len(data)
        i = 0
        while i < n:
            rem = self._remaining
            if rem:
                if n - i < rem:
                    self._append(mv[i:])
                    self._remaining = rem - (n - i)
                    i = n
                    break
                self._append(mv[i : i + rem])
                i += rem
                self._remaining = 0
                self._end_pes(out)
            elif self._unbounded:
                i = self._scan_unbounded(data, mv, i)
            else:
                i = self._header(data, mv, i, out)
        if marker and self._use_marker and self._kind != 2:
            self._on_marker(out)
        return out

    def _on_marker(self, out: list[Frame]) -> None:
        if self._unbounded:
            # the packet end is the frame end: trailing zero bytes held back belong to it. The PES
            # stays open: if the marker was right, the next payload starts with a PS start code.
            if self._pending and self._kind == 1:
                self._vparts.append(self._pending)
                self._pending = b""
        elif self._remaining or self._pending:
            return  # the marker does not fall on a PES boundary: ignore it
        if self._vparts:
            self._emit_video(out, split=False)
            self._marker_flushed = True

    def _scan_unbounded(self, data: bytes, mv: memoryview, i: int) -> int:
        """Inside a length-0 video PES: find where the next PS structure begins.

        Annex-B video never contains 00 00 01 followed by a byte >= 0xB9 (NAL headers are < 0x80
        and emulation prevention forbids other 00 00 01), so such a start code ends the PES.
        """
        n = len(data)
        if self._marker_flushed:
            self._marker_flushed = False
            j = data.find(_START, i)
            if j != i and not (j > 0 and j < n - 3 and data[j + 3] >= 0xB9 and not data[i:j].strip(b"\x00")):
                # the frame continues after a marker bit: the marker lied; drop the orphaned tail
                self._use_marker = False
                self.marker_lies += 1
                self.dropped_frames += 1
                self._unbounded = False
                self._append = _discard
                self._kind = 0
                return i if j < 0 else j
        keep_data = self._kind == 1   # 0: the rest of a damaged frame, scanned but not kept
        pos = i
        while True:
            j = data.find(_START, pos)
            if j < 0 or j + 3 >= n:
                break
            if data[j + 3] >= 0xB9:
                if j > i and keep_data:
                    self._vparts.append(mv[i:j])
                self._unbounded = False
                self._append = _discard
                self._kind = 0
                return j
            pos = j + 3
        keep = 3 if data.endswith(_START) else 2 if data.endswith(b"\x00\x00") else 1 if data.endswith(b"\x00") else 0
        keep = min(keep, n - i)
        if n - keep > i and keep_data:
            self._vparts.append(mv[i : n - keep])
        if keep:
            self._pending = data[n - keep :]
        if len(self._vparts) > _MAX_AU_PARTS:
            self._drop_video()
        return n

    def _need_more(self, data: bytes, i: int) -> int:
        self._pending = data[i:]
        return len(data)

    def _header(self, data: bytes, mv: memoryview, i: int, out: list[Frame]) -> int:
        """Parse one PS structure at `i`; returns the next offset (len(data) when it waits for more)."""
        n = len(data)
        if n - i < 4:
            return self._need_more(data, i)
        if data[i] or data[i + 1] or data[i + 2] != 1:
            j = data.find(_START, i)
            if j < 0:
                keep = 2 if data.endswith(b"\x00\x00") else 1 if data.endswith(b"\x00") else 0
                self.skipped_bytes += n - i - keep
                self.resyncs += 1
                return self._need_more(data, n - keep) if keep else n
            self.skipped_bytes += j - i
            self.resyncs += 1
            return j
        sid = data[i + 3]
        if sid == 0xBA:  # pack header
            if n - i < 5:
                return self._need_more(data, i)
            b4 = data[i + 4]
            if b4 & 0xC0 == 0x40:
                if n - i < 14:
                    return self._need_more(data, i)
                size = 14 + (data[i + 13] & 0x07)
            elif b4 & 0xF0 == 0x20:
                size = 12
            else:
                self.bad_headers += 1
                return i + 3
            if n - i < size:
                return self._need_more(data, i)
            self.packs += 1
            return i + size
        if sid == 0xB9:  # program end
            return i + 4
        if sid < 0xB9:  # a start code that is no PS structure (garbage or misaligned)
            self.bad_headers += 1
            self.skipped_bytes += 3
            return i + 3
        if n - i < 6:
            return self._need_more(data, i)
        plen = data[i + 4] << 8 | data[i + 5]
        if sid == 0xBC:  # program stream map
            if n - i < 6 + plen:
                return self._need_more(data, i)
            self._parse_psm(data, i, plen)
            return i + 6 + plen
        if 0xC0 <= sid <= 0xEF:
            return self._pes_start(data, mv, i, sid, plen, out)
        # system header, private streams, padding, ...: skip the body, possibly across payloads
        self._remaining = plen
        self._append = _discard
        self._kind = 0
        return i + 6

    def _pes_start(self, data: bytes, mv: memoryview, i: int, sid: int, plen: int, out: list[Frame]) -> int:
        n = len(data)
        pts: int | None = None
        dts: int | None = None
        if n - i < 9:
            return self._need_more(data, i)
        if data[i + 6] & 0xC0 == 0x80:  # MPEG-2 PES header
            hdl = data[i + 8]
            if n - i < 9 + hdl:
                return self._need_more(data, i)
            flags = data[i + 7] >> 6
            if flags & 2 and hdl >= 5:
                pts = _read_ts(data, i + 9)
                if flags == 3 and hdl >= 10:
                    dts = _read_ts(data, i + 14)
            hdr = 3 + hdl
        else:  # MPEG-1 PES header: stuffing, optional STD buffer, PTS / PTS+DTS / 0x0F
            k = i + 6
            limit = min(n, i + 6 + 16)
            while k < limit and data[k] == 0xFF:
                k += 1
            if k + 1 > n or (data[k] & 0xC0 == 0x40 and k + 3 > n):
                return self._need_more(data, i) if n - i < 40 else self._bad(i)
            if data[k] & 0xC0 == 0x40:
                k += 2
            b = data[k]
            if b & 0xF0 == 0x20:
                if k + 5 > n:
                    return self._need_more(data, i)
                pts = _read_ts(data, k)
                k += 5
            elif b & 0xF0 == 0x30:
                if k + 10 > n:
                    return self._need_more(data, i)
                pts = _read_ts(data, k)
                dts = _read_ts(data, k + 5)
                k += 10
            elif b == 0x0F:
                k += 1
            else:
                return self._bad(i)
            hdr = k - i - 6
        body = plen - hdr
        if plen and body < 0:
            return self._bad(i)
        self.pes_count += 1
        start = i + 6 + hdr
        if pts is not None:
            pts = self._unwrap(pts)
            dts = self._unwrap(dts) if dts is not None else pts
        if sid >= 0xE0:
            limit = n if plen == 0 else min(n, start + body)
            used = self._video_pes(data, mv, start, limit, pts, dts, out)
            if plen == 0:
                self._unbounded = True
                self._remaining = 0
            else:
                self._remaining = body - used
            start += used
        else:
            if plen == 0:  # audio must have a length; skip the header and resync on the next start code
                return start
            self._aparts = []
            self._apts = pts if pts is not None else self._apts
            self._append = self._aparts.append
            self._kind = 2
            self._remaining = body
        if plen and not self._remaining:
            self._end_pes(out)
        return start

    def _video_pes(self, data: bytes, mv: memoryview, start: int, limit: int, pts: int | None,
                   dts: int | None, out: list[Frame]) -> int:
        """Start (or continue) the video access unit for a new PES; returns body bytes consumed."""
        used = 0
        if pts is None and self._need_pts:
            self._skipped_pes += 1
            if self._skipped_pes <= 64:  # a device that never sends PTS must not be muted for good
                self.skipped_bytes += limit - start
                self._append = _discard  # the rest of a frame whose beginning was lost
                self._kind = 0
                return 0
        self._need_pts = False
        self._skipped_pes = 0
        if pts is None:
            if self._marker_flushed and not self._vparts:
                self._use_marker = False  # the marker ended a frame that was not finished
                self.marker_lies += 1
            if self._vpts is None:
                self._vpts = self._last_vpts
                self._vdts = self._last_vpts
        elif pts != self._vpts or not self._vparts:
            if self._vparts:
                # ffmpeg-style PS: the PES that carries the next PTS may begin with the tail of the
                # previous frame; the new access unit starts at the first start code in it.
                if limit - start >= 4 and data[start : start + 3] != _START \
                        and data[start : start + 4] != b"\x00\x00\x00\x01":
                    j = _nal_start(data, start, limit)
                    if j > start:
                        self._vparts.append(mv[start:j])
                        used = j - start
                # DTS, not PTS: it advances by one frame interval per access unit even with B-frames
                self._emit_video(out, (dts if dts is not None else pts) - self._vdts)
            elif self._marker_flushed and pts == self._last_vpts:
                self._use_marker = False
                self.marker_lies += 1
            self._vpts = pts
            self._vdts = dts if dts is not None else pts
        self._marker_flushed = False
        if len(self._vparts) > _MAX_AU_PARTS:
            self._drop_video()
        self._append = self._vparts.append
        self._kind = 1
        return used

    def _bad(self, i: int) -> int:
        self.bad_headers += 1
        return i + 3

    def _end_pes(self, out: list[Frame]) -> None:
        if self._kind == 2:
            data = b"".join(self._aparts)
            self._aparts = []
            if data:
                codec = self.audio_codec
                if codec is None:
                    codec = "aac" if data[0] == 0xFF and data[1:2] and data[1] & 0xF0 == 0xF0 else "pcma"
                    self.audio_codec = codec
                self.audio_frames += 1
                out.append(Frame(codec, self._apts, self._apts, data, True))
        self._append = _discard
        self._kind = 0

    def _emit_video(self, out: list[Frame], gap: int | None = None, split: bool = True) -> None:
        """Close the access unit in progress.

        `gap` is the PTS distance to the next access unit. Muxers such as ffmpeg's pack several small
        frames into one PES and put a PTS only on the first; such a unit is recognised by a gap wider
        than the stream's frame interval and split at its access-unit boundaries (a full NAL scan,
        done only then, because scanning every frame would cost more than the rest of the demux).
        """
        parts = self._vparts
        if not parts:
            return
        self._vparts = []
        if self._kind == 1:
            self._append = self._vparts.append
        data = b"".join(parts)
        pts = self._vpts if self._vpts is not None else self._last_vpts
        dts = self._vdts
        self._last_vpts = pts
        self._vpts = None
        codec = self.video_codec
        if codec is None:
            codec = guess_video_codec(data)
            if codec is None:
                self.dropped_frames += 1
                return
            self.video_codec = codec
            self._guessed = True
        step = self._min_delta
        cuts: list[int] = []
        if split and (gap is None or (gap > 0 and (step is None or 2 * gap > 3 * step))):
            cuts = au_boundaries(data, codec)
        if gap is not None and gap > 0:
            per = gap // (len(cuts) + 1)
            if per > 0 and (step is None or per < step):
                self._min_delta = per
        if not cuts:
            self._push_video(out, codec, pts, dts, data)
            return
        step = self._min_delta or 3600
        start = 0
        for k, cut in enumerate([*cuts, len(data)]):
            self._push_video(out, codec, pts + k * step, dts + k * step, data[start:cut])
            start = cut
        self._last_vpts = pts + len(cuts) * step

    def _push_video(self, out: list[Frame], codec: str, pts: int, dts: int, data: bytes) -> None:
        key = is_keyframe(data, codec)
        self.video_frames += 1
        if key:
            self.keyframes += 1
        out.append(Frame(codec, pts, dts, data, key))

    def _drop_video(self) -> None:
        self._vparts = []
        self.dropped_frames += 1

    def _unwrap(self, raw: int) -> int:
        """33-bit timestamp to a monotonic value: the representative closest to the last one seen."""
        last = self._last_ts
        value = raw if last is None else raw + round((last - raw) / _WRAP) * _WRAP
        self._last_ts = value
        return value

    def _parse_psm(self, data: bytes, i: int, plen: int) -> None:
        """Read stream types. elementary_stream_map_length is ignored: some devices write it wrong
        (8 for a 14-byte map in the wild), so entries are walked up to the CRC instead."""
        self.psm_count += 1
        end = i + 6 + plen
        p = i + 8
        if p + 2 > end:
            self.bad_headers += 1
            return
        p += 2 + (data[p] << 8 | data[p + 1])
        p += 2  # elementary_stream_map_length (untrusted)
        stop = end - 4
        while p + 4 <= stop:
            st = data[p]
            esid = data[p + 1]
            p += 4 + (data[p + 2] << 8 | data[p + 3])
            self.stream_types[esid] = st
            codec = STREAM_TYPES.get(st)
            if codec is None:
                continue
            if 0xE0 <= esid <= 0xEF and codec in ("h264", "h265"):
                self.video_codec = codec
                self._guessed = False
            elif 0xC0 <= esid <= 0xDF and codec in ("pcma", "pcmu", "aac"):
                self.audio_codec = codec
