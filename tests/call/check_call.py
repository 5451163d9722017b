#!/usr/bin/env python3
"""Checks one end-to-end call of tests/call/run.sh.

  check_call.py audio WAV FREQ LEVEL_DBFS          received audio: dominant frequency and level
  check_call.py capture PCAP KEYLOG DUMP...        the server-side capture: no key, no plaintext audio,
                                                   and the media datagrams in it open with the logged keys
Prints PASS/FAIL lines (the caller counts them)."""
import hashlib
import hmac
import subprocess
import sys
import wave

import numpy as np


def say(ok, label, detail):
    print(f"{'PASS' if ok else 'FAIL'} {label}: {detail}")
    return ok


def audio(path, freq, level):
    with wave.open(path) as w:
        rate, n = w.getframerate(), w.getnframes()
        x = np.frombuffer(w.readframes(n), dtype="<i2").astype(np.float64)
    # The middle of the recording: skip the start (playout ramp) and the end (hang-up).
    x = x[len(x) // 4: 3 * len(x) // 4]
    ok = say(len(x) >= rate, f"audio-length {path}", f"{len(x) / rate:.2f} s analysed (need >= 1 s)")
    if not ok:
        return
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    peak = np.argmax(spectrum)
    # Parabolic interpolation around the peak bin.
    if 0 < peak < len(spectrum) - 1:
        a, b, c = np.log(spectrum[peak - 1: peak + 2] + 1e-12)
        peak = peak + 0.5 * (a - c) / (a - 2 * b + c)
    found = peak * rate / len(x)
    rms = np.sqrt(np.mean(x ** 2))
    dbfs = 20 * np.log10(rms * np.sqrt(2) / 32767) if rms > 0 else -200
    say(abs(found - freq) <= 2, f"audio-frequency {path}", f"{found:.1f} Hz (sent {freq} Hz)")
    say(abs(dbfs - level) <= 2, f"audio-level {path}", f"{dbfs:.1f} dBFS (sent {level} dBFS)")


def expand(prk, info, length):
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:length]


def capture(pcap, keylog, dumps):
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

    raw = open(pcap, "rb").read()
    secrets = []
    for line in open(keylog):
        call, suite, direction, secret = line.split()
        secrets.append((int(suite), direction, bytes.fromhex(secret)))
    plain = set()
    for dump in dumps:
        for line in open(dump):
            frame, opus = line.split()
            plain.add(int(frame).to_bytes(4, "big") + bytes.fromhex(opus))
    say(len(secrets) >= 2 and len(plain) >= 100, "capture-inputs", f"{len(secrets)} logged secrets, {len(plain)} plaintext audio packets sent")
    # 1. No key material: the secrets and every key and IV derived from them (generation 0).
    material = []
    for _, _, s in secrets:
        material += [s, expand(s, b"parley media key", 32), expand(s, b"parley media iv", 12)]
    leaked = [m.hex()[:16] for m in material if m in raw]
    say(not leaked, "capture-no-key", f"{len(material)} secrets/keys/IVs searched in {len(raw)} captured bytes; found {len(leaked)}")
    # 2. No plaintext audio: no Opus payload (nor its tail past the frame index) appears.
    seen = [p for p in plain if p[4:] in raw and len(p) > 12]
    say(not seen, "capture-no-plaintext-audio", f"{len(plain)} Opus packets searched; {len(seen)} found in clear")
    # 3. Positive control: the media datagrams the capture holds open with the logged keys and carry
    #    exactly the audio that was sent.
    out = subprocess.run(["tshark", "-r", pcap, "-Y", "udp", "-T", "fields", "-e", "udp.payload"],
                         capture_output=True, text=True, check=True).stdout.split()
    media = [bytes.fromhex(h.replace(":", "")) for h in out if h]
    # Audio is type 1, or type 4 when the sender adds copies of earlier frames (PROTOCOL §5.4).
    media = [m for m in media if len(m) > 7 + 16 and 0x80 <= m[0] < 0xC0 and (m[0] >> 4) & 3 == 1 and m[0] & 7 in (1, 4)]
    opened = matched = 0
    ciphers = []
    for suite, _, s in secrets:
        key, iv = expand(s, b"parley media key", 32), expand(s, b"parley media iv", 12)
        ciphers.append(((AESGCM if suite == 2 else ChaCha20Poly1305)(key), iv))
    for m in media:
        seq = int.from_bytes(m[1:7], "big")
        for aead, iv in ciphers:
            nonce = bytes(a ^ b for a, b in zip(iv, seq.to_bytes(12, "big")))
            try:
                pt = aead.decrypt(nonce, m[7:], m[:7])
            except Exception:
                continue
            opened += 1
            if m[0] & 7 == 4:
                # frame (4) || r (1) || r x (distance (1) || length (2)) || copies || the frame's own packet
                r = pt[4]
                skip = 5 + 3 * r + sum(int.from_bytes(pt[5 + 3 * i + 1:5 + 3 * i + 3], "big") for i in range(r))
                pt = pt[:4] + pt[skip:]
            matched += pt in plain
            break
    say(len(media) >= 100 and opened == len(media) and matched == opened, "capture-media-is-ciphertext",
        f"{len(media)} audio datagrams captured; {opened} opened with the logged keys; {matched} equal to audio sent")


if __name__ == "__main__":
    if sys.argv[1] == "audio":
        audio(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
    else:
        capture(sys.argv[2], sys.argv[3], sys.argv[4:])
