"""Property tests: NAL helpers never fail on hostile bytes except with ValueError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from xueliang.media import nal
from xueliang.media.flv import split_adts

nal_bodies = st.binary(min_size=1, max_size=64).filter(lambda b: b"\x00\x00" not in b and not b.endswith(b"\x00"))


@given(st.lists(nal_bodies, min_size=0, max_size=8), st.lists(st.booleans(), min_size=8, max_size=8))
def test_split_annexb_roundtrip(units: list[bytes], four: list[bool]) -> None:
    data = b"".join((b"\x00\x00\x00\x01" if four[i] else b"\x00\x00\x01") + u for i, u in enumerate(units))
    assert nal.split_annexb(data) == units


@given(st.binary(max_size=300))
@settings(max_examples=300)
def test_split_annexb_never_raises(data: bytes) -> None:
    units = nal.split_annexb(data)
    assert sum(len(u) for u in units) <= len(data)
    assert all(units)


@given(st.binary(min_size=0, max_size=80), st.sampled_from(["h264", "h265"]))
@settings(max_examples=500)
def test_sps_parse_only_value_error(data: bytes, codec: str) -> None:
    head = b"\x67" if codec == "h264" else b"\x42\x01"
    try:
        info = nal.parse_sps(codec, head + data)
    except ValueError:
        return
    assert info.width > 0 and info.height > 0


@given(st.binary(max_size=400))
def test_split_adts_never_raises(data: bytes) -> None:
    for raw, rate in split_adts(data):
        assert rate > 0 and len(raw) <= len(data)
