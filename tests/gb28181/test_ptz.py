"""PTZCmd byte layout and checksum, both directions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xueliang.gb28181.ptz import COMMANDS, command_ptz, decode_ptz, fi_cmd, preset_cmd, ptz_cmd


def test_stop_is_the_well_known_string() -> None:
    assert ptz_cmd() == "A50F0100000000B5"
    assert command_ptz("stop", 200) == "A50F0100000000B5"


def test_layout_left_speed() -> None:
    h = command_ptz("left", 0x80)
    b = bytes.fromhex(h)
    assert h == h.upper() and len(h) == 16
    assert b[0] == 0xA5 and b[1] == 0x0F and b[2] == 0x01 and b[3] == 0x02 and b[4] == 0x80 and b[5] == 0
    assert b[7] == sum(b[:7]) % 256


@pytest.mark.parametrize(
    ("cmd", "instr"),
    [
        ("right", 0x01),
        ("left", 0x02),
        ("down", 0x04),
        ("up", 0x08),
        ("zoom_in", 0x10),
        ("zoom_out", 0x20),
        ("up_left", 0x0A),
        ("down_right", 0x05),
        ("focus_far", 0x41),
        ("focus_near", 0x42),
        ("iris_open", 0x44),
        ("iris_close", 0x48),
    ],
)
def test_instruction_bits(cmd: str, instr: int) -> None:
    h = command_ptz(cmd, 255)
    assert bytes.fromhex(h)[3] == instr
    assert decode_ptz(h)["command"] == cmd


def test_zoom_speed_scaled_to_nibble() -> None:
    d = decode_ptz(command_ptz("zoom_in", 255))
    assert d["zoom_speed"] == 15 and d["zoom"] == 1 and d["pan_speed"] == 0
    assert decode_ptz(command_ptz("zoom_out", 0))["zoom_speed"] == 0


def test_presets() -> None:
    for op, code in (("set", 0x81), ("call", 0x82), ("delete", 0x83)):
        h = preset_cmd(op, 7)
        b = bytes.fromhex(h)
        assert b[3] == code and b[5] == 7
        d = decode_ptz(h)
        assert d["kind"] == "preset" and d["op"] == op and d["index"] == 7
    with pytest.raises(ValueError):
        preset_cmd("set", 0)
    with pytest.raises(ValueError):
        preset_cmd("jump", 1)


def test_address_high_nibble() -> None:
    h = ptz_cmd(pan=1, pan_speed=1, address=0x3AB)
    b = bytes.fromhex(h)
    assert b[2] == 0xAB and b[6] & 0x0F == 0x3
    assert decode_ptz(h)["address"] == 0x3AB


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "A50F",
        "A50F0100000000B6",
        "B50F0100000000C5",
        "A5000100000000A6",
        "ZZ0F0100000000B5",
        "A50F0100000000B5FF",
    ],
)
def test_decode_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        decode_ptz(bad)


def test_unknown_command() -> None:
    with pytest.raises(ValueError):
        command_ptz("fly", 1)


@given(st.sampled_from(COMMANDS), st.integers(-10, 300))
def test_roundtrip_every_command(cmd: str, speed: int) -> None:
    d = decode_ptz(command_ptz(cmd, speed))
    assert d["command"] == cmd or cmd == "stop"


@given(
    st.integers(-1, 1),
    st.integers(-1, 1),
    st.integers(-1, 1),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 15),
)
def test_roundtrip_ptz(pan: int, tilt: int, zoom: int, ps: int, ts: int, zs: int) -> None:
    d = decode_ptz(ptz_cmd(pan=pan, tilt=tilt, zoom=zoom, pan_speed=ps, tilt_speed=ts, zoom_speed=zs))
    assert (d["kind"], d["pan"], d["tilt"], d["zoom"]) == ("ptz", pan, tilt, zoom)
    assert (d["pan_speed"], d["tilt_speed"], d["zoom_speed"]) == (ps, ts, zs)


def test_fi_stop_and_speeds() -> None:
    d = decode_ptz(fi_cmd())
    assert d["kind"] == "fi" and d["command"] == "stop"
    d = decode_ptz(fi_cmd(focus=-1, focus_speed=9))
    assert d["focus"] == -1 and d["focus_speed"] == 9
