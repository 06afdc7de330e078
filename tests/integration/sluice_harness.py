"""Runs the real `sluice` binary for tests: writes a config and policy into a directory, starts
`sluice serve --port 0`, reads the chosen port from stdout, waits for /health, and stops it with SIGTERM
(then SIGKILL). Also: small HTTP and SSE clients that talk raw HTTP/1.1 to it, and a Prometheus text parser.

Used by tests/integration (through conftest.py) and tests/e2e (which puts this folder on sys.path).
Everything listens on and connects to 127.0.0.1 only.
"""

from __future__ import annotations

import ctypes
import faulthandler
import http.client
import json
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import pytest

import mock_upstream

START_TIMEOUT = 30.0     # seconds for sluice to print its address (a loaded 2-core machine is slow)
STOP_TIMEOUT = 20.0      # seconds for SIGTERM to end it before SIGKILL
HTTP_TIMEOUT = 30.0      # seconds any single client socket operation may take


def sluice_bin() -> str:
    path = os.environ.get("SLUICE_BIN")
    if not path:
        src = os.environ.get("SLUICE_SOURCE_DIR", str(Path(__file__).resolve().parents[2]))
        for candidate in ("build/bin/sluice", "build-it/bin/sluice"):
            if (Path(src) / candidate).is_file():
                path = str(Path(src) / candidate)
                break
    if not path or not os.access(path, os.X_OK):
        raise RuntimeError(f"sluice binary not found (SLUICE_BIN={os.environ.get('SLUICE_BIN')!r}); "
                           "build the `sluice` target and set SLUICE_BIN")
    return path


def fault_bin() -> str:
    """The gateway built with engine fault hooks (tests/hooks/install_fault_hooks.cpp)."""
    path = os.environ.get("SLUICE_FAULT_BIN")
    if not path:
        path = str(Path(sluice_bin()).parent / "sluice-fault-hooks")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"sluice-fault-hooks not found ({path!r}); build the `sluice-fault-hooks` target")
    return path


# --------------------------------------------------------------------------------------------------------
# YAML (block style; strings are JSON-quoted, which YAML reads as double-quoted scalars)


def _scalar(v: Any) -> str:
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))


def to_yaml(obj: Any, indent: int = 0) -> str:
    pad = " " * indent
    out: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{k}:")
                out.append(to_yaml(v, indent + 2).rstrip("\n"))
            elif isinstance(v, (dict, list)):
                out.append(f"{pad}{k}: {'{}' if isinstance(v, dict) else '[]'}")
            else:
                out.append(f"{pad}{k}: {_scalar(v)}")
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, dict) and v:
                inner = to_yaml(v, indent + 2).rstrip("\n").split("\n")
                out.append(f"{pad}- {inner[0].lstrip()}")
                out.extend(inner[1:])
            elif isinstance(v, list) and v:
                out.append(f"{pad}-")
                out.append(to_yaml(v, indent + 2).rstrip("\n"))
            else:
                out.append(f"{pad}- {_scalar(v) if not isinstance(v, (dict, list)) else '{}'}")
    else:
        out.append(pad + _scalar(obj))
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------------------
# Config and policy builders

ALL_FALLBACKS = ["connect_error", "timeout", "upstream_5xx", "rate_limited", "overloaded", "unavailable"]


def key_env(provider: str) -> str:
    return "SLUICE_TEST_KEY_" + re.sub(r"[^A-Za-z0-9]", "_", provider).upper()


def key_value(provider: str) -> str:
    return f"sk-{provider}-secret-0123456789"


def provider_entry(name: str, base_url: str, ca_file: Optional[str] = None, verify: bool = True,
                   timeouts: Optional[dict] = None, pool_size: int = 4, api_key: bool = True,
                   health: Optional[dict] = None) -> dict:
    p: dict = {"name": name, "base_url": base_url}
    if api_key:
        p["api_key_env"] = key_env(name)
    tls: dict = {"verify": verify}
    if ca_file:
        tls["ca_file"] = str(ca_file)
    p["tls"] = tls
    p["timeouts"] = dict({"connect_ms": 2000, "first_byte_ms": 10000, "total_ms": 20000}, **(timeouts or {}))
    p["pool_size"] = pool_size
    if health is not None:
        p["health"] = health
    return p


