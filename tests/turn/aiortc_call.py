#!/usr/bin/env python3
"""A relay-only WebRTC audio call between two aiortc peers through a TURN server.

    aiortc_call.py URL_A URL_B USER PASS RELAY_IP [SECONDS] [MIN_FRAMES]

URL_A / URL_B: each peer's TURN URL (e.g. turn:127.0.0.1:3478, turn:127.0.0.1:3478?transport=tcp).
USER may be `rest:SECRET:NAME` (PASS then ignored): REST credentials computed here.

Both peers use iceTransportPolicy=relay, so only relayed candidates exist; each sends a 440/660 Hz
tone (48 kHz mono, 20 ms frames, Opus on the wire) for SECONDS (default 3) after the call connects.
The check: every candidate in both SDPs is `typ relay` on RELAY_IP, both peers reach `connected`,
ICE nominated a relay/relay pair on both sides, each side decoded at least MIN_FRAMES (default 50)
audio frames that are not silence, and RTP stats agree (packets received > 0 both ways).

Prints what it saw and a last line `RESULT ok ...` or `RESULT fail ...`; exit 0 or 1.
"""

import asyncio
import base64
import fractions
import hashlib
import hmac
import math
import sys
import time

import av
import numpy
from aiortc import (MediaStreamTrack, RTCConfiguration, RTCIceServer, RTCPeerConnection)
from aiortc.rtcconfiguration import RTCIceTransportPolicy

RATE = 48000
SAMPLES = 960  # 20 ms


