"""Check 3: durability of sealed messages across kill -9 (docs/PROTOCOL.md §3.3, §3.4, §3.6).

    python3 check_durability.py SERVER

alice.phone sends N sealed `msg`s to bob (offline; one ciphertext for each of bob's two devices),
pipelined with a window of W commands in flight. After ~KILL_AT acks the server gets SIGKILL; it is
started again on the same store; alice logs in again, reads `welcome|…|last-cseq` and resends every
unacked command with its original cseq (fresh ts) until all N are acked. Then bob.laptop (TCP) and
bob.phone (WebSocket) log in and receive, acknowledging with cumulative `got`s. Verified per device:
every acked message delivered, each message id once (after deduplicating by sseq), in send order.
"""
import asyncio
import os
import sys
import time
from collections import Counter, deque

from sigclient import Client, Env, LineConn, Report, Server, StepError, WSConn, b64u, new_id, now_ms, unb64u

env = Env()
rep = Report()
N = int(os.environ.get("DUR_N", "10000"))
WINDOW = int(os.environ.get("DUR_WINDOW", "64"))
KILL_AT = int(os.environ.get("DUR_KILL_AT", "3000"))
KILL_DELAY = float(os.environ.get("DUR_KILL_DELAY_MS", "50")) / 1000  # unread acks before the kill
STALL = float(os.environ.get("DUR_STALL", "3"))  # seconds without a new event before bob reconnects
DEVICES = ("laptop", "phone")


class Msg:
    __slots__ = ("i", "id", "cseq", "sealed")

    def __init__(self, i):
        self.i = i
        self.id = new_id()
        self.cseq = i + 1
        self.sealed = {d: b64u(f"seq={i:06d};to=bob.{d};id={self.id};".encode() + os.urandom(24)) for d in DEVICES}

    def line(self):
        copies = ",".join(f"{d}={self.sealed[d]}" for d in DEVICES)
        return f"msg|{self.cseq}|{now_ms()}|{self.id}|bob|{copies}"


class Alice:
    def __init__(self, server: Server):
        self.server = server
        self.msgs = [Msg(i) for i in range(N)]
        self.by_cseq = {m.cseq: m for m in self.msgs}
        self.acked = {}  # cseq -> (session number, time)
        self.naks = []
        self.errors = []
        self.sent = 0
        self.killed_state = None
        self.session = 0

    async def run_session(self, kill_at=None, timeout=300):
        """One connection: login, then send every unacked message in cseq order, W in flight."""
        self.session += 1
        conn = await LineConn.open(self.server.ports["signal_tcp"])
        c = Client(conn, "alice")
        w = await c.login("alice", "phone", env.key("alice.phone"))
        if w[0] != "welcome":
            raise StepError(f"alice login: {'|'.join(w)}")
        last = int(w[3])
        todo = deque(m for m in self.msgs if m.cseq not in self.acked)
        window = asyncio.Semaphore(WINDOW)
        in_flight = set()
        done = asyncio.Event()
        closed = [False]
        dup_acks = [0]

        async def reader():
            while True:
                text = await conn.recv()
                if text is None:
                    closed[0] = True
                    break
                f = text.split("|")
                if f[0] == "ack":
                    cseq = int(f[1])
                    if cseq in in_flight:
                        in_flight.discard(cseq)
                        window.release()
                        if cseq in self.acked:
                            dup_acks[0] += 1
                        else:
                            self.acked[cseq] = (self.session, time.monotonic())
                        if kill_at is not None and self.killed_state is None and len(self.acked) >= kill_at:
                            self.killed_state = {
                                "acked": len(self.acked), "max_acked": max(self.acked),
                                "in_flight": sorted(in_flight), "sent": self.sent, "t": time.monotonic()}
                            # Stop reading: the server goes on committing what is in flight and its
                            # acks are lost with the connection (so some resends are duplicates).
                            await asyncio.sleep(KILL_DELAY)
                            self.server.kill9()
                            closed[0] = True
                            break
                    if not todo and not in_flight:
                        done.set()
                elif f[0] == "nak":
                    self.naks.append(text)
                    cseq = int(f[1])
                    if cseq in in_flight:
                        in_flight.discard(cseq)
                        window.release()
                elif f[0] == "error":
                    self.errors.append(text)
                elif f[0] == "ev":
                    await conn.send(f"got|{f[1]}")
            done.set()
            for _ in range(WINDOW + 1):
                window.release()  # wake the writer

        async def writer():
            batch = 0
            while todo and not closed[0]:
                await window.acquire()
                if closed[0]:
                    break
                m = todo.popleft()
                in_flight.add(m.cseq)
                conn.writer.write(m.line().encode() + b"\n")
                self.sent += 1
                batch += 1
                if batch >= 16 or not todo:
                    batch = 0
                    try:
                        await conn.writer.drain()
                    except ConnectionError:
                        break
            if not todo and not in_flight:
                done.set()

        t0 = self.t_session_start = time.monotonic()
        rt = asyncio.create_task(reader())
        wt = asyncio.create_task(writer())
        try:
            last_progress, last_count = time.monotonic(), len(self.acked)
            while not done.is_set():
                try:
                    await asyncio.wait_for(done.wait(), 1)
                except asyncio.TimeoutError:
                    pass
                if len(self.acked) != last_count:
                    last_progress, last_count = time.monotonic(), len(self.acked)
                elif time.monotonic() - last_progress > 30:
                    raise StepError(f"alice: no ack for 30 s ({len(self.acked)}/{N} acked, {len(in_flight)} in flight)")
                if time.monotonic() - t0 > timeout:
                    raise StepError(f"alice: session longer than {timeout} s")
        finally:
            wt.cancel()
            for t in (wt,):
                try:
                    await t
                except (asyncio.CancelledError, ConnectionError):
                    pass
            await conn.close()
            rt.cancel()
            try:
                await rt
            except (asyncio.CancelledError, ConnectionError):
                pass
        return {"last_cseq": last, "secs": time.monotonic() - t0, "dup_acks": dup_acks[0], "closed": closed[0]}


