"""PortPool: real bind checks, rotation, exhaustion."""

from __future__ import annotations

import socket

import pytest

from xueliang.media.ports import PortPool, PortPoolExhausted, port_is_free


def _free_block(n: int) -> int:
    """First port of n consecutive ports that are free right now."""
    for base in range(42000, 60000, 97):
        if all(port_is_free(p) for p in range(base, base + n)):
            return base
    pytest.skip("no free port block found")


def test_acquire_release_rotates() -> None:
    base = _free_block(4)
    pool = PortPool(base, base + 3)
    got = [pool.acquire() for _ in range(4)]
    assert sorted(got) == list(range(base, base + 4))
    with pytest.raises(PortPoolExhausted, match=f"{base}-{base + 3}"):
        pool.acquire()
    pool.release(got[1])
    assert pool.acquire() == got[1]
    assert pool.in_use == 4 and pool.size == 4


def test_skips_ports_held_by_other_sockets() -> None:
    base = _free_block(3)
    blocker_udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker_udp.bind(("0.0.0.0", base))
    blocker_tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker_tcp.bind(("0.0.0.0", base + 1))
    blocker_tcp.listen()
    try:
        pool = PortPool(base, base + 2)
        assert pool.acquire() == base + 2
        with pytest.raises(PortPoolExhausted, match="taken by other sockets"):
            pool.acquire()
    finally:
        blocker_udp.close()
        blocker_tcp.close()


def test_bad_range() -> None:
    with pytest.raises(ValueError):
        PortPool(5000, 4000)
    with pytest.raises(ValueError):
        PortPool(0, 10)
