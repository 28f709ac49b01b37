"""HTTP Digest authentication for SIP (RFC 3261 22, RFC 2617, RFC 8760), server and client side.

Algorithms: MD5 (what nearly every GB/T 28181 device speaks), SHA-256 (RFC 8760) and SM3 (the
2022 edition's recommendation; OpenSSL's ``sm3`` through :func:`hashlib.new`), each also in its
``-sess`` form.  ``qop=auth`` and the RFC 2069 no-qop form are both verified, because most devices
answer a challenge without qop even when offered one.

Nonces are stateless: ``NonceManager`` signs a timestamp with HMAC, so any worker can check a
nonce without shared storage, and an expired one yields ``"stale"`` (the device retries with the
new nonce silently instead of prompting for a password).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from xueliang.sip.errors import SipParseError

__all__ = [
    "DigestChallenge",
    "DigestCredentials",
    "NonceManager",
    "authorization_header",
    "challenge_header",
    "compute_ha1",
    "compute_response",
    "parse_auth_params",
    "parse_authorization",
    "parse_challenge",
    "verify",
    "verify_ha1",
]


def _hasher(algorithm: str) -> Callable[[str], str]:
    base = algorithm.upper().removesuffix("-SESS")
    if base == "MD5":
        return lambda s: hashlib.md5(s.encode("utf-8", "surrogateescape")).hexdigest()
    if base in ("SHA-256", "SHA256"):
        return lambda s: hashlib.sha256(s.encode("utf-8", "surrogateescape")).hexdigest()
    if base == "SM3":
        return lambda s: hashlib.new("sm3", s.encode("utf-8", "surrogateescape")).hexdigest()
    raise SipParseError(f"unsupported digest algorithm {algorithm!r}", 400)


SUPPORTED_ALGORITHMS = ("MD5", "MD5-sess", "SHA-256", "SHA-256-sess", "SM3", "SM3-sess")


def parse_auth_params(value: str) -> tuple[str, dict[str, str]]:
    """Split ``Scheme a=b, c="d, e"`` into (scheme, {lower-name: unquoted value}).

    Hand-written scanner because quoted values may hold commas and escaped quotes.
    """
    value = value.strip()
    sp = 0
    n = len(value)
    while sp < n and not value[sp].isspace():
        sp += 1
    scheme = value[:sp]
    if not scheme:
        raise SipParseError("empty authentication header", 400)
    params: dict[str, str] = {}
    i = sp
    while i < n:
        while i < n and (value[i].isspace() or value[i] == ","):
            i += 1
        if i >= n:
            break
        eq = value.find("=", i)
        if eq < 0:
            raise SipParseError("auth parameter without '='", 400)
        name = value[i:eq].strip().lower()
        if not name or any(c.isspace() or c == "," for c in name):
            raise SipParseError(f"bad auth parameter name {name[:20]!r}", 400)
        i = eq + 1
        while i < n and value[i].isspace():
            i += 1
        if i < n and value[i] == '"':
            i += 1
            out: list[str] = []
            while i < n and value[i] != '"':
                if value[i] == "\\" and i + 1 < n:
                    i += 1
                out.append(value[i])
                i += 1
            if i >= n:
                raise SipParseError("unterminated quoted auth parameter", 400)
            i += 1
            params[name] = "".join(out)
        else:
            j = value.find(",", i)
            if j < 0:
                j = n
            params[name] = value[i:j].strip()
            i = j
    return scheme, params


@dataclass(slots=True)
class DigestCredentials:
    """What an Authorization / Proxy-Authorization header carries."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None


