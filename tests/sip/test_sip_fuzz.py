"""Property tests: mutated field and torture messages never raise anything but SipParseError."""

from __future__ import annotations

import pytest
from fuzz_targets import exercise_message, exercise_stream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sip_helpers import fixture_names, fixtures_dir


def _seeds() -> list[bytes]:
    d = fixtures_dir()
    if d is None:
        return [b"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
                b"To: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\nContent-Length: 2\r\n\r\nhi"]
    return [(d / "sip" / n).read_bytes() for n in fixture_names("sip", "*.txt")] + [
        (d / "rfc4475" / n).read_bytes() for n in fixture_names("rfc4475", "*.dat")]


SEEDS = _seeds()
TOKENS = [b"\r\n", b"\n", b" ", b"\t", b":", b";", b",", b"<", b">", b'"', b"\\", b"=", b"%", b"@", b"/",
          b"\x00", b"\xff", b"\xe4\xb8\xad", b"Content-Length: ", b"l: 99999", b"Via: ", b"SIP/2.0", b"branch=",
          b"z9hG4bK", b"rport", b";tag=", b"CSeq: 4294967296 X", b"\r\n\r\n", b"\r\n ", b"[::1]:", b"sip:"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            data += draw(st.binary(max_size=20))
            continue
        pos = draw(st.integers(0, len(data) - 1))
        op = draw(st.integers(0, 5))
        if op == 0:
            data[pos] = draw(st.integers(0, 255))
        elif op == 1:
            data[pos:pos] = draw(st.sampled_from(TOKENS))
        elif op == 2:
            del data[pos : pos + draw(st.integers(1, 40))]
        elif op == 3:
            end = min(len(data), pos + draw(st.integers(1, 60)))
            data[pos:pos] = data[pos:end]
        elif op == 4:
            del data[pos:]
        else:
            data[pos:pos] = draw(st.binary(max_size=16))
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_messages_only_raise_sip_parse_error(data: bytes) -> None:
    exercise_message(data)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    exercise_message(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated(), min_size=1, max_size=3), st.integers(0, 10_000))
def test_mutated_streams(msgs: list[bytes], cut: int) -> None:
    data = b"\r\n\r\n".join(msgs)
    exercise_stream(data, cut % (len(data) + 1))


@pytest.mark.parametrize("seed", range(len(SEEDS)))
def test_every_seed_truncated_everywhere(seed: int) -> None:
    data = SEEDS[seed]
    for end in range(0, len(data), 7):
        exercise_message(data[:end])
