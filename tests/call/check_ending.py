#!/usr/bin/env python3
"""Checks how calls of tests/call/ending.sh ended, from `--events-json` logs and the recordings.

  check_ending.py told LABEL EVENTS_A EVENTS_B   B reported the call's end within 1 s of A ending it
  check_ending.py length LABEL WAV EVENTS [MIN]  sox reads WAV; its length is the call's wall time as EVENTS
                                                 saw it (media-started -> ended) within 100 ms; with MIN,
                                                 only "readable and at least MIN seconds" (a killed side)
  check_ending.py silent LABEL SENDER SILENT     SENDER's stats of what it hears say "silent"; SILENT's stats
                                                 of the sender's tone show no concealment and MOS >= 4.0
Prints PASS/FAIL lines (the caller counts them)."""
import json
import subprocess
import sys


def say(ok, label, detail):
    print(f"{'PASS' if ok else 'FAIL'} {label}: {detail}")
    return ok


def events(path):
    out = []
    for line in open(path):
        line = line.strip()
        if line:
            out.append(json.loads(line))
    return out


def first(evs, name):
    return next((e for e in evs if e["event"] == name), None)


def told(label, a_path, b_path):
    a, b = events(a_path), events(b_path)
    ea, eb = first(a, "ended"), first(b, "ended")
    if not say(ea is not None and eb is not None, f"{label}-ended-events", f"{a_path}: {ea}; {b_path}: {eb}"):
        return
    late = (eb["wall_us"] - ea["wall_us"]) / 1e6
    say(late <= 1.0, f"{label}-peer-told", f"{eb['reason']} {late * 1000:.0f} ms after {ea['reason']} (limit 1000 ms)")


def sox_seconds(wav):
    run = subprocess.run(["soxi", "-D", wav], capture_output=True, text=True)
    if run.returncode != 0:
        return None, run.stderr.strip()
    return float(run.stdout.strip()), ""


def length(label, wav, events_path, minimum=None):
    seconds, error = sox_seconds(wav)
    if not say(seconds is not None, f"{label}-sox-reads", f"{wav}: {seconds} s {error}"):
        return
    if minimum is not None:
        say(seconds >= float(minimum), f"{label}-length", f"{seconds:.2f} s recorded (at least {minimum} s expected)")
        return
    evs = events(events_path)
    start, end = first(evs, "media-started"), first(evs, "ended")
    if not say(start is not None and end is not None, f"{label}-call-events", f"media-started {start}, ended {end}"):
        return
    wall = (end["wall_us"] - start["wall_us"]) / 1e6
    say(abs(seconds - wall) <= 0.1, f"{label}-length", f"{seconds:.3f} s recorded, call {wall:.3f} s (limit ±0.100 s)")


def silent(label, sender_path, silent_path):
    sender, quiet = events(sender_path), events(silent_path)
    # What the sender hears from the silent side: "silent" once DTX has set in (the encoder's first frames
    # are sent before it decides there is nothing to send), and in the summary.
    start = first(sender, "media-started")
    heard = [e for e in sender if e["event"] == "stats" and start and e["wall_us"] - start["wall_us"] > 1.5e6]
    summary = first(sender, "summary")
    say(len(heard) >= 3 and all(e["peer_audio"] == "silent" and "mos" not in e for e in heard)
        and summary and summary["peer_audio"] == "silent",
        f"{label}-sender-hears-silence",
        f"{len(heard)} stats lines: {sorted(set(e['peer_audio'] for e in heard))}; summary {summary and summary['peer_audio']}")
    # What the silent side hears from the sender: the tone, no concealment, MOS >= 4.0, every line.
    lines = [e for e in quiet if e["event"] == "stats" and e["peer_audio"] == "sending"]
    summary = first(quiet, "summary")
    worst_mos = min((e["mos"] for e in lines), default=0)
    worst_concealed = max((e["concealed_pct"] for e in lines), default=100)
    say(len(lines) >= 3 and worst_mos >= 4.0 and worst_concealed == 0 and summary and summary["mos"] >= 4.0
        and summary["concealed"] == 0,
        f"{label}-tone-heard-clean",
        f"{len(lines)} stats lines, lowest MOS {worst_mos:.2f}, most concealed {worst_concealed:.1f} %; "
        f"summary MOS {summary and summary.get('mos')}, concealed {summary and summary.get('concealed')}")


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "told":
        told(*sys.argv[2:5])
    elif what == "length":
        length(*sys.argv[2:6])
    elif what == "silent":
        silent(*sys.argv[2:5])
    else:
        sys.exit(f"unknown check {what}")
