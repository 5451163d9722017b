"""Check 2: hostile clients (docs/PROTOCOL.md §3.1, §3.2). Each attack must get its defined answer and
close, and afterwards a normal client must still log in and get a `keys` answer quickly.

    python3 check_attacks.py MAIN_SERVER FLOOD_SERVER

MAIN runs with --signal-login-timeout 3 --signal-max-line 4096; FLOOD with a login timeout long
enough to hold 10,000 idle connections at once (FLOOD_LOGIN_TIMEOUT, read from its argv).
"""
import asyncio
import json
import os
import random
import sys
import time

from sigclient import (Client, Env, LineConn, Report, Server, StepError, WSConn, b64u, login_line, new_id, now_ms,
                       probe, until_closed)

env = Env()
rep = Report()
PROBE_LIMIT = 1.0  # seconds for a normal login + keys after an attack
FLOOD_N = int(os.environ.get("FLOOD_N", "10000"))


def argv_value(server: Server, flag: str, default: str) -> str:
    argv = open(os.path.join(server.dir, "argv")).read().split("\n")
    return argv[argv.index(flag) + 1] if flag in argv else default


async def refused(name: str, server: Server, conn, want_code: str, evidence: str, close_within: float = 3.0,
                  frames_before=None):
    """Reads what the server says until it closes; wants exactly one error|want_code and a close,
    then a normal client must still be served."""
    frames, secs = await until_closed(conn, close_within)
    frames = (frames_before or []) + frames
    errors = [f for f in frames if f.startswith("error|")]
    ok_answer = bool(errors) and errors[0].split("|")[1] == want_code and len(errors) == 1
    p_ok, p_secs, p_detail = await probe(server.ports, env, PROBE_LIMIT)
    if ok_answer and secs is not None and p_ok:
        rep.ok(name, f"{evidence} -> {errors[0][:80]!r}, closed after {secs * 1000:.0f} ms; then normal client: {p_detail}")
    else:
        why = []
        if not ok_answer:
            why.append(f"wanted one error|{want_code}, got frames {[f[:80] for f in frames][:5]}")
        if secs is None:
            why.append(f"connection not closed within {close_within} s")
        if not p_ok:
            why.append(f"normal client afterwards: {p_detail}")
        rep.fail(name, "; ".join(why))
    await conn.close()


async def fresh(server, kind="tcp", label="attacker"):
    c = await Client.connect(kind, server.ports, label)
    await c.hello()
    return c


# --------------------------------------------------------------------------------------------


async def replayed_login(server):
    genuine = await fresh(server, label="alice")
    line = login_line(env.key("alice.phone"), genuine.challenge, "alice", "phone", now_ms())
    await genuine.conn.send(line)
    w = await genuine.expect(lambda f: f[0] in ("welcome", "error"), "welcome")
    if w[0] != "welcome":
        await genuine.close()
        return rep.fail("2.replayed-login", "the genuine login itself failed: " + "|".join(w))
    thief = await fresh(server)
    await thief.conn.send(line)  # captured line, other connection (other challenge)
    await refused("2.replayed-login", server, thief.conn, "bad-login",
                  "alice's login line captured from a live connection, sent on a new one")
    # The same line again on its own connection is `replay` (§3.2).
    await genuine.conn.send(line)
    frames, secs = await until_closed(genuine.conn, 3)
    rep.check(bool(frames) and frames[0].startswith("error|replay|") and secs is not None, "2.second-login-same-conn",
              f"second login on a logged-in connection -> {frames[:1]}, closed",
              f"got {frames[:3]}, closed={secs is not None}")


async def stale(server):
    for skew, label in ((-120_000, "120 s behind"), (+120_000, "120 s ahead")):
        c = await fresh(server)
        await c.conn.send(login_line(env.key("alice.phone"), c.challenge, "alice", "phone", now_ms() + skew))
        await refused(f"2.stale-timestamp({label})", server, c.conn, "stale",
                      f"correctly signed login with ts {label} (window 30 s)")


