"""`sluice serve --supervise`: the parent keeps the listening socket while it replaces a worker that was
killed (SIGKILL) or hung (SIGSTOP: no heartbeats), so clients never see a refused connection; a worker that
fails at every start ends in a crash loop (exit 1); SIGTERM drains the worker's open streams (exit 0); and
the systemd notification protocol (READY=1, WATCHDOG=1 only while heartbeats arrive, STOPPING=1)."""

import os
import re
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import mock_upstream as mu
import sluice_harness as sh

# Fast supervision for tests: heartbeats every 100 ms, hung after 1 s without one.
FAST = {"heartbeat_interval_ms": 100, "heartbeat_timeout_ms": 1000, "restart_backoff_ms": 50,
        "restart_backoff_max_ms": 400}


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def worker_of(s: sh.Sluice, other_than: int = 0, timeout: float = 10.0) -> int:
    """The parent's (single) worker process, waiting for one that is not `other_than` and answers /health."""
    deadline = time.monotonic() + timeout
    while True:
        kids = [p for p in children(s.pid) if p != other_than and _alive(p)]
        if len(kids) == 1:
            try:
                if sh.get(s.port, "/health", timeout=1).status == 200:
                    return kids[0]
            except OSError:
                pass
        if time.monotonic() > deadline:
            raise AssertionError(f"no new worker (children {children(s.pid)}):\n{s.logs(60)}")
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Load:
    """Threads sending chat requests back to back on fresh connections, each with a bounded timeout;
    every outcome is recorded as (started, ended, kind) with kind ok / refused / error / timeout."""

    def __init__(self, port: int, threads: int = 4, timeout: float = 5.0):
        self.port, self.timeout = port, timeout
        self.results: list[tuple[float, float, str]] = []
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        while not self.stop_flag.is_set():
            t0 = time.monotonic()
            try:
                r = sh.request(self.port, "POST", "/v1/chat/completions", sh.chat_body(), timeout=self.timeout)
                kind = "ok" if r.status == 200 else f"status {r.status}"
            except ConnectionRefusedError:
                kind = "refused"
            except socket.timeout:
                kind = "timeout"
            except (OSError, Exception):  # reset, incomplete read, remote closed
                kind = "error"
            with self.lock:
                self.results.append((t0, time.monotonic(), kind))

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=self.timeout + 5)
        assert not any(t.is_alive() for t in self.threads), "a client request hung"

    def kinds(self, started_after: float = 0.0) -> list[str]:
        with self.lock:
            return [k for t0, _, k in self.results if t0 >= started_after]


def assert_replaced(s: sh.Sluice, old: int, within: float) -> int:
    t0 = time.monotonic()
    new = worker_of(s, other_than=old, timeout=within + 3)
    assert s.chat().status == 200
    took = time.monotonic() - t0
    assert took <= within, f"the replacement worker served {took:.2f}s after the old one died"
    assert not _alive(old)
    return new


def test_killed_worker_is_replaced_without_refused_connections(sluice_factory, primary):
    primary.set_behavior(mu.ok(header_delay=0.05))
    primary.set_behavior(mu.slow_stream(chunks=40, chunk_delay=0.1), model="long")
    s = sluice_factory({"primary": primary}, routes=[sh.route()], args=["--supervise"], supervisor=FAST)
    old = worker_of(s)
    with Load(s.port) as load:
        time.sleep(0.5)
        stream = s.stream(sh.chat_body(model="long", stream=True), timeout=5)
        assert stream.status == 200
        events = iter(stream.events())
        next(events)
        killed_at = time.monotonic()
        os.kill(old, signal.SIGKILL)
        assert_replaced(s, old, within=2.0)
        recovered_at = time.monotonic()
        # The stream in flight at the kill ends promptly and visibly cut, never as a clean end.
        rest = list(events)
        assert stream.closed_abruptly and not stream.clean_end, rest[-3:]
        assert time.monotonic() - killed_at < 4.0
        stream.close()
        time.sleep(1.0)
    kinds = load.kinds()
    assert "refused" not in kinds, kinds
    assert "timeout" not in kinds, kinds
    assert set(kinds) <= {"ok", "error"}, kinds
    after = load.kinds(started_after=recovered_at)
    assert len(after) >= 4 and set(after) == {"ok"}, after
    assert kinds.count("ok") > 10, kinds
    assert "was killed by signal 9" in s.log_text()
    assert s.stop() == 0


