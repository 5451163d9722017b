#!/usr/bin/env python3
"""TURN checks against `parley serve`, driven by aioice (an ICE/TURN library we did not write).

    aioice_turn.py gather HOST PORT TRANSPORT USER PASS RELAY_IP
        One aioice.Connection, relay-only, gathers over TURN TRANSPORT (udp, tcp or tls: TLS needs
        SSL_CERT_FILE naming the server's certificate, as aioice verifies it, and goes to port
        $TURN_TLS_PORT, default 5349, instead of PORT); the check: exactly
        one candidate, of type relay, on RELAY_IP (the server's --turn-relay-ipv4).
    aioice_turn.py pair HOST PORT TRANSPORT_A TRANSPORT_B USER PASS RELAY_IP
        Two relay-only aioice.Connections (A over TURN TRANSPORT_A, B over TRANSPORT_B) run ICE against
        each other (connectivity checks travel relay to relay through the server), then exchange
        COUNT datagrams each way over the nominated pair; the check: the nominated pairs are relay/relay
        on RELAY_IP and every datagram arrived intact.

    aioice_turn.py side NAME PEER DIR HOST PORT TRANSPORT USER PASS RELAY_IP
        One relay-only agent of a pair that runs in two processes (e.g. two network namespaces):
        publishes its ICE credentials and candidates in DIR/NAME.json, reads DIR/PEER.json, runs
        ICE (NAME "a" is controlling), sends COUNT datagrams and expects COUNT from the peer; the
        check: the nominated pair is relay/relay on RELAY_IP and all COUNT datagrams arrived.
    aioice_turn.py probe HOST PORT USER PASS SECRET
        Protocol edges, one `CHECK ok|fail NAME: ...` line each, with aioice's TURN client protocol
        over UDP: ChannelBind at both ends of RFC 8656's channel range (0x4000, 0x4FFF: success)
        and just past it (0x5000, 0x7FFF: 400, RFC 8656 §12 - RFC 5766 allowed up to 0x7FFF);
        a wrong password and an expired REST username (SECRET) are refused with 401.
    aioice_turn.py large HOST PORT TRANSPORT USER PASS PEER_IP
        Datagram sizes through a relay (TURN over TRANSPORT, a plain UDP peer socket on PEER_IP):
        the peer sends SIZES bytes to the relayed address and the client must get them intact,
        then the client sends SIZES bytes (ChannelData) and the peer must get them intact. UDP
        datagrams up to 65507 bytes are valid; a relay must forward them whole or not at all
        (RFC 8656 §11 Send/Data, §12 ChannelData).
    aioice_turn.py deny HOST PORT USER PASS PEER_IP
        CreatePermission for PEER_IP on a server whose peer policy refuses it: 403 (Forbidden).

USER/PASS may be `rest:SECRET:NAME`/`-`: REST credentials (username `EXPIRY:NAME`, password
base64(HMAC-SHA1(SECRET, username))), computed here.

Prints what it saw, then one last line `RESULT ok ...` or `RESULT fail ...`; exit 0 or 1.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import sys
import time

import aioice
from aioice import stun, turn
from aioice.ice import TransportPolicy

TIMEOUT = 15
COUNT = 50


def result(ok: bool, text: str) -> int:
    print(f"RESULT {'ok' if ok else 'fail'} {text}", flush=True)
    return 0 if ok else 1


def credentials(user: str, password: str) -> tuple[str, str]:
    if user.startswith("rest:"):
        _, secret, name = user.split(":", 2)
        username = f"{int(time.time()) + 3600}:{name}"
        digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
        return username, base64.b64encode(digest).decode()
    return user, password


def connection(host: str, port: int, transport: str, user: str, password: str, controlling: bool):
    username, credential = credentials(user, password)
    # "tls": TURN over TLS (turns:); aioice verifies the server with Python's default context, so the
    # caller points SSL_CERT_FILE at the test certificate.
    if transport == "tls":
        port = int(os.environ.get("TURN_TLS_PORT", "5349"))
    return aioice.Connection(ice_controlling=controlling, components=1, turn_server=(host, port),
                             turn_username=username, turn_password=credential,
                             turn_transport="tcp" if transport == "tls" else transport,
                             turn_ssl=transport == "tls", use_ipv4=True, use_ipv6=False,
                             transport_policy=TransportPolicy.RELAY)


def describe(candidates) -> str:
    return ", ".join(f"{c.type} {c.host}:{c.port}" for c in candidates) or "none"


async def mode_gather(host, port, transport, user, password, relay_ip) -> int:
    conn = connection(host, port, transport, user, password, True)
    try:
        await asyncio.wait_for(conn.gather_candidates(), TIMEOUT)
        candidates = conn.local_candidates
    finally:
        await conn.close()
    for c in candidates:
        print(f"candidate: {c.to_sdp()}")
    ok = len(candidates) == 1 and candidates[0].type == "relay" and candidates[0].host == relay_ip
    return result(ok, f"TURN over {transport}: {describe(candidates)} (want one relay on {relay_ip})")


async def mode_pair(host, port, ta, tb, user, password, relay_ip) -> int:
    a = connection(host, port, ta, user, password, True)
    b = connection(host, port, tb, user, password, False)
    try:
        await asyncio.wait_for(asyncio.gather(a.gather_candidates(), b.gather_candidates()), TIMEOUT)
        print(f"A ({ta}): {describe(a.local_candidates)}")
        print(f"B ({tb}): {describe(b.local_candidates)}")
        for c in a.local_candidates:
            await b.add_remote_candidate(c)
        for c in b.local_candidates:
            await a.add_remote_candidate(c)
        await a.add_remote_candidate(None)
        await b.add_remote_candidate(None)
        a.remote_username, a.remote_password = b.local_username, b.local_password
        b.remote_username, b.remote_password = a.local_username, a.local_password
        t0 = time.monotonic()
        await asyncio.wait_for(asyncio.gather(a.connect(), b.connect()), TIMEOUT)
        print(f"ICE connected in {time.monotonic() - t0:.2f} s")
        pairs = {}
        for name, conn in (("A", a), ("B", b)):
            pair = conn._nominated.get(1)  # aioice keeps the selected pair here (no public accessor)
            pairs[name] = pair
            print(f"{name} nominated: {pair.local_candidate.type} {pair.local_candidate.host}:"
                  f"{pair.local_candidate.port} -> {pair.remote_candidate.type} "
                  f"{pair.remote_candidate.host}:{pair.remote_candidate.port}")

        async def pump(sender, receiver, tag):
            got = []
            for i in range(COUNT):
                await sender.send(f"{tag} {i} ".encode() + bytes(100))
                await asyncio.sleep(0.005)

            async def drain():
                while len(got) < COUNT:
                    got.append(await receiver.recv())
            try:
                await asyncio.wait_for(drain(), 5)
            except asyncio.TimeoutError:
                pass
            intact = sum(1 for g in got if g.startswith(tag.encode()) and len(g) >= 100)
            return intact

        ab, ba = await asyncio.gather(pump(a, b, "a2b"), pump(b, a, "b2a"))
    finally:
        await asyncio.gather(a.close(), b.close(), return_exceptions=True)
    relay_pairs = all(p is not None and p.local_candidate.type == "relay" and p.remote_candidate.type == "relay"
                      and p.local_candidate.host == relay_ip and p.remote_candidate.host == relay_ip
                      for p in pairs.values())
    text = (f"A over {ta}, B over {tb}: nominated pairs relay/relay on {relay_ip}: {relay_pairs}; "
            f"A->B {ab}/{COUNT}, B->A {ba}/{COUNT} datagrams")
    return result(relay_pairs and ab == COUNT and ba == COUNT, text)


def write_json(path: str, obj) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f)
    os.replace(path + ".tmp", path)


async def wait_file(path: str, seconds: float):
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.02)
    with open(path) as f:
        return json.load(f)


async def mode_side(me, peer, directory, host, port, transport, user, password, relay_ip) -> int:
    conn = connection(host, port, transport, user, password, me == "a")
    try:
        await asyncio.wait_for(conn.gather_candidates(), TIMEOUT)
        mine = conn.local_candidates
        print(f"{me} ({transport}): {describe(mine)}")
        write_json(os.path.join(directory, f"{me}.json"),
                   {"ufrag": conn.local_username, "pwd": conn.local_password,
                    "candidates": [c.to_sdp() for c in mine]})
        theirs = await wait_file(os.path.join(directory, f"{peer}.json"), 20)
        if theirs is None:
            return result(False, f"{peer} never published its candidates")
        for sdp in theirs["candidates"]:
            await conn.add_remote_candidate(aioice.Candidate.from_sdp(sdp))
        await conn.add_remote_candidate(None)
        conn.remote_username, conn.remote_password = theirs["ufrag"], theirs["pwd"]
        print(f"{peer}'s candidates: {theirs['candidates']}")
        t0 = time.monotonic()
        await asyncio.wait_for(conn.connect(), TIMEOUT)
        print(f"ICE connected in {time.monotonic() - t0:.2f} s")
        pair = conn._nominated.get(1)  # aioice keeps the selected pair here (no public accessor)
        lc, rc = pair.local_candidate, pair.remote_candidate
        text_pair = f"{lc.type} {lc.host}:{lc.port} -> {rc.type} {rc.host}:{rc.port}"
        print(f"nominated: {text_pair}")
        for i in range(COUNT):
            await conn.send(f"{me}->{peer} {i} ".encode() + bytes(100))
            await asyncio.sleep(0.005)
        got = []

        async def drain():
            while len(got) < COUNT:
                got.append(await conn.recv())
        try:
            await asyncio.wait_for(drain(), 5)
        except asyncio.TimeoutError:
            pass
        intact = sum(1 for g in got if g.startswith(f"{peer}->{me} ".encode()) and len(g) >= 100)
        # Stay until the peer has its datagrams too: closing deletes our allocation.
        write_json(os.path.join(directory, f"{me}.done"), {"received": intact})
        await wait_file(os.path.join(directory, f"{peer}.done"), 8)
    finally:
        await conn.close()
    relay = (lc.type, rc.type) == ("relay", "relay") and lc.host == relay_ip and rc.host == relay_ip
    return result(relay and intact == COUNT,
                  f"TURN over {transport}: nominated {text_pair}; received {intact}/{COUNT} datagrams from {peer}")


async def turn_client(host, port, user, password):
    username, credential = credentials(user, password)
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: turn.TurnClientUdpProtocol((host, port), username=username, password=credential,
                                           lifetime=60, channel_refresh_time=30),
        remote_addr=(host, port))
    return transport, protocol


async def error_of(coro) -> int | None:
    """The STUN error code a request ends with; None on success."""
    try:
        await asyncio.wait_for(coro, TIMEOUT)
        return None
    except stun.TransactionFailed as exc:
        return exc.response.error_code


def check(ok: bool, name: str, text: str) -> bool:
    print(f"CHECK {'ok' if ok else 'fail'} {name}: {text}", flush=True)
    return ok


async def mode_probe(host, port, user, password, secret) -> int:
    results = []
    transport, protocol = await turn_client(host, port, user, password)
    try:
        relayed = await asyncio.wait_for(protocol.connect(), TIMEOUT)
        print(f"allocation: relayed {relayed[0]}:{relayed[1]}")
        peer = (relayed[0], 9)  # any address the server's peer policy allows
        for channel, want in ((0x4000, None), (0x4FFF, None), (0x5000, 400), (0x7FFF, 400)):
            request = stun.Message(message_method=stun.Method.CHANNEL_BIND,
                                   message_class=stun.Class.REQUEST)
            request.attributes["CHANNEL-NUMBER"] = channel
            request.attributes["XOR-PEER-ADDRESS"] = (peer[0], peer[1] + channel - 0x4000)
            got = await error_of(protocol.request(request))
            results.append(check(got == want, f"ChannelBind 0x{channel:04X}",
                                 f"{'success' if got is None else got} (want {'success' if want is None else want})"))
        await protocol.delete()
    finally:
        transport.close()
    for name, (u, p) in (("wrong password", (user, password + "x")),
                         ("expired REST username", (f"{int(time.time()) - 60}:{user}", None))):
        if p is None:
            p = base64.b64encode(hmac.new(secret.encode(), u.encode(), hashlib.sha1).digest()).decode()
        transport, protocol = await turn_client(host, port, u, p)
        try:
            got = await error_of(protocol.connect())
        finally:
            transport.close()
        results.append(check(got == 401, f"Allocate with {name}", f"{got or 'success'} (want 401)"))
    return result(all(results), f"{sum(results)}/{len(results)} protocol checks as expected")


SIZES = (1200, 2048, 2049, 4000, 4095, 4096, 8000)
# Parley relays datagrams up to 4095 bytes whole (docs/PROTOCOL.md §4.3) and drops larger ones whole:
# above that, "nothing" is the right outcome and anything else (a cut datagram) is a failure.
MAX_RELAYED = 4095


class Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()

    def connection_made(self, transport) -> None:
        pass

    def datagram_received(self, data, addr) -> None:
        self.queue.put_nowait(data)


async def next_datagram(collector: Collector, seconds: float = 1.5):
    try:
        return await asyncio.wait_for(collector.queue.get(), seconds)
    except asyncio.TimeoutError:
        return None


async def mode_large(host, port, transport, user, password, peer_ip) -> int:
    username, credential = credentials(user, password)
    loop = asyncio.get_running_loop()
    relay, client = await asyncio.wait_for(turn.create_turn_endpoint(
        Collector, server_addr=(host, port), username=username, password=credential,
        transport=transport), TIMEOUT)
    peer_transport, peer = await loop.create_datagram_endpoint(Collector, local_addr=(peer_ip, 0))
    relayed = relay.get_extra_info("sockname")
    peer_addr = peer_transport.get_extra_info("sockname")
    print(f"TURN over {transport}: relayed {relayed[0]}:{relayed[1]}, peer {peer_addr[0]}:{peer_addr[1]}")
    bad = []
    try:
        relay.sendto(b"hello", peer_addr)  # binds a channel, which installs the permission
        got = await next_datagram(peer)
        if got != b"hello":
            return result(False, f"first datagram client->peer: {got!r}")
        for direction in ("peer->client", "client->peer"):
            for size in SIZES:
                payload = bytes((i * 7 + size) % 251 for i in range(size))
                if direction == "peer->client":
                    peer_transport.sendto(payload, relayed)
                    got = await next_datagram(client, 0.5)
                else:
                    relay.sendto(payload, peer_addr)
                    got = await next_datagram(peer, 0.5)
                seen = "nothing" if got is None else ("intact" if got == payload else f"{len(got)} bytes, corrupted")
                print(f"{direction} {size} bytes: {seen}")
                expected_nothing = size > MAX_RELAYED
                if (expected_nothing and got is not None) or (not expected_nothing and got != payload):
                    bad.append(f"{direction} {size}: {seen}")
    finally:
        peer_transport.close()
        relay.close()
        await asyncio.sleep(0.1)
    return result(not bad, f"TURN over {transport}, sizes {', '.join(map(str, SIZES))} both ways: "
                           + (f"all intact up to {MAX_RELAYED}, dropped whole above" if not bad else "; ".join(bad)))


async def mode_deny(host, port, user, password, peer_ip) -> int:
    transport, protocol = await turn_client(host, port, user, password)
    try:
        relayed = await asyncio.wait_for(protocol.connect(), TIMEOUT)
        request = stun.Message(message_method=stun.Method.CREATE_PERMISSION,
                               message_class=stun.Class.REQUEST)
        request.attributes["XOR-PEER-ADDRESS"] = (peer_ip, 9)
        got = await error_of(protocol.request(request))
        await protocol.delete()
    finally:
        transport.close()
    return result(got == 403, f"relayed {relayed[0]}:{relayed[1]}; CreatePermission {peer_ip}: "
                              f"{got or 'success'} (want 403)")


def main(argv) -> int:
    try:
        if len(argv) == 8 and argv[1] == "gather":
            return asyncio.run(mode_gather(argv[2], int(argv[3]), argv[4], argv[5], argv[6], argv[7]))
        if len(argv) == 9 and argv[1] == "pair":
            return asyncio.run(mode_pair(argv[2], int(argv[3]), argv[4], argv[5], argv[6], argv[7], argv[8]))
        if len(argv) == 11 and argv[1] == "side":
            return asyncio.run(mode_side(argv[2], argv[3], argv[4], argv[5], int(argv[6]), argv[7], argv[8],
                                         argv[9], argv[10]))
        if len(argv) == 7 and argv[1] == "probe":
            return asyncio.run(mode_probe(argv[2], int(argv[3]), argv[4], argv[5], argv[6]))
        if len(argv) == 8 and argv[1] == "large":
            return asyncio.run(mode_large(argv[2], int(argv[3]), argv[4], argv[5], argv[6], argv[7]))
        if len(argv) == 7 and argv[1] == "deny":
            return asyncio.run(mode_deny(argv[2], int(argv[3]), argv[4], argv[5], argv[6]))
    except (Exception, asyncio.TimeoutError) as exc:
        return result(False, f"{type(exc).__name__}: {exc}")
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