async def wrong_key(server):
    c = await fresh(server)
    await c.conn.send(login_line(env.key("mallory.phone"), c.challenge, "alice", "phone", now_ms()))
    await refused("2.wrong-key", server, c.conn, "bad-login", "login as alice.phone signed with another device's key")
    c = await fresh(server)
    await c.conn.send(login_line(env.key("mallory.phone"), c.challenge, "mallory", "phone", now_ms()))
    await refused("2.unknown-user", server, c.conn, "bad-login", "login as mallory (no account), self-signed")


async def before_login(server):
    c = await fresh(server)
    await c.conn.send(f"keys|1|{now_ms()}|bob")
    await refused("2.command-before-login", server, c.conn, "not-logged-in", "keys|1|ts|bob after hello, no login")
    c = await fresh(server)
    await c.conn.send("got|5")
    await refused("2.got-before-login", server, c.conn, "not-logged-in", "got|5 before login")


async def oversized(server, max_line: int):
    c = await fresh(server)
    await c.conn.send(f"keys|1|{now_ms()}|" + "b" * (max_line + 1000))
    await refused("2.oversized-line(before login)", server, c.conn, "too-long",
                  f"a {max_line + 1000 + 20}-byte line (signal.max_line {max_line})")

    # Logged in, the limit's edge: a line of exactly max_line bytes counting LF passes, one more is refused.
    c = Client(await LineConn.open(server.ports["signal_tcp"]), "carol")
    await c.login("carol", "desk", env.key("carol.desk"))

    def msg_line(cseq):
        head = f"msg|{cseq}|{now_ms()}|{new_id()}|bob|laptop="
        return head, max_line - 1 - len(head)  # base64url characters left, the LF counted

    cseq = c.cseq + 1
    head, n = msg_line(cseq)
    if n % 4 == 1:  # not a valid base64url length: one more cseq digit (gaps in cseq are allowed)
        cseq *= 10
        head, n = msg_line(cseq)
    line = head + "A" * n  # "A" carries no stray bits at any length: canonical base64url
    fits = len(line) + 1 == max_line
    await c.conn.send(line)
    try:
        a = await c.expect(lambda f: f[0] in ("ack", "nak", "error"), "answer to the max_line-sized msg")
        edge_ok = fits and a[0] == "ack"
        edge = f"{len(line) + 1}-byte line (= max_line) -> {'|'.join(a)[:40]}"
    except StepError as e:
        edge_ok, edge = False, str(e)
    c.cseq = cseq
    line2 = f"msg|{cseq + 1}|{now_ms()}|{new_id()}|bob|laptop=" + "A" * max_line
    await c.conn.send(line2)
    frames, secs = await until_closed(c.conn, 3)
    errs = [f for f in frames if f.startswith("error|")]
    p_ok, _, p_detail = await probe(server.ports, env, PROBE_LIMIT)
    rep.check(edge_ok and errs[:1] and errs[0].startswith("error|too-long|") and secs is not None and p_ok,
              "2.oversized-line(logged in)",
              f"{edge}; {len(line2) + 1}-byte msg -> {errs[0][:60]!r}, closed; then normal client: {p_detail}",
              f"{edge}; oversized got {frames[:3]}, closed={secs is not None}; probe: {p_detail}")
    await c.close()

    # No LF at all: the server must not buffer without bound.
    c = await fresh(server)
    await c.conn.send_raw(b"x" * (max_line * 4))
    await refused("2.oversized-no-newline", server, c.conn, "too-long", f"{max_line * 4} bytes without LF")


async def garbage(server):
    rng = random.Random(20261123)
    bad = []
    for i in range(20):
        data = bytes(rng.getrandbits(8) for _ in range(rng.randint(50, 2000)))
        data = b"\xff\xfe" + data.replace(b"\n", b"") + b"\n" + data  # first line is non-empty binary
        c = await fresh(server)
        await c.conn.send_raw(data)
        frames, secs = await until_closed(c.conn, 3)
        if not (frames and frames[0].startswith("error|protocol|") and secs is not None):
            bad.append((i, frames[:2], secs))
        await c.conn.close()
    # After login too.
    c = Client(await LineConn.open(server.ports["signal_tcp"]), "carol")
    await c.login("carol", "desk", env.key("carol.desk"))
    await c.conn.send_raw(bytes(rng.getrandbits(8) for _ in range(500)).replace(b"\n", b"") + b"\n")
    frames, secs = await until_closed(c.conn, 3)
    if not (frames and frames[-1].startswith("error|protocol|") and secs is not None):
        bad.append(("logged-in", frames[:2], secs))
    p_ok, _, p_detail = await probe(server.ports, env, PROBE_LIMIT)
    rep.check(not bad and p_ok, "2.garbage-bytes",
              f"21 connections (20 before login, 1 after) sent random binary with newlines -> each error|protocol "
              f"and closed; then normal client: {p_detail}",
              f"misbehaved: {bad[:3]}; probe: {p_detail}")


