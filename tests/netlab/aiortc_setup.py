#!/usr/bin/env python3
"""Call setup time of a real WebRTC stack (aiortc) between two processes, for comparison with parley.

    aiortc_setup.py caller|callee DIR STUN_URL TURN_URL TURN_USER TURN_PASS [RING_S] [HOLD_S] [TIMEOUT_S]

Run one `caller` (e.g. in netlab namespace a) and one `callee` (namespace b) with the same DIR, a
directory both can see (the filesystem is shared across network namespaces); the two exchange the SDP
through files in it, written atomically (write + rename) and polled every millisecond:

  caller: RTCPeerConnection(iceServers = STUN_URL + TURN_URL, default iceTransportPolicy "all"), a tone
          track, createOffer + setLocalDescription (aiortc gathers every candidate here, before the offer
          is written: no trickle), writes DIR/offer.json, waits for DIR/answer.json and applies it.
  callee: waits for DIR/offer.json, setRemoteDescription(offer), adds its tone track and gathers its own
          candidates while "ringing" (the ring lasts RING_S, default 1 s, from the offer's arrival; the
          gathering runs inside the ring, as a phone's would), then "accepts": createAnswer +
          setLocalDescription (which starts its ICE checks) and writes DIR/answer.json. accept_us = the
          wall clock (time.time(), µs) as the answer file is written (it is carried in the file).

Each side then measures first_frame_us = the wall clock when track.recv() on the remote audio track
returns its first decoded frame (this includes aiortc's audio jitter buffer prefetch, as a listener
would hear it), stays HOLD_S (default 1.5 s) longer, and prints one JSON line:

  {"role", "connected", "accept_us", "first_frame_us", "setup_ms" (first_frame_us - accept_us),
   "path" (direct|relay), "pair" (ICE's nominated pair), "ice_completed_ms" / "dtls_connected_ms" (ICE
   done / connectionState "connected" = DTLS done, ms after accept), "events" (every state change, ms
   after accept), "frames", "error"}

The caller learns accept_us from the answer file. All namespaces share the system clock, so the two
processes' times are comparable. Exit 0 when this side decoded audio, else 1.
"""

import asyncio
import fractions
import json
import math
import os
import sys
import time

import av
import numpy
from aiortc import (MediaStreamTrack, RTCConfiguration, RTCIceServer, RTCPeerConnection,
                    RTCSessionDescription)

RATE = 48000
SAMPLES = 960  # 20 ms


def now_us() -> int:
    return time.time_ns() // 1000


