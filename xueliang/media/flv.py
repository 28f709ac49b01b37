"""FLV muxer for HTTP-FLV / WebSocket-FLV live outputs.

H.264 uses classic FLV (CodecID 7, AVCPacketType); H.265 uses enhanced FLV (Enhanced RTMP v1:
the IsExHeader bit, FourCC `hvc1`, PacketType SequenceStart / CodedFrames / CodedFramesX), which
ffmpeg >= 6.1, mpegts.js and OBS understand. Audio: G.711 A-law/µ-law (SoundFormat 7/8) and AAC
(SoundFormat 10, AudioSpecificConfig derived from the first ADTS header).

One muxer per viewer connection: it holds the timestamp base (so each viewer's stream starts at
0) and the last sequence headers sent (re-sent when the SPS/PPS change mid-stream). Each frame
becomes one tag built with a single `bytes.join`, the per-viewer cost the hub bench measures.
"""

from __future__ import annotations

import struct

from xueliang.media import nal as nalmod
from xueliang.media.frame import Frame

TAG_AUDIO = 8
TAG_VIDEO = 9
TAG_SCRIPT = 18

_AUDIO_FORMAT = {"pcma": 7, "pcmu": 8, "aac": 10}
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)

_TAG_HEAD = struct.Struct(">BHBHBBBBB")  # type, size(24: H+B), ts(24: H+B), ts_ext, stream id (3 x B)
_U32 = struct.Struct(">I")


def _tag(tag_type: int, ts_ms: int, *body: bytes) -> bytes:
    size = sum(len(b) for b in body)
    ts = ts_ms & 0xFFFFFFFF
    head = _TAG_HEAD.pack(tag_type, size >> 8, size & 0xFF, (ts >> 8) & 0xFFFF, ts & 0xFF, ts >> 24, 0, 0, 0)
    return b"".join((head, *body, _U32.pack(11 + size)))


def _si24(v: int) -> bytes:
    return (v & 0xFFFFFF).to_bytes(3, "big")


def adts_to_asc(adts: bytes) -> bytes:
    """AudioSpecificConfig (2 bytes) from an ADTS header."""
    if len(adts) < 7 or adts[0] != 0xFF or (adts[1] & 0xF0) != 0xF0:
        raise ValueError("not an ADTS frame")
    object_type = (adts[2] >> 6) + 1
    freq_index = (adts[2] >> 2) & 0x0F
    channels = ((adts[2] & 1) << 2) | (adts[3] >> 6)
    return bytes(((object_type << 3) | (freq_index >> 1), ((freq_index & 1) << 7) | (channels << 3)))


def split_adts(data: bytes) -> list[tuple[bytes, int]]:
    """ADTS stream -> [(raw AAC payload, sample rate)], header (and CRC) removed."""
    out: list[tuple[bytes, int]] = []
    pos = 0
    n = len(data)
    while pos + 7 <= n:
        if data[pos] != 0xFF or (data[pos + 1] & 0xF0) != 0xF0:
            nxt = data.find(b"\xff", pos + 1)
            if nxt < 0:
                break
            pos = nxt
            continue
        length = ((data[pos + 3] & 3) << 11) | (data[pos + 4] << 3) | (data[pos + 5] >> 5)
        header = 7 if data[pos + 1] & 1 else 9
        if length < header or pos + length > n:
            break
        freq_index = (data[pos + 2] >> 2) & 0x0F
        rate = _AAC_RATES[freq_index] if freq_index < len(_AAC_RATES) else 44100
        out.append((data[pos + header : pos + length], rate))
        pos += length
    return out


def _amf_string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def _amf_value(v: object) -> bytes:
    if isinstance(v, bool):
        return b"\x01" + bytes((int(v),))
    if isinstance(v, int | float):
        return b"\x00" + struct.pack(">d", float(v))
    return b"\x02" + _amf_string(str(v))


# Every viewer of a hub gets the same Frame objects, and each has its own muxer: convert a frame's
# Annex-B to length-prefixed form (and its parameter sets to avcC/hvcC) once, not once per viewer.
# Keyed by object identity; the entry holds the frame itself so the id cannot be reused while
# cached. Bounded: lagging viewers beyond the window just convert again.
_CACHE_SIZE = 1024
_cache: dict[int, tuple[Frame, bytes, bytes | None]] = {}


def _converted(codec: str, frame: Frame) -> tuple[bytes, bytes | None]:
    """(length-prefixed payload without parameter sets/AUD, decoder config if a keyframe has one)."""
    key = id(frame)
    hit = _cache.get(key)
    if hit is not None and hit[0] is frame:
        return hit[1], hit[2]
    nals = nalmod.split_annexb(frame.data)
    config = None
    if frame.keyframe:
        ps = nalmod.extract_parameter_sets(codec, nals)
        if ps.complete(codec):
            try:
                config = nalmod.decoder_config(codec, ps)
            except ValueError:
                config = None
    payload = nalmod.to_avcc(nalmod.strip_nals(codec, nals))
    if len(_cache) >= _CACHE_SIZE:
        del _cache[next(iter(_cache))]  # oldest first (dicts keep insertion order)
    _cache[key] = (frame, payload, config)
    return payload, config


