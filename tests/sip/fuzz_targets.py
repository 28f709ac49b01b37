"""Fuzz targets shared by the hypothesis tests and scripts/fuzz_sip.py.

Each target feeds arbitrary bytes through a part of the SIP core the way the endpoint does and
lets only SipParseError (or SipError) escape: anything else is a crash of the receive path.
"""

from __future__ import annotations

import contextlib

from xueliang.sip.auth import parse_authorization, parse_challenge
from xueliang.sip.endpoint import _fix_via
from xueliang.sip.errors import SipError
from xueliang.sip.framing import StreamFramer
from xueliang.sip.headers import NameAddr, parse_uri
from xueliang.sip.message import Request, make_response, parse_message
from xueliang.sip.transaction import client_key_of_response, server_key


def exercise_message(data: bytes) -> None:
    """Parse, look into every structured part, answer, serialise and re-parse."""
    try:
        msg = parse_message(data)
    except SipError:
        return
    for access in (
        lambda: msg.via, lambda: msg.cseq, lambda: msg.from_tag, lambda: msg.to_tag, lambda: msg.content_type,
        lambda: [NameAddr.parse(v) for n in ("From", "To", "Contact", "Route") for v in msg.headers.get_all(n)],
        lambda: parse_authorization(msg.headers.get("Authorization") or ""),
        lambda: parse_challenge(msg.headers.get("WWW-Authenticate") or ""),
    ):
        with contextlib.suppress(SipError):
            access()
    if isinstance(msg, Request):
        with contextlib.suppress(SipError):
            parse_uri(msg.uri)
        with contextlib.suppress(SipError):
            _fix_via(msg, ("127.0.0.1", 5060))
            server_key(msg)
        with contextlib.suppress(SipError):
            resp = make_response(msg, 200, to_tag="t")
            parse_message(resp.to_bytes())
    else:
        client_key_of_response(msg)
    with contextlib.suppress(SipError):
        parse_message(msg.to_bytes())


def exercise_stream(data: bytes, cut: int) -> None:
    """Frame ``data`` as a TCP stream cut in two at ``cut``; parse what comes out."""
    f = StreamFramer(max_message=4096)
    try:
        msgs = f.feed(data[:cut]) + f.feed(data[cut:])
    except SipError:
        return
    for m in msgs:
        with contextlib.suppress(SipError):
            parse_message(m, datagram=False)
