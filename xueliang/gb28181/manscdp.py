"""MANSCDP (the XML in GB/T 28181 MESSAGE/NOTIFY bodies): decode, encode and builders.

Why the decoder looks the way it does:
* Bodies come from devices, i.e. from the network: entities and DTDs are refused, the size is
  bounded, and every failure surfaces as `ManscdpError` (a ValueError) so the signalling core can
  answer 400 and move on, never crash on an lxml or codec exception.
* Most devices declare `GB2312` (or `gb2312`, `GBK`) but 2022 text is GB18030, a superset: we
  decode the bytes ourselves as GB18030 so rare characters in names survive, then hand lxml the
  text with the declaration stripped. Without a declaration UTF-8 is tried first, then GB18030.
* Field quirks are tolerated: junk after the root element, a BOM, `null` texts, SumNum that lies
  (that is the catalog sync's problem: we just report it).
* Catalog items keep every field, including ones we do not know (2022 added GrassrootsCode,
  PointType, FunctionType, MAC, InstallTime, ManagementUnit, RecordSaveDays ...).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

MAX_BODY = 256 * 1024
MAX_DEPTH = 32

ROOTS = ("Query", "Control", "Response", "Notify")

# Containers whose children are repeated <Item> elements, even when empty.
LIST_CONTAINERS = frozenset(
    {
        "DeviceList",
        "RecordList",
        "AlarmList",
        "PresetList",
        "ItemList",
        "AlarmStatus",
        "CruiseTrackList",
        "CruisePointList",
        "SDCardList",
    }
)


class ManscdpError(ValueError):
    """A MANSCDP body that cannot be decoded (malformed, too big, unsafe, wrong charset)."""


@dataclass
class Manscdp:
    root: str
    cmd_type: str
    sn: int
    device_id: str
    fields: dict[str, Any] = field(default_factory=dict)
    encoding: str = "utf-8"

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)

    @property
    def result_ok(self) -> bool:
        """`<Result>OK</Result>` (some devices write ON / Success)."""
        return is_ok(self.fields.get("Result"))


def is_ok(value: Any) -> bool:
    """Status/Result text meaning "good": OK, ON, Online, Success (any case)."""
    return isinstance(value, str) and value.strip().upper() in ("OK", "ON", "ONLINE", "SUCCESS", "TRUE")


# ---------------------------------------------------------------------------------------------
# decoding

_DECL_RE = re.compile(rb"^\s*<\?xml[^>]*?\?>", re.DOTALL)
_ENC_RE = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9_.:-]{1,40})["']""")
_GB_NAMES = {"gb2312", "gbk", "gb18030", "gb_2312", "gb_2312-80", "cp936", "x-gbk", "euc-cn", "ms936"}
_UNSAFE_RE = re.compile(r"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST)", re.IGNORECASE)
_TEXT_DECL_RE = re.compile(r"^\s*<\?xml[^>]*?\?>", re.DOTALL)

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    huge_tree=False,
    load_dtd=False,
    dtd_validation=False,
    remove_comments=True,
    remove_pis=True,
    recover=False,
)


def _charset(declared: str | None) -> str | None:
    if declared is None:
        return None
    low = declared.strip().lower()
    if low in _GB_NAMES:
        return "gb18030"
    if low in ("utf-8", "utf8"):
        return "utf-8"
    try:
        return codecs.lookup(low).name
    except LookupError:
        raise ManscdpError(f"unknown XML encoding {declared!r}") from None


def _to_text(body: bytes) -> tuple[str, str]:
    """Bytes -> (text without XML declaration, codec used)."""
    if body.startswith(codecs.BOM_UTF8):
        body = body[3:]
        forced: str | None = "utf-8"
    else:
        forced = None
    m = _DECL_RE.match(body)
    declared: str | None = None
    if m:
        em = _ENC_RE.search(m.group(0))
        if em:
            declared = em.group(1).decode("ascii")
        body = body[m.end() :]
    enc = forced or _charset(declared)
    if enc is None:
        try:
            return body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return body.decode("gb18030", errors="replace"), "gb18030"
    if enc == "utf-8":
        try:
            return body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            # declared UTF-8 but written in the local charset: a common vendor mistake
            return body.decode("gb18030", errors="replace"), "gb18030"
    try:
        return body.decode(enc, errors="replace"), enc
    except (UnicodeError, LookupError) as exc:  # pragma: no cover - stateful codecs
        raise ManscdpError(f"cannot decode body as {enc}: {exc}") from None


def _local(tag: Any) -> str | None:
    if tag.__class__ is not str:
        return None  # comment / PI / entity
    i = tag.rfind("}")
    return tag if i < 0 else tag[i + 1:]


