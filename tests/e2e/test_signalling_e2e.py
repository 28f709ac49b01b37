"""The whole platform with the simulator over real sockets: 100 devices x 10 channels register and sync,
PTZ reaches a device, devices go silent (offline) and come back, and a platform restart loses nothing.
Runs on SQLite and on PostgreSQL (started by the test setup)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from xueliang.config import Settings
from xueliang.sim.runner import SimNetwork

from .conftest import running_platform, wait_for

N_DEVICES, N_CHANNELS = 100, 10


async def _counts(platform: Any) -> tuple[int, int, int]:
    repo = platform.db.repo
    _, online_dev = await repo.list_devices(page=1, size=1, status="online")
    _, channels = await repo.list_channels(page=1, size=1)
    _, online_ch = await repo.list_channels(page=1, size=1, status="online")
    return online_dev, channels, online_ch


@pytest.mark.timeout(240)
async def test_hundred_devices_register_sync_drop_and_recover(db_url: str,
                                                            settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(db_url, keepalive_interval=1.0, keepalive_timeout_count=3)
    net = SimNetwork(f"127.0.0.1:{settings.sip_port}", devices=N_DEVICES, channels=N_CHANNELS, keepalive=1.0,
                     shared=True, server_id=settings.sip_id, password=settings.sip_password)
    async with running_platform(settings) as platform:
        await net.start(wait_registered=60)
        try:
            async def synced() -> bool:
                await platform.db.writer.flush()
                dev, ch, _ = await _counts(platform)
                return dev == N_DEVICES and ch >= N_DEVICES * N_CHANNELS

            await wait_for(synced, 90, "100 devices online with 1,000 channels in the store")
            _, channels, _ = await _counts(platform)
            assert channels == N_DEVICES * N_CHANNELS  # channels only: NVR catalogs list cameras

            # PTZ reaches the device, with the right bytes.
            target = net.devices[7]
            cam = sorted(target.channel_ids)[0]
            answer = await platform.gb.ptz(cam, "left", 128)
            assert answer["result"].upper() == "OK"
            ptz = [c["ptz"] for c in target.received_controls if c["device_id"] == cam and c["ptz"]]
            assert ptz, target.received_controls
            assert ptz[-1]["pan"] == -1 and ptz[-1]["pan_speed"] == 128, ptz

            # Ten devices go silent: offline after 3 missed keepalives; the history records it.
            silent = net.devices[:10]
            for d in silent:
                d.faults.add("silent")

            async def dropped() -> bool:
                await platform.db.writer.flush()
                dev, _, _ = await _counts(platform)
                return dev == N_DEVICES - 10

            await wait_for(dropped, 20, "10 silent devices marked offline")
            row = await platform.db.repo.get_device(silent[0].device_id)
            assert row is not None and row["status"] == "offline"

            # They come back: online again (re-register or keepalive), and the channels are still there.
            for d in silent:
                d.faults.discard("silent")
                d.wake()

            async def back() -> bool:
                await platform.db.writer.flush()
                dev, ch, _ = await _counts(platform)
                return dev == N_DEVICES and ch == N_DEVICES * N_CHANNELS

            await wait_for(back, 30, "silent devices back online")
        finally:
            await net.stop()
    await _restart_keeps_everything(settings)


async def _restart_keeps_everything(settings: Settings) -> None:
    """A restarted platform restores its registry from the store: no device has to re-register."""
    async with running_platform(settings) as platform:
        _, channels, _ = await _counts(platform)
        assert channels == N_DEVICES * N_CHANNELS
        devices, total = await platform.db.repo.list_devices(page=1, size=200)
        assert total == N_DEVICES
        # The simulator was stopped (it unregistered), so after the restart every device is offline,
        # history included; nothing was lost or duplicated.
        assert all(d["status"] == "offline" for d in devices)


@pytest.mark.timeout(120)
async def test_restart_without_reregister(settings_factory: Callable[..., Settings]) -> None:
    """Devices registered before a restart stay online afterwards: their next keepalive lands."""
    settings = settings_factory(keepalive_interval=1.0, keepalive_timeout_count=3)
    net = SimNetwork(f"127.0.0.1:{settings.sip_port}", devices=3, channels=2, keepalive=1.0,
                     server_id=settings.sip_id, password=settings.sip_password)
    async with running_platform(settings) as platform:
        await net.start(wait_registered=20)

        async def online() -> bool:
            await platform.db.writer.flush()
            return (await _counts(platform))[0] == 3

        await wait_for(online, 20, "3 devices online")
    registers_before = sum(d.register_count for d in net.devices)
    # The platform is down for a moment; the devices keep sending keepalives to the same port.
    async with running_platform(settings) as platform:
        await asyncio.sleep(4.0)  # longer than 3 keepalive intervals
        await platform.db.writer.flush()
        assert (await _counts(platform))[0] == 3
        assert platform.gb.online_devices() == 3
        assert sum(d.register_count for d in net.devices) == registers_before
    await net.stop()