class BobDevice:
    def __init__(self, server: Server, device: str, kind: str, expected: dict):
        self.server, self.device, self.kind = server, device, kind
        self.expected = expected  # msg id -> Msg
        self.seen_sseq = set()
        self.deliveries = []  # (sseq, msg id, seq) in arrival order, deduplicated by sseq
        self.sseq_dups = 0
        self.bad = []
        self.logins = 0
        self.stalls = []  # distinct ids delivered when each login stalled

    async def receive_all(self, deadline_s=300):
        t0 = time.monotonic()
        distinct = set()
        while len(distinct & self.expected.keys()) < len(self.expected) and time.monotonic() - t0 < deadline_s:
            # Log in again while the previous login brought something new (the server may hold back
            # part of a large mailbox until a later login); stop once a login brings nothing.
            if self.logins >= 40 or (len(self.stalls) >= 2 and self.stalls[-1] == self.stalls[-2]):
                break
            self.logins += 1
            conn = (await WSConn.open(self.server.ports["http"]) if self.kind == "ws"
                    else await LineConn.open(self.server.ports["signal_tcp"]))
            c = Client(conn, f"bob.{self.device}")
            c.auto_ack = False
            w = await c.login("bob", self.device, env.key(f"bob.{self.device}"))
            if w[0] != "welcome":
                raise StepError(f"bob.{self.device} login: {'|'.join(w)}")
            unacked, highest = 0, 0
            while True:
                try:
                    text = await asyncio.wait_for(conn.recv(), STALL if unacked == 0 else 0.1)
                except asyncio.TimeoutError:
                    if unacked:
                        await conn.send(f"got|{highest}")
                        unacked = 0
                        continue
                    self.stalls.append(len(distinct))
                    break  # nothing new for STALL seconds: reconnect if anything is missing
                if text is None:
                    self.bad.append("connection closed by the server")
                    break
                f = text.split("|")
                if f[0] != "ev":
                    continue
                sseq = int(f[1])
                highest = max(highest, sseq)
                unacked += 1
                if unacked >= 64:
                    await conn.send(f"got|{highest}")
                    unacked = 0
                if sseq in self.seen_sseq:
                    self.sseq_dups += 1
                    continue
                self.seen_sseq.add(sseq)
                if f[3] != "msg":
                    continue
                mid, sender, sdev, sealed = f[4], f[5], f[6], f[7]
                m = self.expected.get(mid)
                if m is None or sender != "alice" or sdev != "phone" or sealed != m.sealed[self.device]:
                    self.bad.append(f"unexpected msg event {text[:120]}")
                    continue
                seq = int(unb64u(sealed)[4:10])
                self.deliveries.append((sseq, mid, seq))
                distinct.add(mid)
                if len(distinct) == len(self.expected):
                    await conn.send(f"got|{highest}")
                    unacked = 0
            await conn.close()
        return time.monotonic() - t0


