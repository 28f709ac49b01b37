"""Structured header values: Via, name-addr, SIP URIs."""

from __future__ import annotations

import pytest

from xueliang.sip.headers import NameAddr, Via, parse_params, parse_uri, split_quoted
from xueliang.sip.message import SipParseError


def test_via_round_trip_and_params() -> None:
    v = Via.parse("SIP/2.0/udp 10.0.0.1:5060;rport;branch=z9hG4bKabc;received=1.2.3.4")
    assert (v.transport, v.host, v.port, v.branch) == ("UDP", "10.0.0.1", 5060, "z9hG4bKabc")
    assert v.has_rport and v.rport is None and v.received == "1.2.3.4"
    v.params["rport"] = "40000"
    assert v.rport == 40000
    assert str(v) == "SIP/2.0/UDP 10.0.0.1:5060;rport=40000;branch=z9hG4bKabc;received=1.2.3.4"
    assert Via.parse(str(v)) == v


def test_via_ipv6_and_lws() -> None:
    v = Via.parse("SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bK1")
    assert v.host == "[2001:db8::1]" and v.port == 5070
    v2 = Via.parse("SIP  /   2.0  / UDP    host.example.com ;  branch = z9hG4bKx")
    assert v2.host == "host.example.com" and v2.port is None and v2.branch == "z9hG4bKx"


@pytest.mark.parametrize("bad", ["", "SIP/2.0/UDP", "garbage", "SIP/2.0/UDP host:99999", "SIP/2.0/UDP [::1"])
def test_via_errors(bad: str) -> None:
    with pytest.raises(SipParseError):
        Via.parse(bad)


def test_name_addr_forms() -> None:
    a = NameAddr.parse('"Alice \\"A\\"" <sip:alice@example.com;transport=tcp>;tag=123;expires=60')
    assert a.display == '"Alice \\"A\\""' and a.uri == "sip:alice@example.com;transport=tcp"
    assert a.tag == "123" and a.params["expires"] == "60"
    assert NameAddr.parse(str(a)) == a
    b = NameAddr.parse("sip:bob@example.com;tag=9")  # addr-spec: params belong to the header
    assert b.uri == "sip:bob@example.com" and b.tag == "9"
    c = NameAddr.parse("caller<sip:caller@example.com>;tag=323")
    assert c.display == "caller" and c.tag == "323"
    for bad in ['"unterminated <sip:a@b>', "<sip:a@b", "< sip:a@b >", ""]:
        with pytest.raises(SipParseError):
            NameAddr.parse(bad)


def test_uri_parsing() -> None:
    u = parse_uri("sip:34020000001320000001@192.168.1.10:5060;transport=udp?subject=x")
    assert (u.user, u.host, u.port, u.params, u.headers) == (
        "34020000001320000001", "192.168.1.10", 5060, {"transport": "udp"}, "subject=x")
    assert str(u) == "sip:34020000001320000001@192.168.1.10:5060;transport=udp?subject=x"
    assert parse_uri("sip:user;par=u%40example.net@example.com").user == "user;par=u%40example.net"
    assert parse_uri("sips:[::1]:5061").host == "[::1]"
    tel = parse_uri("tel:+1-555")
    assert tel.scheme == "tel" and tel.opaque == "+1-555" and str(tel) == "tel:+1-555"
    for bad in ["nocolon", "sip:", "sip:a b@c", "sip:a@h:port", "1sip:a@b"]:
        with pytest.raises(SipParseError):
            parse_uri(bad)


def test_split_and_params() -> None:
    assert split_quoted('"a,b" <sip:x>, <sip:y,z>', ",") == ['"a,b" <sip:x>', "<sip:y,z>"]
    with pytest.raises(SipParseError):
        split_quoted('"open, quote', ",")
    assert parse_params(";lr;maddr=1.2.3.4; q = 0.5") == {"lr": None, "maddr": "1.2.3.4", "q": "0.5"}
