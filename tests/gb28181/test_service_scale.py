"""Scale check: 100 simulated NVRs x 10 channels register, sync 1,000 channels, go silent, come back."""

from __future__ import annotations

import time

from xueliang.sim.runner import SimNetwork


async def test_100_devices_1000_channels_offline_and_back(platform, wait):
    p = await platform(keepalive_interval=0.5, keepalive_timeout_count=2, catalog_timeout=3.0,
                       command_timeout=3.0)
    net = SimNetwork(p.address, devices=100, channels=10, shared=True, keepalive=0.25, catalog_page=4)
    t0 = time.monotonic()
    await net.start(wait_registered=20)
    try:
        registered = time.monotonic() - t0
        assert p.gb.online_devices() == 100

        async def all_synced() -> bool:
            return all((p.gb.catalog_progress(d.device_id) or {}).get("state") == "done" for d in net.devices)

        await wait(all_synced, timeout=30)
        synced = time.monotonic() - t0
        await p.flush()
        _, total = await p.db.repo.list_channels(page=1, size=1)
        assert total == 1000
        _, online = await p.db.repo.list_channels(page=1, size=1, status="online")
        assert online == 1000

        for d in net.devices:
            d.faults.add("silent")
        t1 = time.monotonic()
        await wait(lambda: p.gb.online_devices() == 0, timeout=10)
        gone = time.monotonic() - t1
        await p.flush()
        _, offline = await p.db.repo.list_channels(page=1, size=1, status="offline")
        assert offline == 1000

        for d in net.devices:
            d.faults.discard("silent")
            d.wake()
        t2 = time.monotonic()
        await wait(lambda: p.gb.online_devices() == 100, timeout=15)
        back = time.monotonic() - t2

        async def channels_back() -> bool:
            # The catalog state still says "done" from the first sync: wait on the store itself,
            # where the re-sync that follows the comeback turns the channels online again.
            await p.flush()
            _, n = await p.db.repo.list_channels(page=1, size=1, status="online")
            return n == 1000

        await wait(channels_back, timeout=30)
        print(f"\nscale: register {registered:.2f}s, synced {synced:.2f}s, offline detected {gone:.2f}s, "
              f"back online {back:.2f}s; stats {dict(p.gb.stats)}")
    finally:
        await net.stop()