async def slowloris(server, login_timeout: float):
    t0 = time.monotonic()
    c = await fresh(server)
    line = login_line(env.key("alice.phone"), c.challenge, "alice", "phone", now_ms()) + "\n"

    async def drip():
        for ch in line.encode():
            await c.conn.send_raw(bytes([ch]))
            await asyncio.sleep(1)

    dripper = asyncio.create_task(drip())
    frames, secs = await until_closed(c.conn, login_timeout + 10)
    dripper.cancel()
    try:
        await dripper
    except (asyncio.CancelledError, OSError):
        pass
    total = time.monotonic() - t0
    ok = (frames and frames[0].startswith("error|timeout|") and secs is not None
          and login_timeout - 0.2 <= total <= login_timeout * 2 + 10)
    p_ok, _, p_detail = await probe(server.ports, env, PROBE_LIMIT)
    rep.check(bool(ok) and p_ok, "2.slowloris",
              f"login line dripped 1 byte/s -> {frames[:1]} and closed {total:.2f} s after connect "
              f"(signal.login_timeout {login_timeout:g} s); then normal client: {p_detail}",
              f"frames {frames[:2]}, closed after {total:.2f} s (want {login_timeout:g}..{login_timeout + 2:g}); probe: {p_detail}")
    await c.close()

    # Keepalives do not move the login deadline (§3.1: the read timeout is separate).
    t0 = time.monotonic()
    c = await fresh(server)

    async def keepalive():
        while True:
            await c.conn.send("")
            await asyncio.sleep(0.5)

    k = asyncio.create_task(keepalive())
    frames, secs = await until_closed(c.conn, login_timeout + 10)
    k.cancel()
    try:
        await k
    except (asyncio.CancelledError, OSError):
        pass
    total = time.monotonic() - t0
    rep.check(bool(frames) and frames[0].startswith("error|timeout|") and login_timeout - 0.2 <= total <= login_timeout * 2 + 10,
              "2.keepalives-before-login", f"blank lines every 0.5 s, no login -> {frames[:1]}, closed after {total:.2f} s",
              f"frames {frames[:2]}, closed after {total:.2f} s")
    await c.close()


