"""REGISTER: digest (MD5, SHA-256), stale nonce, wrong password, allowlists, re-register, unregister."""

from __future__ import annotations

import re

from xueliang.sim.device import SimDevice

DEV = "34020000001320000001"
DATE_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}$")


async def test_register_md5_challenge_then_200(platform, raw_ua):
    p = await platform()
    ua = await raw_ua(DEV, p.address)
    first, final = await ua.register(expires=120, extra=[("X-GB-Ver", "3.0")])
    ch = first.headers.get("WWW-Authenticate") or ""
    assert 'realm="3402000000"' in ch and "algorithm=MD5" in ch
    assert final.status == 200
    assert DATE_RE.match(final.headers.get("Date") or ""), final.headers.get("Date")
    assert final.headers.get("Expires") == "120"
    assert final.headers.get("X-GB-Ver") == "3.0"
    assert final.headers.get("Contact")
    dev = p.gb.table.get(DEV)
    assert dev is not None and dev.online and dev.gb_version == "2022"
    assert dev.address == ua.endpoint.local_address
    await p.flush()
    row = await p.db.repo.get_device(DEV)
    assert row["status"] == "online" and row["port"] == ua.endpoint.local_address[1]
    assert row["gb_version"] == "2022" and row["expires"] == 120
    assert p.gb.stats["registrations"] == 1


async def test_expires_clamped_and_default(platform, raw_ua):
    p = await platform(register_expires_min=300, register_expires_default=7200)
    ua = await raw_ua(DEV, p.address)
    _, final = await ua.register(expires=10)
    assert final.headers.get("Expires") == "300"
    assert p.gb.table.get(DEV).gb_version == "2016"
    assert final.headers.get("X-GB-Ver") is None


async def test_register_sha256_with_simdevice(platform):
    p = await platform(digest_algorithm="SHA-256")
    sim = SimDevice(DEV, server=p.address, kind="ipc", channels=1)
    await sim.start(wait_registered=5)
    try:
        assert sim.last_register_status == 200
        assert p.gb.table.get(DEV).online
    finally:
        await sim.stop()


async def test_stale_nonce_gets_stale_true(platform, raw_ua):
    from xueliang.sip.auth import authorization_header

    p = await platform(nonce_ttl=0.05)
    ua = await raw_ua(DEV, p.address)
    first = await ua.send(ua.request("REGISTER", headers=[("Expires", "60")]))
    import asyncio

    await asyncio.sleep(1.1)  # nonces carry a seconds timestamp
    req = ua.request("REGISTER", headers=[("Expires", "60")])
    req.headers.add("Authorization", authorization_header(first.headers.get("WWW-Authenticate"), "REGISTER",
                                                          req.uri, DEV, "12345678"))
    resp = await ua.send(req)
    assert resp.status == 401
    assert "stale=true" in (resp.headers.get("WWW-Authenticate") or "")
    assert p.gb.table.get(DEV) is None


async def test_wrong_password_403_nothing_stored_audited(platform, wait):
    p = await platform()
    sim = SimDevice(DEV, server=p.address, kind="ipc", channels=1, faults=["wrong_password"])
    await sim.start()
    try:
        await wait(lambda: sim.last_register_status is not None)
        assert sim.last_register_status == 403
        assert p.gb.table.get(DEV) is None
        await p.flush()
        assert await p.db.repo.get_device(DEV) is None
        audit, _ = await p.db.repo.list_audit(page=1, size=10)
        denied = [a for a in audit if a["action"] == "register.denied"]
        assert denied and denied[0]["target"] == DEV and denied[0]["source"] == "127.0.0.1"
        assert "12345678" not in str(denied[0]["detail"])
        assert p.gb.stats["register_failures"] >= 1
    finally:
        await sim.stop(unregister=False)


async def test_allowlists_deny(platform, raw_ua):
    p = await platform(allow_id_prefixes=["4401"])
    ua = await raw_ua(DEV, p.address)
    resp = await ua.send(ua.request("REGISTER", headers=[("Expires", "60")]))
    assert resp.status == 403
    q = await platform(allow_ips=["10.0.0.0/8"])
    ua2 = await raw_ua(DEV, q.address)
    resp = await ua2.send(ua2.request("REGISTER", headers=[("Expires", "60")]))
    assert resp.status == 403
    r = await platform(allow_ips=["127.0.0.0/8"], allow_id_prefixes=["3402"])
    ua3 = await raw_ua(DEV, r.address)
    _, final = await ua3.register()
    assert final.status == 200


async def test_unknown_device_refused_without_auto_register(platform, raw_ua):
    p = await platform(auto_register=False)
    ua = await raw_ua(DEV, p.address)
    _, final = await ua.register()
    assert final.status == 403
    # once the operator adds it (with its own password), it may register
    await p.db.repo.add_device({"device_id": DEV, "password": "own-secret"})
    p.gb.forget_device(DEV)  # what the API does after adding a device
    _, final = await ua.register("own-secret")
    assert final.status == 200


async def test_reregister_and_unregister(platform, raw_ua):
    p = await platform()
    ua = await raw_ua(DEV, p.address)
    _, final = await ua.register()
    assert final.status == 200
    _, final = await ua.register()
    assert final.status == 200
    assert p.gb.stats["online_transitions"] == 1   # re-register is not a transition
    _, final = await ua.register(expires=0)
    assert final.status == 200 and final.headers.get("Expires") == "0"
    assert p.gb.table.get(DEV) is None
    await p.flush()
    row = await p.db.repo.get_device(DEV)
    assert row["status"] == "offline"
    # keepalive after unregistering: 403 so the device registers again
    body = (b'<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n'
            b"<SN>1</SN>\r\n<DeviceID>" + DEV.encode() + b"</DeviceID>\r\n<Status>OK</Status>\r\n</Notify>\r\n")
    resp = await ua.send(ua.request("MESSAGE", body=body))
    assert resp.status == 403
