"""Shared helpers for tests/signal: a raw-line TCP client and a WebSocket client (PyPI `websockets`)
for the signaling protocol of docs/PROTOCOL.md §3, key loading, server control and result lines.

Nothing here imports parley code: the point of these tests is a client we did not write.
"""
import asyncio
import base64
import os
import signal
import subprocess
import time
import uuid

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

STEP = 5.0  # default timeout of one client step, seconds


# --------------------------------------------------------------------------------------------
# Encoding


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def now_ms() -> int:
    return int(time.time() * 1000)


def new_id() -> str:
    return str(uuid.uuid4())


def load_key(path: str) -> Ed25519PrivateKey:
    """The Ed25519 key of a `parley keygen --out FILE` key file (Sources/ParleyCrypto/KeyFile.swift)."""
    with open(path) as f:
        lines = f.read().splitlines()
    if not lines or lines[0].strip() != "parley-device-key v1":
        raise ValueError(f"{path}: not a parley key file")
    for line in lines[1:]:
        parts = line.split()
        if len(parts) == 2 and parts[0] == "ed25519":
            return Ed25519PrivateKey.from_private_bytes(unb64u(parts[1]))
    raise ValueError(f"{path}: no ed25519 line")


def login_line(key, challenge: str, user: str, device: str, ts: int) -> str:
    signed = f"parley-login-v1|{challenge}|{user}|{device}|{ts}".encode()
    return f"login|{user}|{device}|{ts}|{b64u(key.sign(signed))}"


class Env:
    """What run.sh hands over in the environment: the key directory, the bundles, the log dir."""

    def __init__(self):
        self.keydir = os.environ["SIG_KEYDIR"]
        self.logdir = os.environ["SIG_LOGDIR"]
        self.piddir = os.environ["SIG_PIDDIR"]
        self._keys = {}

    def key(self, account: str):
        if account not in self._keys:
            self._keys[account] = load_key(os.path.join(self.keydir, account + ".key"))
        return self._keys[account]

    def bundle(self, account: str) -> str:
        with open(os.path.join(self.keydir, account + ".pub")) as f:
            return f.read().strip()


# --------------------------------------------------------------------------------------------
# Results


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def ok(self, name: str, evidence: str):
        self.passed += 1
        print(f"PASS {name}: {evidence}", flush=True)

    def fail(self, name: str, why: str):
        self.failed += 1
        print(f"FAIL {name}: {why}", flush=True)

    def check(self, cond: bool, name: str, evidence: str, why: str = None):
        if cond:
            self.ok(name, evidence)
        else:
            self.fail(name, why or evidence)
        return cond


def info(msg: str):
    print(f"  .. {msg}", flush=True)


class StepError(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Transports: recv() gives one frame as text, or None once the connection is closed.


class LineConn:
    kind = "tcp"

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, host: str = "127.0.0.1"):
        r, w = await asyncio.wait_for(asyncio.open_connection(host, port, limit=1 << 22), STEP)
        return cls(r, w)

    async def send(self, frame: str):
        self.writer.write(frame.encode() + b"\n")
        await self.writer.drain()

    async def send_raw(self, data: bytes):
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self):
        try:
            line = await self.reader.readline()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            return None
        if not line:
            return None
        if not line.endswith(b"\n"):
            return None  # partial frame at EOF
        return line[:-1].rstrip(b"\r").decode("utf-8", "replace")

    async def close(self):
        try:
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2)
        except Exception:
            pass


class WSConn:
    kind = "ws"

    def __init__(self, ws):
        self.ws = ws

    @classmethod
    async def open(cls, http_port: int, host: str = "127.0.0.1"):
        from websockets.asyncio.client import connect

        ws = await connect(f"ws://{host}:{http_port}/ws", open_timeout=STEP, ping_interval=None, max_size=None,
                           close_timeout=2, compression=None)
        return cls(ws)

    async def send(self, frame: str):
        await self.ws.send(frame)

    async def send_binary(self, data: bytes):
        await self.ws.send(data)

    async def recv(self):
        from websockets.exceptions import ConnectionClosed

        try:
            m = await self.ws.recv()
        except ConnectionClosed:
            return None
        return m if isinstance(m, str) else "<binary>"

    @property
    def close_code(self):
        try:
            return self.ws.close_code
        except Exception:
            return None

    async def close(self):
        try:
            await asyncio.wait_for(self.ws.close(), 3)
        except Exception:
            pass


