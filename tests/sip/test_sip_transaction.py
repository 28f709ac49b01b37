"""Transaction state machines driven with a fake clock (sans-I/O: no sockets, no sleeping)."""

from __future__ import annotations

from typing import Any

import pytest

from xueliang.sip.message import Request, Response, make_response, new_branch, parse_message
from xueliang.sip.transaction import TransactionLayer, make_cancel, server_key


class Wire:
    """Collects what the layer sends, with the fake time of each send."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sent: list[tuple[float, bytes, Any]] = []

    def send(self, data: bytes, target: Any) -> None:
        self.sent.append((self.now, data, target))

    def run_until(self, layer: TransactionLayer, end: float) -> None:
        """Fire timers in order up to ``end``, moving the fake clock to each deadline."""
        for _ in range(10_000):
            d = layer.next_deadline()
            if d is None or d > end:
                break
            self.now = d
            layer.handle_timeout(d)
        self.now = end

    def times(self) -> list[float]:
        return [round(t, 3) for t, _, _ in self.sent]


def req(method: str = "MESSAGE", branch: str | None = None, cseq: int = 1, call_id: str = "c1") -> Request:
    b = branch or new_branch()
    return Request(method, "sip:dev@10.0.0.2:5060", [
        ("Via", f"SIP/2.0/UDP 10.0.0.1:5060;rport;branch={b}"),
        ("From", "<sip:plat@3402000000>;tag=ft"),
        ("To", "<sip:dev@3402000000>"),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
        ("Max-Forwards", "70"),
    ])


def wire_copy(r: Request) -> Request:
    """The request as the peer receives it (parsed from bytes)."""
    out = parse_message(r.to_bytes())
    assert isinstance(out, Request)
    return out


def answer(r: Request, status: int, tag: str = "tt") -> Response:
    return parse_message(make_response(r, status, to_tag=tag).to_bytes())  # type: ignore[return-value]


def make_layer(wire: Wire) -> TransactionLayer:
    return TransactionLayer(wire.send)


# ------------------------------------------------------------------ UAC non-INVITE
def test_uac_non_invite_timer_e_then_f() -> None:
    w = Wire()
    lay = make_layer(w)
    timeouts: list[bool] = []
    lay.send_request(req(), "T", 0.0, reliable=False, on_response=lambda r: None,
                     on_timeout=lambda: timeouts.append(True))
    w.run_until(lay, 40.0)
    # E: T1 doubling, capped at T2 = 4 s; F after 64*T1 = 32 s
    assert w.times() == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert timeouts == [True]
    assert len(lay) == 0 and lay.stats["timeouts"] == 1 and lay.next_deadline() is None


def test_uac_non_invite_provisional_then_final() -> None:
    w = Wire()
    lay = make_layer(w)
    got: list[int] = []
    r = req()
    lay.send_request(r, "T", 0.0, reliable=False, on_response=lambda x: got.append(x.status),
                     on_timeout=lambda: got.append(-1))
    w.run_until(lay, 0.6)  # one retransmission at 0.5
    assert lay.receive_response(answer(r, 100), 0.6)
    w.run_until(lay, 6.0)  # Proceeding: the pending E (1.5) fires, then E is reset to T2 (5.5)
    assert w.times() == [0.0, 0.5, 1.5, 5.5]
    assert lay.receive_response(answer(r, 200), 6.0)
    assert lay.receive_response(answer(r, 200), 6.1)  # retransmitted final absorbed in Completed
    assert got == [100, 200]
    w.run_until(lay, 20.0)  # Timer K = T4 ends it, no more sends, no timeout
    assert len(lay) == 0 and got == [100, 200] and len(w.sent) == 4
    assert not lay.receive_response(answer(r, 200), 21.0)
    assert lay.stats["stray_responses"] == 1


def test_uac_non_invite_reliable_has_no_retransmissions() -> None:
    w = Wire()
    lay = make_layer(w)
    timeouts: list[bool] = []
    lay.send_request(req(), "T", 0.0, reliable=True, on_response=lambda r: None,
                     on_timeout=lambda: timeouts.append(True))
    w.run_until(lay, 31.9)
    assert timeouts == [] and len(w.sent) == 1
    w.run_until(lay, 32.0)
    assert timeouts == [True]


# ------------------------------------------------------------------ UAC INVITE
def test_uac_invite_timer_a_then_b() -> None:
    w = Wire()
    lay = make_layer(w)
    timeouts: list[bool] = []
    lay.send_request(req("INVITE"), "T", 0.0, reliable=False, on_response=lambda r: None,
                     on_timeout=lambda: timeouts.append(True))
    w.run_until(lay, 40.0)
    assert w.times() == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # A doubles without cap
    assert timeouts == [True]


def test_uac_invite_non_2xx_generates_ack() -> None:
    w = Wire()
    lay = make_layer(w)
    got: list[int] = []
    r = req("INVITE", cseq=7)
    lay.send_request(r, "T", 0.0, reliable=False, on_response=lambda x: got.append(x.status),
                     on_timeout=lambda: got.append(-1))
    lay.receive_response(answer(r, 180), 0.1)
    lay.receive_response(answer(r, 486, tag="busy"), 0.2)
    ack = parse_message(w.sent[-1][1])
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert ack.uri == r.uri and ack.cseq == (7, "ACK") and ack.to_tag == "busy"
    assert ack.headers.get("Via") == r.headers.get("Via") and ack.from_tag == "ft"
    n = len(w.sent)
    lay.receive_response(answer(r, 486, tag="busy"), 1.0)  # retransmitted final -> ACK again, TU not told
    assert len(w.sent) == n + 1 and w.sent[-1][1] == w.sent[-2][1]
    assert got == [180, 486]
    w.run_until(lay, 40.0)  # Timer D
    assert len(lay) == 0 and got == [180, 486]


def test_uac_invite_2xx_accepted_passes_retransmissions_to_tu() -> None:
    w = Wire()
    lay = make_layer(w)
    got: list[int] = []
    r = req("INVITE")
    lay.send_request(r, "T", 0.0, reliable=False, on_response=lambda x: got.append(x.status),
                     on_timeout=lambda: got.append(-1))
    lay.receive_response(answer(r, 200), 0.3)
    lay.receive_response(answer(r, 200), 0.8)
    assert got == [200, 200] and len(w.sent) == 1  # no ACK from the transaction for a 2xx
    w.run_until(lay, 40.0)  # Timer M
    assert len(lay) == 0 and got == [200, 200]


def test_uac_invite_proceeding_does_not_time_out() -> None:
    w = Wire()
    lay = make_layer(w)
    got: list[int] = []
    r = req("INVITE")
    lay.send_request(r, "T", 0.0, reliable=False, on_response=lambda x: got.append(x.status),
                     on_timeout=lambda: got.append(-1))
    lay.receive_response(answer(r, 100), 0.1)
    w.run_until(lay, 100.0)
    assert got == [100] and len(w.sent) == 1 and len(lay) == 1


# ------------------------------------------------------------------ UAS non-INVITE
def test_uas_non_invite_absorbs_retransmissions() -> None:
    w = Wire()
    lay = make_layer(w)
    r = wire_copy(req())
    new, txn = lay.receive_request(r, "S", 0.0, reliable=False)
    assert new and txn is not None
    assert lay.receive_request(wire_copy(r), "S", 0.4, reliable=False) == (False, None)  # Trying: silent
    assert w.sent == []
    txn.respond(make_response(r, 200, to_tag="x"), 0.5)
    assert len(w.sent) == 1
    assert lay.receive_request(wire_copy(r), "S", 1.0, reliable=False) == (False, None)
    assert len(w.sent) == 2 and w.sent[1][1] == w.sent[0][1]  # last response resent
    assert lay.stats["absorbed"] == 2
    assert not txn.respond(make_response(r, 500), 1.1)  # second final refused
    w.run_until(lay, 32.4)
    assert len(lay) == 1
    w.run_until(lay, 32.6)  # Timer J = 64*T1 after the final
    assert len(lay) == 0
    new2, _ = lay.receive_request(wire_copy(r), "S", 33.0, reliable=False)
    assert new2


def test_uas_non_invite_provisional_resent() -> None:
    w = Wire()
    lay = make_layer(w)
    r = wire_copy(req())
    _, txn = lay.receive_request(r, "S", 0.0, reliable=False)
    assert txn is not None
    txn.respond(make_response(r, 100), 0.0)
    lay.receive_request(wire_copy(r), "S", 0.5, reliable=False)
    assert [parse_message(d).status for _, d, _ in w.sent] == [100, 100]  # type: ignore[union-attr]


def test_uas_reliable_terminates_at_once() -> None:
    w = Wire()
    lay = make_layer(w)
    r = wire_copy(req())
    _, txn = lay.receive_request(r, "S", 0.0, reliable=True)
    assert txn is not None
    txn.respond(make_response(r, 200), 0.0)
    assert len(lay) == 0 and lay.next_deadline() is None


def test_rfc2543_fallback_key() -> None:
    w = Wire()
    lay = make_layer(w)
    raw = req(branch="oldstyle123")
    r = wire_copy(raw)
    assert server_key(r).startswith("2543|")
    _, txn = lay.receive_request(r, "S", 0.0, reliable=False)
    assert txn is not None
    txn.respond(make_response(r, 200), 0.0)
    assert lay.receive_request(wire_copy(raw), "S", 0.2, reliable=False) == (False, None)
    no_branch = Request("MESSAGE", r.uri, [(n, v) for n, v in r.headers.items() if n != "Via"])
    no_branch.headers.insert_first("Via", "SIP/2.0/UDP 10.0.0.1:5060")
    assert lay.receive_request(wire_copy(no_branch), "S", 0.3, reliable=False) == (False, None)
    other = wire_copy(req(branch="oldstyle123", cseq=2))
    assert lay.receive_request(other, "S", 0.4, reliable=False)[0]


# ------------------------------------------------------------------ UAS INVITE
def test_uas_invite_error_retransmitted_until_ack() -> None:
    w = Wire()
    lay = make_layer(w)
    r = wire_copy(req("INVITE"))
    _, txn = lay.receive_request(r, "S", 0.0, reliable=False)
    assert txn is not None
    txn.respond(make_response(r, 100), 0.0)
    w.now = 0.1
    txn.respond(make_response(r, 486, to_tag="b"), 0.1)
    w.run_until(lay, 4.0)
    assert w.times() == [0.0, 0.1, 0.6, 1.6, 3.6]  # Timer G: T1, 2*T1, 4*T1 ...
    ack = Request("ACK", r.uri, [("Via", r.headers.get("Via") or ""), ("From", r.headers.get("From") or ""),
                                 ("To", (r.headers.get("To") or "") + ";tag=b"), ("Call-ID", r.call_id),
                                 ("CSeq", f"{r.cseq[0]} ACK")])
    assert lay.receive_request(wire_copy(ack), "S", 4.0, reliable=False) == (False, None)
    assert txn.state == "confirmed"
    w.run_until(lay, 20.0)
    assert len(w.sent) == 5 and len(lay) == 0  # Timer I ended it, no more retransmissions


def test_uas_invite_timer_h_without_ack() -> None:
    w = Wire()
    lay = make_layer(w)
    r = wire_copy(req("INVITE"))
    _, txn = lay.receive_request(r, "S", 0.0, reliable=False)
    assert txn is not None
    lost: list[bool] = []
    txn.on_ack_timeout = lambda: lost.append(True)
    txn.respond(make_response(r, 404, to_tag="b"), 0.0)
    w.run_until(lay, 40.0)
    assert w.times() == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]  # G capped at T2
    assert lost == [True] and lay.stats["ack_timeouts"] == 1 and len(lay) == 0


def test_uas_invite_2xx_retransmitted_until_ack_with_new_branch() -> None:
    w = Wire()
    lay = make_layer(w)
    r = wire_copy(req("INVITE", cseq=3))
    _, txn = lay.receive_request(r, "S", 0.0, reliable=False)
    assert txn is not None
    txn.respond(make_response(r, 200, to_tag="b"), 0.0)
    w.run_until(lay, 1.6)
    assert w.times() == [0.0, 0.5, 1.5]
    # retransmitted INVITE in Accepted: absorbed, 2xx resent
    assert lay.receive_request(wire_copy(r), "S", 1.6, reliable=False) == (False, None)
    ack = req("ACK", cseq=3)  # ACK for a 2xx: a new branch, same Call-ID/CSeq number
    new, t = lay.receive_request(wire_copy(ack), "S", 1.7, reliable=False)
    assert new and t is None  # the TU sees the ACK
    n = len(w.sent)
    w.run_until(lay, 40.0)
    assert len(w.sent) == n and len(lay) == 0


def test_cancel_finds_its_invite() -> None:
    w = Wire()
    lay = make_layer(w)
    inv = req("INVITE")
    r = wire_copy(inv)
    _, txn = lay.receive_request(r, "S", 0.0, reliable=False)
    cancel = wire_copy(make_cancel(inv))
    assert cancel.cseq == (inv.cseq[0], "CANCEL") and cancel.headers.get("Via") == inv.headers.get("Via")
    new, ctxn = lay.receive_request(cancel, "S", 0.1, reliable=False)
    assert new and ctxn is not None and ctxn is not txn
    assert lay.find_invite(cancel) is txn


# ------------------------------------------------------------------ the shared heap
def test_one_heap_for_many_transactions() -> None:
    w = Wire()
    lay = make_layer(w)
    for i in range(500):
        r = wire_copy(req(call_id=f"c{i}"))
        w.now = i * 0.01
        _, txn = lay.receive_request(r, "S", w.now, reliable=False)
        assert txn is not None
        txn.respond(make_response(r, 200), w.now)
    assert lay.next_deadline() == pytest.approx(32.0)
    w.run_until(lay, 32.0 + 2.495)
    assert len(lay) == 250
    w.run_until(lay, 40.0)
    assert len(lay) == 0 and lay.next_deadline() is None


def test_duplicate_client_transaction_and_ack_refused() -> None:
    w = Wire()
    lay = make_layer(w)
    r = req()
    lay.send_request(r, "T", 0.0, reliable=True, on_response=lambda x: None, on_timeout=lambda: None)
    with pytest.raises(ValueError):
        lay.send_request(r, "T", 0.0, reliable=True, on_response=lambda x: None, on_timeout=lambda: None)
    with pytest.raises(ValueError):
        lay.send_request(req("ACK"), "T", 0.0, reliable=True, on_response=lambda x: None, on_timeout=lambda: None)
