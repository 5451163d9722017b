"""Check 1: a whole call with clients we did not write: PyPI `websockets` on ws://…/ws, and raw TCP lines
for one of Bob's devices in the mixed run (docs/PROTOCOL.md §3.4, §3.5, §3.7)."""
import asyncio
import sys
import time

from sigclient import Client, Env, Report, Server, StepError, b64u, new_id

env = Env()
rep = Report()


async def keys_check(server, kind):
    name = f"1.keys-{kind}"
    c = await Client.connect(kind, server.ports, "alice")
    try:
        f = await c.login("alice", "phone", env.key("alice.phone"))
        if f[0] != "welcome":
            return rep.fail(name, "alice login: " + "|".join(f))
        a = await c.ok("keys", "bob")
        got = dict(item.split("=", 1) for item in a[4].split(","))
        want = {"laptop": env.bundle("bob.laptop"), "phone": env.bundle("bob.phone")}
        rep.check(a[3] == "bob" and got == want, name,
                  f"keys|…|bob over {kind} -> ack with both bundles ({', '.join(sorted(got))}), equal to keygen's output",
                  f"answer {'|'.join(a)[:300]} != {want}")
    finally:
        await c.close()


async def call(server, kinds, accepter):
    """kinds: transport per device; accepter: the bob device that takes the call."""
    other = "phone" if accepter == "laptop" else "laptop"
    tag = "+".join(f"{d}:{k}" for d, k in kinds.items())
    name = f"1.call[{tag}]"
    t0 = time.monotonic()
    a = bl = bp = None
    try:
        a = await Client.connect(kinds["alice"], server.ports, "alice")
        bl = await Client.connect(kinds["bob.laptop"], server.ports, "bob.laptop")
        bp = await Client.connect(kinds["bob.phone"], server.ports, "bob.phone")
        for c, u, d in ((a, "alice", "phone"), (bl, "bob", "laptop"), (bp, "bob", "phone")):
            f = await c.login(u, d, env.key(f"{u}.{d}"))
            if f[0] != "welcome" or f[1:3] != [u, d]:
                return rep.fail(name, f"{u}.{d} login: {'|'.join(f)}")
        bob = {"laptop": bl, "phone": bp}
        call_id = new_id()
        offer, acand = b64u(b"offer-" + call_id.encode()), b64u(b"cand-alice-1")
        answer, bcand = b64u(b"answer-" + accepter.encode()), b64u(b"cand-bob-" + accepter.encode())

        await a.ok("call", call_id, "bob", offer)
        await a.ok("cand", call_id, acand)  # held until the answer
        for d, c in bob.items():
            f = await c.event("ring", lambda f: f[4] == call_id)
            if f[5:] != ["alice", "phone", offer]:
                return rep.fail(name, f"bob.{d} ring fields {f}")
        acc = bob[accepter]
        await acc.ok("prepare", call_id, answer)
        await acc.ok("cand", call_id, bcand)
        await acc.ok("accept", call_id)
        f = await a.event("answer", lambda f: f[4] == call_id)
        if f[5:] != [accepter, answer]:
            return rep.fail(name, f"alice answer fields {f}")
        f = await a.event("cand", lambda f: f[4] == call_id)
        if f[5:] != ["bob", accepter, bcand]:
            return rep.fail(name, f"alice cand fields {f}")
        f = await acc.event("cand", lambda f: f[4] == call_id)
        if f[5:] != ["alice", "phone", acand]:
            return rep.fail(name, f"bob.{accepter} got alice's held cand as {f}")
        f = await bob[other].event("elsewhere", lambda f: f[4] == call_id)
        if f[5:] != [accepter]:
            return rep.fail(name, f"bob.{other} elsewhere fields {f}")
        late = await bob[other].command("accept", call_id, answer)
        f = await bob[other].answer(late)
        if f[:3] != ["nak", str(late), "answered-elsewhere"]:
            return rep.fail(name, f"late accept by bob.{other} answered {'|'.join(f)}")
        await a.ok("end", call_id)
        f = await acc.event("ended", lambda f: f[4] == call_id)
        if f[5:] != ["hangup"]:
            return rep.fail(name, f"bob.{accepter} ended fields {f}")
        dups = sum(c.dup_events for c in (a, bl, bp))
        rep.check(dups == 0, name,
                  f"ring on both bob devices, bob.{accepter} prepare+cand+accept, alice got answer+cand, "
                  f"bob.{accepter} got alice's held cand, bob.{other} got elsewhere (+ late accept nak answered-elsewhere), "
                  f"end -> bob.{accepter} ended|hangup; {(time.monotonic() - t0) * 1000:.0f} ms",
                  f"{dups} events delivered twice with the same sseq")
    except (StepError, OSError, asyncio.TimeoutError) as e:
        rep.fail(name, str(e))
    finally:
        for c in (a, bl, bp):
            if c:
                await c.close()
        await asyncio.sleep(0.1)


async def main():
    server = Server(sys.argv[1])
    await keys_check(server, "ws")
    await keys_check(server, "tcp")
    await call(server, {"alice": "ws", "bob.laptop": "ws", "bob.phone": "ws"}, "laptop")
    await call(server, {"alice": "ws", "bob.laptop": "ws", "bob.phone": "tcp"}, "phone")
    await call(server, {"alice": "ws", "bob.laptop": "tcp", "bob.phone": "ws"}, "laptop")
    print(f"RESULT {rep.passed} {rep.failed}")


asyncio.run(main())