def route(name: str = "r1", model: str = "*", targets: Optional[list] = None, limits: Optional[dict] = None,
          retries: Optional[dict] = None, fallback_on: Optional[list] = None, **extra) -> dict:
    r: dict = {"name": name, "model": model}
    r["limits"] = dict({"requests_per_second": 1000, "burst": 1000, "max_concurrency": 50, "max_queue": 100,
                        "queue_timeout_ms": 5000}, **(limits or {}))
    r["retries"] = dict({"max_attempts": 1, "backoff_base_ms": 10, "backoff_max_ms": 100,
                         "retry_on": ["connect_error", "upstream_5xx"]}, **(retries or {}))
    r["fallback_on"] = list(fallback_on if fallback_on is not None else ALL_FALLBACKS)
    r["targets"] = targets or [{"provider": "primary", "tier": 0}]
    r.update(extra)
    return r


def server_config(policy_files: list[str], providers: list[dict], server: Optional[dict] = None,
                  auth: Optional[dict] = None, engine: Optional[dict] = None) -> dict:
    limits = {"max_header_bytes": 16384, "max_body_bytes": 1048576, "read_timeout_ms": 5000,
              "idle_timeout_ms": 10000, "write_timeout_ms": 5000, "output_buffer_bytes": 65536}
    srv = {"host": "127.0.0.1", "port": 0, "io_threads": 2, "request_timeout_ms": 20000, "shutdown_grace_ms": 5000}
    server = dict(server or {})
    limits.update(server.pop("limits", {}))
    srv.update(server)
    srv["limits"] = limits
    cfg: dict = {"server": srv}
    if auth:
        cfg["auth"] = auth
    cfg["policies"] = policy_files
    cfg["engine"] = dict(engine) if engine else {"enabled": False}
    cfg["providers"] = providers
    return cfg


# --------------------------------------------------------------------------------------------------------
# The process


_prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl  # resolved here: the child only calls it


def _die_with_parent() -> None:
    # A test runner killed by a watchdog must not leave sluice processes behind (PR_SET_PDEATHSIG).
    _prctl(1, signal.SIGKILL)


