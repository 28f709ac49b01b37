"""Run many simulated devices against a platform (the `xueliang sim` command and tests).

Device IDs are `{prefix}{type}{serial}`: NVR n is `{prefix}118{n:07d}`, IPC `{prefix}132...`,
lower platform `{prefix}200...`. Channel serials are allocated in disjoint ranges per device
(device k gets serials k*channels+1 ...), so channel IDs are unique across the whole run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from xueliang.gb28181.ids import make_id
from xueliang.sim.device import KINDS, SimDevice, SimHost

log = logging.getLogger(__name__)


def parse_server(server: str) -> tuple[str, int]:
    """ "host:port" (port defaults to 5060)."""
    host, sep, port = server.rpartition(":")
    if not sep:
        return server, 5060
    return host.strip("[]"), int(port)


class SimNetwork:
    """A set of simulated devices started and stopped together.

    `shared=True` puts every device on one SipEndpoint (`SimHost`), which scales to thousands of
    devices without one socket pair each.
    """

    def __init__(
        self,
        server: str | tuple[str, int],
        *,
        devices: int,
        channels: int,
        media: bool = False,
        password: str = "12345678",
        transport: str = "udp",
        kind: str = "nvr",
        id_prefix: str = "3402000000",
        first_serial: int = 1,
        keepalive: float = 60,
        gb_version: str = "2016",
        local_host: str = "127.0.0.1",
        server_id: str = "34020000002000000001",
        shared: bool = False,
        catalog_page: int = 4,
        expires: int = 3600,
        faults: Iterable[str] = (),
        **device_kwargs: Any,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        self.server = parse_server(server) if isinstance(server, str) else server
        self.host: SimHost | None = SimHost() if shared else None
        self.local_host = local_host
        per = 1 if kind == "ipc" else max(0, channels)
        self.devices: list[SimDevice] = []
        for i in range(devices):
            serial = first_serial + i
            dev_id = make_id(id_prefix, KINDS[kind], serial)
            self.devices.append(
                SimDevice(
                    dev_id,
                    server=self.server,
                    server_id=server_id,
                    password=password,
                    kind=kind,
                    channels=per,
                    channel_prefix=id_prefix,
                    channel_first_serial=(first_serial - 1 + i) * max(per, 1) + 1,
                    transport=transport,
                    gb_version=gb_version,
                    keepalive=keepalive,
                    expires=expires,
                    local_host=local_host,
                    media=media,
                    catalog_page=catalog_page,
                    faults=faults,
                    **device_kwargs,
                )
            )

    async def start(self, *, wait_registered: float | None = None, concurrency: int = 200) -> None:
        """Start every device (bounded concurrency), optionally waiting until all registered."""
        if self.host is not None:
            await self.host.start(self.local_host, 0)
            for d in self.devices:
                d.endpoint = self.host.endpoint
                d._own_endpoint = False
                self.host.add(d)
        sem = asyncio.Semaphore(concurrency)

        async def one(d: SimDevice) -> None:
            async with sem:
                await d.start()

        await asyncio.gather(*(one(d) for d in self.devices))
        if wait_registered:
            await asyncio.wait_for(
                asyncio.gather(*(d.registered.wait() for d in self.devices)), wait_registered
            )

    async def stop(self) -> None:
        await asyncio.gather(*(d.stop() for d in self.devices), return_exceptions=True)
        if self.host is not None:
            await self.host.close()

    def device(self, device_id: str) -> SimDevice:
        for d in self.devices:
            if d.device_id == device_id:
                return d
        raise KeyError(device_id)

    def stats(self) -> dict[str, Any]:
        return {
            "devices": len(self.devices),
            "registered": sum(1 for d in self.devices if d.registered.is_set()),
            "keepalives": sum(d.sent_keepalives for d in self.devices),
            "channels": sum(len(d.channels) for d in self.devices),
        }

    async def __aenter__(self) -> SimNetwork:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def run_sim(
    server: str,
    *,
    devices: int,
    channels: int,
    media: bool = False,
    password: str = "12345678",
    transport: str = "udp",
    kind: str = "nvr",
    id_prefix: str = "3402000000",
    first_serial: int = 1,
    keepalive: float = 60,
    gb_version: str = "2016",
    local_host: str = "127.0.0.1",
    stop_event: asyncio.Event | None = None,
) -> None:
    """Start `devices` simulated devices and keep them running until `stop_event` is set.

    More than 200 devices share one SIP endpoint (one socket pair) to spare file descriptors.
    """
    net = SimNetwork(
        server,
        devices=devices,
        channels=channels,
        media=media,
        password=password,
        transport=transport,
        kind=kind,
        id_prefix=id_prefix,
        first_serial=first_serial,
        keepalive=keepalive,
        gb_version=gb_version,
        local_host=local_host,
        shared=devices > 200,
    )
    stop = stop_event or asyncio.Event()
    await net.start()
    log.info(
        "sim: %d %s devices x %d channels -> %s:%d (%s)", devices, kind, channels, *net.server, transport
    )
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 10.0)
            log.info("sim: %s", net.stats())
    finally:
        await net.stop()
