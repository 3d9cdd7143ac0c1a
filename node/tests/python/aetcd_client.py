"""Drives an etcd-compatible server with the third-party aetcd client and
prints one JSON document describing what it saw (IDs and timings left out),
so the Rust test can compare etcd's and ferrocd's answers."""

import asyncio
import json
import sys

import aetcd


async def main(host: str, port: int) -> dict:
    seen = {}
    async with aetcd.Client(host=host, port=port) as c:
        await c.put(b"/py/a", b"1")
        await c.put(b"/py/b", b"2")
        got = await c.get(b"/py/a")
        seen["get"] = [got.value.decode(), got.version, got.create_revision, got.mod_revision]
        seen["missing"] = await c.get(b"/py/none") is None
        prefix = await c.get_prefix(b"/py/")
        seen["prefix"] = [(kv.key.decode(), kv.value.decode()) for kv in prefix]
        seen["replace_ok"] = await c.replace(b"/py/a", b"1", b"11")
        seen["replace_stale"] = await c.replace(b"/py/a", b"1", b"111")
        txn = await c.transaction(
            compare=[c.transactions.value(b"/py/b") == b"2"],
            success=[c.transactions.put(b"/py/c", b"3")],
            failure=[],
        )
        seen["txn"] = txn[0]
        lease = await c.lease(60, lease_id=4242)
        await c.put(b"/py/leased", b"x", lease=lease)
        info = await c.get_lease_info(4242, keys=True)
        seen["lease"] = [info.ID, info.grantedTTL, sorted(k.decode() for k in info.keys)]
        await c.revoke_lease(4242)
        seen["after_revoke"] = await c.get(b"/py/leased") is None
        deleted = await c.delete_prefix(b"/py/")
        seen["deleted"] = deleted.deleted
        events = []
        watch = await c.watch(b"/py/w")
        await c.put(b"/py/w", b"v1")
        await c.delete(b"/py/w")
        async for ev in watch:
            events.append([str(ev.kind), ev.kv.key.decode(), ev.kv.mod_revision])
            if len(events) == 2:
                break
        await watch.cancel()
        seen["watch"] = events
        status = await c.status()
        seen["status_db_size_positive"] = status.db_size > 0
        members = [m async for m in c.members()]
        seen["members"] = len(members)
    return seen


if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    print(json.dumps(asyncio.run(main(host, port)), sort_keys=True))
