"""A throwaway PostgreSQL cluster for one test session.

Why not a shared server: tests must run the same on a developer's machine and in CI with nothing but the
Debian `postgresql` package installed.  initdb into a temp dir, listen on 127.0.0.1 with a free port and a
unix socket in the same dir, trust auth, fsync off (throwaway data), stop and remove at the end.  PostgreSQL
refuses to run as root, so as root the cluster belongs to the `postgres` OS user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def find_bindir() -> Path | None:
    """Newest /usr/lib/postgresql/<ver>/bin with initdb, or the directory of initdb on PATH."""
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if cands:
        return Path(cands[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """start() -> URL of the test database; stop() removes everything."""

    def __init__(self, bindir: Path, dbname: str = "xueliang_test") -> None:
        self.bindir = bindir
        self.dbname = dbname
        self.port = _free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="xueliang-pg-"))
        self.data = self.tmp / "data"
        self.proc: subprocess.Popen[bytes] | None = None
        self.as_root = os.geteuid() == 0
        self.log_path = self.tmp / "postgres.log"

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if self.as_root else list(args)

    def start(self) -> str:
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.tmp, pw.pw_uid, pw.pw_gid)
        subprocess.run(self._cmd(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                                 "-A", "trust", "-E", "UTF8", "--locale=C"),
                       check=True, capture_output=True, timeout=120)
        log = open(self.log_path, "wb")  # noqa: SIM115 - kept open for the server's lifetime
        if self.as_root:
            os.chown(self.log_path, pwd.getpwnam("postgres").pw_uid, -1)
        self.proc = subprocess.Popen(
            self._cmd(str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                      "-h", "127.0.0.1", "-k", str(self.tmp), "-c", "fsync=off", "-c", "synchronous_commit=off",
                      "-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "shared_buffers=128MB"),
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 30
        while True:
            r = subprocess.run([str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                               capture_output=True)
            if r.returncode == 0:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("postgres did not start: " + self.log_path.read_text(errors="replace")[-2000:])
            time.sleep(0.1)
        subprocess.run([str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                        self.dbname], check=True, capture_output=True, timeout=30)
        return self.url(self.dbname)

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: smart shutdown
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextlib.contextmanager
def pg_server(dbname: str = "xueliang_test") -> Iterator[PgServer]:
    """Start a cluster (RuntimeError when PostgreSQL is not installed) and yield it; always cleaned up."""
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL binaries not found (/usr/lib/postgresql/*/bin or initdb on PATH)")
    server = PgServer(bindir, dbname)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":  # manual use: python tests/pgserver.py  (prints the URL; Ctrl-C or SIGTERM stops)
    import signal

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # also when started in the background (SIGINT ignored there)
    with pg_server() as srv:
        print(srv.url(srv.dbname), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
