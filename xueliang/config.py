"""Settings: defaults, then a TOML file, then environment variables, then command-line flags.

Every flag named in DESIGN.md has an environment variable (``XUELIANG_<NAME>``) so deployment
scripts and containers can configure the platform without a file; the TOML file uses the same
field names as this dataclass.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass
class Settings:
    """Every tunable of the platform, with the defaults a newcomer needs."""

    # HTTP API and console
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # SIP signalling (UDP and TCP on the same port)
    sip_host: str = "0.0.0.0"
    sip_port: int = 5060
    sip_id: str = "34020000002000000001"
    sip_domain: str = "3402000000"
    sip_password: str = "12345678"
    sip_realm: str = ""  # defaults to sip_domain
    digest_algorithm: str = "MD5"  # MD5 | SHA-256 | SM3
    nonce_ttl: float = 300.0
    register_expires_default: int = 3600
    register_expires_min: int = 60
    keepalive_interval: float = 60.0
    keepalive_timeout_count: int = 3
    auto_register: bool = True  # unknown devices may register with the platform password
    allow_ips: list[str] = field(default_factory=list)  # CIDRs; empty = any source
    allow_id_prefixes: list[str] = field(default_factory=list)  # empty = any ID
    catalog_timeout: float = 20.0  # seconds without a catalog page before a sync ends as "timeout"
    command_timeout: float = 10.0
    # Media
    media_ports: str = "30000-30999"
    media_ip: str = ""  # address put in SDP offers; defaults to the SIP host, or 127.0.0.1 for 0.0.0.0
    media_timeout: float = 8.0  # no media this long after the INVITE is answered -> clear error
    stream_idle_timeout: float = 30.0  # BYE this long after the last viewer left
    default_stream_transport: str = "udp"  # udp | tcp-passive | tcp-active
    max_transcodes: int = 2
    # Store
    database_url: str = ""  # defaults to sqlite:///<data_dir>/xueliang.db
    data_dir: str = "var"
    # Security
    secret_key: str = ""  # JWT signing key; generated once and kept in <data_dir>/secret.key
    token_ttl: int = 12 * 3600
    play_token_ttl: int = 300
    # Demo
    demo: bool = False
    demo_devices: int = 3
    demo_channels: int = 4
    # Misc
    log_level: str = "info"

    @property
    def realm(self) -> str:
        return self.sip_realm or self.sip_domain

    @property
    def media_port_range(self) -> tuple[int, int]:
        lo, _, hi = self.media_ports.partition("-")
        start = int(lo)
        end = int(hi) if hi else start
        if not (0 < start <= end < 65536):
            raise ValueError(f"bad media port range {self.media_ports!r}: expected e.g. 30000-30999")
        return start, end

    @property
    def advertised_media_ip(self) -> str:
        if self.media_ip:
            return self.media_ip
        if self.sip_host in ("0.0.0.0", "", "::"):
            return "127.0.0.1"
        return self.sip_host

    @property
    def web_dist(self) -> Path:
        return Path(__file__).resolve().parent / "web_dist"

    def finish(self) -> Settings:
        """Fill derived defaults (database URL, secret key) once the sources are merged."""
        data = Path(self.data_dir)
        if not self.database_url:
            self.database_url = f"sqlite:///{data / 'xueliang.db'}"
        if not self.secret_key:
            data.mkdir(parents=True, exist_ok=True)
            key_file = data / "secret.key"
            if key_file.exists():
                self.secret_key = key_file.read_text().strip()
            else:
                self.secret_key = secrets.token_urlsafe(48)
                key_file.write_text(self.secret_key)
                key_file.chmod(0o600)
        return self


ENV_ALIASES = {"database_url": "XUELIANG_DATABASE_URL"}


def _coerce(kind: Any, value: Any) -> Any:
    if isinstance(value, str):
        if kind in (bool, "bool"):
            return value.strip().lower() in ("1", "true", "yes", "on")
        if kind in (int, "int"):
            return int(value)
        if kind in (float, "float"):
            return float(value)
        if kind in (list[str], "list[str]"):
            return [v.strip() for v in value.split(",") if v.strip()]
    return value


def load_settings(config_file: str | None = None, overrides: dict[str, Any] | None = None,
                  environ: dict[str, str] | None = None) -> Settings:
    """Merge defaults < TOML file < environment < explicit overrides (command-line flags)."""
    env = os.environ if environ is None else environ
    s = Settings()
    types = {f.name: f.type for f in fields(Settings)}
    if config_file:
        with open(config_file, "rb") as fh:
            doc = tomllib.load(fh)
        table = doc.get("xueliang", doc)
        for key, value in table.items():
            if key not in types:
                raise ValueError(f"{config_file}: unknown setting {key!r}")
            setattr(s, key, _coerce(types[key], value))
    for name, kind in types.items():
        var = ENV_ALIASES.get(name, "XUELIANG_" + name.upper())
        if var in env and env[var] != "":
            setattr(s, name, _coerce(kind, env[var]))
    for key, value in (overrides or {}).items():
        if value is not None:
            setattr(s, key, _coerce(types[key], value))
    return s.finish()