@dataclass(slots=True)
class DigestChallenge:
    """What a WWW-Authenticate / Proxy-Authenticate header carries."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: str | None = None        # as offered, e.g. "auth" or "auth,auth-int"
    opaque: str | None = None
    stale: bool = False

    def __str__(self) -> str:
        return challenge_header(self.realm, self.nonce, self.algorithm, self.stale, self.qop, self.opaque)


def parse_authorization(value: str) -> DigestCredentials:
    """Parse an Authorization header; raises SipParseError for other schemes or missing fields."""
    scheme, p = parse_auth_params(value)
    if scheme.lower() != "digest":
        raise SipParseError(f"unsupported authorization scheme {scheme[:30]!r}", 400)
    try:
        return DigestCredentials(
            username=p["username"], realm=p["realm"], nonce=p["nonce"], uri=p["uri"],
            response=p["response"], algorithm=p.get("algorithm") or "MD5", qop=p.get("qop") or None,
            nc=p.get("nc"), cnonce=p.get("cnonce"), opaque=p.get("opaque"),
        )
    except KeyError as exc:
        raise SipParseError(f"Authorization lacks {exc.args[0]}", 400) from None


def parse_challenge(value: str) -> DigestChallenge:
    scheme, p = parse_auth_params(value)
    if scheme.lower() != "digest":
        raise SipParseError(f"unsupported challenge scheme {scheme[:30]!r}", 400)
    if "nonce" not in p:
        raise SipParseError("challenge without nonce", 400)
    return DigestChallenge(
        realm=p.get("realm", ""), nonce=p["nonce"], algorithm=p.get("algorithm") or "MD5",
        qop=p.get("qop") or None, opaque=p.get("opaque"), stale=p.get("stale", "").lower() == "true",
    )


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def challenge_header(realm: str, nonce: str, algorithm: str = "MD5", stale: bool = False,
                     qop: str | None = None, opaque: str | None = None) -> str:
    """A WWW-Authenticate value.  Without ``qop`` the RFC 2069 form that GB devices expect."""
    parts = [f"Digest realm={_quote(realm)}", f"nonce={_quote(nonce)}"]
    if opaque is not None:
        parts.append(f"opaque={_quote(opaque)}")
    parts.append(f"algorithm={algorithm}")
    if qop:
        parts.append(f"qop={_quote(qop)}")
    if stale:
        parts.append("stale=true")
    return ", ".join(parts)


def compute_ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """H(username:realm:password) — what a server may store instead of the password."""
    return _hasher(algorithm)(f"{username}:{realm}:{password}")


def compute_response(algorithm: str, ha1: str, nonce: str, method: str, uri: str,
                     qop: str | None = None, nc: str | None = None, cnonce: str | None = None) -> str:
    """The digest ``response`` value from HA1 (``-sess`` variants derive the session HA1 here)."""
    h = _hasher(algorithm)
    if algorithm.upper().endswith("-SESS"):
        ha1 = h(f"{ha1}:{nonce}:{cnonce or ''}")
    ha2 = h(f"{method}:{uri}")
    if qop:
        if qop.lower() != "auth":
            raise SipParseError(f"unsupported qop {qop!r}", 400)
        return h(f"{ha1}:{nonce}:{nc or ''}:{cnonce or ''}:{qop}:{ha2}")
    return h(f"{ha1}:{nonce}:{ha2}")


def verify_ha1(creds: DigestCredentials, method: str, ha1: str) -> bool:
    """Check credentials against a stored HA1 (constant-time compare)."""
    try:
        expected = compute_response(creds.algorithm, ha1, creds.nonce, method, creds.uri,
                                    creds.qop, creds.nc, creds.cnonce)
    except SipParseError:
        return False
    return hmac.compare_digest(expected.encode(), creds.response.strip().lower().encode("utf-8", "replace"))


def verify(creds: DigestCredentials, method: str, password: str) -> bool:
    """True when ``creds`` prove knowledge of ``password`` (MD5, SHA-256, SM3; qop auth or none)."""
    try:
        ha1 = compute_ha1(creds.algorithm, creds.username, creds.realm, password)
    except SipParseError:
        return False
    return verify_ha1(creds, method, ha1)


def authorization_header(challenge_value: str, method: str, uri: str, username: str, password: str,
                         nc: int = 1, cnonce: str | None = None) -> str:
    """Client side: answer a WWW-Authenticate value with an Authorization value.

    Uses qop=auth when the challenge offers it, else the RFC 2069 form.
    """
    ch = parse_challenge(challenge_value)
    qop: str | None = None
    if ch.qop:
        offered = [q.strip().lower() for q in ch.qop.split(",")]
        if "auth" in offered:
            qop = "auth"
    nc_s = f"{nc:08x}"
    if qop or ch.algorithm.upper().endswith("-SESS"):
        cnonce = cnonce or os.urandom(8).hex()
    ha1 = compute_ha1(ch.algorithm, username, ch.realm, password)
    resp = compute_response(ch.algorithm, ha1, ch.nonce, method, uri, qop, nc_s if qop else None, cnonce)
    parts = [
        f"Digest username={_quote(username)}", f"realm={_quote(ch.realm)}", f"nonce={_quote(ch.nonce)}",
        f"uri={_quote(uri)}", f"response={_quote(resp)}", f"algorithm={ch.algorithm}",
    ]
    if cnonce:
        parts.append(f"cnonce={_quote(cnonce)}")
    if qop:
        parts.extend([f"qop={qop}", f"nc={nc_s}"])
    if ch.opaque is not None:
        parts.append(f"opaque={_quote(ch.opaque)}")
    return ", ".join(parts)


class NonceManager:
    """Stateless signed nonces: ``<time hex 8><random hex 8><hmac hex 16>``.

    ``check`` answers "ok", "stale" (signature good, older than ``ttl``) or "invalid" (forged,
    malformed, or from the future).  The clock can be passed in for tests.
    """

    def __init__(self, secret: bytes | str, ttl: float = 300.0) -> None:
        self._key = secret.encode() if isinstance(secret, str) else secret
        if not self._key:
            raise ValueError("NonceManager needs a non-empty secret")
        self.ttl = ttl

    def _sig(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:16]

    def new(self, now: float | None = None) -> str:
        ts = int(time.time() if now is None else now)
        body = f"{ts & 0xFFFFFFFF:08x}{os.urandom(4).hex()}"
        return body + self._sig(body)

    def check(self, nonce: str, now: float | None = None) -> str:
        if len(nonce) != 32:
            return "invalid"
        body, sig = nonce[:16], nonce[16:]
        if not hmac.compare_digest(self._sig(body).encode(), sig.encode("utf-8", "replace")):
            return "invalid"
        try:
            ts = int(body[:8], 16)
        except ValueError:
            return "invalid"
        t = int(time.time() if now is None else now)
        age = t - ts
        if age < -5:
            return "invalid"
        return "stale" if age > self.ttl else "ok"
