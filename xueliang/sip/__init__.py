"""SIP core of xueliang: sans-I/O codec, digest auth, transactions and dialogs, plus a thin asyncio
endpoint (UDP + TCP).  See docs/CONTRACTS.md for the interfaces the other rooms rely on."""

from xueliang.sip.errors import SipError, SipParseError, SipTimeout
from xueliang.sip.message import Headers, Request, Response, make_response, parse_message

__all__ = ["Headers", "Request", "Response", "SipError", "SipParseError", "SipTimeout", "make_response",
           "parse_message"]