class Sluice:
    """One `sluice serve` process. Files live in `workdir`: config.yaml, the policy files, sluice.stdout
    (stdout, which also carries the log) and sluice.stderr."""

    def __init__(self, workdir: Path, config: dict, policies: dict[str, Union[str, dict]],
                 env: Optional[dict] = None, log_level: str = "debug", args: Optional[list[str]] = None,
                 binary: Optional[str] = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "config.yaml"
        self.config_path.write_text(to_yaml(config))
        self.policy_paths: dict[str, Path] = {}
        for name, content in policies.items():
            path = self.workdir / name
            path.write_text(content if isinstance(content, str) else to_yaml(content))
            self.policy_paths[name] = path
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.log_level = log_level
        self.args = list(args or [])  # extra `sluice serve` flags
        self.binary = binary  # None: sluice_bin()
        self.proc: Optional[subprocess.Popen] = None
        self.port: Optional[int] = None
        self.stdout_path = self.workdir / "sluice.stdout"
        self.stderr_path = self.workdir / "sluice.stderr"
        self.returncode: Optional[int] = None
        self._ready = threading.Event()
        self._reader: Optional[threading.Thread] = None

    # --- lifecycle ---------------------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT) -> "Sluice":
        stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [self.binary or sluice_bin(), "serve", "--config", str(self.config_path), "--port", "0", "--log-level",
             self.log_level, *self.args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, env=self.env, cwd=self.workdir,
            preexec_fn=_die_with_parent)
        stderr.close()
        found: "queue.Queue[int]" = queue.Queue()

        def pump() -> None:
            pattern = re.compile(rb"sluice: listening on http://[^\s:]+:(\d+)")
            with open(self.stdout_path, "ab") as log:
                assert self.proc is not None and self.proc.stdout is not None
                for line in iter(self.proc.stdout.readline, b""):
                    log.write(line)
                    log.flush()
                    m = pattern.search(line)
                    if m and not self._ready.is_set():
                        found.put(int(m.group(1)))
                        self._ready.set()

        self._reader = threading.Thread(target=pump, name="sluice-stdout", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.port = found.get(timeout=0.1)
                break
            except queue.Empty:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"sluice exited with {self.proc.returncode} before listening:\n{self.logs()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"sluice did not print its address within {timeout}s:\n{self.logs()}")
        while True:
            try:
                if get(self.port, "/health", timeout=2).status == 200:
                    return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"sluice exited with {self.proc.returncode} during start:\n{self.logs()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"/health did not answer 200 within {timeout}s:\n{self.logs()}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> Optional[int]:
        """Waits for the process to exit; its exit code, or None when it is still running."""
        assert self.proc is not None
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        if self._reader:
            self._reader.join(timeout=5)
        return self.returncode

    def stop(self, timeout: float = STOP_TIMEOUT) -> Optional[int]:
        """SIGTERM, then SIGKILL past `timeout`. Returns the exit code (negative: killed by a signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if self.wait(timeout) is None:
                self.kill()
        else:
            self.wait(5)
        return self.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.wait(10)

    # --- files -------------------------------------------------------------------------------------------

    def write_policy(self, name: str, content: Union[str, dict]) -> None:
        """Replaces a policy file at once (write to a temporary name, then rename)."""
        path = self.workdir / name
        tmp = self.workdir / (name + ".tmp")
        tmp.write_text(content if isinstance(content, str) else to_yaml(content))
        os.replace(tmp, path)

    def logs(self, tail: int = 200) -> str:
        parts = []
        for path in (self.stdout_path, self.stderr_path):
            try:
                lines = path.read_text(errors="replace").splitlines()
            except OSError:
                lines = []
            parts.append(f"--- {path.name} (last {tail} lines) ---\n" + "\n".join(lines[-tail:]))
        return "\n".join(parts)

    def log_text(self) -> str:
        out = ""
        for path in (self.stdout_path, self.stderr_path):
            try:
                out += path.read_text(errors="replace")
            except OSError:
                pass
        return out

    # --- observation -------------------------------------------------------------------------------------

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("VmRSS not found")

    def metrics(self) -> "Metrics":
        r = get(self.port, "/metrics")
        assert r.status == 200, r.body
        return Metrics(r.text)

    def wait_metric(self, name: str, expected: float, timeout: float = 5.0, **labels: str) -> "Metrics":
        """Polls /metrics until `name` (summed over series matching `labels`) equals `expected`. Counters are
        bumped when a request is accounted for, which may be just after its last byte reached the client."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.metrics()
            got = m.value(name, **labels)
            if got == expected:
                return m
            if time.monotonic() >= deadline:
                raise AssertionError(f"{name}{labels} is {got}, expected {expected}")
            time.sleep(0.05)

    # --- requests ----------------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, headers: Optional[dict] = None,
                timeout: float = HTTP_TIMEOUT) -> "Response":
        assert self.port is not None
        return request(self.port, method, path, body, headers, timeout)

    def chat(self, model: str = "gpt-test", stream: bool = False, headers: Optional[dict] = None,
             timeout: float = HTTP_TIMEOUT, **fields) -> "Response":
        return self.request("POST", "/v1/chat/completions", chat_body(model, stream, **fields), headers, timeout)

    def stream(self, body: dict, path: str = "/v1/chat/completions", headers: Optional[dict] = None,
               rcvbuf: Optional[int] = None, timeout: float = HTTP_TIMEOUT) -> "SseClient":
        assert self.port is not None
        return SseClient(self.port, path, body, headers, rcvbuf, timeout)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def chat_body(model: str = "gpt-test", stream: bool = False, **fields) -> dict:
    body: dict = {"model": model, "messages": [{"role": "user", "content": "Say hello."}]}
    if stream:
        body["stream"] = True
    body.update(fields)
    return body


# --------------------------------------------------------------------------------------------------------
# Plain HTTP


class Response:
    def __init__(self, status: int, headers: dict, body: bytes):
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Response({self.status}, {self.headers}, {self.body[:500]!r})"


def request(port: int, method: str, path: str, body: Any = None, headers: Optional[dict] = None,
            timeout: float = HTTP_TIMEOUT) -> Response:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        data: Optional[bytes]
        if body is None:
            data = None
        elif isinstance(body, (bytes, str)):
            data = body.encode() if isinstance(body, str) else body
        else:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        payload = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, payload)
    finally:
        conn.close()


def get(port: int, path: str, headers: Optional[dict] = None, timeout: float = HTTP_TIMEOUT) -> Response:
    return request(port, "GET", path, None, headers, timeout)