def _text(el: Any) -> str:
    return (el.text or "").strip()


def _is_list(el: Any, name: str) -> bool:
    if name in LIST_CONTAINERS or "Num" in el.attrib:
        return True
    if not name.endswith("List"):
        return False
    kids = [c for c in el if _local(c.tag)]
    return bool(kids) and all(_local(c.tag) == "Item" for c in kids)


def _convert(el: Any, depth: int) -> Any:
    # Catalog pages are the bulk of what we decode (500,000 channels): leaves take the short path.
    if depth > MAX_DEPTH:
        raise ManscdpError(f"XML nested deeper than {MAX_DEPTH}")
    if not len(el):
        return _text(el)
    out: dict[str, Any] = {}
    _fill(out, el, depth)
    return out if out else _text(el)  # children were only comments / PIs


def _item(el: Any, depth: int) -> dict[str, Any]:
    v = _convert(el, depth)
    if isinstance(v, dict):
        for k, a in el.attrib.items():
            v.setdefault(f"@{_local(k)}", a)
        return v
    return {"#text": v}


def _fill(out: dict[str, Any], kids: Iterable[Any], depth: int) -> None:
    for c in kids:
        name = _local(c.tag)
        if name is None:
            continue
        value: Any
        if not len(c) and not c.attrib and name not in LIST_CONTAINERS:
            # Leaf fast path (most of a catalog page): same result as the general path below.
            value = (c.text or "").strip()
            if name not in out:
                out[name] = value
            else:
                out.setdefault(f"{name}@all", [out[name]]).append(value)
            continue
        if _is_list(c, name):
            value = [_item(i, depth + 2) for i in c if _local(i.tag)]
            if "Num" in c.attrib:
                out[f"{name}@Num"] = c.attrib["Num"]
        else:
            value = _convert(c, depth + 1)
            if c.attrib:
                for k, a in c.attrib.items():
                    out.setdefault(f"{name}@{_local(k)}", a)
        if name not in out:
            out[name] = value
        elif isinstance(out[name], list) and isinstance(value, list):
            out[name].extend(value)  # a second DeviceList in one body: merge
        else:
            # a repeated non-list element: the first stays in place, all are kept under Name@all
            out.setdefault(f"{name}@all", [out[name]]).append(value)


def _parse(text: str) -> Any:
    first: Exception
    try:
        return etree.fromstring(text, _PARSER)
    except (etree.XMLSyntaxError, ValueError) as exc:  # ValueError: NUL / control characters
        first = exc
    # tolerate junk after the root element: cut after the first matching close tag
    m = re.match(r"\s*<([A-Za-z_][\w.-]*)", text)
    if m:
        close = f"</{m.group(1)}>"
        end = text.find(close)
        if end >= 0:
            try:
                return etree.fromstring(text[: end + len(close)], _PARSER)
            except (etree.XMLSyntaxError, ValueError):
                pass
    raise ManscdpError(f"malformed XML: {first}") from None


def decode(body: bytes) -> Manscdp:
    """Decode a MANSCDP body. Raises only ManscdpError."""
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise ManscdpError("MANSCDP body must be bytes")
    body = bytes(body)
    if len(body) > MAX_BODY:
        raise ManscdpError(f"MANSCDP body too large: {len(body)} > {MAX_BODY} bytes")
    if not body.strip():
        raise ManscdpError("empty MANSCDP body")
    try:
        text, enc = _to_text(body)
        text = _TEXT_DECL_RE.sub("", text, count=1).lstrip("\ufeff")
        if _UNSAFE_RE.search(text):
            raise ManscdpError("DTD / entity declarations are refused")
        root = _parse(text)
        name = _local(root.tag)
        if name not in ROOTS:
            raise ManscdpError(f"unknown MANSCDP root <{name}> (expected one of {', '.join(ROOTS)})")
        fields: dict[str, Any] = {}
        _fill(fields, (c for c in root if _local(c.tag)), 1)
        cmd = fields.pop("CmdType", None)
        if not isinstance(cmd, str) or not cmd:
            raise ManscdpError(f"<{name}> without CmdType")
        sn_raw = fields.pop("SN", "0")
        if not isinstance(sn_raw, str):
            raise ManscdpError("SN is not a number")
        sn_raw = sn_raw or "0"
        if not sn_raw.isascii() or not sn_raw.isdigit() or len(sn_raw) > 19:
            raise ManscdpError(f"SN is not a number: {sn_raw[:30]!r}")
        dev = fields.pop("DeviceID", "")
        if not isinstance(dev, str):
            raise ManscdpError("DeviceID is not text")
        return Manscdp(root=name, cmd_type=cmd, sn=int(sn_raw), device_id=dev, fields=fields, encoding=enc)
    except ManscdpError:
        raise
    except RecursionError:
        raise ManscdpError("XML nested too deeply") from None
    except Exception as exc:  # belt and braces: nothing but ManscdpError leaves this function
        raise ManscdpError(f"cannot decode MANSCDP: {type(exc).__name__}: {exc}") from None


