"""Media port allocation from a configured range (`--media-ports 30000-30999`).

GB/T 28181 media arrives on the port the platform names in its SDP, UDP or TCP, so a port is
handed out only when nothing on this host holds it on either protocol: the pool checks with a real
bind, because other processes (or an earlier run's lingering sockets) may own ports in the range.
Ports rotate through the range rather than being reused at once, so late packets of a stopped stream
do not land in the next one.
"""

from __future__ import annotations

import socket

__all__ = ["PortPool", "PortPoolExhausted", "port_is_free"]


class PortPoolExhausted(RuntimeError):
    """No free port left in the range: too many concurrent streams or the range is taken."""


def port_is_free(port: int, host: str = "0.0.0.0") -> bool:
    """True when both a UDP and a TCP socket can bind `port` right now."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            if kind == socket.SOCK_STREAM:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


class PortPool:
    """Ports `start..end` (inclusive); `acquire()` never returns a port in use here or elsewhere."""

    def __init__(self, start: int, end: int, *, host: str = "0.0.0.0") -> None:
        if not 0 < start <= end <= 65535:
            raise ValueError(f"bad media port range {start}-{end}")
        self.start = start
        self.end = end
        self.host = host
        self._used: set[int] = set()
        self._next = start

    def acquire(self) -> int:
        size = self.end - self.start + 1
        for _ in range(size):
            port = self._next
            self._next = port + 1 if port < self.end else self.start
            if port in self._used:
                continue
            if port_is_free(port, self.host):
                self._used.add(port)
                return port
        raise PortPoolExhausted(
            f"no free media port in {self.start}-{self.end} ({len(self._used)} held by xueliang, "
            f"{size - len(self._used)} taken by other sockets); widen --media-ports")

    def release(self, port: int) -> None:
        self._used.discard(port)

    @property
    def in_use(self) -> int:
        return len(self._used)

    @property
    def size(self) -> int:
        return self.end - self.start + 1