class Tone(MediaStreamTrack):
    """A paced sine tone: what a microphone track would deliver, without a device."""

    kind = "audio"

    def __init__(self, hz: float) -> None:
        super().__init__()
        self.hz = hz
        self.pts = 0
        self.start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.start is None:
            self.start = time.monotonic()
        due = self.start + self.pts / RATE
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        t = (self.pts + numpy.arange(SAMPLES)) / RATE
        pcm = (8000 * numpy.sin(2 * math.pi * self.hz * t)).astype(numpy.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self.pts
        frame.time_base = fractions.Fraction(1, RATE)
        self.pts += SAMPLES
        return frame


class Sink:
    """Counts decoded frames and the loudest sample in them."""

    def __init__(self) -> None:
        self.frames = 0
        self.peak = 0
        self.task: asyncio.Task | None = None

    def consume(self, track) -> None:
        async def run() -> None:
            while True:
                try:
                    frame = await track.recv()
                except Exception:
                    return
                self.frames += 1
                data = frame.to_ndarray()
                self.peak = max(self.peak, int(abs(data).max()))
        self.task = asyncio.ensure_future(run())


def ice_server(url: str, user: str, password: str) -> RTCIceServer:
    if user.startswith("rest:"):
        _, secret, name = user.split(":", 2)
        user = f"{int(time.time()) + 3600}:{name}"
        password = base64.b64encode(hmac.new(secret.encode(), user.encode(), hashlib.sha1).digest()).decode()
    return RTCIceServer(urls=url, username=user, credential=password)


def candidates(sdp: str) -> list[str]:
    return [line[len("a=candidate:"):] for line in sdp.splitlines() if line.startswith("a=candidate:")]


def nominated(pc: RTCPeerConnection):
    ice = pc.getSenders()[0].transport.transport  # RTCDtlsTransport -> RTCIceTransport
    return ice._connection._nominated.get(1)  # aioice's selected pair (no public accessor)


async def rtp_stats(pc: RTCPeerConnection) -> tuple[int, int]:
    sent = received = 0
    for stat in (await pc.getStats()).values():
        if stat.type == "outbound-rtp":
            sent += stat.packetsSent
        elif stat.type == "inbound-rtp":
            received += stat.packetsReceived
    return sent, received


async def call(url_a: str, url_b: str, user: str, password: str, relay_ip: str, seconds: float,
               min_frames: int) -> int:
    peers, sinks = {}, {}
    for name, url, hz in (("A", url_a, 440.0), ("B", url_b, 660.0)):
        config = RTCConfiguration(iceServers=[ice_server(url, user, password)],
                                  iceTransportPolicy=RTCIceTransportPolicy.RELAY)
        pc = RTCPeerConnection(configuration=config)
        pc.addTrack(Tone(hz))
        sink = Sink()
        pc.on("track", sink.consume)
        peers[name], sinks[name] = pc, sink
    a, b = peers["A"], peers["B"]
    problems: list[str] = []
    try:
        t0 = time.monotonic()
        await a.setLocalDescription(await a.createOffer())  # waits for gathering: no trickle needed
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(b.localDescription)
        for name, pc in peers.items():
            cands = candidates(pc.localDescription.sdp)
            print(f"{name} candidates: {cands}")
            if not cands:
                problems.append(f"{name} offered no candidate")
            bad = [c for c in cands if " typ relay" not in c or f" {relay_ip} " not in c]
            if bad:
                problems.append(f"{name} offered non-relay candidates {bad}")
        deadline = time.monotonic() + 20
        while not all(pc.connectionState == "connected" for pc in peers.values()):
            if time.monotonic() > deadline or any(pc.connectionState == "failed" for pc in peers.values()):
                raise RuntimeError("call did not connect: " + ", ".join(
                    f"{n} {pc.connectionState}/{pc.iceConnectionState}" for n, pc in peers.items()))
            await asyncio.sleep(0.05)
        print(f"connected in {time.monotonic() - t0:.2f} s")
        await asyncio.sleep(seconds)
        pairs = {}
        for name, pc in peers.items():
            pair = nominated(pc)
            if pair is None:
                problems.append(f"{name}: no nominated pair")
                continue
            lc, rc = pair.local_candidate, pair.remote_candidate
            pairs[name] = f"{lc.type} {lc.host}:{lc.port} -> {rc.type} {rc.host}:{rc.port}"
            print(f"{name} selected pair: {pairs[name]}")
            if (lc.type, rc.type) != ("relay", "relay") or lc.host != relay_ip or rc.host != relay_ip:
                problems.append(f"{name} selected pair is not relay/relay on {relay_ip}: {pairs[name]}")
        stats = {name: await rtp_stats(pc) for name, pc in peers.items()}
        for name in peers:
            sink = sinks[name]
            print(f"{name}: decoded {sink.frames} frames, peak {sink.peak}; RTP sent/received {stats[name]}")
            if sink.frames < min_frames:
                problems.append(f"{name} decoded only {sink.frames} frames (want >= {min_frames})")
            if sink.peak < 1000:
                problems.append(f"{name} heard silence (peak {sink.peak})")
            if stats[name][1] == 0:
                problems.append(f"{name} RTP packetsReceived is 0")
    finally:
        await asyncio.gather(a.close(), b.close(), return_exceptions=True)
        for sink in sinks.values():
            if sink.task:
                sink.task.cancel()
    summary = (f"A ({url_a}) heard {sinks['A'].frames} frames, B ({url_b}) heard {sinks['B'].frames} "
               f"frames in {seconds:g} s; pairs {pairs.get('A', '?')} / {pairs.get('B', '?')}")
    if problems:
        print(f"RESULT fail {'; '.join(problems)} ({summary})", flush=True)
        return 1
    print(f"RESULT ok {summary}", flush=True)
    return 0


def main(argv) -> int:
    if len(argv) not in (6, 7, 8):
        print(__doc__)
        return 2
    seconds = float(argv[6]) if len(argv) > 6 else 3.0
    min_frames = int(argv[7]) if len(argv) > 7 else 50
    try:
        return asyncio.run(call(argv[1], argv[2], argv[3], argv[4], argv[5], seconds, min_frames))
    except (Exception, asyncio.TimeoutError) as exc:
        print(f"RESULT fail {type(exc).__name__}: {exc}", flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
