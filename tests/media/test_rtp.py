"""RTP parsing, building, reordering and RFC 4571 framing (sans-I/O units)."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xueliang.media.rtp import FramingError, Reorderer, Rfc4571Framer, frame_rfc4571, parse_rtp, rtp_header


def _fixture(rel: str) -> Path:
    """Field fixtures live in ../shared/fixtures next to the repository; skip clearly if absent."""
    path = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / rel
    if not path.exists():
        pytest.skip(f"fixture {rel} not found at {path} (the shared fixtures folder is not checked out)")
    return path


def _pkt(seq: int, payload: bytes = b"x", ts: int = 0, ssrc: int = 7, marker: bool = False) -> bytes:
    return rtp_header(seq, ts, ssrc, 96, marker) + payload


def test_header_round_trip() -> None:
    raw = rtp_header(65535, 0xFFFFFFFF, 0x0BEBDFA1, 96, True) + b"payload"
    p = parse_rtp(raw)
    assert p is not None
    assert (p.seq, p.ts, p.ssrc, p.pt, p.marker) == (65535, 0xFFFFFFFF, 0x0BEBDFA1, 96, True)
    assert bytes(p.payload) == b"payload"
    q = parse_rtp(rtp_header(1, 2, 3, pt=8))
    assert q is not None and q.pt == 8 and not q.marker and len(q.payload) == 0


def test_csrc_extension_padding() -> None:
    # V=2, P=1, X=1, CC=2
    b0 = 0x80 | 0x20 | 0x10 | 2
    hdr = struct.pack("!BBHII", b0, 96, 10, 20, 30) + struct.pack("!II", 111, 222)
    ext = struct.pack("!HH", 0xBEDE, 2) + b"\x01" * 8
    payload = b"PS-DATA"
    pad = b"\x00\x00\x03"
    p = parse_rtp(hdr + ext + payload + pad)
    assert p is not None
    assert bytes(p.payload) == payload
    assert (p.seq, p.ts, p.ssrc) == (10, 20, 30)


@pytest.mark.parametrize("raw", [
    b"", b"\x80", b"\x80" * 11,                         # too short
    b"\x40" + b"\x00" * 20,                             # version 1
    bytes([0x8F]) + b"\x00" * 20,                       # 15 CSRC announced, 21 bytes present
    bytes([0x90]) + b"\x00" * 11 + b"\x00\x00\xff\xff",  # extension longer than the packet
    bytes([0xA0]) + b"\x00" * 11 + b"\x00",             # padding count 0
    bytes([0xA0]) + b"\x00" * 11 + b"ab\x40",           # padding bigger than the packet
])
def test_garbage_is_none(raw: bytes) -> None:
    assert parse_rtp(raw) is None


@given(st.binary(max_size=80))
def test_parse_never_raises(raw: bytes) -> None:
    p = parse_rtp(raw)
    if p is not None:
        assert len(p.payload) <= len(raw) - 12


def test_fixture_rtp_header() -> None:
    raw = _fixture("ps/rtp_ps_camera_first_packet_256B.bin").read_bytes()
    p = parse_rtp(raw)
    assert p is not None
    assert (p.pt, p.seq, p.ts, p.ssrc) == (96, 0, 0, 0x0BEBDFA1)
    assert bytes(p.payload[:4]) == b"\x00\x00\x01\xba"


# -- Reorderer ----------------------------------------------------------------------------------

def _seqs(pkts: list) -> list[int]:
    return [p.seq for p in pkts]


def _push_all(r: Reorderer, seqs: list[int]) -> list[int]:
    out: list[int] = []
    for s in seqs:
        out += _seqs(r.push(parse_rtp(_pkt(s))))  # type: ignore[arg-type]
    return out


def test_in_order_and_wrap() -> None:
    r = Reorderer(window=4)
    seqs = [(65530 + i) & 0xFFFF for i in range(12)]
    assert _push_all(r, seqs) == seqs
    assert r.lost == r.late == r.duplicate == r.reordered == 0


def test_swap_is_reordered() -> None:
    r = Reorderer(window=4)
    assert _push_all(r, [1, 2, 4, 3, 5]) == [1, 2, 3, 4, 5]
    assert r.reordered == 1 and r.lost == 0


def test_swap_across_wrap() -> None:
    r = Reorderer(window=4)
    assert _push_all(r, [65534, 0, 65535, 1]) == [65534, 65535, 0, 1]


def test_loss_given_up_after_window_then_late() -> None:
    r = Reorderer(window=3)
    out = _push_all(r, [10, 12, 13, 14])   # 11 missing, 3 waiting: still hoping
    assert out == [10]
    out = _push_all(r, [15])               # window exceeded: 11 is given up
    assert out == [12, 13, 14, 15]
    assert r.lost == 1
    assert _push_all(r, [11]) == []        # arrives too late
    assert r.late == 1


def test_duplicates() -> None:
    r = Reorderer(window=4)
    assert _push_all(r, [1, 2, 2, 4, 4, 3]) == [1, 2, 3, 4]
    assert r.duplicate == 2


def test_source_restart_resets() -> None:
    r = Reorderer(window=4)
    assert _push_all(r, [100, 101, 40000, 40001]) == [100, 101, 40000, 40001]
    assert r.resets == 1


def test_flush_delivers_pending() -> None:
    r = Reorderer(window=8)
    assert _push_all(r, [1, 3, 5]) == [1]
    assert _seqs(r.flush()) == [3, 5]
    assert r.lost == 2


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 65535), st.integers(0, 4000), st.randoms(use_true_random=False))
def test_reorder_shuffled_window_delivers_everything_in_order(start: int, count: int, rnd: random.Random) -> None:
    seqs = [(start + i) & 0xFFFF for i in range(count % 300)]
    # shuffle within blocks of 4: a reordering the window absorbs (the first packet defines the start)
    shuffled: list[int] = seqs[:1]
    for i in range(1, len(seqs), 4):
        block = seqs[i : i + 4]
        rnd.shuffle(block)
        shuffled += block
    r = Reorderer(window=8)
    out = _push_all(r, shuffled) + _seqs(r.flush())
    assert out == seqs
    assert r.lost == 0


# -- RFC 4571 framing ---------------------------------------------------------------------------

def test_framer_arbitrary_chunks() -> None:
    pkts = [_pkt(i, bytes([i]) * (i * 37 % 1400)) for i in range(50)]
    stream = frame_rfc4571(pkts)
    rnd = random.Random(4571)
    for _ in range(20):
        f = Rfc4571Framer()
        got: list[bytes] = []
        i = 0
        while i < len(stream):
            step = rnd.choice([1, 2, 3, 7, 500, 1500, 70000])
            got += [bytes(v) for v in f.feed(stream[i : i + step])]
            i += step
        assert got == pkts
        assert f.resyncs == 0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 2000), min_size=1, max_size=30), st.lists(st.integers(1, 3000), max_size=40))
def test_framer_hypothesis_splits(sizes: list[int], cuts: list[int]) -> None:
    pkts = [_pkt(i, b"\x00" * s) for i, s in enumerate(sizes)]
    stream = frame_rfc4571(pkts)
    f = Rfc4571Framer()
    got: list[bytes] = []
    pos = 0
    for c in cuts:
        got += [bytes(v) for v in f.feed(stream[pos : pos + c])]
        pos += c
    got += [bytes(v) for v in f.feed(stream[pos:])]
    assert got == pkts


def test_framer_resyncs_after_garbage() -> None:
    good = [_pkt(i, b"P" * 100) for i in range(5)]
    stream = frame_rfc4571(good[:2]) + b"\x00\x03GARBAGE!" + frame_rfc4571(good[2:])
    f = Rfc4571Framer()
    got = [bytes(v) for v in f.feed(stream)]
    assert got[:2] == good[:2]
    assert got[-3:] == good[2:]
    assert f.resyncs >= 1 and f.skipped > 0


def test_framer_gives_up_with_clear_error() -> None:
    f = Rfc4571Framer(max_garbage=4096)
    with pytest.raises(FramingError, match="framing lost"):
        for _ in range(10):
            f.feed(b"\x00\x01" * 1000)


def test_framer_returns_views_that_stay_valid() -> None:
    f = Rfc4571Framer()
    views = f.feed(frame_rfc4571([_pkt(1, b"abc")]))
    f.feed(frame_rfc4571([_pkt(2, b"def")]))
    assert bytes(views[0]).endswith(b"abc")


def test_reorderer_flush_gaps() -> None:
    r = Reorderer(window=16)
    for s in (1, 3, 4, 7):
        r.push(parse_rtp(rtp_header(s, 0, 1) + b"x"))  # type: ignore[arg-type]
    runs = r.flush_gaps()
    assert [[p.seq for p in run] for run in runs] == [[3, 4], [7]]
    assert r.lost == 3