def raw_exchange(port: int, data: bytes, timeout: float = HTTP_TIMEOUT) -> bytes:
    """Sends raw bytes, half-closes nothing, and reads until the server closes (or `timeout`)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    try:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may answer and close before taking it all
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if _complete_response(out):
                break
    finally:
        s.close()
    return out


def _complete_response(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return bool(m) and len(body) >= int(m.group(1))


def parse_status(raw: bytes) -> int:
    m = re.match(rb"HTTP/1\.[01] (\d{3})", raw)
    if not m:
        raise AssertionError(f"not an HTTP response: {raw[:200]!r}")
    return int(m.group(1))


# --------------------------------------------------------------------------------------------------------
# SSE over raw HTTP/1.1 (chunked), with arrival times and how the stream ended


class SseEvent:
    def __init__(self, data: str, at: float):
        self.data = data
        self.at = at  # time.monotonic() when its last byte arrived

    @property
    def json(self) -> Any:
        return json.loads(self.data)

    def __repr__(self) -> str:
        return f"SseEvent({self.data[:200]!r})"


class SseClient:
    """Sends one request and reads the answer incrementally. For an SSE answer, events() yields data
    payloads as they arrive; `clean_end` tells whether the chunked body ended with its terminating chunk
    (an orderly end) or the connection was closed/reset without it."""

    def __init__(self, port: int, path: str, body: dict, headers: Optional[dict] = None,
                 rcvbuf: Optional[int] = None, timeout: float = HTTP_TIMEOUT):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.sent_at = time.monotonic()
        payload = json.dumps(body).encode()
        hdrs = {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json",
                "Content-Length": str(len(payload)), "Accept": "text/event-stream"}
        hdrs.update(headers or {})
        head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        self.sock.sendall(head.encode() + payload)
        self.buf = b""
        self.status = 0
        self.headers: dict = {}
        self.body = b""             # a non-chunked answer (an error before the first byte)
        self.clean_end = False      # the terminating chunk arrived
        self.closed_abruptly = False
        self.bytes_received = 0
        self._chunked = False
        self._ended = False
        self._pending = b""         # decoded body bytes not yet split into events
        self._read_head()

    def _recv(self) -> bytes:
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        self.bytes_received += len(data)
        return data

    def _read_head(self) -> None:
        while b"\r\n\r\n" not in self.buf:
            data = self._recv()
            if not data:
                raise ConnectionError(f"connection closed before the response header: {self.buf!r}")
            self.buf += data
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1])
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self._chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        if not self._chunked:
            n = int(self.headers.get("content-length", "0"))
            while len(self.buf) < n:
                data = self._recv()
                if not data:
                    break
                self.buf += data
            self.body, self.buf = self.buf[:n], self.buf[n:]
            self._ended = True
            self.clean_end = True

    def _next_body_bytes(self) -> Optional[bytes]:
        """The next decoded piece of the chunked body; None at its end (clean or not)."""
        if self._ended:
            return None
        while True:
            if b"\r\n" in self.buf:
                line, rest = self.buf.split(b"\r\n", 1)
                try:
                    size = int(line.split(b";")[0], 16)
                except ValueError:
                    raise AssertionError(f"bad chunk header {line!r}")
                if size == 0:
                    self._ended = True
                    self.clean_end = True
                    return None
                if len(rest) >= size + 2:
                    piece = rest[:size]
                    self.buf = rest[size + 2:]
                    return piece
            data = self._recv()
            if not data:
                self._ended = True
                self.closed_abruptly = True
                return None
            self.buf += data

    def events(self) -> Iterable[SseEvent]:
        while True:
            while b"\n\n" in self._pending:
                frame, self._pending = self._pending.split(b"\n\n", 1)
                lines = [ln[5:].lstrip(b" ") for ln in frame.split(b"\n") if ln.startswith(b"data:")]
                if lines:
                    yield SseEvent(b"\n".join(lines).decode(), time.monotonic())
            piece = self._next_body_bytes()
            if piece is None:
                return
            self._pending += piece

    def read_all(self) -> list[SseEvent]:
        return list(self.events())

    def read_some_bytes(self, n: int) -> int:
        """Reads at least `n` raw bytes of the body (not parsed); returns how many were read."""
        got = 0
        while got < n:
            data = self._recv()
            if not data:
                break
            got += len(data)
        return got

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "SseClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def stream_text(events: Iterable[SseEvent]) -> str:
    """Concatenated delta content (chat) or text (completions) of stream events, [DONE] excluded."""
    out = ""
    for e in events:
        if e.data == "[DONE]":
            continue
        obj = e.json
        for choice in obj.get("choices", []):
            if "delta" in choice:
                out += choice["delta"].get("content") or ""
            else:
                out += choice.get("text") or ""
    return out


# --------------------------------------------------------------------------------------------------------
# Prometheus text


class Metrics:
    _line = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)')
    _label = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

    def __init__(self, text: str):
        self.text = text
        self.samples: list[tuple[str, dict, float]] = []
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = self._line.match(line)
            if not m:
                raise AssertionError(f"unparseable metrics line: {line!r}")
            labels = dict(self._label.findall(m.group(3) or ""))
            self.samples.append((m.group(1), labels, float(m.group(4))))

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels` (0 when there are none)."""
        return sum(v for n, lab, v in self.samples
                   if n == name and all(lab.get(k) == str(want) for k, want in labels.items()))

    def series(self, name: str) -> list[tuple[dict, float]]:
        return [(lab, v) for n, lab, v in self.samples if n == name]


