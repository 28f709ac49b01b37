"""Digest authentication: vectors computed independently with hashlib, nonces, client/server."""

from __future__ import annotations

import hashlib

import pytest
from sip_helpers import fixture_bytes

from xueliang.sip.auth import (
    NonceManager,
    authorization_header,
    challenge_header,
    compute_ha1,
    parse_authorization,
    parse_challenge,
    verify,
    verify_ha1,
)
from xueliang.sip.message import Request, SipParseError, parse_message


def H(alg: str, s: str) -> str:
    name = {"MD5": "md5", "SHA-256": "sha256", "SM3": "sm3"}[alg]
    return hashlib.new(name, s.encode()).hexdigest()


def test_field_register_fixture_verifies_with_md5_no_qop() -> None:
    reg = parse_message(fixture_bytes("sip", "03_register_with_authorization.txt"))
    assert isinstance(reg, Request)
    creds = parse_authorization(reg.headers.get("Authorization") or "")
    assert creds.username == "34010000001310000001" and creds.realm == "3401000000" and creds.qop is None
    assert verify(creds, "REGISTER", "12345678")
    assert not verify(creds, "REGISTER", "12345679")
    assert not verify(creds, "INVITE", "12345678")


def test_rfc2617_example_vector() -> None:
    value = ('Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
             'uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", '
             'response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41"')
    assert verify(parse_authorization(value), "GET", "Circle Of Life")


@pytest.mark.parametrize("alg", ["MD5", "SHA-256", "SM3"])
@pytest.mark.parametrize("qop", [None, "auth"])
def test_server_verifies_independent_computation(alg: str, qop: str | None) -> None:
    user, realm, pw, nonce, uri = "34020000001320000001", "3402000000", "s3cret", "abcdef0123", "sip:x@3402000000"
    ha1 = H(alg, f"{user}:{realm}:{pw}")
    ha2 = H(alg, f"REGISTER:{uri}")
    if qop:
        resp = H(alg, f"{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}")
        extra = ', qop=auth, nc=00000001, cnonce="c0ffee"'
    else:
        resp = H(alg, f"{ha1}:{nonce}:{ha2}")
        extra = ""
    value = (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
             f'response="{resp.upper() if alg == "MD5" else resp}", algorithm={alg}{extra}')
    creds = parse_authorization(value)
    assert verify(creds, "REGISTER", pw)
    assert verify_ha1(creds, "REGISTER", compute_ha1(alg, user, realm, pw))
    assert not verify(creds, "REGISTER", pw + "x")


@pytest.mark.parametrize("alg", ["MD5", "SHA-256", "SM3", "MD5-sess"])
@pytest.mark.parametrize("qop", [None, "auth"])
def test_client_and_server_agree(alg: str, qop: str | None) -> None:
    chal = challenge_header("3402000000", "n0nce", algorithm=alg, qop=qop, opaque="op")
    value = authorization_header(chal, "REGISTER", "sip:34020000002000000001@3402000000", "dev", "pw", nc=3)
    creds = parse_authorization(value)
    assert creds.algorithm == alg and creds.opaque == "op"
    assert creds.qop == qop and (creds.nc == "00000003" if qop else creds.nc is None)
    assert verify(creds, "REGISTER", "pw")
    assert not verify(creds, "REGISTER", "wrong")


def test_challenge_formats() -> None:
    v = challenge_header("3402000000", "abc", stale=True)
    assert v == 'Digest realm="3402000000", nonce="abc", algorithm=MD5, stale=true'
    c = parse_challenge(v)
    assert c.stale and c.algorithm == "MD5" and c.qop is None
    field = parse_challenge('Digest realm="3401000000",nonce="97aa9734e7777565"')
    assert field.realm == "3401000000" and field.algorithm == "MD5"
    q = parse_challenge('Digest realm="a, b", nonce="n", qop="auth,auth-int", algorithm=SHA-256')
    assert q.realm == "a, b" and q.qop == "auth,auth-int" and q.algorithm == "SHA-256"


@pytest.mark.parametrize("bad", ["", "NoOneKnowsThisScheme opaque-data=here", 'Digest username="a"',
                                 'Digest username="a, realm=', "Digest =x"])
def test_bad_authorization(bad: str) -> None:
    with pytest.raises(SipParseError):
        parse_authorization(bad)


def test_unknown_algorithm_does_not_verify() -> None:
    creds = parse_authorization('Digest username="a", realm="r", nonce="n", uri="u", response="x", algorithm=MD9')
    assert verify(creds, "REGISTER", "pw") is False


def test_nonce_manager() -> None:
    nm = NonceManager("secret", ttl=300)
    n = nm.new(now=1_000_000)
    assert nm.check(n, now=1_000_010) == "ok"
    assert nm.check(n, now=1_000_301) == "stale"
    assert nm.check(n, now=999_000) == "invalid"  # from the future
    assert NonceManager("other").check(n, now=1_000_010) == "invalid"
    tampered = ("0" if n[0] != "0" else "1") + n[1:]
    assert nm.check(tampered, now=1_000_010) == "invalid"
    assert nm.check("short", now=1_000_010) == "invalid"
    assert nm.check("z" * 32, now=1_000_010) == "invalid"
    assert nm.new(now=5) != nm.new(now=5)
