"""Structured SIP header values: Via, name-addr (From/To/Contact/Route) and SIP URIs.

The message codec keeps header values as plain strings (cheap to parse, cheap to copy into a
response); these helpers are used on demand when a value must be looked into.  Every parser here
raises :class:`SipParseError` (status 400) and nothing else on malformed input, so callers facing
untrusted datagrams need one ``except`` clause.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from xueliang.sip.errors import SipParseError

__all__ = [
    "NameAddr",
    "SipUri",
    "Via",
    "format_params",
    "parse_params",
    "parse_uri",
    "split_quoted",
]

MAGIC_COOKIE = "z9hG4bK"


def split_quoted(value: str, sep: str) -> list[str]:
    """Split ``value`` on ``sep`` outside quoted strings and ``<...>``; parts are stripped.

    Why not ``str.split``: display names and URIs in angle brackets may contain the separator
    (``"Bell, Alexander" <sip:a@b>``).  Raises SipParseError on an unterminated quote.
    """
    if '"' not in value and "<" not in value:
        return [p.strip() for p in value.split(sep)]
    parts: list[str] = []
    buf_start = 0
    i = 0
    n = len(value)
    in_quote = False
    in_angle = False
    while i < n:
        ch = value[i]
        if in_quote:
            if ch == "\\":
                i += 2
                continue
            if ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = True
        elif ch == "<":
            in_angle = True
        elif ch == ">":
            in_angle = False
        elif ch == sep and not in_angle:
            parts.append(value[buf_start:i].strip())
            buf_start = i + 1
        i += 1
    if in_quote:
        raise SipParseError("unterminated quoted string", 400)
    parts.append(value[buf_start:].strip())
    return parts


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``;a=b;c`` (leading ``;`` optional) into an ordered dict with lower-cased names."""
    params: dict[str, str | None] = {}
    if not text:
        return params
    for part in split_quoted(text, ";"):
        if not part:
            continue
        name, eq, val = part.partition("=")
        name = name.strip().lower()
        if not name:
            raise SipParseError("empty parameter name", 400)
        params[name] = val.strip() if eq else None
    return params


def format_params(params: dict[str, str | None]) -> str:
    """Inverse of :func:`parse_params` (``;name=value`` for each, ``;name`` for flags)."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def _split_hostport(text: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` -> (host, port)."""
    text = text.replace(" ", "").replace("\t", "")
    if not text:
        raise SipParseError("empty host", 400)
    if text[0] == "[":
        end = text.find("]")
        if end < 0:
            raise SipParseError("unterminated IPv6 reference", 400)
        host = text[: end + 1]
        rest = text[end + 1 :]
        if not rest:
            return host, None
        if rest[0] != ":":
            raise SipParseError("junk after IPv6 reference", 400)
        port_s = rest[1:]
    else:
        host, colon, port_s = text.partition(":")
        if not colon:
            return host, None
        if not host:
            raise SipParseError("empty host", 400)
    if not port_s.isdigit() or len(port_s) > 5 or int(port_s) > 65535:
        raise SipParseError(f"bad port {port_s!r}", 400)
    return host, int(port_s)


_VIA_PROTO = re.compile(r"\s*([^/\s]+)\s*/\s*([^/\s]+)\s*/\s*([^\s/]+)\s+(\S.*?)\s*$", re.S)


