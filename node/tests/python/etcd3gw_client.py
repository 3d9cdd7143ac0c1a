"""etcd3gw (OpenStack's client, which speaks only the JSON gateway) against
one server: prints what it saw as JSON, for comparison with etcd 3.5."""
import json
import sys
import threading
import time

import etcd3gw

host, port = sys.argv[1], int(sys.argv[2])
c = etcd3gw.client(host=host, port=port, timeout=10)
out = {}

out["put"] = c.put("/app/a", "1")
c.put("/app/b", "2")
c.put("/other", "x")
out["get"] = c.get("/app/a")
out["get_missing"] = c.get("/nothing")
out["get_metadata"] = [
    (v.decode(), {k: m[k] for k in ("key", "create_revision", "mod_revision", "version")})
    for v, m in c.get("/app/a", metadata=True)
]
out["prefix"] = sorted((v.decode(), m["key"]) for v, m in c.get_prefix("/app/"))
out["get_all"] = len(c.get_all())
out["create_new"] = c.create("/app/c", "3")
out["create_existing"] = c.create("/app/c", "4")
out["replace_ok"] = c.replace("/app/c", "3", "5")
out["replace_stale"] = c.replace("/app/c", "3", "6")
out["delete"] = c.delete("/app/c")
out["delete_missing"] = c.delete("/app/c")
out["delete_prefix"] = c.delete_prefix("/app/")
out["after_delete_prefix"] = c.get_prefix("/app/")

lease = c.lease(ttl=60)
c.put("/leased", "v", lease=lease)
out["lease_ttl_granted"] = lease.ttl() > 50
out["lease_keys"] = sorted(k.decode() for k in lease.keys())
out["lease_refresh"] = lease.refresh()
out["lease_revoke"] = lease.revoke()
out["leased_after_revoke"] = c.get("/leased")

# Watch: a put from another thread arrives as an event.
def later():
    time.sleep(0.5)
    c.put("/watched", "w1")

threading.Thread(target=later).start()
event = c.watch_once("/watched", timeout=10)
out["watch_once"] = {
    "key": event["kv"]["key"].decode() if isinstance(event["kv"]["key"], bytes) else event["kv"]["key"],
    "value": event["kv"]["value"].decode() if isinstance(event["kv"]["value"], bytes) else event["kv"]["value"],
    "type": event.get("type", "PUT"),
}
events, cancel = c.watch_prefix("/w/")
c.put("/w/1", "a")
c.delete("/w/1")
seen = []
for ev in events:
    seen.append((ev.get("type", "PUT"), ev["kv"]["key"]))
    if len(seen) == 2:
        break
cancel()
out["watch_prefix"] = seen

# Locks (etcd3gw builds them from a txn on a lease).
lock = c.lock("job", ttl=30)
out["lock_acquire"] = lock.acquire()
other = c.lock("job", ttl=30)
out["lock_second_acquire"] = other.acquire()
out["lock_is_acquired"] = lock.is_acquired()
out["lock_refresh"] = lock.refresh()
out["lock_release"] = lock.release()
out["lock_second_after_release"] = other.acquire()
out["lock_second_release"] = other.release()

out["members"] = len(c.members())
out["status_has_leader"] = bool(c.status()["leader"])
print(json.dumps(out, sort_keys=True, default=str))