async def open_conn(kind: str, ports: dict):
    if kind == "ws":
        return await WSConn.open(ports["http"])
    return await LineConn.open(ports["signal_tcp"])


# --------------------------------------------------------------------------------------------
# A logged-in device: numbered commands, events acknowledged with `got` and deduplicated by sseq.


class Client:
    def __init__(self, conn, label: str):
        self.conn = conn
        self.label = label
        self.inbox = []  # frames (lists of fields) not consumed yet
        self.seen_sseq = set()
        self.dup_events = 0
        self.cseq = 0
        self.closed = False
        self.auto_ack = True
        self.challenge = None
        self.welcome = None

    @classmethod
    async def connect(cls, kind: str, ports: dict, label: str):
        return cls(await open_conn(kind, ports), label)

    async def _pull(self, deadline: float):
        left = deadline - time.monotonic()
        if left <= 0:
            raise asyncio.TimeoutError
        text = await asyncio.wait_for(self.conn.recv(), left)
        if text is None:
            self.closed = True
            return None
        if text == "":
            return []  # keepalive
        f = text.split("|")
        if f[0] == "ev":
            sseq = int(f[1])
            if self.auto_ack:
                await self.conn.send(f"got|{sseq}")
            if sseq in self.seen_sseq:
                self.dup_events += 1
                return []
            self.seen_sseq.add(sseq)
        return f

    async def expect(self, pred, what: str, timeout: float = STEP):
        """The first frame (unconsumed ones first) for which pred(fields) is true; raises StepError."""
        for i, f in enumerate(self.inbox):
            if pred(f):
                return self.inbox.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            if self.closed:
                raise StepError(f"{self.label}: connection closed while waiting for {what}; unconsumed {self._tail()}")
            try:
                f = await self._pull(deadline)
            except asyncio.TimeoutError:
                raise StepError(f"{self.label}: no {what} within {timeout:g} s; unconsumed {self._tail()}")
            if f is None or f == []:
                continue
            if pred(f):
                return f
            self.inbox.append(f)

    def _tail(self):
        return ["|".join(x)[:100] for x in self.inbox[-4:]]

    async def hello(self):
        f = await self.expect(lambda f: f[0] == "hello", "hello")
        if len(f) != 4 or f[1] != "1" or len(unb64u(f[2])) != 32:
            raise StepError(f"{self.label}: bad hello {'|'.join(f)}")
        self.challenge = f[2]
        return f

    async def login(self, user: str, device: str, key, ts_skew_ms: int = 0):
        if self.challenge is None:
            await self.hello()
        await self.conn.send(login_line(key, self.challenge, user, device, now_ms() + ts_skew_ms))
        f = await self.expect(lambda f: f[0] in ("welcome", "error"), "welcome")
        if f[0] == "welcome":
            self.welcome = f
            self.cseq = int(f[3])
        return f

    async def command(self, verb: str, *args: str) -> int:
        self.cseq += 1
        await self.conn.send("|".join([verb, str(self.cseq), str(now_ms()), *args]))
        return self.cseq

    async def answer(self, cseq: int, timeout: float = STEP):
        return await self.expect(lambda f: f[0] in ("ack", "nak") and f[1] == str(cseq), f"answer to cseq {cseq}", timeout)

    async def ok(self, verb: str, *args: str, timeout: float = STEP):
        c = await self.command(verb, *args)
        f = await self.answer(c, timeout)
        if f[0] != "ack" or f[2] != "ok":
            raise StepError(f"{self.label}: {verb} got {'|'.join(f)[:200]}")
        return f

    async def event(self, name: str, pred=lambda f: True, timeout: float = STEP):
        return await self.expect(lambda f: f[0] == "ev" and f[3] == name and pred(f), f"ev {name}", timeout)

    async def close(self):
        await self.conn.close()


