#!/usr/bin/env python3
"""STUN Binding checks against a server, driven by aioice (a STUN/ICE library we did not write).

    aioice_client.py udp     HOST PORT           aioice.stun.Transaction over a datagram endpoint
    aioice_client.py gather  HOST PORT           aioice.Connection gathers a server-reflexive candidate
    aioice_client.py tcp     HOST PORT           aioice's stream STUN client (turn.TurnClientTcpProtocol)
    aioice_client.py tls     HOST PORT CAFILE    the same over TLS (Python ssl, verifying the certificate)
    aioice_client.py rfc5769 HOST PORT CAFILE    the RFC 5769 §2.1 sample request, verbatim, over TLS

Each mode prints what it saw, a last line `RESULT ok ...` or `RESULT fail ...`, and exits 0 or 1.
The check everywhere: the mapped address the server reports is the client socket's own address
(there is no NAT on loopback).
"""

import asyncio
import os
import socket
import ssl
import struct
import sys

import aioice
from aioice import stun, turn

TIMEOUT = 10


def result(ok: bool, text: str) -> int:
    print(f"RESULT {'ok' if ok else 'fail'} {text}", flush=True)
    return 0 if ok else 1


def show(message: stun.Message) -> None:
    print(f"response: {message}")
    for name, value in message.attributes.items():
        print(f"  {name} = {value!r}")


def binding_request() -> stun.Message:
    # A plain Binding request with FINGERPRINT, as ICE agents send to STUN servers.
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    request.add_fingerprint()
    return request


class DatagramClient(asyncio.DatagramProtocol):
    """The minimum aioice.stun.Transaction needs: send_stun(), and responses handed back."""

    def __init__(self) -> None:
        self.transactions: dict[bytes, stun.Transaction] = {}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            message = stun.parse_message(data)
        except ValueError as exc:
            print(f"unparsable datagram from {addr}: {exc}")
            return
        transaction = self.transactions.get(message.transaction_id)
        if transaction is not None:
            transaction.response_received(message, addr)

    def send_stun(self, message: stun.Message, addr) -> None:
        self.transport.sendto(bytes(message), addr)

    async def request(self, message: stun.Message, addr):
        transaction = stun.Transaction(message, addr, self)
        self.transactions[message.transaction_id] = transaction
        try:
            return await transaction.run()
        finally:
            del self.transactions[message.transaction_id]


async def mode_udp(host: str, port: int) -> int:
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(DatagramClient, local_addr=("127.0.0.1", 0))
    try:
        local = transport.get_extra_info("sockname")[:2]
        response, origin = await asyncio.wait_for(client.request(binding_request(), (host, port)), TIMEOUT)
    finally:
        transport.close()
    show(response)
    print(f"local socket {local[0]}:{local[1]}, answer came from {origin[0]}:{origin[1]}")
    mapped = response.attributes.get("XOR-MAPPED-ADDRESS")
    text = f"XOR-MAPPED-ADDRESS {fmt(mapped)} socket {fmt(local)}"
    if "OTHER-ADDRESS" in response.attributes:
        text += f" OTHER-ADDRESS {fmt(response.attributes['OTHER-ADDRESS'])}"
    if "RESPONSE-ORIGIN" in response.attributes:
        text += f" RESPONSE-ORIGIN {fmt(response.attributes['RESPONSE-ORIGIN'])}"
    ok = (response.message_class == stun.Class.RESPONSE and mapped is not None
          and tuple(mapped) == tuple(local) and tuple(origin) == (host, port))
    return result(ok, text)


async def mode_gather(host: str, port: int) -> int:
    connection = aioice.Connection(ice_controlling=True, components=1, stun_server=(host, port),
                                   use_ipv4=True, use_ipv6=False)
    try:
        await asyncio.wait_for(connection.gather_candidates(), TIMEOUT + 5)
        candidates = connection.local_candidates
    finally:
        await connection.close()
    for candidate in candidates:
        print(f"candidate: {candidate.to_sdp()}")
    srflx = [c for c in candidates if c.type == "srflx"]
    hosts = [c for c in candidates if c.type == "host"]
    if not srflx:
        return result(False, f"no server-reflexive candidate ({len(hosts)} host candidates: "
                              f"{', '.join(f'{c.host}:{c.port}' for c in hosts) or 'none'})")
    # Without NAT every srflx candidate is its base: related address == reflexive address.
    bad = [c for c in srflx if (c.host, c.port) != (c.related_address, c.related_port)]
    text = ", ".join(f"srflx {c.host}:{c.port} base {c.related_address}:{c.related_port}" for c in srflx)
    return result(not bad and len(srflx) == len([h for h in hosts if ":" not in h.host]), text)