class Tone(MediaStreamTrack):
    """A paced sine tone at -20 dBFS-ish: what a microphone track would deliver, without a device."""

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
        pcm = (3277 * numpy.sin(2 * math.pi * self.hz * t)).astype(numpy.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self.pts
        frame.time_base = fractions.Fraction(1, RATE)
        self.pts += SAMPLES
        return frame


def write_atomic(path: str, obj: dict) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.rename(tmp, path)


async def wait_file(path: str, deadline: float) -> dict:
    while True:
        try:
            with open(path) as f:
                return json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {os.path.basename(path)} within the timeout")
        await asyncio.sleep(0.001)


def selected_pair(pc: RTCPeerConnection):
    """aioice's nominated pair for component 1 (there is no public accessor in aiortc)."""
    try:
        ice = pc.getTransceivers()[0].receiver.transport.transport
        return ice._connection._nominated.get(1)
    except Exception:
        return None


async def run(role: str, d: str, stun: str, turn: str, user: str, password: str, ring: float,
              hold: float, timeout: float) -> dict:
    out: dict = {"role": role, "connected": False, "accept_us": None, "first_frame_us": None,
                 "setup_ms": None, "path": None, "pair": None, "frames": 0, "events": [], "error": None}
    events: list[tuple[int, str]] = []
    marks: dict[str, int] = {}
    first = asyncio.get_running_loop().create_future()
    frames = 0

    config = RTCConfiguration(iceServers=[RTCIceServer(urls=stun),
                                          RTCIceServer(urls=turn, username=user, credential=password)])
    pc = RTCPeerConnection(configuration=config)

    @pc.on("iceconnectionstatechange")
    def _ice() -> None:
        events.append((now_us(), f"ice {pc.iceConnectionState}"))
        marks.setdefault(f"ice_{pc.iceConnectionState}", now_us())

    @pc.on("connectionstatechange")
    def _conn() -> None:
        events.append((now_us(), f"connection {pc.connectionState}"))
        marks.setdefault(f"connection_{pc.connectionState}", now_us())

    @pc.on("track")
    def _track(track) -> None:
        events.append((now_us(), f"track {track.kind}"))

        async def consume() -> None:
            nonlocal frames
            while True:
                try:
                    await track.recv()
                except Exception:
                    return
                frames += 1
                if not first.done():
                    first.set_result(now_us())
        asyncio.ensure_future(consume())

    offer_path, answer_path = os.path.join(d, "offer.json"), os.path.join(d, "answer.json")
    deadline = time.monotonic() + timeout
    try:
        if role == "caller":
            pc.addTrack(Tone(440.0))
            t = now_us()
            await pc.setLocalDescription(await pc.createOffer())  # gathers everything
            events.append((now_us(), f"offer gathered in {(now_us() - t) / 1000:.0f} ms"))
            write_atomic(offer_path, {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type})
            answer = await wait_file(answer_path, deadline)
            events.append((now_us(), "answer read"))
            out["accept_us"] = answer["accept_us"]
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        else:
            offer = await wait_file(offer_path, deadline)
            ring_end = time.monotonic() + ring
            events.append((now_us(), "offer read, ringing"))
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type=offer["type"]))
            pc.addTrack(Tone(660.0))
            t = now_us()
            for tr in pc.getTransceivers():  # gather while ringing (idempotent: setLocalDescription reuses it)
                await tr.receiver.transport.transport.iceGatherer.gather()
            events.append((now_us(), f"gathered in {(now_us() - t) / 1000:.0f} ms while ringing"))
            await asyncio.sleep(max(0.0, ring_end - time.monotonic()))
            t_decide = now_us()
            await pc.setLocalDescription(await pc.createAnswer())  # starts this side's ICE checks
            # accept = the moment the answer is written (a small file: the write + rename take well
            # under a millisecond after this timestamp)
            out["accept_us"] = now_us()
            out["accept_decision_us"] = t_decide  # before createAnswer/setLocalDescription
            write_atomic(answer_path, {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type,
                                       "accept_us": out["accept_us"]})
        remaining = deadline - time.monotonic()
        out["first_frame_us"] = await asyncio.wait_for(first, max(0.1, remaining))
        out["connected"] = True
        out["setup_ms"] = round((out["first_frame_us"] - out["accept_us"]) / 1000, 1)
        pair = selected_pair(pc)
        if pair is not None:
            lc, rc = pair.local_candidate, pair.remote_candidate
            out["pair"] = f"{lc.type} {lc.host}:{lc.port} -> {rc.type} {rc.host}:{rc.port}"
            out["path"] = "relay" if "relay" in (lc.type, rc.type) else "direct"
        await asyncio.sleep(hold)
    except Exception as exc:  # noqa: BLE001 - reported in the JSON
        out["error"] = f"{type(exc).__name__}: {exc}"
        pair = selected_pair(pc)
        if pair is not None:
            out["pair"] = f"{pair.local_candidate.type} -> {pair.remote_candidate.type}"
    finally:
        out["frames"] = frames
        base = out["accept_us"] or 0
        for key, name in (("ice_completed", "ice_completed_ms"), ("connection_connected", "dtls_connected_ms")):
            out[name] = round((marks[key] - base) / 1000, 1) if base and key in marks else None
        out["events"] = [f"{(t - base) / 1000:+.1f} ms {what}" if base else what for t, what in events]
        await pc.close()
    return out


def main(argv) -> int:
    if len(argv) < 7:
        print(__doc__)
        return 2
    role, d, stun, turn, user, password = argv[1:7]
    ring = float(argv[7]) if len(argv) > 7 else 1.0
    hold = float(argv[8]) if len(argv) > 8 else 1.5
    timeout = float(argv[9]) if len(argv) > 9 else 25.0
    if role not in ("caller", "callee"):
        print(__doc__)
        return 2
    out = asyncio.run(run(role, d, stun, turn, user, password, ring, hold, timeout))
    print(json.dumps(out), flush=True)
    return 0 if out["connected"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