def wait_for(predicate, timeout: float, interval: float = 0.05, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def refused_port() -> socket.socket:
    """A socket bound to a 127.0.0.1 port but not listening: connecting to that port is refused. Keep the
    returned socket open for as long as the port must stay refused (nobody else can take it meanwhile)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    return s


# --------------------------------------------------------------------------------------------------------
# pytest fixtures and hooks, imported by tests/integration/conftest.py and tests/e2e/conftest.py.
# On a failing test the logs of every sluice it started are printed (pytest shows them under the test's
# teardown output). A watchdog ends a run that hangs, with every thread's traceback, well before ctest's
# own timeout.

TEST_WATCHDOG_S = 240


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(autouse=True)
def _watchdog():
    faulthandler.dump_traceback_later(TEST_WATCHDOG_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> mock_upstream.Certs:
    return mock_upstream.make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def mock_factory(certs):
    made: list[mock_upstream.MockUpstream] = []

    def make(name: str = "mock", wrong_host: bool = False) -> mock_upstream.MockUpstream:
        m = mock_upstream.MockUpstream(certs, wrong_host=wrong_host, name=name)
        made.append(m)
        return m

    yield make
    for m in made:
        m.stop()


@pytest.fixture
def primary(mock_factory) -> mock_upstream.MockUpstream:
    return mock_factory("primary")


@pytest.fixture
def backup(mock_factory) -> mock_upstream.MockUpstream:
    return mock_factory("backup")


@pytest.fixture
def refused_url():
    s = refused_port()
    yield f"https://localhost:{s.getsockname()[1]}"
    s.close()


ProviderSpec = Union[mock_upstream.MockUpstream, str, dict]


@pytest.fixture
def sluice_factory(tmp_path, certs, request):
    """start(providers={name: MockUpstream | base URL | full provider dict}, routes=[...]) -> Sluice.

    Every provider gets an API key in the environment (sluice_harness.key_value(name)) and trusts the test
    CA unless its spec says otherwise; `provider_options` merges extra provider_entry() arguments by name.
    `policies` replaces the generated policy.yaml entirely ({file name: content}). `args` adds `sluice serve`
    flags (e.g. ["--supervise"]); `supervisor` and `health` become the config's sections of those names;
    `binary` replaces the sluice executable (fault_bin() for the fault-hook tests)."""
    started: list[Sluice] = []

    def start(providers: dict[str, ProviderSpec], routes: Optional[list] = None,
              policies: Optional[dict] = None, server: Optional[dict] = None, auth: Optional[dict] = None,
              env: Optional[dict] = None, provider_options: Optional[dict] = None,
              run: bool = True, engine: Optional[dict] = None, args: Optional[list[str]] = None,
              supervisor: Optional[dict] = None, health: Optional[dict] = None,
              binary: Optional[str] = None) -> Sluice:
        entries = []
        full_env = {}
        for name, spec in providers.items():
            opts = dict((provider_options or {}).get(name, {}))
            if isinstance(spec, dict):
                entry = dict(spec, name=name)
            else:
                url = spec.base_url if isinstance(spec, mock_upstream.MockUpstream) else spec
                opts.setdefault("ca_file", str(certs.ca_cert))
                entry = provider_entry(name, url, **opts)
            entries.append(entry)
            full_env[key_env(name)] = key_value(name)
        full_env.update(env or {})
        if policies is None:
            policies = {"policy.yaml": {"routes": routes or [route()]}}
        workdir = tmp_path / f"sluice{len(started)}"
        cfg = server_config(list(policies.keys()), entries, server, auth, engine)
        if supervisor:
            cfg["supervisor"] = supervisor
        if health:
            cfg["health"] = health
        s = Sluice(workdir, cfg, policies, full_env, args=args, binary=binary)
        started.append(s)
        if run:
            s.start()
        return s

    yield start

    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    bad_exits = []
    for s in started:
        if s.proc is None:
            continue
        rc = s.stop()
        if rc != 0:
            bad_exits.append(f"sluice in {s.workdir} exited with {rc}")
        if failed or rc != 0:
            print(f"\n===== sluice in {s.workdir} (exit {rc}) =====\n{s.logs()}")
    # A clean SIGTERM ends with 0; anything else (a crash while draining, a hang past STOP_TIMEOUT) is a bug.
    if bad_exits and not failed:
        pytest.fail("; ".join(bad_exits), pytrace=False)