async def stream_binding(host: str, port: int, context: ssl.SSLContext | None) -> int:
    loop = asyncio.get_running_loop()
    transport, protocol = await asyncio.wait_for(loop.create_connection(
        lambda: turn.TurnClientTcpProtocol((host, port), username=None, password=None,
                                           lifetime=600, channel_refresh_time=300),
        host=host, port=port, ssl=context, server_hostname="localhost" if context else None), TIMEOUT)
    try:
        local = transport.get_extra_info("sockname")[:2]
        server = transport.get_extra_info("peername")[:2]
        if context is not None:
            print(f"TLS {transport.get_extra_info('ssl_object').version()} "
                  f"cipher {transport.get_extra_info('cipher')[0]}")
        response, _ = await asyncio.wait_for(protocol.request(binding_request()), TIMEOUT)
    finally:
        transport.close()
    show(response)
    mapped = response.attributes.get("XOR-MAPPED-ADDRESS")
    ok = response.message_class == stun.Class.RESPONSE and mapped is not None and tuple(mapped) == tuple(local)
    text = f"XOR-MAPPED-ADDRESS {fmt(mapped)} socket {fmt(local)}"
    # RFC 5780 §7.3: RESPONSE-ORIGIN is the address the response was sent from, i.e. over a connection
    # the server's end of it. A mismatch is reported; it fails the check only with STRICT_ORIGIN=1.
    origin = response.attributes.get("RESPONSE-ORIGIN")
    if origin is not None:
        text += f" RESPONSE-ORIGIN {fmt(origin)}"
        if tuple(origin) != tuple(server):
            text += f" (server bug: should be {fmt(server)}, the server end of this connection)"
            ok = ok and os.environ.get("STRICT_ORIGIN") != "1"
    return result(ok, text)


def tls_context(cafile: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=cafile)  # verifies the chain and the name "localhost"
    return context


# RFC 5769 §2.1 sample request (SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME, MESSAGE-INTEGRITY,
# FINGERPRINT), byte for byte.
RFC5769_REQUEST = bytes.fromhex(
    "000100582112a442b7e7a701bc34d686fa87dfae"
    "802200105354554e207465737420636c69656e74"
    "00240004" "6e0001ff"
    "80290008" "932ff9b151263b36"
    "000600096576746a3a68367659202020"
    "00080014" "9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"
    "80280004" "e57a3bcf")


def raw_attributes(data: bytes):
    pos = 20
    while pos + 4 <= len(data):
        kind, length = struct.unpack("!HH", data[pos:pos + 4])
        yield kind, data[pos + 4:pos + 4 + length]
        pos += 4 + length + (-length % 4)


def mode_rfc5769(host: str, port: int, cafile: str) -> int:
    # Sanity: aioice parses the sample (and checks its FINGERPRINT) and its integrity with the RFC's password.
    sample = stun.parse_message(RFC5769_REQUEST)
    assert sample.check_message_integrity(b"VOkJxbRl1RmTxUk/WvJxBt"), "RFC 5769 sample integrity"
    with socket.create_connection((host, port), timeout=TIMEOUT) as raw:
        with tls_context(cafile).wrap_socket(raw, server_hostname="localhost") as tls:
            local = tls.getsockname()[:2]
            tls.sendall(RFC5769_REQUEST)
            data = b""
            while len(data) < 20 or len(data) < 20 + struct.unpack("!H", data[2:4])[0]:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                data += chunk
    print(f"answer ({len(data)} bytes): {data.hex()}")
    response = stun.parse_message(data)  # raises on a bad FINGERPRINT
    show(response)
    if response.transaction_id != sample.transaction_id:
        return result(False, "transaction ID differs from the request's")
    if response.message_class == stun.Class.RESPONSE:
        mapped = response.attributes.get("XOR-MAPPED-ADDRESS")
        return result(mapped is not None and tuple(mapped) == tuple(local),
                      f"success, XOR-MAPPED-ADDRESS {fmt(mapped)} socket {fmt(local)}")
    # The sample carries PRIORITY (0x0024), a comprehension-required ICE attribute: a STUN server that is
    # not an ICE agent must answer 420 listing it in UNKNOWN-ATTRIBUTES (RFC 8489 §6.3.1.1, §14.9).
    unknown = [struct.unpack("!H", value[i:i + 2])[0]
               for kind, value in raw_attributes(data) if kind == 0x000A
               for i in range(0, len(value) - 1, 2)]
    code = response.error_code
    text = f"error {code}, UNKNOWN-ATTRIBUTES {[hex(u) for u in unknown]}, FINGERPRINT " + \
        ("valid" if "FINGERPRINT" in response.attributes else "absent")
    return result(code == 420 and unknown == [0x0024] and "FINGERPRINT" in response.attributes, text)


def fmt(address) -> str:
    return f"{address[0]}:{address[1]}" if address else "none"


def main(argv: list[str]) -> int:
    if len(argv) < 4:
        print(__doc__)
        return 2
    mode, host, port = argv[1], argv[2], int(argv[3])
    try:
        if mode == "udp":
            return asyncio.run(mode_udp(host, port))
        if mode == "gather":
            return asyncio.run(mode_gather(host, port))
        if mode == "tcp":
            return asyncio.run(stream_binding(host, port, None))
        if mode == "tls":
            return asyncio.run(stream_binding(host, port, tls_context(argv[4])))
        if mode == "rfc5769":
            return mode_rfc5769(host, port, argv[4])
    except (Exception, asyncio.TimeoutError) as exc:
        return result(False, f"{type(exc).__name__}: {exc}")
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
