"""PTZCmd: the 8-byte front-end control command of GB/T 28181 Annex A, as 16 hex characters.

Layout: byte1 0xA5; byte2 = version (high nibble, 0) | checksum nibble ((0xA + 0x5 + version) % 16);
byte3 address low 8 bits; byte4 instruction; byte5 data 1; byte6 data 2; byte7 = data 3 (high nibble,
zoom speed for PTZ) | address high 4 bits; byte8 = sum of bytes 1..7 mod 256.

Instruction byte families:
* PTZ (0x00-0x3F): 0x01 right, 0x02 left, 0x04 down, 0x08 up, 0x10 zoom in (tele), 0x20 zoom out
  (wide); byte5 pan speed, byte6 tilt speed, byte7 high nibble zoom speed. 0x00 = stop.
* FI (0x40 | bits): 0x01 focus far, 0x02 focus near, 0x04 iris open, 0x08 iris close; byte5 focus
  speed, byte6 iris speed.
* Presets 0x81 set, 0x82 call, 0x83 delete, byte6 = index (1..255).
* Cruise 0x84-0x88, scan 0x89-0x8A, auxiliary switch 0x8C/0x8D: decoded for the simulator only.

Pure functions, no I/O: used by the platform to build commands and by the simulator to check them.
"""

from __future__ import annotations

from typing import Any

_HEAD = 0xA5
_VERSION = 0


def _byte2(version: int = _VERSION) -> int:
    check = ((_HEAD >> 4) + (_HEAD & 0x0F) + version) % 16
    return (version << 4) | check


def _clamp(v: int, hi: int) -> int:
    return max(0, min(hi, int(v)))


def _build(instr: int, d1: int, d2: int, d3: int, address: int = 1) -> str:
    if not 0 <= address <= 0xFFF:
        raise ValueError("PTZ address must be 0..4095")
    b = [
        _HEAD,
        _byte2(),
        address & 0xFF,
        instr & 0xFF,
        _clamp(d1, 255),
        _clamp(d2, 255),
        ((_clamp(d3, 15) << 4) | ((address >> 8) & 0x0F)),
    ]
    b.append(sum(b) % 256)
    return bytes(b).hex().upper()


def ptz_cmd(
    *,
    pan: int = 0,
    tilt: int = 0,
    zoom: int = 0,
    pan_speed: int = 0,
    tilt_speed: int = 0,
    zoom_speed: int = 0,
    address: int = 1,
) -> str:
    """Pan -1 left / +1 right; tilt -1 up / +1 down; zoom -1 out / +1 in. All zero = stop."""
    instr = 0
    if pan > 0:
        instr |= 0x01
    elif pan < 0:
        instr |= 0x02
    if tilt > 0:
        instr |= 0x04
    elif tilt < 0:
        instr |= 0x08
    if zoom > 0:
        instr |= 0x10
    elif zoom < 0:
        instr |= 0x20
    return _build(instr, pan_speed, tilt_speed, zoom_speed, address)


def fi_cmd(
    *, focus: int = 0, iris: int = 0, focus_speed: int = 0, iris_speed: int = 0, address: int = 1
) -> str:
    """Focus +1 far / -1 near; iris +1 open / -1 close. All zero = FI stop (0x40)."""
    instr = 0x40
    if focus > 0:
        instr |= 0x01
    elif focus < 0:
        instr |= 0x02
    if iris > 0:
        instr |= 0x04
    elif iris < 0:
        instr |= 0x08
    return _build(instr, focus_speed, iris_speed, 0, address)


_PRESET_OPS = {"set": 0x81, "call": 0x82, "delete": 0x83}


def preset_cmd(op: str, index: int, *, address: int = 1) -> str:
    """op "set" | "call" | "delete"; index 1..255 goes in byte6."""
    if op not in _PRESET_OPS:
        raise ValueError(f"unknown preset op {op!r} (set, call, delete)")
    if not 1 <= index <= 255:
        raise ValueError("preset index must be 1..255")
    return _build(_PRESET_OPS[op], 0, index, 0, address)


# API command name -> (pan, tilt, zoom)
_MOVES: dict[str, tuple[int, int, int]] = {
    "left": (-1, 0, 0),
    "right": (1, 0, 0),
    "up": (0, -1, 0),
    "down": (0, 1, 0),
    "up_left": (-1, -1, 0),
    "up_right": (1, -1, 0),
    "down_left": (-1, 1, 0),
    "down_right": (1, 1, 0),
    "zoom_in": (0, 0, 1),
    "zoom_out": (0, 0, -1),
    "stop": (0, 0, 0),
}
_FI: dict[str, tuple[int, int]] = {
    "focus_far": (1, 0),
    "focus_near": (-1, 0),
    "iris_open": (0, 1),
    "iris_close": (0, -1),
}
COMMANDS: tuple[str, ...] = tuple(_MOVES) + tuple(_FI)


