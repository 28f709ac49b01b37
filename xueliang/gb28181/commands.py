"""Queries and controls sent to devices as MESSAGE, with their Response correlated by (device, CmdType, SN).

A device answers a query twice: a 200 to our MESSAGE (transaction level), then, later, its own
MESSAGE carrying <Response> with the same SN. The future is registered BEFORE the MESSAGE goes out,
because fast devices send the Response before our transaction has seen their 200. List answers
(RecordInfo, PresetQuery, Alarm) come in several pages with SumNum: items are gathered until SumNum
is reached, or returned partial when the device stops sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from xueliang.sip.errors import SipError, SipTimeout

from .errors import GbError, GbTimeout

if TYPE_CHECKING:
    from xueliang.sip.message import Response

    from .manscdp import Manscdp
    from .registry import DeviceState
    from .service import GbService

__all__ = ["LIST_KEYS", "ONLY_2022", "Commands"]

log = logging.getLogger("xueliang.gb28181.commands")

# Response list container per command; pages are merged until SumNum items arrived.
LIST_KEYS = {"RecordInfo": "RecordList", "PresetQuery": "PresetList", "Alarm": "AlarmList",
             "CruiseTrackListQuery": "CruiseTrackList"}
# Commands a GB/T 28181-2016 device cannot parse: never send them to one.
ONLY_2022 = frozenset({
    "PTZPreciseCtrl", "SnapShotConfig", "FormatSDCard", "DeviceUpgrade", "TargetTrack",
    "HomePositionQuery", "CruiseTrackListQuery", "CruiseTrackQuery", "PTZPosition", "SDCardStatus",
})
# After the 200 to a control, how long a Response is still awaited before answering "200 only".
CONTROL_RESPONSE_GRACE = 2.0


@dataclass
class _Pending:
    future: asyncio.Future[dict[str, Any]]
    list_key: str | None = None
    items: list[Any] = field(default_factory=list)
    sum_num: int | None = None
    first: dict[str, Any] | None = None


class Commands:
    """Sends MESSAGE requests and matches the devices' Response MESSAGEs."""

    def __init__(self, service: GbService) -> None:
        self.svc = service
        self._sn = itertools.count(1)
        self.pending: dict[tuple[str, str, int], _Pending] = {}

    def next_sn(self) -> int:
        sn = next(self._sn)
        if sn >= 2**31 - 1:
            self._sn = itertools.count(1)
            sn = next(self._sn)
        return sn

    @staticmethod
    def check_edition(dev: DeviceState, command: str) -> None:
        if command in ONLY_2022 and dev.gb_version != "2022":
            raise GbError(f"{command} is not supported by GB/T 28181-2016 device {dev.device_id}",
                          device_id=dev.device_id, command=command)

    # -- sending -------------------------------------------------------------------------------------
    async def send_message(self, dev: DeviceState, body: bytes, command: str, *,
                           target: str | None = None, timeout: float | None = None) -> Response:
        """Send one MANSCDP MESSAGE; returns the final response (2xx) or raises GbError/GbTimeout."""
        svc = self.svc
        t = timeout if timeout is not None else svc.settings.command_timeout
        req = svc.new_request("MESSAGE", dev, target or dev.device_id, body, "Application/MANSCDP+xml")
        try:
            resp = await svc.endpoint.request(req, dev.address, transport=dev.transport, timeout=t)
        except SipTimeout:
            svc.stats["timeouts"] += 1
            raise GbTimeout(dev.device_id, command, t) from None
        except SipError as exc:
            raise GbError(f"cannot send {command} to {dev.device_id}: {exc}", device_id=dev.device_id,
                          command=command, status=getattr(exc, "status", None)) from None
        except OSError as exc:
            raise GbError(f"cannot send {command} to {dev.device_id}: {exc}", device_id=dev.device_id,
                          command=command) from None
        if resp.status >= 300:
            svc.stats["command_errors"] += 1
            raise GbError(f"device {dev.device_id} answered {resp.status} {resp.reason} to {command}",
                          device_id=dev.device_id, command=command, status=resp.status)
        return resp

    async def query(self, dev: DeviceState, cmd_type: str, build: Callable[[int], bytes], *,
                    target: str | None = None, timeout: float | None = None) -> dict[str, Any]:
        """Send a Query and wait for its Response (all pages for list answers)."""
        self.check_edition(dev, cmd_type)
        t = timeout if timeout is not None else self.svc.settings.command_timeout
        sn = self.next_sn()
        key = (dev.device_id, cmd_type, sn)
        loop = asyncio.get_running_loop()
        pend = _Pending(loop.create_future(), LIST_KEYS.get(cmd_type))
        self.pending[key] = pend
        try:
            await self.send_message(dev, build(sn), cmd_type, target=target, timeout=t)
            try:
                return await asyncio.wait_for(asyncio.shield(pend.future), t)
            except TimeoutError:
                if pend.first is not None:  # a list answer that stopped half way: give what came
                    return self._list_result(pend, partial=True)
                self.svc.stats["timeouts"] += 1
                raise GbTimeout(dev.device_id, cmd_type, t) from None
        finally:
            self.pending.pop(key, None)

    async def control(self, dev: DeviceState, cmd_type: str, name: str, build: Callable[[int], bytes], *,
                      target: str | None = None, expects_response: bool = True) -> dict[str, Any]:
        """Send a Control; the device's Result when it sends one, else {"result": "OK", "answer": "200"}.

        `name` (PTZCmd, TeleBoot, ...) is what errors and the edition check talk about.
        """
        self.check_edition(dev, name)
        sn = self.next_sn()
        key = (dev.device_id, cmd_type, sn)
        loop = asyncio.get_running_loop()
        pend = _Pending(loop.create_future())
        self.pending[key] = pend
        try:
            await self.send_message(dev, build(sn), name, target=target)
            if pend.future.done():
                return pend.future.result()
            if not expects_response:
                return {"result": "OK", "answer": "200"}
            grace = min(CONTROL_RESPONSE_GRACE, self.svc.settings.command_timeout)
            try:
                return await asyncio.wait_for(asyncio.shield(pend.future), grace)
            except TimeoutError:
                return {"result": "OK", "answer": "200"}
        finally:
            self.pending.pop(key, None)

    # -- receiving ---------------------------------------------------------------------------------
    def on_response(self, device_id: str, msg: Manscdp) -> bool:
        """A Response MESSAGE from `device_id`; True when it answered a pending command."""
        pend = self.pending.get((device_id, msg.cmd_type, msg.sn))
        if pend is None or pend.future.done():
            return False
        result = _result_dict(msg)
        if pend.list_key is None:
            pend.future.set_result(result)
            return True
        raw_sum = msg.fields.get("SumNum")
        if isinstance(raw_sum, str) and raw_sum.strip().isdigit():
            pend.sum_num = int(raw_sum)
        page = msg.fields.get(pend.list_key)
        if isinstance(page, list):
            pend.items.extend(page)
        elif isinstance(page, dict):
            pend.items.append(page)
        if pend.first is None:
            pend.first = result
        if pend.sum_num is None or len(pend.items) >= pend.sum_num:
            pend.future.set_result(self._list_result(pend, partial=False))
        return True

    @staticmethod
    def _list_result(pend: _Pending, *, partial: bool) -> dict[str, Any]:
        out = dict(pend.first or {})
        if pend.list_key:
            out[pend.list_key] = pend.items
            out["items"] = pend.items
        out["sum_num"] = pend.sum_num
        if partial:
            out["partial"] = True
        return out

    def cancel_device(self, device_id: str, reason: str) -> None:
        """Fail every pending command of a device that went offline."""
        for key, pend in list(self.pending.items()):
            if key[0] == device_id and not pend.future.done():
                pend.future.set_exception(GbError(f"device {device_id} went offline ({reason})",
                                                  device_id=device_id, command=key[1]))
                with contextlib.suppress(Exception):
                    pend.future.exception()


def _result_dict(msg: Manscdp) -> dict[str, Any]:
    out: dict[str, Any] = {"cmd_type": msg.cmd_type, "device_id": msg.device_id, "sn": msg.sn}
    out.update(msg.fields)
    res = msg.fields.get("Result")
    if isinstance(res, str):
        out["result"] = res.strip().upper() or "OK"
    return out
