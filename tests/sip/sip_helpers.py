"""Shared helpers of the SIP tests: fixture location and message builders."""

from __future__ import annotations

from pathlib import Path

import pytest

from xueliang.sip.message import Request, new_call_id, new_tag


def fixtures_dir() -> Path | None:
    """../shared/fixtures next to the repository (or the work tree's copy); None when absent."""
    root = Path(__file__).resolve().parents[2]
    for cand in (root.parent / "shared" / "fixtures", root / "shared" / "fixtures", Path("/work/shared/fixtures")):
        if (cand / "sip").is_dir() and (cand / "rfc4475").is_dir():
            return cand
    return None


def fixture_bytes(*parts: str) -> bytes:
    d = fixtures_dir()
    if d is None:
        pytest.skip("SIP fixtures (../shared/fixtures) not present in this checkout")
    return d.joinpath(*parts).read_bytes()


def fixture_names(sub: str, pattern: str) -> list[str]:
    d = fixtures_dir()
    return sorted(p.name for p in (d / sub).glob(pattern)) if d is not None else []


def keepalive(uri: str = "sip:34020000002000000001@3402000000", body: bytes = b"<?xml version=\"1.0\"?>\r\n"
              b"<Notify><CmdType>Keepalive</CmdType><SN>1</SN><DeviceID>34020000001320000001</DeviceID>"
              b"<Status>OK</Status></Notify>\r\n") -> Request:
    """A GB-style keepalive MESSAGE without Via (the endpoint fills it)."""
    return Request("MESSAGE", uri, [
        ("From", f"<sip:34020000001320000001@3402000000>;tag={new_tag()}"),
        ("To", "<sip:34020000002000000001@3402000000>"),
        ("Call-ID", new_call_id("127.0.0.1")),
        ("CSeq", "20 MESSAGE"),
        ("Content-Type", "Application/MANSCDP+xml"),
    ], body)