def command_ptz(command: str, speed: int, *, address: int = 1) -> str:
    """Map an API command name and a speed 0..255 to PTZCmd hex (zoom speed scaled to 0..15)."""
    speed = _clamp(speed, 255)
    if command in _MOVES:
        pan, tilt, zoom = _MOVES[command]
        return ptz_cmd(
            pan=pan,
            tilt=tilt,
            zoom=zoom,
            pan_speed=speed if pan else 0,
            tilt_speed=speed if tilt else 0,
            zoom_speed=(speed * 15 + 127) // 255 if zoom else 0,
            address=address,
        )
    if command in _FI:
        focus, iris = _FI[command]
        return fi_cmd(
            focus=focus,
            iris=iris,
            focus_speed=speed if focus else 0,
            iris_speed=speed if iris else 0,
            address=address,
        )
    raise ValueError(f"unknown PTZ command {command!r}; known: {', '.join(COMMANDS)}")


def _move_name(pan: int, tilt: int, zoom: int) -> str:
    for name, v in _MOVES.items():
        if v == (pan, tilt, zoom):
            return name
    parts = []
    if tilt:
        parts.append("up" if tilt < 0 else "down")
    if pan:
        parts.append("left" if pan < 0 else "right")
    if zoom:
        parts.append("zoom_in" if zoom > 0 else "zoom_out")
    return "+".join(parts) or "stop"


def decode_ptz(hexstr: str) -> dict[str, Any]:
    """Decode and validate PTZCmd hex. Raises ValueError on bad length, header or checksum."""
    s = hexstr.strip() if isinstance(hexstr, str) else ""
    if len(s) != 16:
        raise ValueError(f"PTZCmd must be 16 hex characters, got {len(s)}")
    try:
        b = bytes.fromhex(s)
    except ValueError as exc:
        raise ValueError(f"PTZCmd is not hex: {s!r}") from exc
    if b[0] != _HEAD:
        raise ValueError(f"PTZCmd byte1 must be A5, got {b[0]:02X}")
    version, check = b[1] >> 4, b[1] & 0x0F
    if ((_HEAD >> 4) + (_HEAD & 0x0F) + version) % 16 != check:
        raise ValueError(f"PTZCmd byte2 check nibble wrong: {b[1]:02X}")
    if sum(b[:7]) % 256 != b[7]:
        raise ValueError(f"PTZCmd checksum wrong: {b[7]:02X} != {sum(b[:7]) % 256:02X}")
    address = b[2] | ((b[6] & 0x0F) << 8)
    instr = b[3]
    out: dict[str, Any] = {"address": address, "instruction": instr, "version": version, "hex": s.upper()}
    if instr < 0x40:
        pan = 1 if instr & 0x01 else (-1 if instr & 0x02 else 0)
        tilt = 1 if instr & 0x04 else (-1 if instr & 0x08 else 0)
        zoom = 1 if instr & 0x10 else (-1 if instr & 0x20 else 0)
        out.update(
            kind="ptz",
            pan=pan,
            tilt=tilt,
            zoom=zoom,
            pan_speed=b[4],
            tilt_speed=b[5],
            zoom_speed=b[6] >> 4,
            command=_move_name(pan, tilt, zoom),
        )
    elif instr < 0x50:
        focus = 1 if instr & 0x01 else (-1 if instr & 0x02 else 0)
        iris = 1 if instr & 0x04 else (-1 if instr & 0x08 else 0)
        name = "stop"
        for n, v in _FI.items():
            if v == (focus, iris):
                name = n
        out.update(kind="fi", focus=focus, iris=iris, focus_speed=b[4], iris_speed=b[5], command=name)
    elif instr in (0x81, 0x82, 0x83):
        op = {0x81: "set", 0x82: "call", 0x83: "delete"}[instr]
        out.update(kind="preset", op=op, index=b[5], command=f"preset_{op}")
    elif 0x84 <= instr <= 0x88:
        op = {0x84: "add", 0x85: "remove", 0x86: "speed", 0x87: "dwell", 0x88: "start"}[instr]
        out.update(kind="cruise", op=op, group=b[4], index=b[5], data=b[6] >> 4, command=f"cruise_{op}")
    elif instr in (0x89, 0x8A):
        out.update(
            kind="scan", op="start" if instr == 0x89 else "speed", group=b[4], data=b[5], command="scan"
        )
    elif instr in (0x8C, 0x8D):
        out.update(kind="aux", op="on" if instr == 0x8C else "off", index=b[4], command="aux")
    else:
        out.update(kind="unknown", command="unknown")
    return out