def test_hung_worker_is_killed_and_replaced(sluice_factory, primary):
    primary.set_behavior(mu.ok())
    s = sluice_factory({"primary": primary}, routes=[sh.route()], args=["--supervise"], supervisor=FAST)
    old = worker_of(s)
    stopped_at = time.monotonic()
    os.kill(old, signal.SIGSTOP)
    try:
        # Not before the heartbeat timeout: a worker is never killed for one late beat.
        time.sleep(0.6)
        assert _alive(old) and children(s.pid) == [old]
        new = worker_of(s, other_than=old, timeout=6.0)
    finally:
        if _alive(old):
            os.kill(old, signal.SIGCONT)
    took = time.monotonic() - stopped_at
    assert 1.0 <= took <= 4.0, f"replaced after {took:.2f}s"
    assert not _alive(old)
    assert new != old
    assert s.chat().status == 200
    assert "hung; killing it" in s.log_text()
    # SIGHUP to the parent reaches the current worker (a policy reload).
    s.signal(signal.SIGHUP)
    sh.wait_for(lambda: "policies reloaded (SIGHUP)" in s.log_text(), timeout=5, message="the forwarded SIGHUP")
    assert s.stop() == 0


def test_worker_failing_at_every_start_ends_in_a_crash_loop(tmp_path, certs, primary):
    # A real start-up failure: the provider's CA file disappears after the first worker started, so every
    # replacement fails while loading it.
    ca = tmp_path / "ca-copy.pem"
    shutil.copy(certs.ca_cert, ca)
    cfg = sh.server_config(["policy.yaml"], [sh.provider_entry("primary", primary.base_url, ca_file=str(ca))])
    cfg["supervisor"] = dict(FAST, restart_backoff_ms=20, restart_backoff_max_ms=100, crash_loop_restarts=3)
    s = sh.Sluice(tmp_path / "sluice", cfg, {"policy.yaml": {"routes": [sh.route()]}},
                  {sh.key_env("primary"): sh.key_value("primary")}, args=["--supervise"])
    s.start()
    try:
        old = worker_of(s)
        ca.unlink()
        os.kill(old, signal.SIGKILL)
        rc = s.wait(timeout=15)
        assert rc == 1, f"exit code {rc}:\n{s.logs(60)}"
        err = s.stderr_path.read_text()
        assert "crash loop, giving up" in err, err
        assert "the worker failed 4 times" in err, err
        assert s.log_text().count("cannot load ca_file") >= 3
        # No worker outlives it.
        started = [int(p) for p in re.findall(r"started worker (\d+)", s.log_text())]
        assert len(started) == 4, started
        assert not any(_alive(p) for p in started)
    finally:
        s.kill()


def test_sigterm_drains_open_streams_and_exits_zero(sluice_factory, primary):
    chunks = 8
    primary.set_behavior(mu.slow_stream(chunks=chunks, chunk_delay=0.25))
    s = sluice_factory({"primary": primary}, routes=[sh.route()], args=["--supervise"], supervisor=FAST,
                       server={"shutdown_grace_ms": 8000})
    worker = worker_of(s)
    streams = [s.stream(sh.chat_body(stream=True), timeout=15) for _ in range(20)]
    iters = [iter(c.events()) for c in streams]
    firsts = [next(it) for it in iters]
    results: list = [None] * len(streams)

    def finish(i: int) -> None:
        results[i] = [firsts[i]] + list(iters[i])

    s.signal(signal.SIGTERM)
    threads = [threading.Thread(target=finish, args=(i,)) for i in range(len(streams))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    for i, c in enumerate(streams):
        assert results[i] is not None, f"stream {i} hung"
        assert c.clean_end, f"stream {i} was cut by SIGTERM"
        assert results[i][-1].data == "[DONE]"
        assert sh.stream_text(results[i]) == mu.content_of(chunks)
        c.close()
    assert s.wait(timeout=15) == 0
    assert not _alive(worker)
    assert "drained and exited" in s.log_text()


def test_sd_notify_ready_watchdog_and_stopping(sluice_factory, primary):
    name = f"sluice-test-notify-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(0.1)

    def drain(seconds: float) -> list[str]:
        got, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                got.extend(sock.recv(4096).decode().split("\n"))
            except socket.timeout:
                pass
        return got

    try:
        primary.set_behavior(mu.ok())
        # WATCHDOG_USEC 400 ms: a ping is due every 200 ms; heartbeats come every 100 ms.
        s = sluice_factory({"primary": primary}, routes=[sh.route()], args=["--supervise"],
                           supervisor=dict(FAST, heartbeat_timeout_ms=3000),
                           env={"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "400000"})
        first = drain(1.0)
        assert first.count("READY=1") == 1, first
        assert first.count("WATCHDOG=1") >= 3, first
        # A stopped worker sends no heartbeats, so systemd gets no pings meanwhile.
        worker = worker_of(s)
        os.kill(worker, signal.SIGSTOP)
        try:
            drain(0.3)  # what was sent before the stop took effect
            assert "WATCHDOG=1" not in drain(1.0)
        finally:
            os.kill(worker, signal.SIGCONT)
        assert "WATCHDOG=1" in drain(1.0)
        assert s.stop() == 0
        assert "STOPPING=1" in drain(0.5)
    finally:
        sock.close()
