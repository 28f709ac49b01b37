"""Sample data for the store tests (imported as a plain module; tests/store has no __init__.py)."""

from __future__ import annotations

NVR = "34020000001180000001"


def cam(i: int, **kw: object) -> dict[str, object]:
    """A catalog item as the GB codec hands it over (XML names, text values)."""
    item: dict[str, object] = {"DeviceID": f"3402000000131{i:07d}", "Name": f"Camera {i}", "Status": "ON",
                               "Manufacturer": "Acme", "ParentID": NVR, "CivilCode": "340200"}
    item.update(kw)
    return item
