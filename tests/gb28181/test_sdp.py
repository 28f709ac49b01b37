"""GB28181 SDP: field fixtures (INVITE offers, 200 OK answer) and offers we build."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xueliang.gb28181.sdp import Sdp, make_ssrc, parse_sdp, play_offer


def _body(name: str) -> bytes:
    root = Path(__file__).resolve().parents[2]
    for cand in (root.parent / "shared" / "fixtures", Path("/work/shared/fixtures")):
        f = cand / "sip" / name
        if f.exists():
            return f.read_bytes().partition(b"\r\n\r\n")[2]
    pytest.skip("GB28181 fixtures (../shared/fixtures) not present in this checkout")


def test_fixture_invite_with_y_no_trailing_crlf() -> None:
    s = parse_sdp(_body("15_invite_play_sdp_with_y.txt"))
    assert s.session == "Play" and s.address == "192.168.230.53" and s.port == 6000
    assert s.transport == "udp" and s.ssrc == "0100000001" and s.direction == "recvonly"
    assert s.payloads == {96: "PS/90000", 98: "H264/90000", 97: "MPEG4/90000"}
    assert s.origin_user == "34010000002000000001"


def test_fixture_invite_without_y() -> None:
    s = parse_sdp(_body("17_invite_play_sdp.txt"))
    assert s.ssrc is None and s.port == 6000 and s.address == "192.168.230.11"


def test_fixture_200_ok_answer() -> None:
    s = parse_sdp(_body("18_invite_200_ok_sdp_y_f.txt"))
    assert s.session == "Embedded IPC" and s.port == 45423 and s.direction == "sendonly"
    assert s.ssrc == "0000000000" and s.media_format == ""
    assert s.attribute("password") == "12345678" and s.attribute("username") == "34010000001310000001"


def test_play_offer_udp_roundtrip() -> None:
    o = play_offer(origin_user="34020000002000000001", address="10.0.0.1", port=30000, ssrc="0200000001")
    text = o.to_bytes().decode()
    assert (
        "m=video 30000 RTP/AVP 96 98 97\r\n" in text and "y=0200000001\r\n" in text and "\r\nf=\r\n" in text
    )
    assert text.index("y=") < text.index("f=")
    back = parse_sdp(o.to_bytes())
    assert back.ssrc == "0200000001" and back.port == 30000 and back.transport == "udp"


def test_tcp_offers_and_stream_number() -> None:
    o = play_offer(
        origin_user="P",
        address="10.0.0.1",
        port=30002,
        ssrc="0200000002",
        transport="tcp-passive",
        stream_number=1,
    )
    text = o.to_bytes().decode()
    assert "TCP/RTP/AVP" in text and "a=setup:passive" in text and "a=connection:new" in text
    assert "a=streamnumber:1" in text
    back = parse_sdp(o.to_bytes())
    assert back.transport == "tcp" and back.setup == "passive" and back.stream_number == 1
    a = parse_sdp(
        play_offer(origin_user="P", address="h", port=1, ssrc="1", transport="tcp-active").to_bytes()
    )
    assert a.setup == "active"


def test_playback_offer_has_u_and_t() -> None:
    o = play_offer(
        origin_user="P",
        address="10.0.0.1",
        port=30004,
        ssrc="1200000003",
        session="Playback",
        uri="34020000001310000001:0",
        start=1700000000,
        end=1700003600,
        download_speed=4,
    )
    text = o.to_bytes().decode()
    assert "s=Playback\r\nu=34020000001310000001:0\r\n" in text and "t=1700000000 1700003600" in text
    back = parse_sdp(o.to_bytes())
    assert (back.session, back.start, back.end, back.uri, back.download_speed) == (
        "Playback",
        1700000000,
        1700003600,
        "34020000001310000001:0",
        4,
    )


def test_make_ssrc() -> None:
    assert make_ssrc("3402000000", False, 1) == "0200000001"
    assert make_ssrc("3402000000", True, 12345) == "1200002345"


@pytest.mark.parametrize("bad", [b"", b"hello world", b"v=0\r\nm=video abc RTP/AVP 96\r\n", b"<xml/>"])
def test_garbage_raises_value_error(bad: bytes) -> None:
    with pytest.raises(ValueError):
        parse_sdp(bad)


def test_answer_defaults() -> None:
    s = Sdp(session="Play", origin_user="C", address="127.0.0.1", port=5, ssrc="0", direction="sendonly")
    assert parse_sdp(s.to_bytes()).direction == "sendonly"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_parse_sdp_only_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        parse_sdp(data)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "v=0",
                "m=video 5 RTP/AVP 96",
                "a=rtpmap:96 PS/90000",
                "y=12",
                "f=",
                "a=setup:",
                "a=streamnumber:x",
                "t=1",
                "c=IN",
                "m=audio 1",
                "a=rtpmap:²",
            ]
        ),
        max_size=12,
    )
)
def test_fuzz_sdp_lines(lines: list[str]) -> None:
    with contextlib.suppress(ValueError):
        parse_sdp("\r\n".join(lines).encode())
