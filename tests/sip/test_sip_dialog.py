"""Dialogs: UAC from a 2xx, UAS from a request, in-dialog requests, route sets, CSeq rules."""

from __future__ import annotations

import pytest
from sip_helpers import fixture_bytes

from xueliang.sip.dialog import dialog_from_2xx, dialog_from_request
from xueliang.sip.message import Request, Response, SipError, make_response, parse_message


def test_uac_dialog_from_field_invite_matches_field_bye() -> None:
    inv = parse_message(fixture_bytes("sip", "17_invite_play_sdp.txt"))
    ok = parse_message(fixture_bytes("sip", "18_invite_200_ok_sdp_y_f.txt"))
    field_bye = parse_message(fixture_bytes("sip", "20_bye.txt"))
    assert isinstance(inv, Request) and isinstance(ok, Response) and isinstance(field_bye, Request)
    d = dialog_from_2xx(inv, ok)
    assert d.kind == "invite" and d.call_id == inv.call_id
    assert d.remote_target == "sip:34010000001310000001@192.168.230.100:5060"
    ack = d.make_ack()
    assert ack.cseq == (1, "ACK") and ack.uri == d.remote_target
    bye = d.make_request("BYE")
    assert bye.uri == field_bye.uri and bye.cseq == field_bye.cseq == (2, "BYE")
    assert bye.from_tag == field_bye.from_tag and bye.to_tag == field_bye.to_tag
    assert bye.call_id == field_bye.call_id
    assert d.matches(ok) and not d.matches(inv)
    info = d.make_request("INFO", body=b"PLAY RTSP/1.0\r\nCSeq: 1\r\n", content_type="Application/MANSRTSP")
    assert info.cseq == (3, "INFO") and info.content_type == "application/mansrtsp"


def _invite(record_route: list[str] | None = None) -> Request:
    h = [("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1"), ("From", '"P" <sip:plat@d>;tag=L'),
         ("To", "<sip:cam@d>"), ("Call-ID", "cid"), ("CSeq", "10 INVITE"), ("Contact", "<sip:plat@10.0.0.1>")]
    h += [("Record-Route", r) for r in record_route or []]
    return Request("INVITE", "sip:cam@d", h)


def test_loose_route_set_reversed_for_uac() -> None:
    inv = _invite()
    ok = make_response(inv, 200, to_tag="R", headers=[
        ("Record-Route", "<sip:p1@proxy1;lr>, <sip:p2@proxy2;lr>"), ("Contact", "<sip:cam@10.0.0.9:5060>")])
    d = dialog_from_2xx(inv, ok)
    assert d.route_set == ["<sip:p2@proxy2;lr>", "<sip:p1@proxy1;lr>"]
    bye = d.make_request("BYE")
    assert bye.uri == "sip:cam@10.0.0.9:5060"
    assert bye.headers.get_all("Route") == ["<sip:p2@proxy2;lr>", "<sip:p1@proxy1;lr>"]
    assert bye.headers.get("From") == '"P" <sip:plat@d>;tag=L' and bye.to_tag == "R"


def test_strict_route() -> None:
    inv = _invite()
    ok = make_response(inv, 200, to_tag="R", headers=[("Record-Route", "<sip:strict@proxy>"),
                                                      ("Contact", "<sip:cam@10.0.0.9>")])
    bye = dialog_from_2xx(inv, ok).make_request("BYE")
    assert bye.uri == "sip:strict@proxy"
    assert bye.headers.get_all("Route") == ["<sip:cam@10.0.0.9>"]


def test_uas_subscribe_dialog_and_notify() -> None:
    sub = Request("SUBSCRIBE", "sip:dev@d", [
        ("Via", "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKs"), ("From", "<sip:plat@d>;tag=P"), ("To", "<sip:dev@d>"),
        ("Call-ID", "sub1"), ("CSeq", "5 SUBSCRIBE"), ("Contact", "<sip:plat@10.0.0.1:5060>"),
        ("Record-Route", "<sip:rr@proxy;lr>"), ("Event", "Catalog;id=1"), ("Expires", "3600")])
    d = dialog_from_request(sub, "D", local_seq=100)
    assert d.kind == "subscribe" and d.event == "Catalog;id=1" and d.local_tag == "D" and d.remote_tag == "P"
    assert d.remote_seq == 5 and d.route_set == ["<sip:rr@proxy;lr>"]
    notify = d.make_request("NOTIFY", body=b"<x/>", content_type="Application/MANSCDP+xml",
                            headers=[("Event", "Catalog;id=1"), ("Subscription-State", "active;expires=3600")])
    assert notify.uri == "sip:plat@10.0.0.1:5060" and notify.cseq == (101, "NOTIFY")
    assert notify.from_tag == "D" and notify.to_tag == "P" and notify.body == b"<x/>"
    assert notify.headers.get_all("Route") == ["<sip:rr@proxy;lr>"]
    # in-dialog requests from the peer: CSeq must grow; target refresh follows Contact
    refresh = Request("SUBSCRIBE", "sip:dev@d", [("Call-ID", "sub1"), ("From", "<sip:plat@d>;tag=P"),
                                                 ("To", "<sip:dev@d>;tag=D"), ("CSeq", "6 SUBSCRIBE"),
                                                 ("Contact", "<sip:plat@10.0.0.7:5060>")])
    assert d.matches(refresh)
    d.receive_request(refresh)
    assert d.remote_seq == 6 and d.remote_target == "sip:plat@10.0.0.7:5060"
    with pytest.raises(SipError) as ei:
        d.receive_request(refresh)
    assert ei.value.status == 500


def test_dialog_needs_tags_and_contact() -> None:
    inv = _invite()
    with pytest.raises(SipError):
        dialog_from_2xx(inv, make_response(inv, 200))  # no To tag
    with pytest.raises(SipError):
        dialog_from_2xx(inv, make_response(inv, 200, to_tag="x"))  # no Contact
    d = dialog_from_request(inv)
    assert d.local_tag and d.remote_tag == "L" and d.remote_target == "sip:plat@10.0.0.1"
    with pytest.raises(ValueError):
        d.make_request("ACK")
