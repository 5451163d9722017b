"""Opens N signaling connections that never log in (docs/PROTOCOL.md §3.1/§3.2: each must get
`error|timeout|…` and be closed by signal.login_timeout), in its own process.

    python3 flood.py PORT N LOGIN_TIMEOUT_S [CONCURRENCY]

Prints JSON lines on stdout: {"phase": "open", …} once every connection is open (or failed to
open), then {"phase": "done", …} with the outcome of each. Raises RLIMIT_NOFILE to the hard limit.
"""
import asyncio
import json
import resource
import statistics
import sys
import time

PORT, N, LOGIN_TIMEOUT = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
CONCURRENCY = int(sys.argv[4]) if len(sys.argv) > 4 else 200

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
except (ValueError, OSError):
    pass
NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Conn:
    __slots__ = ("t_open", "hello", "error", "t_error", "t_close", "fail", "extra")

    def __init__(self):
        self.t_open = self.t_error = self.t_close = None
        self.hello = False
        self.error = None
        self.fail = None
        self.extra = []


async def one(c: Conn, gate: asyncio.Semaphore, opened: list, deadline: float):
    w = None
    try:
        async with gate:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", PORT), 20)
            c.t_open = time.monotonic()
            line = await asyncio.wait_for(r.readline(), 20)
            c.hello = line.startswith(b"hello|1|")
            if not c.hello:
                c.fail = f"first frame {line[:40]!r}"
        opened[0] += 1
        while True:
            left = deadline - time.monotonic()
            line = await asyncio.wait_for(r.readline(), max(left, 0.01))
            if not line:
                c.t_close = time.monotonic()
                return
            if line.startswith(b"error|") and c.error is None:
                c.error = line.decode(errors="replace").strip()
                c.t_error = time.monotonic()
            else:
                c.extra.append(line[:60])
    except asyncio.TimeoutError:
        c.fail = c.fail or ("still open at the deadline" if c.t_open else "connect/hello timed out")
    except OSError as e:
        if c.t_open is None:
            c.fail = f"connect: {e}"
        else:
            c.t_close = time.monotonic()  # reset by the server counts as closed
    finally:
        if w is not None:
            w.close()


async def main():
    t0 = time.monotonic()
    deadline = t0 + 60 + LOGIN_TIMEOUT * 2
    conns = [Conn() for _ in range(N)]
    gate = asyncio.Semaphore(CONCURRENCY)
    opened = [0]
    tasks = [asyncio.create_task(one(c, gate, opened, deadline)) for c in conns]

    # Report "open" once every connection has its hello (or failed).
    while True:
        settled = sum(1 for c in conns if c.hello or c.fail or c.t_close)
        if settled >= N:
            break
        await asyncio.sleep(0.05)
    t_open = time.monotonic()
    live = sum(1 for c in conns if c.hello and c.t_close is None)
    print(json.dumps({"phase": "open", "opened": sum(c.hello for c in conns), "live": live,
                      "failed": sum(1 for c in conns if c.fail), "open_s": round(t_open - t0, 2),
                      "nofile": NOFILE,
                      "first_fail": next((c.fail for c in conns if c.fail), None)}), flush=True)

    await asyncio.gather(*tasks)
    lifetimes = sorted(c.t_close - c.t_open for c in conns if c.t_open and c.t_close)
    errors = {}
    for c in conns:
        key = "|".join(c.error.split("|")[:2]) if c.error else "none"
        errors[key] = errors.get(key, 0) + 1
    out = {
        "phase": "done", "n": N, "hello": sum(c.hello for c in conns),
        "errors": errors, "closed": len(lifetimes),
        "fail": sum(1 for c in conns if c.fail), "first_fail": next((c.fail for c in conns if c.fail), None),
        "extra_frames": sum(len(c.extra) for c in conns),
        "life_min": round(lifetimes[0], 2) if lifetimes else None,
        "life_median": round(statistics.median(lifetimes), 2) if lifetimes else None,
        "life_max": round(lifetimes[-1], 2) if lifetimes else None,
        "error_to_close_max": round(max((c.t_close - c.t_error for c in conns if c.t_error and c.t_close), default=0), 3),
        "total_s": round(time.monotonic() - t0, 2),
    }
    print(json.dumps(out), flush=True)


asyncio.run(main())
