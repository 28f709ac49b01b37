"""Fragmented MP4 (ISO BMFF) muxer for MSE over WebSocket and HLS fMP4 segments.

A small hand-written box writer: one video track, timescale 90 kHz (the stream's own clock, so
no rounding), `avc1`+`avcC` for H.264 and `hvc1`+`hvcC` for H.265 (parameter sets only in the
sample entry, none in-band, as `hvc1` requires). `init_segment()` gives ftyp+moov (with
mvex/trex), `fragment(frames)` one moof+mdat; tfhd uses default-base-is-moof so fragments are
self-contained and can be sent to a SourceBuffer in any grouping.
"""

from __future__ import annotations

import struct

from xueliang.media import nal as nalmod
from xueliang.media.frame import Frame

TIMESCALE = 90000
_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
_KEY_FLAGS = 0x02000000  # sample_depends_on = 2 (independent)
_NONKEY_FLAGS = 0x01010000  # depends on others, is_non_sync_sample


def box(kind: bytes, *payload: bytes) -> bytes:
    size = 8 + sum(len(p) for p in payload)
    return b"".join((struct.pack(">I", size), kind, *payload))


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *payload)


class Fmp4Muxer:
    """Frames in, fMP4 out.

    `init_segment()` needs the parameter sets; they come from `parameter_sets` or are learnt from
    the first keyframe given to `update_parameter_sets()` / `fragment()`. `width`/`height` may be
    0: they are then taken from the SPS.
    """

    def __init__(self, video_codec: str, width: int = 0, height: int = 0,
                 parameter_sets: nalmod.ParameterSets | None = None) -> None:
        if video_codec not in ("h264", "h265"):
            raise ValueError(f"fMP4 muxer handles h264/h265, not {video_codec!r}")
        self.video_codec = video_codec
        self.width = width
        self.height = height
        self.parameter_sets = parameter_sets
        self.sequence = 0
        self._base: int | None = None
        self._last_duration = TIMESCALE // 25
        self.parameter_sets_changed = False

    # ------------------------------------------------------------------ parameter sets

    def update_parameter_sets(self, frame: Frame) -> bool:
        """Learn parameter sets from a keyframe; True when they differ from the known ones
        (the caller must then send a new init segment before the next fragment)."""
        if not frame.keyframe:
            return False
        ps = nalmod.extract_parameter_sets(self.video_codec, nalmod.split_annexb(frame.data))
        if not ps.complete(self.video_codec):
            return False
        if self.parameter_sets is not None and ps.all() == self.parameter_sets.all():
            return False
        changed = self.parameter_sets is not None
        self.parameter_sets = ps
        try:
            info = nalmod.parse_sps(self.video_codec, ps.sps[0])
            if changed or not (self.width and self.height):
                self.width, self.height = info.width, info.height
        except ValueError:
            pass
        self.parameter_sets_changed = changed
        return True

    @property
    def codec_string(self) -> str:
        """RFC 6381 codecs value for `MediaSource.isTypeSupported` / addSourceBuffer."""
        if self.parameter_sets is None:
            raise ValueError("parameter sets not known yet")
        return nalmod.codec_string(self.video_codec, self.parameter_sets)

    @property
    def mime_type(self) -> str:
        return f'video/mp4; codecs="{self.codec_string}"'

    # ------------------------------------------------------------------ init segment

    def _sample_entry(self) -> bytes:
        assert self.parameter_sets is not None
        config = nalmod.decoder_config(self.video_codec, self.parameter_sets)
        kind, config_box = (b"avc1", box(b"avcC", config)) if self.video_codec == "h264" else (
            b"hvc1", box(b"hvcC", config))
        visual = struct.pack(
            ">6xH16xHHIIIH32sHh",
            1,  # data_reference_index
            self.width, self.height,
            0x00480000, 0x00480000,  # 72 dpi
            0,  # reserved
            1,  # frame_count
            b"\x00" * 32,  # compressorname
            0x0018,  # depth
            -1,  # pre_defined
        )
        return box(kind, visual, config_box)

    def init_segment(self) -> bytes:
        """ftyp + moov for one video track (fragmented: empty sample tables, mvex/trex)."""
        if self.parameter_sets is None or not self.parameter_sets.complete(self.video_codec):
            raise ValueError("init segment needs the parameter sets (feed a keyframe first)")
        if not (self.width and self.height):
            info = nalmod.parse_sps(self.video_codec, self.parameter_sets.sps[0])
            self.width, self.height = info.width, info.height
        brand = b"avc1" if self.video_codec == "h264" else b"hvc1"
        ftyp = box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isom", b"iso6", b"mp41", brand)
        mvhd = full_box(b"mvhd", 0, 0, struct.pack(">IIII", 0, 0, TIMESCALE, 0),
                        struct.pack(">IH10x", 0x00010000, 0x0100), _MATRIX, b"\x00" * 24,
                        struct.pack(">I", 2))
        tkhd = full_box(b"tkhd", 0, 3, struct.pack(">IIIII", 0, 0, 1, 0, 0), b"\x00" * 8,
                        struct.pack(">hhH2x", 0, 0, 0), _MATRIX,
                        struct.pack(">II", self.width << 16, self.height << 16))
        mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, TIMESCALE, 0, 0x55C4, 0))
        hdlr = full_box(b"hdlr", 0, 0, struct.pack(">I4s12x", 0, b"vide"), b"xueliang\x00")
        vmhd = full_box(b"vmhd", 0, 1, b"\x00" * 8)
        dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
        stbl = box(
            b"stbl",
            full_box(b"stsd", 0, 0, struct.pack(">I", 1), self._sample_entry()),
            full_box(b"stts", 0, 0, struct.pack(">I", 0)),
            full_box(b"stsc", 0, 0, struct.pack(">I", 0)),
            full_box(b"stsz", 0, 0, struct.pack(">II", 0, 0)),
            full_box(b"stco", 0, 0, struct.pack(">I", 0)),
        )
        mdia = box(b"mdia", mdhd, hdlr, box(b"minf", vmhd, dinf, stbl))
        trak = box(b"trak", tkhd, mdia)
        mvex = box(b"mvex", full_box(b"trex", 0, 0, struct.pack(">IIIII", 1, 1, 0, 0, 0)))
        return ftyp + box(b"moov", mvhd, trak, mvex)

    # ------------------------------------------------------------------ fragments

    def fragment(self, frames: list[Frame], next_dts: int | None = None) -> bytes:
        """moof + mdat for the given video frames (in decode order; others are ignored).

        Sample durations come from the dts differences; the last sample's duration is
        `next_dts - last.dts` when the caller knows the next frame's dts (one-frame fragments held
        back by one frame: MSE sees no gaps), else the previous duration. The decode time base is
        the first frame ever given, so playback starts at 0.
        """
        frames = [f for f in frames if f.codec == self.video_codec]
        if not frames:
            return b""
        for f in frames:
            if f.keyframe:
                self.update_parameter_sets(f)
        if self._base is None:
            self._base = frames[0].dts
        samples = [nalmod.annexb_to_avcc(self.video_codec, f.data) for f in frames]
        n = len(frames)
        durations = []
        for i in range(n - 1):
            d = frames[i + 1].dts - frames[i].dts
            durations.append(d if d > 0 else self._last_duration)
        if n > 1:
            self._last_duration = durations[-1]
        if next_dts is not None and next_dts > frames[-1].dts:
            self._last_duration = next_dts - frames[-1].dts
        durations.append(self._last_duration)
        self.sequence += 1
        entry = struct.Struct(">IIIi")
        trun_entries = b"".join(
            entry.pack(durations[i], len(samples[i]), _KEY_FLAGS if f.keyframe else _NONKEY_FLAGS,
                       f.pts - f.dts)
            for i, f in enumerate(frames)
        )
        decode_time = max(0, frames[0].dts - self._base)
        # trun: data-offset, duration, size, flags, composition offset (version 1: signed)
        trun_flags = 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800
        trun_len = 12 + 8 + len(trun_entries)
        tfhd = full_box(b"tfhd", 0, 0x020000, struct.pack(">I", 1))
        tfdt = full_box(b"tfdt", 1, 0, struct.pack(">Q", decode_time))
        mfhd = full_box(b"mfhd", 0, 0, struct.pack(">I", self.sequence))
        traf_len = 8 + len(tfhd) + len(tfdt) + trun_len
        moof_len = 8 + len(mfhd) + traf_len
        data_offset = moof_len + 8  # from moof start to first byte of mdat payload
        trun = full_box(b"trun", 1, trun_flags, struct.pack(">Ii", n, data_offset), trun_entries)
        moof = box(b"moof", mfhd, box(b"traf", tfhd, tfdt, trun))
        mdat_size = 8 + sum(len(s) for s in samples)
        return b"".join((moof, struct.pack(">I", mdat_size), b"mdat", *samples))
