"""Running sipp against the device service: bounded runs, results with the error log (used by tests/sipp)."""

from __future__ import annotations

import asyncio
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
SERVER_ID = "34020000002000000001"
DOMAIN = "3402000000"
SIPP = shutil.which("sipp")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SippResult:
    rc: int
    stdout: str
    stderr: str
    errors: str


async def run_sipp(scenario: str, port: int, workdir: Path, *, calls: int = 1, timeout: float = 10.0,
                   keys: dict[str, str] | None = None, extra: list[str] | None = None) -> SippResult:
    """Run sipp as a UAC against 127.0.0.1:port with call limit and global timeout; never hangs."""
    assert SIPP is not None
    err_file = workdir / f"{Path(scenario).stem}_errors.log"
    args = [SIPP, f"127.0.0.1:{port}", "-sf", str(SCENARIOS / scenario), "-m", str(calls),
            "-timeout", f"{timeout:g}s", "-timeout_error", "-nostdin", "-i", "127.0.0.1",
            "-p", str(free_udp_port()), "-trace_err", "-error_file", str(err_file),
            "-key", "server", SERVER_ID, "-key", "domain", DOMAIN]
    for k, v in (keys or {}).items():
        args += ["-key", k, v]
    args += extra or []
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, cwd=workdir)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout + 10)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    errors = err_file.read_text(errors="replace") if err_file.exists() else ""
    return SippResult(proc.returncode if proc.returncode is not None else -1,
                      out.decode(errors="replace"), err.decode(errors="replace"), errors)
