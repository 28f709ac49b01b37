"""Cut a SIP byte stream (TCP) into whole messages by Content-Length (RFC 3261 18.3).

Sans-I/O: feed it whatever ``data_received`` got, it returns the complete messages.  CRLF
keep-alives between messages (RFC 5626 "double CRLF" pings) are skipped.  A message whose head
or announced size exceeds ``max_message`` raises :class:`SipParseError` (413): the connection
cannot be resynchronised after that and should be closed.
"""

from __future__ import annotations

from xueliang.sip.errors import SipParseError
from xueliang.sip.message import MAX_MESSAGE

__all__ = ["StreamFramer"]


def _content_length(head: bytes) -> int:
    """Content-Length from a raw head (long or compact name, any case); 0 when absent."""
    found: int | None = None
    for line in head.split(b"\n"):
        colon = line.find(b":")
        if colon <= 0:
            continue
        name = line[:colon].strip().lower()
        if name == b"content-length" or name == b"l":
            val = line[colon + 1 :].strip()
            if not val.isdigit() or len(val) > 10:
                raise SipParseError(f"bad Content-Length {val[:20]!r} on stream", 400)
            n = int(val)
            if found is not None and found != n:
                raise SipParseError("conflicting Content-Length headers on stream", 400)
            found = n
    return found or 0


class StreamFramer:
    """Accumulates stream bytes and yields whole SIP messages."""

    __slots__ = ("_buf", "_need", "_scan", "max_message", "pings")

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self.max_message = max_message
        self._buf = bytearray()
        self._scan = 0          # where to resume looking for the blank line
        self._need = -1         # total length of the current message once its head is known
        self.pings = 0          # CRLF keep-alives seen

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return every message completed by them (possibly none)."""
        buf = self._buf
        buf += data
        out: list[bytes] = []
        while True:
            if self._need < 0:
                # skip CRLF keep-alives / stray line ends before a start line
                i = 0
                n = len(buf)
                while i < n and buf[i] in (13, 10):
                    i += 1
                if i:
                    if i >= 2:
                        self.pings += 1
                    del buf[:i]
                    self._scan = 0
                if not buf:
                    return out
                a = buf.find(b"\n\r\n", max(self._scan - 2, 0))
                b = buf.find(b"\n\n", max(self._scan - 2, 0))
                cands = [x for x in ((a, 3), (b, 2)) if x[0] >= 0]
                if not cands:
                    if len(buf) > self.max_message:
                        raise SipParseError("message head too large on stream", 413)
                    self._scan = len(buf)
                    return out
                pos, width = min(cands)
                head_len = pos + width
                total = head_len + _content_length(bytes(buf[:pos]))
                if total > self.max_message:
                    raise SipParseError(f"message of {total} bytes exceeds {self.max_message}", 413)
                self._need = total
            if len(buf) < self._need:
                return out
            out.append(bytes(buf[: self._need]))
            del buf[: self._need]
            self._need = -1
            self._scan = 0

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a message."""
        return len(self._buf)
