"""Engine failures seen from the gateway, with faults injected through the test-only hooks of
`sluice-fault-hooks` (tests/hooks): a hung engine step trips the watchdog and `local` traffic falls back to
the remote provider within the configured time, then returns once the engine completes steps again; a device
fault takes `local` out of routing, and under the supervisor the worker is replaced by a fresh one."""

import pathlib
import threading
import time

import mock_upstream as mu
import sluice_harness as sh
from test_supervisor import worker_of

MODEL_DIR = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "models" / "tiny_llama_chat"
ENGINE = {"enabled": True, "model_path": str(MODEL_DIR), "served_model_name": "tiny", "threads": 1,
          "max_num_seqs": 8, "max_num_batched_tokens": 128, "kv_cache_bytes": 8 << 20, "max_model_len": 256}
WATCHDOG_MS = 500
ROUTES = [sh.route("r1", "*", targets=[{"provider": "local", "tier": 0}, {"provider": "primary", "tier": 1}],
                   fallback_on=sh.ALL_FALLBACKS)]


def ask(s, **kw):
    return s.chat(model="tiny", max_tokens=4, temperature=0, **kw)


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def test_hung_step_trips_the_watchdog_and_traffic_falls_back(sluice_factory, primary, tmp_path):
    primary.set_behavior(mu.ok(chunks=2))
    hang = tmp_path / "hang"
    s = sluice_factory({"primary": primary}, routes=ROUTES, engine=ENGINE, binary=sh.fault_bin(),
                       health={"engine_watchdog_ms": WATCHDOG_MS},
                       env={"SLUICE_FAULT_HANG_FILE": str(hang)})
    r = ask(s)
    assert r.status == 200 and r.headers["x-sluice-target"] == "local"

    # Hang the engine: the request that started the step waits inside it, having produced nothing yet.
    hang.touch()
    hung = {}
    t = threading.Thread(target=lambda: hung.setdefault("r", ask(s)))
    t.start()
    t0 = time.monotonic()

    # Within the watchdog's time (plus its polling), new requests are answered by the remote provider.
    def served_remotely():
        r = ask(s)
        return r if r.status == 200 and r.headers["x-sluice-target"] == "primary" else None

    wait_for(served_remotely, 5, "a request to fall back to primary")
    elapsed = time.monotonic() - t0
    assert elapsed < WATCHDOG_MS / 1000 + 1.0, f"fell back only after {elapsed:.2f}s"
    m = s.metrics()
    assert m.value("sluice_engine_watchdog_trips_total") == 1
    assert m.value("sluice_target_healthy", target="local") == 0
    # The request caught in the hung step had no output yet: it moved on to the provider too.
    t.join(10)
    assert not t.is_alive() and hung["r"].status == 200 and hung["r"].headers["x-sluice-target"] == "primary"

    # Recovery: the step completes and `local` serves again.
    hang.unlink()
    wait_for(lambda: ask(s).headers["x-sluice-target"] == "local", 5, "local to serve again")
    assert s.metrics().value("sluice_target_healthy", target="local") == 1


def test_device_fault_falls_back_and_the_supervisor_replaces_the_worker(sluice_factory, primary, tmp_path):
    primary.set_behavior(mu.ok(chunks=2))
    fault = tmp_path / "fault"
    s = sluice_factory({"primary": primary}, routes=ROUTES, engine=ENGINE, binary=sh.fault_bin(),
                       args=["--supervise"], env={"SLUICE_FAULT_DEVICE_FILE": str(fault)},
                       supervisor={"restart_backoff_ms": 50, "heartbeat_interval_ms": 100,
                                   "heartbeat_timeout_ms": 2000})
    assert ask(s).headers["x-sluice-target"] == "local"
    first_worker = worker_of(s)

    fault.touch()
    r = ask(s)  # the step fails as a device fault: an error, or the remote provider's answer
    assert r.status in (200, 500, 502, 503)
    wait_for(lambda: "device fault" in s.logs(), 5, "the device fault in the log")
    fault.unlink()
    # While the faulted worker drains, `local` is out of routing; the request still gets an answer.
    r = ask(s)
    assert r.status == 200
    # The faulted worker exits non-zero after draining; the supervisor starts a fresh one, whose engine
    # serves again.
    wait_for(lambda: "restarting" in s.logs(), 15, "the supervisor to restart the worker")
    assert worker_of(s, other_than=first_worker, timeout=15) != first_worker
    wait_for(lambda: ask(s).headers.get("x-sluice-target") == "local", 30, "the new worker's engine to serve")
