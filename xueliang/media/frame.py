"""The unit that flows from the PS demuxer through the stream hub to every output."""

from __future__ import annotations

from dataclasses import dataclass

VIDEO_CODECS = frozenset({"h264", "h265"})
AUDIO_CODECS = frozenset({"pcma", "pcmu", "aac"})


@dataclass(slots=True)
class Frame:
    """One access unit.

    Video `data` is Annex-B with start codes (parameter sets included when the source sent them);
    audio `data` is raw G.711 samples or ADTS AAC. Timestamps are on the 90 kHz MPEG clock,
    already unwrapped so outputs can subtract a base without caring about 33-bit rollover.
    """

    codec: str
    pts: int
    dts: int
    data: bytes
    keyframe: bool

    @property
    def is_video(self) -> bool:
        return self.codec in VIDEO_CODECS
