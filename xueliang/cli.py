"""The `xueliang` command: `serve` runs the platform, `sim` runs simulated devices."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="xueliang: GB/T 28181 video platform")

Opt = typer.Option


def _run(coro: object) -> None:
    try:
        import uvloop

        uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - uvloop is a dependency; keep Windows-style fallbacks simple
        asyncio.run(coro)  # type: ignore[arg-type]


@app.command()
def serve(
    http_host: Annotated[str | None, Opt("--http-host", help="HTTP bind address [XUELIANG_HTTP_HOST]")] = None,
    http_port: Annotated[int | None, Opt("--http-port", help="HTTP port [XUELIANG_HTTP_PORT]")] = None,
    sip_host: Annotated[str | None, Opt("--sip-host", help="SIP bind address [XUELIANG_SIP_HOST]")] = None,
    sip_port: Annotated[int | None, Opt("--sip-port", help="SIP port, UDP and TCP [XUELIANG_SIP_PORT]")] = None,
    media_ports: Annotated[str | None, Opt("--media-ports", help="RTP port range, e.g. 30000-30999")] = None,
    media_ip: Annotated[str | None, Opt("--media-ip", help="address devices send media to (SDP c=)")] = None,
    db: Annotated[str | None, Opt("--db", help="database URL, e.g. sqlite:///var/x.db or postgresql://u:p@h/db")] = None,
    sip_id: Annotated[str | None, Opt("--sip-id", help="platform SIP ID (20 digits)")] = None,
    sip_domain: Annotated[str | None, Opt("--sip-domain", help="SIP domain (10 digits)")] = None,
    sip_password: Annotated[str | None, Opt("--sip-password", help="default device password")] = None,
    data_dir: Annotated[str | None, Opt("--data-dir", help="folder for the SQLite file, keys, snapshots")] = None,
    demo: Annotated[bool, Opt("--demo", help="start built-in simulated devices with live media")] = False,
    config: Annotated[str | None, Opt("--config", help="TOML settings file")] = None,
    log_level: Annotated[str | None, Opt("--log-level")] = None,
) -> None:
    """Run the whole platform in one process: SIP, media, HTTP API and console."""
    from .config import load_settings

    overrides = {
        "http_host": http_host, "http_port": http_port, "sip_host": sip_host, "sip_port": sip_port,
        "media_ports": media_ports, "media_ip": media_ip, "database_url": db, "sip_id": sip_id,
        "sip_domain": sip_domain, "sip_password": sip_password, "data_dir": data_dir,
        "demo": True if demo else None, "log_level": log_level,
    }
    settings = load_settings(config, overrides)
    _setup_logging(settings.log_level)
    from .server import serve_forever

    _run(serve_forever(settings))


@app.command()
def sim(
    server: Annotated[str, Opt("--server", help="platform SIP address HOST:PORT")] = "127.0.0.1:5060",
    devices: Annotated[int, Opt("--devices", min=1, help="number of devices")] = 1,
    channels: Annotated[int, Opt("--channels", min=1, help="channels per device")] = 4,
    media: Annotated[bool, Opt("--media", help="answer INVITE with real PS/RTP")] = False,
    password: Annotated[str, Opt("--password", help="SIP password")] = "12345678",
    transport: Annotated[str, Opt("--transport", help="udp or tcp signalling")] = "udp",
    kind: Annotated[str, Opt("--kind", help="nvr, ipc or platform")] = "nvr",
    id_prefix: Annotated[str, Opt("--id-prefix", help="first 10 digits of device IDs")] = "3402000000",
    first_serial: Annotated[int, Opt("--first-serial")] = 1,
    keepalive: Annotated[float, Opt("--keepalive", help="keepalive interval, seconds")] = 60.0,
    gb_version: Annotated[str, Opt("--gb-version", help="2016 or 2022")] = "2016",
    local_host: Annotated[str, Opt("--local-host", help="address to bind")] = "127.0.0.1",
    log_level: Annotated[str, Opt("--log-level")] = "info",
) -> None:
    """Run simulated GB/T 28181 devices against a platform."""
    _setup_logging(log_level)
    from .sim.runner import run_sim

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_sim(server, devices=devices, channels=channels, media=media, password=password,
                      transport=transport, kind=kind, id_prefix=id_prefix, first_serial=first_serial,
                      keepalive=keepalive, gb_version=gb_version, local_host=local_host, stop_event=stop)

    _run(main())


@app.command()
def version() -> None:
    """Print the version."""
    from . import __version__

    typer.echo(__version__)


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Alembic narrates every plugin it loads at INFO; operators want one line per migration at most.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
