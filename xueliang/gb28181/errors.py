"""Errors of the device service, mapped by the API: LookupError -> 404/409, GbTimeout -> 504, GbError -> 502.

`GbTimeout` deliberately does NOT derive from `GbError`: the API maps the two to different codes and
an ``except GbError`` placed first must not swallow timeouts.
"""

from __future__ import annotations

__all__ = ["DeviceOffline", "GbError", "GbTimeout", "UnknownDevice"]


class GbError(Exception):
    """The device refused or failed a request (SIP 4xx/5xx, Result ERROR, unsupported by its edition)."""

    def __init__(self, message: str, *, device_id: str = "", command: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.device_id = device_id
        self.command = command
        self.status = status


class GbTimeout(TimeoutError):
    """The device did not answer in time; the message names the device and the command."""

    def __init__(self, device_id: str, command: str, timeout: float) -> None:
        super().__init__(f"device {device_id} did not answer {command} within {timeout:g} s")
        self.device_id = device_id
        self.command = command
        self.timeout = timeout


class UnknownDevice(LookupError):
    """No such device (or channel) is known to the platform."""


class DeviceOffline(LookupError):
    """The device is known but not online, so no request can reach it."""
