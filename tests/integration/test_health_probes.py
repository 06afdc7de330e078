"""Active health probes and readiness: a provider whose probes fail is taken out of routing (requests skip it
without touching it) and comes back after enough successful probes; /ready turns not-ready while the
catch-all route has no available target."""

import time

import mock_upstream as mu
import sluice_harness as sh

ADMIN = {"Authorization": "Bearer admin-secret"}
PROBE = {"interval_ms": 150, "timeout_ms": 500, "healthy_threshold": 2, "unhealthy_threshold": 2}


def chat_requests(mock):
    return sum(1 for r in mock.requests if r.method == "POST")


def probe_requests(mock):
    return sum(1 for r in mock.requests if r.method == "GET" and r.path.endswith("/models"))


def target_state(s, name):
    r = s.request("GET", "/admin/health", headers=ADMIN)
    assert r.status == 200, r.body
    return next(t for t in r.json()["targets"] if t["target"] == name)


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def start(sluice_factory, primary, backup, probe=PROBE, routes=None):
    routes = routes or [sh.route("r1", "*", targets=[{"provider": "primary", "tier": 0},
                                                     {"provider": "backup", "tier": 1}])]
    return sluice_factory({"primary": primary, "backup": backup}, routes=routes,
                          provider_options={"primary": {"health": {"probe": probe}}},
                          auth={"admin_key_env": "ADMIN"}, env={"ADMIN": "admin-secret"})


def test_failing_probes_take_provider_out_and_successes_bring_it_back(sluice_factory, primary, backup):
    primary.set_behavior(mu.ok(chunks=2))
    backup.set_behavior(mu.ok(chunks=2))
    s = start(sluice_factory, primary, backup)

    # Probes run on their own: GETs of the models path with the provider's key.
    wait_for(lambda: probe_requests(primary) >= 2, 5, "two probes")
    probe = next(r for r in primary.requests if r.method == "GET")
    assert probe.path == "/v1/models"
    assert probe.headers.get("authorization") == "Bearer " + sh.key_value("primary")
    assert probe_requests(backup) == 0  # backup has no probe configured
    assert s.chat().headers["x-sluice-target"] == "primary"

    # The provider's health endpoint fails: after two failed probes it is out of routing.
    primary.models_status = 503
    t0 = time.monotonic()
    wait_for(lambda: target_state(s, "primary")["probe"]["status"] == "unhealthy", 5, "probe status unhealthy")
    assert time.monotonic() - t0 < 2.0  # 2 probes at 150 ms (plus jitter)
    state = target_state(s, "primary")
    assert state["routable"] is False
    assert "503" in state["probe"]["last_error"]
    before = chat_requests(primary)
    for _ in range(3):
        r = s.chat()
        assert r.status == 200 and r.headers["x-sluice-target"] == "backup"
    assert chat_requests(primary) == before  # skipped without being tried
    m = s.metrics()
    assert m.value("sluice_probes_total", target="primary", result="failed") >= 2
    assert m.value("sluice_target_healthy", target="primary") == 0

    # It recovers: two good probes later it serves again.
    primary.models_status = 200
    wait_for(lambda: target_state(s, "primary")["probe"]["status"] == "healthy", 5, "probe status healthy")
    r = s.chat()
    assert r.status == 200 and r.headers["x-sluice-target"] == "primary"
    assert s.metrics().value("sluice_probes_total", target="primary", result="ok") >= 2


def test_unreachable_provider_fails_probes(sluice_factory, refused_url, backup):
    backup.set_behavior(mu.ok(chunks=2))
    routes = [sh.route("r1", "*", targets=[{"provider": "gone", "tier": 0}, {"provider": "backup", "tier": 1}])]
    s = sluice_factory({"gone": refused_url, "backup": backup}, routes=routes,
                       provider_options={"gone": {"health": {"probe": PROBE}}},
                       auth={"admin_key_env": "ADMIN"}, env={"ADMIN": "admin-secret"})
    wait_for(lambda: target_state(s, "gone")["probe"]["status"] == "unhealthy", 5, "probe status unhealthy")
    assert "connect" in target_state(s, "gone")["probe"]["last_error"]
    assert s.chat().headers["x-sluice-target"] == "backup"


def test_ready_follows_the_catch_all_route(sluice_factory, primary, backup):
    primary.set_behavior(mu.ok(chunks=2))
    routes = [sh.route("r1", "*", targets=[{"provider": "primary", "tier": 0}])]
    s = start(sluice_factory, primary, backup, routes=routes)
    assert s.request("GET", "/ready").status == 200

    primary.models_status = 500
    wait_for(lambda: s.request("GET", "/ready").status == 503, 5, "/ready to answer 503")
    r = s.request("GET", "/ready")
    assert r.json()["status"] == "unavailable"
    assert "r1" in r.json()["reason"]
    assert s.request("GET", "/health").status == 200  # liveness never depends on upstreams

    primary.models_status = 200
    wait_for(lambda: s.request("GET", "/ready").status == 200, 5, "/ready to answer 200 again")


def test_ready_is_unavailable_when_the_only_target_is_disabled(sluice_factory):
    # `local` with engine.enabled false is a disabled target: nothing can serve the catch-all route.
    routes = [sh.route("r1", "*", targets=[{"provider": "local", "tier": 0}])]
    s = sluice_factory({}, routes=routes)
    r = s.request("GET", "/ready")
    assert r.status == 503 and r.json()["status"] == "unavailable"
