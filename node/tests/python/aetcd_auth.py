"""Logs in to an etcd-compatible server with auth on through the third-party
aetcd client (user alice, password alicepw, who may read and write keys
under a/) and prints what it saw as one JSON document."""

import asyncio
import json
import sys

import aetcd


async def outcome(f):
    try:
        r = await f
        return ["ok", r.value.decode() if hasattr(r, "value") else None]
    except Exception as e:  # aetcd maps gRPC errors to its own classes
        return [type(e).__name__, str(e)]


async def main(host: str, port: int) -> dict:
    seen = {}
    async with aetcd.Client(host=host, port=port, username="alice", password="alicepw") as c:
        seen["put_allowed"] = await outcome(c.put(b"a/1", b"x"))
        seen["get_allowed"] = await outcome(c.get(b"a/1"))
        seen["put_denied"] = await outcome(c.put(b"b", b"x"))
        seen["get_denied"] = await outcome(c.get(b"b"))
    wrong = aetcd.Client(host=host, port=port, username="alice", password="nope")
    seen["wrong_password"] = await outcome(wrong.connect())
    anonymous = aetcd.Client(host=host, port=port)
    seen["anonymous"] = await outcome(anonymous.get(b"a/1"))
    await anonymous.close()
    return seen


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], int(sys.argv[2]))), sort_keys=True))