class FlvMuxer:
    """Frames in, FLV bytes out. `header()` first, then `tag(frame)` for every frame."""

    def __init__(self, video_codec: str | None, audio_codec: str | None = None) -> None:
        if video_codec not in (None, "h264", "h265"):
            raise ValueError(f"FLV cannot carry video codec {video_codec!r}")
        if audio_codec not in (None, *_AUDIO_FORMAT):
            raise ValueError(f"FLV cannot carry audio codec {audio_codec!r}")
        self.video_codec = video_codec
        self.audio_codec = audio_codec
        self._base: int | None = None
        self._last_ms = 0
        self._video_config: bytes | None = None
        self._aac_config: bytes | None = None
        self._aac_count = 0
        self.dropped_before_keyframe = 0

    # ------------------------------------------------------------------ stream start

    def header(self, *, width: int = 0, height: int = 0, fps: float = 0.0) -> bytes:
        """FLV file header + PreviousTagSize0, and an `onMetaData` script tag when a size is known."""
        flags = (0x01 if self.video_codec else 0) | (0x04 if self.audio_codec else 0)
        out = b"FLV\x01" + bytes((flags,)) + _U32.pack(9) + _U32.pack(0)
        if width and height:
            meta: dict[str, object] = {"width": width, "height": height}
            if fps:
                meta["framerate"] = fps
            if self.video_codec == "h264":
                meta["videocodecid"] = 7
            if self.audio_codec:
                meta["audiocodecid"] = _AUDIO_FORMAT[self.audio_codec]
            body = b"\x02" + _amf_string("onMetaData") + b"\x08" + _U32.pack(len(meta))
            body += b"".join(_amf_string(k) + _amf_value(v) for k, v in meta.items()) + b"\x00\x00\x09"
            out += _tag(TAG_SCRIPT, 0, body)
        return out

    def _ms(self, ts90: int) -> int:
        if self._base is None:
            self._base = ts90
        ms = (ts90 - self._base) // 90
        # Never let time run backwards: players (and MSE) stall on negative steps.
        if ms < self._last_ms - 1000 or ms < 0:
            ms = self._last_ms
        self._last_ms = max(self._last_ms, ms)
        return ms

    # ------------------------------------------------------------------ video

    def _video_sequence_tag(self, ts: int, config: bytes) -> bytes:
        if self.video_codec == "h264":
            return _tag(TAG_VIDEO, ts, b"\x17\x00\x00\x00\x00", config)
        return _tag(TAG_VIDEO, ts, b"\x90hvc1", config)  # keyframe | SequenceStart

    def _video(self, frame: Frame) -> bytes:
        codec = self.video_codec
        assert codec is not None
        payload, config = _converted(codec, frame)
        out: list[bytes] = []
        if config is not None and config != self._video_config:
            self._video_config = config
            out.append(self._video_sequence_tag(self._ms(frame.dts), config))
        if self._video_config is None:
            # No decoder configuration yet: a player cannot use these frames.
            self.dropped_before_keyframe += 1
            return b""
        if not payload:
            return b"".join(out)
        ts = self._ms(frame.dts)
        cts = (frame.pts - frame.dts) // 90
        if codec == "h264":
            head = bytes((0x17 if frame.keyframe else 0x27, 1)) + _si24(cts)
        elif cts:
            head = bytes((0x91 if frame.keyframe else 0xA1,)) + b"hvc1" + _si24(cts)  # CodedFrames
        else:
            head = bytes((0x93 if frame.keyframe else 0xA3,)) + b"hvc1"  # CodedFramesX: cts 0
        out.append(_tag(TAG_VIDEO, ts, head, payload))
        return b"".join(out)

    # ------------------------------------------------------------------ audio

    def _audio(self, frame: Frame) -> bytes:
        codec = frame.codec
        if codec in ("pcma", "pcmu"):
            # 8 kHz mono; the rate bits are ignored for G.711 by every demuxer, 16-bit flag set as ffmpeg does.
            flags = (_AUDIO_FORMAT[codec] << 4) | 0x02
            return _tag(TAG_AUDIO, self._ms(frame.pts), bytes((flags,)), frame.data)
        if codec == "aac":
            out: list[bytes] = []
            frames = split_adts(frame.data)
            if not frames:
                return b""
            if self._aac_config is None:
                self._aac_config = adts_to_asc(frame.data)
                out.append(_tag(TAG_AUDIO, self._ms(frame.pts), b"\xaf\x00", self._aac_config))
            for i, (raw, rate) in enumerate(frames):
                ts = self._ms(frame.pts + i * 1024 * 90000 // rate)
                out.append(_tag(TAG_AUDIO, ts, b"\xaf\x01", raw))
            return b"".join(out)
        return b""

    # ------------------------------------------------------------------ public

    def tag(self, frame: Frame) -> bytes:
        """FLV tag(s) for one frame, preceded by sequence headers when they are new or changed.

        Empty bytes when the frame cannot be played yet (video before the first keyframe with
        parameter sets) or belongs to a codec this muxer was not opened for.
        """
        if frame.is_video:
            if frame.codec != self.video_codec:
                return b""
            return self._video(frame)
        if frame.codec != self.audio_codec:
            return b""
        if self.video_codec and self._video_config is None:
            return b""  # keep audio from racing ahead of the first video keyframe
        return self._audio(frame)
