#!/usr/bin/env python3
"""Report for tests/netlab/call_impaired.sh: parses the two CLI transcripts of every call, measures the
received tone in each recording, prints markdown tables and one PASS/FAIL line per check.

  call_impaired_report.py RESULTS_DIR

RESULTS_DIR holds `params` (KEY=VALUE lines written by the shell script), `cases.tsv` (kind, name, loss %,
case directory) and one directory per call with alice.out / bob.out (stdout of `parley call` / `parley
answer`), alice.rc / bob.rc (exit status), alice.wav / bob.wav (what each side received, loss runs only)
and status.txt (`topo.sh status` after the call: the impairment daemons' counters).

Directions: alice's summary describes what alice *received*, i.e. bob -> alice (B->A); bob's is A->B.
Setup time of a side = its "first audio decrypted at" - the callee's "accepted at" (one system clock).
The checks (the targets are fixed here, not parameters):
  call <name>: both exit 0, answered/accepted, the same SAS, first audio and a summary on both sides,
               bob's recording carries 440 Hz and alice's 1000 Hz (+-2 Hz, FFT of the middle half)
  MOS at 5 % loss >= 4.0 and at 20 % loss >= 3.5, both directions (final MOS of the summary line)
  setup <name>: both sides <= RTT + 20 ms, RTT = the ping RTT measured between A and B with the same
               delay-only impairment (average of 20 probes). The first-contact call (kind `first-contact`:
               the caller reveals its key to a device it never pinned only after the accept, one more
               round trip by design) is listed in the table but not judged.
"""
import os
import re
import sys
import wave

import numpy as np

TONE = {"alice": 1000.0, "bob": 440.0}   # what each side should *receive* (bob sends 1 kHz, alice 440 Hz)
SENT_LEVEL = -20.0
MOS_TARGETS = {5.0: 4.0, 20.0: 3.5}
SETUP_MARGIN_MS = 20.0

say_counts = {"PASS": 0, "FAIL": 0}


def say(ok, label, detail):
    word = "PASS" if ok else "FAIL"
    say_counts[word] += 1
    print(f"{word} {label}: {detail}")


