#!/usr/bin/env python3
"""Plays the hostile server against a stopped `parley serve`'s SQLite store (docs/PROTOCOL.md §3.8):

  forge.py STORE rollback USER            delete USER's newest device list (the older one is served again)
  forge.py STORE swap USER DEVICE BUNDLE  append a list for USER signed by a new key of the server's own,
                                          certifying DEVICE with BUNDLE, and the device in the account
Prints what it did. The lists are built from the spec with Python's `cryptography` (no Swift code)."""
import base64
import hashlib
import sqlite3
import sys
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def main():
    store, what, user = sys.argv[1:4]
    db = sqlite3.connect(store)
    rows = db.execute("SELECT version, list FROM device_list WHERE user = ? ORDER BY version", (user,)).fetchall()
    if what == "rollback":
        db.execute("DELETE FROM device_list WHERE user = ? AND version = ?", (user, rows[-1][0]))
        print(f"deleted version {rows[-1][0]} of {user}'s list; version {rows[-2][0]} is the newest now")
    elif what == "swap":
        device, bundle = sys.argv[4:6]
        version, text = rows[-1]
        previous = hashlib.sha256(unb64(text[len("parleylist1."):])[64:]).digest()
        key = Ed25519PrivateKey.generate()
        now = int(time.time() * 1000)
        doc = "\n".join(["parley-device-list v1", f"user {user}", f"user-key {b64(key.public_key().public_bytes(*RAW))}",
                         f"version {version + 1}", f"previous {b64(previous)}", f"time {now}",
                         f"device {device} {bundle} parley"]) + "\n"
        wire = key.sign(doc.encode()) + doc.encode()
        db.execute("INSERT INTO device_list (user, version, list, published_at) VALUES (?, ?, ?, ?)",
                   (user, version + 1, "parleylist1." + b64(wire), now))
        db.execute("INSERT OR REPLACE INTO account_device (user, name, bundle, added_at) VALUES (?, ?, ?, ?)",
                   (user, device, bundle, now))
        print(f"appended version {version + 1} of {user}'s list signed by a key of the server's own, certifying {device}")
    db.commit()


if __name__ == "__main__":
    main()
