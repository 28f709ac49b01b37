"""TCP stream framing: split anywhere, keep-alives, oversized messages."""

from __future__ import annotations

import pytest
from sip_helpers import fixture_bytes

from xueliang.sip.framing import StreamFramer
from xueliang.sip.message import SipParseError, parse_message


def _stream() -> tuple[bytes, list[bytes]]:
    msgs = [fixture_bytes("sip", n) for n in ("05_keepalive_status_ok.txt", "01_register_no_auth.txt",
                                               "15_invite_play_sdp_with_y.txt")]
    return b"\r\n\r\n".join(msgs) + b"\r\n\r\n", msgs


def test_one_chunk_many_messages() -> None:
    data, msgs = _stream()
    f = StreamFramer()
    assert f.feed(data) == msgs
    assert f.buffered == 0 and f.pings >= 2


def test_split_at_every_byte_boundary() -> None:
    data, msgs = _stream()
    for cut in range(1, len(data)):
        f = StreamFramer()
        out = f.feed(data[:cut]) + f.feed(data[cut:])
        assert out == msgs, cut


def test_byte_by_byte() -> None:
    data, msgs = _stream()
    f = StreamFramer()
    out: list[bytes] = []
    for i in range(len(data)):
        out += f.feed(data[i : i + 1])
    assert out == msgs
    for m in out:
        parse_message(m, datagram=False)


def test_compact_and_padded_length() -> None:
    msg = b"MESSAGE sip:a@b SIP/2.0\r\nl:   0004\r\n\r\nbody"
    assert StreamFramer().feed(msg + msg) == [msg, msg]


def test_no_content_length_means_empty_body() -> None:
    msg = b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n"
    assert StreamFramer().feed(msg) == [msg]


def test_oversized_is_an_error() -> None:
    f = StreamFramer(max_message=1000)
    with pytest.raises(SipParseError) as ei:
        f.feed(b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 5000\r\n\r\n")
    assert ei.value.status == 413
    f2 = StreamFramer(max_message=1000)
    with pytest.raises(SipParseError):
        f2.feed(b"MESSAGE sip:a@b SIP/2.0\r\n" + b"X-Junk: " + b"a" * 2000)


def test_bad_content_length_is_an_error() -> None:
    with pytest.raises(SipParseError):
        StreamFramer().feed(b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n")
