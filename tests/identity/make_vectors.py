#!/usr/bin/env python3
"""Writes device-list and link-code vectors with an implementation independent of the Swift one (Python's
`cryptography`), from docs/PROTOCOL.md §3.8 alone, with fixed keys so the output never changes:

  tests/identity/make_vectors.py DIR

DIR/identity-list.txt       a version-2 list in text form (line 1) and its version 1 (line 2)
DIR/identity-list-wire.bin  the version-2 list's wire bytes (signature || document)
DIR/identity-link-uri.txt   a link URI for device "laptop" of "alice" with the version-2 laptop bundle
Tests (ParleyCryptoTests/IdentityVectorTests) parse them with the Swift code; the fuzzer uses them as seeds."""
import base64
import hashlib
import os
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def bundle(seed):
    ed = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"ed" + seed).digest())
    x = X25519PrivateKey.from_private_bytes(hashlib.sha256(b"x" + seed).digest())
    xpub = x.public_key().public_bytes(*RAW)
    sig = ed.sign(b"parley-device-v1" + xpub)
    return "parley1." + b64(ed.public_key().public_bytes(*RAW) + xpub + sig)


def document(user, userkey, version, previous, time, devices, revoked=()):
    lines = ["parley-device-list v1", f"user {user}", f"user-key {b64(userkey)}", f"version {version}",
             f"previous {b64(previous) if previous else '-'}", f"time {time}"]
    lines += [f"device {n} {b} {m}" for n, b, m in sorted(devices)]
    lines += [f"revoked {n} {b}" for n, b in sorted(revoked)]
    return ("\n".join(lines) + "\n").encode()


def main(out):
    user_key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"alice user key").digest())
    pub = user_key.public_key().public_bytes(*RAW)
    phone, laptop = bundle(b"phone"), bundle(b"laptop")
    v1 = document("alice", pub, 1, None, 1796000000000, [("phone", phone, "parley")])
    v2 = document("alice", pub, 2, hashlib.sha256(v1).digest(), 1796000060000,
                  [("phone", phone, "parley"), ("laptop", laptop, "parley,webrtc")])
    wire1, wire2 = user_key.sign(v1) + v1, user_key.sign(v2) + v2
    with open(os.path.join(out, "identity-list.txt"), "w") as f:
        f.write("parleylist1." + b64(wire2) + "\n" + "parleylist1." + b64(wire1) + "\n")
    with open(os.path.join(out, "identity-list-wire.bin"), "wb") as f:
        f.write(wire2)
    # Link code: id (8) || SHA-256("parley-link-v1" || id || "\0alice\0laptop\0" || bundle)[:12], base32.
    link_id = bytes(range(8))
    commitment = hashlib.sha256(b"parley-link-v1" + link_id + b"\0alice\0laptop\0" + laptop.encode()).digest()[:12]
    code = base64.b32encode(link_id + commitment).decode()
    with open(os.path.join(out, "identity-link-uri.txt"), "w") as f:
        f.write(f"parley-link:alice@chat.example:7000/{code}\n")


if __name__ == "__main__":
    main(sys.argv[1])
