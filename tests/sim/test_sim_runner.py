"""run_sim / SimNetwork lifecycle and a scale check of the shared-endpoint host."""

from __future__ import annotations

import asyncio
import time

import pytest
from sim_registrar import Registrar

from xueliang.sim.runner import SimNetwork, parse_server, run_sim


def test_parse_server() -> None:
    assert parse_server("127.0.0.1:5070") == ("127.0.0.1", 5070)
    assert parse_server("example.org") == ("example.org", 5060)
    assert parse_server("[::1]:5060") == ("::1", 5060)


async def test_run_sim_until_stop_event() -> None:
    reg = Registrar()
    host, port = await reg.start()
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_sim(
            f"{host}:{port}",
            devices=3,
            channels=2,
            keepalive=0.2,
            kind="nvr",
            first_serial=11,
            stop_event=stop,
        )
    )
    try:
        await reg.wait_for(lambda: len(reg.registrations) == 3, 5)
        assert sorted(reg.registrations) == [f"340200000011800000{n}" for n in (11, 12, 13)]
        await reg.wait_for(lambda: len({m.device_id for m in reg.bodies("Keepalive")}) == 3, 5)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await reg.endpoint.close()
    assert not reg.registrations  # every device unregistered on the way out


async def _scale(n: int, transport: str = "udp") -> float:
    reg = Registrar()
    host, port = await reg.start()
    net = SimNetwork(
        f"{host}:{port}", devices=n, channels=1, kind="ipc", keepalive=30, shared=True, transport=transport
    )
    t0 = time.perf_counter()
    try:
        await net.start(wait_registered=60)
        elapsed = time.perf_counter() - t0
        assert len(reg.registrations) == n
    finally:
        await net.stop()
        await reg.endpoint.close()
    print(
        f"\n{n} devices ({transport}, shared endpoint) registered with digest in {elapsed:.2f} s "
        f"= {n / elapsed:.0f}/s (simulator and registrar on one loop)"
    )
    return elapsed


async def test_shared_host_registers_300_devices() -> None:
    assert await _scale(300) < 30


@pytest.mark.slow
async def test_shared_host_registers_3000_devices() -> None:
    await _scale(3000)
