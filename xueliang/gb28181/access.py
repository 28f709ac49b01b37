"""Source allowlists for registration: IP/CIDR ranges and device-ID prefixes (empty list = allow all).

The IP verdict is cached per address because REGISTER storms come from a bounded set of sources and
`ipaddress` parsing is the expensive part.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["AccessList"]

_CACHE_MAX = 65536


class AccessList:
    """Decides whether a source address and a device ID may register."""

    def __init__(self, ips: Iterable[str] = (), id_prefixes: Iterable[str] = ()) -> None:
        nets = []
        for text in ips:
            text = text.strip()
            if text:
                nets.append(ipaddress.ip_network(text, strict=False))
        self.networks = tuple(nets)
        self.prefixes = tuple(p.strip() for p in id_prefixes if p.strip())
        self._ip_cache: dict[str, bool] = {}

    def allow_ip(self, host: str) -> bool:
        if not self.networks:
            return True
        hit = self._ip_cache.get(host)
        if hit is not None:
            return hit
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            ok = False
        else:
            ok = any(addr in net for net in self.networks if net.version == addr.version)
        if len(self._ip_cache) >= _CACHE_MAX:
            self._ip_cache.clear()
        self._ip_cache[host] = ok
        return ok

    def allow_id(self, device_id: str) -> bool:
        return not self.prefixes or device_id.startswith(self.prefixes)

    def check(self, host: str, device_id: str) -> str | None:
        """None when allowed, else the reason ("ip" or "id") for the audit log."""
        if not self.allow_ip(host):
            return "ip"
        if not self.allow_id(device_id):
            return "id"
        return None