@dataclass(slots=True)
class Via:
    """One Via value (``SIP/2.0/UDP host:port;branch=...;rport;received=...``)."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, value: str) -> Via:
        """Parse one Via value (not a comma list).  Tolerates LWS around ``/`` (RFC 4475 wsinv)."""
        head, semi, rest = value.partition(";")
        if '"' in rest:  # quoted parameter values may contain ';' — rare, take the careful path
            parts = split_quoted(value, ";")
            head, rest = parts[0], ";".join(parts[1:])
        m = _VIA_PROTO.match(head)
        if m is None:
            raise SipParseError(f"malformed Via {value[:80]!r}", 400)
        name, version, transport, sent_by = m.groups()
        host, port = _split_hostport(sent_by)
        return cls(transport.upper(), host, port, parse_params(rest) if semi else {},
                   f"{name.upper()}/{version}")

    def __str__(self) -> str:
        hp = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"{self.protocol}/{self.transport} {hp}{format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        """The rport value, or None when absent or present without a value."""
        v = self.params.get("rport")
        return int(v) if v and v.isdigit() else None

    @property
    def has_rport(self) -> bool:
        return "rport" in self.params

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


@dataclass(slots=True)
class SipUri:
    """A parsed URI.  For non-SIP schemes (tel:, http:, unknown) only ``scheme`` and ``opaque`` are set."""

    scheme: str
    user: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: str = ""
    password: str | None = None
    opaque: str = ""

    def __str__(self) -> str:
        if self.scheme not in ("sip", "sips"):
            return f"{self.scheme}:{self.opaque}"
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        out.append(format_params(self.params))
        if self.headers:
            out.append("?" + self.headers)
        return "".join(out)

    @property
    def host_port(self) -> tuple[str, int | None]:
        return self.host, self.port


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*\Z")


def parse_uri(text: str) -> SipUri:
    """Parse a URI; SIP/SIPS URIs are split into parts, others kept opaque.

    The user part may contain escaped characters and ``;`` (RFC 4475 semiuri); spaces anywhere
    are an error (badaspec, lwsruri).
    """
    text = text.strip()
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME.match(scheme):
        raise SipParseError(f"bad URI {text[:80]!r}", 400)
    scheme = scheme.lower()
    if scheme not in ("sip", "sips"):
        return SipUri(scheme, opaque=rest)
    if not rest or " " in rest or "\t" in rest:
        raise SipParseError(f"bad SIP URI {text[:80]!r}", 400)
    rest, _, headers = rest.partition("?")
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, pc, pw = userinfo.partition(":")
        password = pw if pc else None
    hostport, semi, params = rest.partition(";")
    host, port = _split_hostport(hostport)
    return SipUri(scheme, user, host, port, parse_params(params) if semi else {}, headers, password)


@dataclass(slots=True)
class NameAddr:
    """``"Display" <uri>;params`` or a bare addr-spec with header params (From, To, Contact, Route)."""

    uri: str
    display: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str) -> NameAddr:
        value = value.strip()
        display: str | None = None
        rest = value
        if value.startswith('"'):
            i = 1
            n = len(value)
            while i < n:
                ch = value[i]
                if ch == "\\":
                    i += 2
                    continue
                if ch == '"':
                    break
                i += 1
            else:
                raise SipParseError("unterminated display name", 400)
            display = value[: i + 1]
            rest = value[i + 1 :].lstrip()
            if not rest.startswith("<"):
                raise SipParseError("quoted display name without <uri>", 400)
        lt = rest.find("<")
        if lt >= 0:
            if display is None:
                d = rest[:lt].strip()
                display = d or None
            gt = rest.find(">", lt)
            if gt < 0:
                raise SipParseError("missing '>' in name-addr", 400)
            uri = rest[lt + 1 : gt]
            if uri != uri.strip():
                raise SipParseError("whitespace inside <uri>", 400)
            params = parse_params(rest[gt + 1 :])
        else:
            uri, semi, ptext = rest.partition(";")
            uri = uri.strip()
            if not uri or " " in uri:
                raise SipParseError(f"bad addr-spec {value[:80]!r}", 400)
            params = parse_params(ptext) if semi else {}
        if not uri:
            raise SipParseError("empty URI", 400)
        return cls(uri, display, params)

    def __str__(self) -> str:
        disp = f"{self.display} " if self.display else ""
        return f"{disp}<{self.uri}>{format_params(self.params)}"

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def parsed_uri(self) -> SipUri:
        return parse_uri(self.uri)