async def main():
    try:
        await durability()
    except (StepError, OSError, asyncio.TimeoutError, RuntimeError) as e:
        rep.fail("3.durability", f"{type(e).__name__}: {e}")
    print(f"RESULT {rep.passed} {rep.failed}")


async def durability():
    server = Server(sys.argv[1])
    alice = Alice(server)
    rss0 = server.rss_kb()

    # Phase 1: send until ~KILL_AT acks, then kill -9 (from the ack reader, mid-stream).
    t_start1 = time.monotonic()
    s1 = await alice.run_session(kill_at=KILL_AT)
    ks = alice.killed_state
    if ks is None:
        rep.fail("3.kill9", f"the server was not killed: {len(alice.acked)} acks, session {s1}")
        return
    rate1 = ks["acked"] / max(ks["t"] - t_start1, 1e-6)
    restart_s = server.restart()
    t_ready = time.monotonic()

    # Phase 2: reconnect, resend every unacked command with its cseq, until all are acked.
    acked_before = set(alice.acked)
    unacked_at_kill = sorted(set(range(1, alice.sent + 1)) - acked_before)
    s2 = await alice.run_session()
    last = s2["last_cseq"]
    resent_dups = [c for c in unacked_at_kill if c <= last]
    t_all = time.monotonic()
    all_acked = len(alice.acked) == N and not alice.naks and not alice.errors
    rep.check(all_acked and last >= ks["max_acked"], "3.kill9-resend-all-acked",
              f"{ks['acked']} acked at {rate1:.0f} msg/s when killed (highest acked cseq {ks['max_acked']}, "
              f"{len(ks['in_flight'])} in flight, {ks['sent']} sent); restart ready in "
              f"{restart_s:.2f} s; welcome last-cseq {last}; resent {N - len(acked_before)} commands "
              f"({len(resent_dups)} of them with cseq <= last-cseq, re-acked as duplicates); all {N} acked "
              f"{t_all - t_ready:.1f} s after the restart ({s2['secs']:.1f} s session)",
              f"acked {len(alice.acked)}/{N}, naks {alice.naks[:3]}, errors {alice.errors[:3]}, last-cseq {last} "
              f"vs highest acked before the kill {ks['max_acked']}")

    # Phase 3: bob's two devices receive (laptop over TCP lines, phone over WebSocket).
    expected = {m.id: m for m in alice.msgs if m.cseq in alice.acked}
    bobs = [BobDevice(server, "laptop", "tcp", expected), BobDevice(server, "phone", "ws", expected)]
    secs = await asyncio.gather(*(b.receive_all() for b in bobs))
    rss1 = server.rss_kb()

    for b, took in zip(bobs, secs):
        ids = [d[1] for d in b.deliveries]
        distinct = set(ids)
        missing = [m for m in expected if m not in distinct]
        twice = len(ids) - len(distinct)
        first = {}
        for sseq, mid, seq in b.deliveries:
            first.setdefault(mid, seq)
        order = [seq for (_, mid, seq) in b.deliveries]
        firsts, seen = [], set()
        for _, mid, seq in b.deliveries:
            if mid not in seen:
                seen.add(mid)
                firsts.append(seq)
        inversions = [(firsts[k], firsts[k + 1]) for k in range(len(firsts) - 1) if firsts[k] > firsts[k + 1]]
        acked_before_kill_missing = [m for m in missing if expected[m].cseq in acked_before]
        tag = f"bob.{b.device}({b.kind})"
        rep.check(not missing and not b.bad, f"3.no-acked-message-lost[{tag}]",
                  f"all {len(expected)} acked messages delivered ({len(order)} msg events after sseq dedup, "
                  f"{b.sseq_dups} resent events dropped by sseq) in {took:.1f} s over {b.logins} login(s)",
                  f"{len(missing)} acked messages never delivered ({len(acked_before_kill_missing)} of them acked "
                  f"before the kill; e.g. seq {sorted(expected[m].i for m in missing)[:10]}) after {b.logins} logins; "
                  f"bad events {b.bad[:3]}")
        counts = Counter(ids)
        dup_seqs = sorted(first[mid] for mid, k in counts.items() if k > 1)
        rep.check(twice == 0, f"3.exactly-once[{tag}]",
                  f"each message id delivered once after deduplicating by sseq ({len(distinct)} ids)",
                  f"{twice} deliveries of a message id already delivered under another sseq "
                  f"({len(dup_seqs)} ids, e.g. seq {dup_seqs[:10]}) - server bug")
        rep.check(not inversions, f"3.in-order[{tag}]",
                  f"payload sequence numbers strictly increase in delivery order ({len(firsts)} messages)",
                  f"{len(inversions)} inversions in delivery order, first {inversions[:3]}; delivered seq run starts "
                  f"{firsts[:3]}...; runs {runs(firsts)[:6]}")
        rep.check(b.logins == 1 and not missing, f"3.delivered-in-one-login[{tag}]",
                  f"all delivered while online on one connection in {took:.1f} s ({len(expected) / took:.0f} msg/s)",
                  f"an online device acking everything stalled: distinct messages when each login went quiet for "
                  f"{STALL:g} s: {b.stalls[:12]} ({b.logins} logins needed)")
    # Post-mortem from the store itself (read-only): is every acked message there, and in which order
    # were the messages committed? `message` rows outlive their delivered copies.
    rows = store_rows(server)
    by_id = {m.id: m for m in alice.msgs}
    stored_ids = {mid for mid, _ in rows}
    not_stored = sorted(by_id[mid].i for mid in expected if mid not in stored_ids)
    rep.check(not not_stored and bool(rows), "3.store-has-every-acked-message",
              f"the store's message table holds all {len(expected)} acked messages after kill -9 + restart",
              f"{len(not_stored)} acked messages have no row in the store: seq {not_stored[:10]} "
              f"(acked without being committed)")
    commit_seqs = [by_id[mid].i for mid, _ in rows if mid in by_id]
    inv = [(commit_seqs[k], commit_seqs[k + 1]) for k in range(len(commit_seqs) - 1) if commit_seqs[k] > commit_seqs[k + 1]]
    print(f"  .. store commit order vs alice's cseq order: {len(inv)} inversions, e.g. {inv[:5]}", flush=True)
    for b in bobs:
        ids = {d[1] for d in b.deliveries}
        gone = [by_id[m] for m in expected if m not in ids]
        if gone:
            print(f"  .. bob.{b.device}: of {len(gone)} undelivered acked messages, "
                  f"{sum(1 for m in gone if m.id in stored_ids)} have a message row (copy deleted undelivered), "
                  f"{sum(1 for m in gone if m.cseq in acked_before)} were acked before the kill, "
                  f"{sum(1 for m in gone if m.cseq in resent_dups)} were re-acked as duplicates after it; "
                  f"seq {[m.i for m in gone][:8]}...", flush=True)
    print(f"  .. server RSS {rss0 / 1024:.1f} MiB at start, {rss1 / 1024:.1f} MiB after delivery (restarted once)",
          flush=True)


def store_rows(server):
    """(message_id, deliveries) of alice's messages in commit order, from the server's SQLite file."""
    import sqlite3

    argv = open(os.path.join(server.dir, "argv")).read().split("\n")
    path = argv[argv.index("--store-path") + 1]
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            return db.execute("SELECT message_id, deliveries FROM message WHERE sender_user = 'alice' "
                              "ORDER BY id").fetchall()
        finally:
            db.close()
    except sqlite3.Error as e:
        print(f"  .. cannot read the store {path}: {e}", flush=True)
        return []


def runs(seqs):
    """Compact view of a delivery order: (first, last) of each ascending run."""
    out = []
    if not seqs:
        return out
    start = prev = seqs[0]
    for s in seqs[1:]:
        if s != prev + 1:
            out.append((start, prev))
            start = s
        prev = s
    out.append((start, prev))
    return out


asyncio.run(main())