async def websocket_abuse(server, max_line: int):
    ws = Client(await WSConn.open(server.ports["http"]), "ws-attacker")
    await ws.hello()
    await ws.conn.send_binary(b"\x00\x01login|alice\n")
    await refused("2.ws-binary-message", server, ws.conn, "protocol", "a binary WebSocket message (§3.1)")

    ws = Client(await WSConn.open(server.ports["http"]), "ws-attacker")
    await ws.hello()
    frames = []
    try:
        await ws.conn.send(f"keys|1|{now_ms()}|" + "b" * (max_line + 1000))
    except Exception as e:  # the server may close while we write
        frames.append(f"<send failed: {type(e).__name__}>")
    got, secs = await until_closed(ws.conn, 3)
    frames += got
    code = ws.conn.close_code
    p_ok, _, p_detail = await probe(server.ports, env, PROBE_LIMIT, kind="ws")
    errs = [f for f in frames if f.startswith("error|")]
    # §3.1 names error|too-long for TCP lines; on WebSocket the frame decoder refuses the frame itself
    # with close code 1009 (message too big, RFC 6455 §7.4.1) before any text reaches the hub.
    answered = (bool(errs) and errs[0].startswith("error|too-long|")) or code == 1009
    how = errs[0][:50] if errs else f"no error frame, close code {code} (1009 = message too big)"
    rep.check(answered and secs is not None and p_ok, "2.ws-oversized-message",
              f"{max_line + 1020}-byte text message -> {how}, closed; then normal ws client: {p_detail}",
              f"frames {frames[:3]}, closed={secs is not None}, close code {code}; probe: {p_detail}")
    await ws.close()

    # The same size in fragments each below the limit: the frame decoder lets it through, the message
    # assembly refuses it and the hub answers error|too-long. Ten times: the answer must come every time.
    outcomes = {}
    for _ in range(10):
        ws = Client(await WSConn.open(server.ports["http"]), "ws-attacker")
        await ws.hello()
        text = f"keys|1|{now_ms()}|" + "b" * (max_line + 1000)
        frames = []
        try:
            await ws.conn.ws.send([text[i:i + 1000] for i in range(0, len(text), 1000)])
        except Exception as e:
            frames.append(f"<send failed: {type(e).__name__}>")
        got, secs = await until_closed(ws.conn, 3)
        frames += got
        errs = [f for f in frames if f.startswith("error|")]
        key = (errs[0][:15] if errs else "no error frame") + f", close code {ws.conn.close_code}" + (
            "" if secs is not None else ", NOT closed")
        outcomes[key] = outcomes.get(key, 0) + 1
        await ws.close()
    p_ok, _, p_detail = await probe(server.ports, env, PROBE_LIMIT, kind="ws")
    good = outcomes.get("error|too-long|, close code 1000", 0) + outcomes.get("error|too-long|, close code 1009", 0)
    rep.check(good == 10 and p_ok, "2.ws-oversized-fragmented",
              f"{len(text)}-byte text message in 1000-byte fragments, 10 times -> {outcomes}; then normal ws client: {p_detail}",
              f"{len(text)}-byte text message in 1000-byte fragments, 10 times -> {outcomes} (error|too-long "
              f"missing {10 - good} times); probe: {p_detail}")


# --------------------------------------------------------------------------------------------


async def full_call(server):
    """alice (tcp) calls bob (laptop ws, phone tcp); laptop accepts; alice ends. Returns seconds."""
    t0 = time.monotonic()
    a = await Client.connect("tcp", server.ports, "alice")
    bl = await Client.connect("ws", server.ports, "bob.laptop")
    bp = await Client.connect("tcp", server.ports, "bob.phone")
    try:
        for c, u, d in ((a, "alice", "phone"), (bl, "bob", "laptop"), (bp, "bob", "phone")):
            f = await c.login(u, d, env.key(f"{u}.{d}"))
            if f[0] != "welcome":
                raise StepError(f"{u}.{d}: {'|'.join(f)}")
        await a.ok("keys", "bob")
        cid = new_id()
        await a.ok("call", cid, "bob", b64u(b"offer"))
        await bl.event("ring", lambda f: f[4] == cid)
        await bp.event("ring", lambda f: f[4] == cid)
        await bl.ok("accept", cid, b64u(b"answer"))
        await a.event("answer", lambda f: f[4] == cid and f[5] == "laptop")
        await bp.event("elsewhere", lambda f: f[4] == cid)
        await a.ok("end", cid)
        await bl.event("ended", lambda f: f[4] == cid and f[5] == "hangup")
        return time.monotonic() - t0
    finally:
        for c in (a, bl, bp):
            await c.close()


