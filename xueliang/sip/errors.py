"""SIP error types, in their own module so that every part of ``xueliang.sip`` can raise them."""

from __future__ import annotations

from typing import Any

__all__ = ["SipError", "SipParseError", "SipTimeout"]


class SipError(Exception):
    """Base of SIP errors; ``status`` is the response code a server would answer with."""

    def __init__(self, message: str = "", status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class SipParseError(SipError):
    """A message (or header value) could not be parsed.

    ``partial`` holds the message as far as it was understood when the start line and headers
    were readable but the message failed validation (missing mandatory header, bad CSeq ...):
    the endpoint uses it to answer 400 to the right Via.
    """

    def __init__(self, message: str = "", status: int = 400, partial: Any = None) -> None:
        super().__init__(message, status)
        self.partial = partial


class SipTimeout(SipError, TimeoutError):
    """No final response arrived in time (Timer B/F or the caller's timeout)."""

    def __init__(self, message: str = "request timed out") -> None:
        super().__init__(message, 408)