async def until_closed(conn, timeout: float):
    """Reads frames until the server closes; returns (frames, seconds) or (frames, None) on timeout."""
    frames = []
    t0 = time.monotonic()
    try:
        while True:
            left = timeout - (time.monotonic() - t0)
            if left <= 0:
                return frames, None
            text = await asyncio.wait_for(conn.recv(), left)
            if text is None:
                return frames, time.monotonic() - t0
            frames.append(text)
    except asyncio.TimeoutError:
        return frames, None


# --------------------------------------------------------------------------------------------
# The server under test


def read_ready(ready_file: str, log_file: str) -> dict:
    ports = {}
    with open(ready_file) as f:
        for line in f:
            if "=" in line:
                k, v = line.strip().split("=", 1)
                ports[k] = int(v)
    if "signal_tcp" not in ports:  # fall back on the "parley ready … signal_tcp=PORT" log line
        with open(log_file, errors="replace") as f:
            for line in f:
                if "parley ready" in line and "signal_tcp=" in line:
                    ports["signal_tcp"] = int(line.split("signal_tcp=")[1].split()[0])
    return ports


class Server:
    """One `parley serve` started by run.sh: SIG_SERVER_<NAME> names its state directory holding
    argv (one argument a line), pid, ports and the log of each start."""

    def __init__(self, name: str):
        self.name = name
        self.dir = os.environ[f"SIG_SERVER_{name.upper()}"]
        self.pid = int(open(os.path.join(self.dir, "pid")).read())
        self.ports = read_ready(os.path.join(self.dir, "ready"), os.path.join(self.dir, "log.1"))
        self.starts = 1

    def rss_kb(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return -1

    def fds(self) -> int:
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return -1

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                return f.read().split(") ")[1].split()[0] != "Z"
        except OSError:
            return False

    def kill9(self):
        os.kill(self.pid, signal.SIGKILL)
        try:
            os.waitpid(self.pid, 0)  # only if it happens to be our child
        except ChildProcessError:
            pass
        t = time.monotonic()
        while self.alive() and time.monotonic() - t < 5:
            time.sleep(0.01)

    def restart(self, timeout: float = 30) -> float:
        """Starts the server again with the same arguments and store; returns seconds until ready."""
        argv = open(os.path.join(self.dir, "argv")).read().split("\n")
        argv = [a for a in argv if a != ""]
        ready = os.path.join(self.dir, "ready")
        if os.path.exists(ready):
            os.unlink(ready)
        self.starts += 1
        log = os.path.join(self.dir, f"log.{self.starts}")
        t0 = time.monotonic()
        with open(log, "w") as lf:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=lf, stderr=subprocess.STDOUT,
                                 start_new_session=False)
        self.pid = p.pid
        self._popen = p  # keep it so Python reaps it
        with open(os.path.join(self.dir, "pid"), "w") as f:
            f.write(str(p.pid))
        with open(os.path.join(os.environ["SIG_PIDDIR"], f"{self.name}-{self.starts}"), "w") as f:
            f.write(str(p.pid))
        while not os.path.exists(ready):
            if p.poll() is not None:
                raise RuntimeError(f"server exited with {p.returncode}; see {log}")
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"server not ready in {timeout} s; see {log}")
            time.sleep(0.02)
        time.sleep(0.05)  # the file is written atomically, but be gentle
        self.ports = read_ready(ready, log)
        return time.monotonic() - t0


async def probe(ports: dict, env: Env, limit: float = 1.0, kind: str = "tcp", account=("carol", "desk")):
    """A normal client: connect, log in, `keys|bob`. Returns (ok, seconds, detail)."""
    t0 = time.monotonic()
    c = None
    try:
        c = await Client.connect(kind, ports, f"probe-{account[0]}")
        f = await c.login(account[0], account[1], env.key(f"{account[0]}.{account[1]}"))
        if f[0] != "welcome":
            return False, time.monotonic() - t0, "login answered " + "|".join(f)
        a = await c.ok("keys", "bob")
        dt = time.monotonic() - t0
        if a[3] != "bob" or "laptop=parley1." not in a[4]:
            return False, dt, "keys answered " + "|".join(a)[:120]
        return dt <= limit, dt, f"login+keys in {dt * 1000:.0f} ms"
    except (StepError, OSError, asyncio.TimeoutError) as e:
        return False, time.monotonic() - t0, f"probe failed: {e}"
    finally:
        if c:
            await c.close()
