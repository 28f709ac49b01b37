"""GB/T 28181 ID helpers."""

from __future__ import annotations

import pytest

from xueliang.gb28181.ids import domain_of, is_gb_id, kind, make_id, type_code


def test_is_gb_id() -> None:
    assert is_gb_id("34020000001320000001")
    assert is_gb_id("340200000013200001")  # 18 digits, lenient
    assert not is_gb_id("3402000000132000000")
    assert not is_gb_id("3402000000132000000a")
    assert not is_gb_id("３４０２００００００１３２００００００１")  # full-width digits


@pytest.mark.parametrize(
    ("id_", "code", "k"),
    [
        ("34020000001110000001", 111, "dvr"),
        ("34020000001180000001", 118, "nvr"),
        ("34020000001310000001", 131, "camera"),
        ("34020000001320000001", 132, "ipc"),
        ("34020000002000000001", 200, "platform"),
        ("34020000002150000001", 215, "business_group"),
        ("34020000002160000001", 216, "virtual_org"),
        ("34020000001340000001", 134, "other"),
    ],
)
def test_type_and_kind(id_: str, code: int, k: str) -> None:
    assert type_code(id_) == code and kind(id_) == k


def test_civil_and_other() -> None:
    assert kind("340200") == "civil" and kind("34") == "civil"
    assert kind("hello") == "other" and type_code("x") is None


def test_make_id() -> None:
    assert make_id("3402000000", 118, 1) == "34020000001180000001"
    assert domain_of("34020000001180000001") == "3402000000"
    with pytest.raises(ValueError):
        make_id("340200", 118, 1)