async def flood(server: Server):
    lt = float(argv_value(server, "--signal-login-timeout", "10"))
    rss0, fd0 = server.rss_kb(), server.fds()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-u", os.path.join(os.path.dirname(__file__), "flood.py"), str(server.ports["signal_tcp"]),
        str(FLOOD_N), str(lt), stdout=asyncio.subprocess.PIPE)
    with open(os.path.join(env.piddir, "flood-client"), "w") as f:
        f.write(str(proc.pid))
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), lt + 60)
        opened = json.loads(line)
        rss1, fd1 = server.rss_kb(), server.fds()
        info_open = (f"{opened['opened']}/{FLOOD_N} opened with hello in {opened['open_s']} s "
                     f"(client RLIMIT_NOFILE {opened['nofile']}), {opened['live']} still open")
        # Meanwhile: a normal client logs in and does keys, and a whole call happens.
        p_ok, p_secs, p_detail = await probe(server.ports, env, 2.0)
        try:
            call_secs = await full_call(server)
            call_detail = f"full call (login x3, keys, call, ring x2, accept, answer, elsewhere, end, ended) in {call_secs * 1000:.0f} ms"
            call_ok = call_secs < 5
        except (StepError, OSError, asyncio.TimeoutError) as e:
            call_ok, call_detail = False, f"full call failed: {e}"
        rss_mid = server.rss_kb()
        live_now = opened["live"]
        rep.check(opened["opened"] == FLOOD_N and live_now >= FLOOD_N * 0.99 and p_ok and call_ok,
                  "2.flood-10k-served-meanwhile",
                  f"{info_open}; meanwhile normal client {p_detail}; {call_detail}",
                  f"{info_open}; first failure {opened['first_fail']}; probe: {p_detail}; {call_detail}")

        line = await asyncio.wait_for(proc.stdout.readline(), lt * 2 + 90)
        done = json.loads(line)
        await asyncio.sleep(3)
        rss2, fd2 = server.rss_kb(), server.fds()
        timeouts = done["errors"].get("error|timeout", 0)
        ok = (timeouts == FLOOD_N and done["closed"] == FLOOD_N and done["life_min"] is not None
              # Not before the login timeout. The client stamps a connection when its event loop sees it
              # connected, which with 10,000 connects in flight can be a few hundred ms after the server
              # accepted it (and started the timeout): 19.79 s was seen for a 20 s timeout, so 1 s of
              # slack. The upper bound is loose on purpose (a shared 2-core machine delays 10,000 closes
              # by seconds): it only catches connections left open.
              and done["life_min"] >= lt - 1.0 and done["life_max"] <= lt * 2 + 30)
        rep.check(ok, "2.flood-10k-timeout",
                  f"{timeouts}/{FLOOD_N} got error|timeout and all {done['closed']} closed; connect->close "
                  f"min/median/max {done['life_min']}/{done['life_median']}/{done['life_max']} s "
                  f"(signal.login_timeout {lt:g} s)",
                  f"answers {done['errors']}, closed {done['closed']}/{FLOOD_N}, failures {done['fail']} "
                  f"({done['first_fail']}), lifetimes {done['life_min']}/{done['life_median']}/{done['life_max']} s")
        p_ok, _, p_detail = await probe(server.ports, env, PROBE_LIMIT)
        rep.check(fd2 <= fd0 + 20 and p_ok, "2.flood-10k-resources",
                  f"server RSS before {rss0 / 1024:.1f} MiB, with 10k open {rss1 / 1024:.1f} MiB "
                  f"(after the call {rss_mid / 1024:.1f} MiB), 3 s after all closed {rss2 / 1024:.1f} MiB; "
                  f"fds {fd0} -> {fd1} -> {fd2}; then normal client: {p_detail}",
                  f"fds {fd0} -> {fd1} -> {fd2} (leak?); RSS {rss0}/{rss1}/{rss2} KiB; probe {p_detail}")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def main():
    main_server, flood_server = Server(sys.argv[1]), Server(sys.argv[2])
    max_line = int(argv_value(main_server, "--signal-max-line", "65536"))
    login_timeout = float(argv_value(main_server, "--signal-login-timeout", "10"))
    steps = [replayed_login(main_server), stale(main_server), wrong_key(main_server), before_login(main_server),
             oversized(main_server, max_line), garbage(main_server), slowloris(main_server, login_timeout),
             websocket_abuse(main_server, max_line)]
    for step in steps:
        try:
            await step
        except (StepError, OSError, asyncio.TimeoutError) as e:
            rep.fail("2.step", f"{step.__name__ if hasattr(step, '__name__') else step}: {type(e).__name__} {e}")
    if os.environ.get("SIG_SKIP_FLOOD") != "1":
        try:
            await flood(flood_server)
        except (StepError, OSError, asyncio.TimeoutError, ValueError) as e:
            rep.fail("2.flood", f"{type(e).__name__} {e}")
    print(f"RESULT {rep.passed} {rep.failed}")


asyncio.run(main())