def tone(path):
    """(frequency Hz, level dBFS, seconds analysed) of the middle half of a 16-bit mono WAV, or None."""
    try:
        with wave.open(path) as w:
            rate, n = w.getframerate(), w.getnframes()
            x = np.frombuffer(w.readframes(n), dtype="<i2").astype(np.float64)
    except Exception:
        return None
    x = x[len(x) // 4: 3 * len(x) // 4]
    if len(x) < rate:
        return None
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    peak = int(np.argmax(spectrum))
    p = float(peak)
    if 0 < peak < len(spectrum) - 1:
        a, b, c = np.log(spectrum[peak - 1: peak + 2] + 1e-12)
        p = peak + 0.5 * (a - c) / (a - 2 * b + c)
    rms = np.sqrt(np.mean(x ** 2))
    dbfs = 20 * np.log10(rms * np.sqrt(2) / 32767) if rms > 0 else -200.0
    return p * rate / len(x), dbfs, len(x) / rate


SUMMARY = {
    "sent": r"sent (\d+) packets", "received": r"received (\d+)", "played": r"played (\d+) frames",
    "fec": r"FEC-recovered (\d+)", "concealed": r"concealed (\d+),", "late": r"late (\d+)",
    "rtt": r"rtt (\d+(?:\.\d+)?) ms", "jitter": r"jitter (\d+(?:\.\d+)?) ms", "loss_pct": r"loss (\d+(?:\.\d+)?)%",
    "concealed_pct": r"concealed (\d+(?:\.\d+)?)%", "delay": r"delay (\d+(?:\.\d+)?) ms", "mos": r"MOS (\d+(?:\.\d+)?)",
}


def num(s):
    return float(s) if "." in s else int(s)


def parse_side(case_dir, side):
    out = os.path.join(case_dir, f"{side}.out")
    try:
        text = open(out, encoding="utf-8", errors="replace").read()
    except OSError:
        text = ""
    r = {"text": text}
    try:
        r["rc"] = int(open(os.path.join(case_dir, f"{side}.rc")).read().strip())
    except (OSError, ValueError):
        r["rc"] = None
    for key, pat in (("accepted", r"^accepted at (\d+) µs"), ("answered", r"^answered by .* at (\d+) µs"),
                     ("first_audio", r"^first audio decrypted at (\d+) µs")):
        m = re.search(pat, text, re.M)
        r[key] = int(m.group(1)) if m else None
    m = re.search(r"SAS: (.*)$", text, re.M)
    r["sas"] = m.group(1).strip() if m else None
    m = re.search(r"^summary: (.*)$", text, re.M)
    r["summary_line"] = m.group(1) if m else None
    r["summary"] = {}
    if m:
        for key, pat in SUMMARY.items():
            mm = re.search(pat, m.group(1))
            if mm:
                r["summary"][key] = num(mm.group(1))
    # the live stats lines: the largest mouth-to-ear estimate seen during the call
    delays = [float(x) for x in re.findall(r"^stats: .*delay (\d+(?:\.\d+)?) ms", text, re.M)]
    r["max_stats_delay"] = max(delays) if delays else None
    wav = os.path.join(case_dir, f"{side}.wav")
    r["tone"] = tone(wav) if os.path.exists(wav) else None
    return r


def impair_stats(case_dir):
    """site -> {in, dropped, late_gt5ms, late_max_ms} from the `topo.sh status` taken after the call."""
    out = {}
    try:
        text = open(os.path.join(case_dir, "status.txt")).read()
    except OSError:
        return out
    site = None
    for line in text.splitlines():
        m = re.match(r"site (\w+):", line)
        if m:
            site = m.group(1)
            continue
        m = re.search(r"impair stats: (.*)", line)
        if m and site:
            out[site] = {k: num(v) for k, v in re.findall(r"(\w+)=([\d.]+)", m.group(1))}
    return out


def fmt(v, spec="", none="–"):
    if v is None:
        return none
    return format(v, spec)


def main():
    res = sys.argv[1]
    params = dict(l.rstrip("\n").split("=", 1) for l in open(os.path.join(res, "params")) if "=" in l)
    cases = [l.rstrip("\n").split("\t") for l in open(os.path.join(res, "cases.tsv")) if l.strip()]
    rtt = float(params.get("RTT_MEASURED_MS") or "nan")
    rtt_nominal = float(params["RTT_NOMINAL_MS"])
    setup_target = (rtt if rtt == rtt else rtt_nominal) + SETUP_MARGIN_MS

    parsed = []
    for kind, name, loss, d in cases:
        a, b = parse_side(d, "alice"), parse_side(d, "bob")
        acc = b["accepted"]
        for s in (a, b):
            s["setup"] = (s["first_audio"] - acc) / 1000 if s["first_audio"] and acc else None
        a["answered_after"] = (a["answered"] - acc) / 1000 if a["answered"] and acc else None
        parsed.append((kind, name, float(loss), d, a, b, impair_stats(d)))

    # ---- table 1: the loss runs
    print()
    print(f"### Calls of {params.get('CALL_SECONDS')} s, one-way delay {params.get('DELAY_MS')} ms ± "
          f"{params.get('JITTER_MS')} ms (uniform) on each site's uplink, nominal A↔B RTT {rtt_nominal:.0f} ms, "
          f"loss per direction as listed")
    print()
    print("| loss % | direction | sent | received | delivered (played) frames | FEC-recovered | concealed | "
          "concealed % | late | measured loss % | jitter ms | rtt ms | mouth-to-ear ms (final / max) | MOS | "
          "tone received | setup ms | uplink drops (daemon) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for kind, name, loss, d, a, b, st in parsed:
        if kind != "loss":
            continue
        for label, recv, sender_site in (("A→B (at bob)", b, "a"), ("B→A (at alice)", a, "b")):
            s = recv["summary"]
            t = recv["tone"]
            tone_s = f"{t[0]:.1f} Hz {t[1]:.1f} dBFS" if t else "–"
            up = st.get(sender_site, {})
            drops = (f"{up.get('dropped', 0)}/{up.get('in', 0)} ({100 * up['dropped'] / up['in']:.1f} %)"
                     if up.get("in") else "–")
            print(f"| {loss:g} | {label} | {fmt(s.get('sent'))} | {fmt(s.get('received'))} | {fmt(s.get('played'))} | "
                  f"{fmt(s.get('fec'))} | {fmt(s.get('concealed'))} | {fmt(s.get('concealed_pct'))} | {fmt(s.get('late'))} | "
                  f"{fmt(s.get('loss_pct'))} | {fmt(s.get('jitter'))} | {fmt(s.get('rtt'))} | "
                  f"{fmt(s.get('delay'))} / {fmt(recv['max_stats_delay'], '.0f')} | {fmt(s.get('mos'))} | {tone_s} | "
                  f"{fmt(recv['setup'], '.0f')} | {drops} |")

    print()
    print("`sent` = audio packets sent by the other side; `received` = authenticated packets that arrived, audio "
          "*and* the ~1/s receiver reports (the client counts both), so it can exceed `sent` at 0 % loss. "
          "`mouth-to-ear` is the client's estimate rtt/2 + jitter-buffer delay + 20 ms frame + 40 ms assumed device "
          "allowance (final value of the summary / largest value of the per-second stats lines). `setup ms`: first "
          "audio decrypted on that side - accepted at the callee. `uplink drops`: packets the netlab impairment "
          "daemon dropped on the sender's uplink (all traffic, incl. signaling).")

    # ---- table 2: setup time
    print()
    print(f"### Setup time, delay only: one-way {params.get('DELAY_MS')} ms on each uplink, ping RTT A↔B "
          f"{params.get('RTT_PING')} (min/avg/max/mdev ms); target ≤ RTT + {SETUP_MARGIN_MS:.0f} ms = "
          f"{setup_target:.1f} ms")
    print()
    print("| call | accept → 'answered' at caller ms | setup at caller (B→A first audio) ms | "
          "setup at callee (A→B first audio) ms |")
    print("|---|---|---|---|")
    for kind, name, loss, d, a, b, st in parsed:
        if kind in ("setup", "first-contact"):
            label = f"{name} (first contact, not judged)" if kind == "first-contact" else name
            print(f"| {label} | {fmt(a['answered_after'], '.1f')} | {fmt(a['setup'], '.1f')} | {fmt(b['setup'], '.1f')} |")
    print()

    # ---- impairment daemon health
    for kind, name, loss, d, a, b, st in parsed:
        late = {site: (v.get("late_gt5ms"), v.get("late_max_ms")) for site, v in st.items()}
        if any((x or 0) > 0 for x, _ in late.values()):
            print(f"# note {name}: impairment daemon released packets >5 ms late: "
                  + ", ".join(f"site {k}: {x} (max {y} ms)" for k, (x, y) in late.items()))

    # ---- checks
    for kind, name, loss, d, a, b, st in parsed:
        why = []
        for side, s in (("alice", a), ("bob", b)):
            if s["rc"] != 0:
                why.append(f"{side} exit {s['rc']}")
            if s["first_audio"] is None:
                why.append(f"{side}: no first audio")
            if not s["summary"].get("played"):
                why.append(f"{side}: no summary / nothing played")
        if a["answered"] is None:
            why.append("alice: not answered")
        if b["accepted"] is None:
            why.append("bob: did not accept")
        if not a["sas"] or a["sas"] != b["sas"]:
            why.append(f"SAS differ ({a['sas']} / {b['sas']})")
        tones = []
        if kind == "loss":
            for side, s in (("alice", a), ("bob", b)):
                t = s["tone"]
                if t is None:
                    why.append(f"{side}: no usable recording")
                    continue
                tones.append(f"{side} got {t[0]:.1f} Hz ({t[1]:.1f} dBFS, {t[2]:.1f} s analysed)")
                if abs(t[0] - TONE[side]) > 2:
                    why.append(f"{side} received {t[0]:.1f} Hz, not {TONE[side]:g} Hz")
        detail = "; ".join(why) if why else (
            f"connected, same SAS, {a['summary'].get('played')}/{b['summary'].get('played')} frames played at "
            f"alice/bob" + ("; " + ", ".join(tones) if tones else ""))
        say(not why, f"call {name}", detail)

    for loss, target in MOS_TARGETS.items():
        runs = [(a, b) for kind, _, l, _, a, b, _ in parsed if kind == "loss" and l == loss]
        if not runs:
            continue
        a, b = runs[0]
        ma, mb = a["summary"].get("mos"), b["summary"].get("mos")
        ok = ma is not None and mb is not None and ma >= target and mb >= target
        say(ok, f"MOS at {loss:g}% loss >= {target}",
            f"A→B {fmt(mb)}, B→A {fmt(ma)} (mouth-to-ear A→B {fmt(b['summary'].get('delay'))} ms, "
            f"B→A {fmt(a['summary'].get('delay'))} ms; concealed A→B {fmt(b['summary'].get('concealed_pct'))}%, "
            f"B→A {fmt(a['summary'].get('concealed_pct'))}%)")

    for kind, name, loss, d, a, b, st in parsed:
        if kind != "setup":
            continue
        ok = a["setup"] is not None and b["setup"] is not None and max(a["setup"], b["setup"]) <= setup_target
        say(ok, f"setup {name} <= RTT+{SETUP_MARGIN_MS:.0f} ms ({setup_target:.1f} ms)",
            f"caller (B→A) {fmt(a['setup'], '.1f')} ms, callee (A→B) {fmt(b['setup'], '.1f')} ms; "
            f"'answered' reached the caller {fmt(a['answered_after'], '.1f')} ms after accept")


if __name__ == "__main__":
    main()