def _null(v: str) -> str:
    return "" if v.strip().lower() in ("null", "none") else v


def _flatten(item: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    nested: list[tuple[str, Mapping[str, Any]]] = []
    for k, v in item.items():
        if isinstance(v, Mapping):
            nested.append((k, v))
        elif isinstance(v, list):
            out[k] = ",".join(_null(x) if isinstance(x, str) else str(x) for x in v)
        else:
            out[k] = _null(str(v))
    # 2016 puts PTZType etc. inside <Info>: lift them up unless that would overwrite a field
    for parent, sub in nested:
        for k, v in _flatten(sub).items():
            out[k if k not in out else f"{parent}.{k}"] = v
    return out


def catalog_items(msg: Manscdp) -> tuple[int | None, list[dict[str, str]]]:
    """(SumNum, items) of a Catalog Response/Notify; `null` texts become empty strings.

    SumNum is None when missing or not a number; items are flat str->str dicts (nested <Info>
    children lifted to the top level), unknown fields kept.
    """
    raw = msg.fields.get("SumNum")
    sum_num: int | None = None
    if isinstance(raw, str) and raw.strip().isdigit():
        sum_num = int(raw.strip())
    items_raw = msg.fields.get("DeviceList")
    items: list[dict[str, str]] = []
    if isinstance(items_raw, list):
        for it in items_raw:
            if isinstance(it, Mapping):
                items.append(_flatten(it))
    elif isinstance(items_raw, Mapping):
        items.append(_flatten(items_raw))
    return sum_num, items


# ---------------------------------------------------------------------------------------------
# encoding


def _text_of(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return f"{v:.6f}".rstrip("0").rstrip(".") if v == v else ""
    return str(v)


def _append(parent: Any, name: str, value: Any) -> None:
    if value is None or "@" in name:
        return
    el = etree.SubElement(parent, name)
    if isinstance(value, Mapping):
        _build(el, value)
    elif isinstance(value, (list, tuple)):
        el.set("Num", str(len(value)))
        for item in value:
            sub = etree.SubElement(el, "Item")
            if isinstance(item, Mapping):
                _build(sub, item)
            else:
                sub.text = _text_of(item)
    else:
        el.text = _text_of(value)


def _build(el: Any, mapping: Mapping[str, Any]) -> None:
    for k, v in mapping.items():
        if "@" in k:
            tag, _, attr = k.partition("@")
            if tag == "" and attr:
                el.set(attr, _text_of(v))
            continue
        _append(el, k, v)
    for k, v in mapping.items():
        tag, sep, attr = k.partition("@")
        if sep and tag and attr and attr != "all":
            target = el.find(tag)
            if target is not None and v is not None:
                target.set(attr, _text_of(v))


def encode(
    root: str,
    cmd_type: str,
    sn: int,
    device_id: str,
    fields: Mapping[str, Any] | None = None,
    *,
    encoding: str = "GB2312",
) -> bytes:
    """Build a MANSCDP body: dict -> nested elements, list -> repeated <Item> with Num set.

    encoding "GB2312" (default; declared GB2312, bytes written as GB18030 so rare characters
    survive) or "UTF-8". Keys "Name@Attr" set attributes on the element Name.
    """
    el = etree.Element(root)
    etree.SubElement(el, "CmdType").text = cmd_type
    etree.SubElement(el, "SN").text = str(int(sn))
    etree.SubElement(el, "DeviceID").text = device_id
    if fields:
        _build(el, fields)
    xml = etree.tostring(el, encoding="unicode", pretty_print=True)
    enc = encoding.strip().upper()
    low = enc.lower()
    if low in _GB_NAMES:
        codec = "gb18030"
    elif low in ("utf-8", "utf8"):
        codec, enc = "utf-8", "UTF-8"
    else:
        raise ValueError(f"unsupported MANSCDP encoding {encoding!r} (GB2312, GB18030, UTF-8)")
    return f'<?xml version="1.0" encoding="{enc}"?>\n{xml}'.encode(codec)


def content_encoding(utf8: bool) -> str:
    return "UTF-8" if utf8 else "GB2312"


# ---------------------------------------------------------------------------------------------
# builders: what the platform sends (queries, controls) ...


def query(cmd_type: str, sn: int, device_id: str, encoding: str = "GB2312", **fields: Any) -> bytes:
    return encode("Query", cmd_type, sn, device_id, fields, encoding=encoding)


def catalog_query(
    sn: int,
    device_id: str,
    *,
    start_time: str | None = None,
    end_time: str | None = None,
    encoding: str = "GB2312",
) -> bytes:
    return query("Catalog", sn, device_id, encoding, StartTime=start_time, EndTime=end_time)


def device_info_query(sn: int, device_id: str, *, encoding: str = "GB2312") -> bytes:
    return query("DeviceInfo", sn, device_id, encoding)


def device_status_query(sn: int, device_id: str, *, encoding: str = "GB2312") -> bytes:
    return query("DeviceStatus", sn, device_id, encoding)


def record_info_query(
    sn: int,
    channel_id: str,
    start_time: str,
    end_time: str,
    *,
    record_type: str = "all",
    secrecy: int = 0,
    file_path: str | None = None,
    address: str | None = None,
    recorder_id: str | None = None,
    encoding: str = "GB2312",
) -> bytes:
    return query(
        "RecordInfo",
        sn,
        channel_id,
        encoding,
        StartTime=start_time,
        EndTime=end_time,
        FilePath=file_path,
        Address=address,
        Secrecy=secrecy,
        Type=record_type,
        RecorderID=recorder_id,
    )


def alarm_query(
    sn: int,
    device_id: str,
    *,
    start_priority: int = 1,
    end_priority: int = 4,
    method: str | None = None,
    alarm_type: str | None = None,
    start_time: str | None = None,
    end_time: str | None = None,
    encoding: str = "GB2312",
) -> bytes:
    return query(
        "Alarm",
        sn,
        device_id,
        encoding,
        StartAlarmPriority=start_priority,
        EndAlarmPriority=end_priority,
        AlarmMethod=method,
        AlarmType=alarm_type,
        StartAlarmTime=start_time,
        EndAlarmTime=end_time,
    )


def config_download_query(
    sn: int, device_id: str, config_type: str = "BasicParam", *, encoding: str = "GB2312"
) -> bytes:
    return query("ConfigDownload", sn, device_id, encoding, ConfigType=config_type)


def preset_query(sn: int, device_id: str, *, encoding: str = "GB2312") -> bytes:
    return query("PresetQuery", sn, device_id, encoding)


def mobile_position_query(sn: int, device_id: str, interval: int = 5, *, encoding: str = "GB2312") -> bytes:
    return query("MobilePosition", sn, device_id, encoding, Interval=interval)


def control(
    sn: int,
    device_id: str,
    fields: Mapping[str, Any],
    *,
    cmd_type: str = "DeviceControl",
    encoding: str = "GB2312",
) -> bytes:
    return encode("Control", cmd_type, sn, device_id, fields, encoding=encoding)


def ptz_control(
    sn: int, device_id: str, ptz_hex: str, *, priority: int = 5, encoding: str = "GB2312"
) -> bytes:
    return control(
        sn, device_id, {"PTZCmd": ptz_hex, "Info": {"ControlPriority": priority}}, encoding=encoding
    )


def teleboot(sn: int, device_id: str, *, encoding: str = "GB2312") -> bytes:
    return control(sn, device_id, {"TeleBoot": "Boot"}, encoding=encoding)


def record_control(sn: int, device_id: str, start: bool, *, encoding: str = "GB2312") -> bytes:
    return control(sn, device_id, {"RecordCmd": "Record" if start else "StopRecord"}, encoding=encoding)


def guard_control(sn: int, device_id: str, arm: bool, *, encoding: str = "GB2312") -> bytes:
    return control(sn, device_id, {"GuardCmd": "SetGuard" if arm else "ResetGuard"}, encoding=encoding)


def alarm_reset(
    sn: int,
    device_id: str,
    *,
    method: str | None = None,
    alarm_type: str | None = None,
    encoding: str = "GB2312",
) -> bytes:
    info = {"AlarmMethod": method, "AlarmType": alarm_type} if (method or alarm_type) else None
    return control(sn, device_id, {"AlarmCmd": "ResetAlarm", "Info": info}, encoding=encoding)


def iframe_control(sn: int, device_id: str, *, encoding: str = "GB2312") -> bytes:
    # "IFameCmd" is the standard's own spelling
    return control(sn, device_id, {"IFameCmd": "Send"}, encoding=encoding)


def drag_zoom(
    sn: int,
    device_id: str,
    *,
    zoom_in: bool,
    length: int,
    width: int,
    mid_x: int,
    mid_y: int,
    length_x: int,
    length_y: int,
    encoding: str = "GB2312",
) -> bytes:
    box = {
        "Length": length,
        "Width": width,
        "MidPointX": mid_x,
        "MidPointY": mid_y,
        "LengthX": length_x,
        "LengthY": length_y,
    }
    return control(sn, device_id, {"DragZoomIn" if zoom_in else "DragZoomOut": box}, encoding=encoding)


def home_position(
    sn: int, device_id: str, *, enabled: bool, preset: int = 1, reset_time: int = 60, encoding: str = "GB2312"
) -> bytes:
    hp: dict[str, Any] = {"Enabled": 1 if enabled else 0}
    if enabled:
        hp["ResetTime"] = reset_time
        hp["PresetIndex"] = preset
    return control(sn, device_id, {"HomePosition": hp}, encoding=encoding)


def device_config(
    sn: int,
    device_id: str,
    *,
    name: str | None = None,
    expiration: int | None = None,
    heartbeat_interval: int | None = None,
    heartbeat_count: int | None = None,
    encoding: str = "GB2312",
) -> bytes:
    basic = {
        "Name": name,
        "Expiration": expiration,
        "HeartBeatInterval": heartbeat_interval,
        "HeartBeatCount": heartbeat_count,
    }
    return control(sn, device_id, {"BasicParam": basic}, cmd_type="DeviceConfig", encoding=encoding)


# ... and what devices send (responses, notifies), used by the simulator and tests.


def result_response(
    cmd_type: str, sn: int, device_id: str, ok: bool = True, *, encoding: str = "GB2312", **extra: Any
) -> bytes:
    return encode(
        "Response", cmd_type, sn, device_id, {"Result": "OK" if ok else "ERROR", **extra}, encoding=encoding
    )


def response(
    cmd_type: str, sn: int, device_id: str, fields: Mapping[str, Any], *, encoding: str = "GB2312"
) -> bytes:
    return encode("Response", cmd_type, sn, device_id, fields, encoding=encoding)


def catalog_response(
    sn: int, device_id: str, sum_num: int, items: Sequence[Mapping[str, Any]], *, encoding: str = "GB2312"
) -> bytes:
    return encode(
        "Response",
        "Catalog",
        sn,
        device_id,
        {"SumNum": sum_num, "DeviceList": list(items)},
        encoding=encoding,
    )


def keepalive(sn: int, device_id: str, status: str = "OK", *, encoding: str = "GB2312") -> bytes:
    return encode("Notify", "Keepalive", sn, device_id, {"Status": status}, encoding=encoding)


def alarm_notify(
    sn: int,
    device_id: str,
    *,
    time: str,
    priority: int = 1,
    method: int = 2,
    description: str = "",
    longitude: float | None = None,
    latitude: float | None = None,
    alarm_type: int | None = None,
    encoding: str = "GB2312",
) -> bytes:
    fields: dict[str, Any] = {
        "AlarmPriority": priority,
        "AlarmMethod": method,
        "AlarmTime": time,
        "AlarmDescription": description,
        "Longitude": longitude,
        "Latitude": latitude,
    }
    if alarm_type is not None:
        fields["Info"] = {"AlarmType": alarm_type}
    return encode("Notify", "Alarm", sn, device_id, fields, encoding=encoding)


def mobile_position_notify(
    sn: int,
    device_id: str,
    *,
    time: str,
    longitude: float,
    latitude: float,
    speed: float = 0.0,
    direction: float = 0.0,
    altitude: float = 0.0,
    encoding: str = "GB2312",
) -> bytes:
    return encode(
        "Notify",
        "MobilePosition",
        sn,
        device_id,
        {
            "Time": time,
            "Longitude": longitude,
            "Latitude": latitude,
            "Speed": speed,
            "Direction": direction,
            "Altitude": altitude,
        },
        encoding=encoding,
    )


def catalog_notify(
    sn: int,
    device_id: str,
    items: Sequence[Mapping[str, Any]],
    *,
    sum_num: int | None = None,
    event: str = "UPDATE",
    encoding: str = "GB2312",
) -> bytes:
    """Catalog change notification; each item gets an <Event> (ON OFF VLOST DEFECT ADD DEL UPDATE)."""
    rows = [{**it, "Event": it.get("Event", event)} for it in items]
    return encode(
        "Notify",
        "Catalog",
        sn,
        device_id,
        {"SumNum": len(rows) if sum_num is None else sum_num, "DeviceList": rows},
        encoding=encoding,
    )
