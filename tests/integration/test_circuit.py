"""Per-target circuit breakers: a provider that keeps failing is ejected (its circuit opens and requests skip
it without touching it), and after the open period a trial request that succeeds closes the circuit again."""

import time

import mock_upstream as mu
import sluice_harness as sh

FAILURE_THRESHOLD = 5     # HealthConfig's default consecutive failures
OPEN_SECONDS = 5.0        # HealthConfig's default first open period


def test_failing_provider_is_ejected_then_readmitted(sluice_factory, primary, backup):
    primary.set_behavior(mu.error_status(500))
    backup.set_behavior(mu.ok(chunks=2))
    routes = [sh.route("r1", "*", targets=[{"provider": "primary", "tier": 0}, {"provider": "backup", "tier": 1}])]
    s = sluice_factory({"primary": primary, "backup": backup}, routes=routes)

    for _ in range(FAILURE_THRESHOLD):
        r = s.chat()
        assert r.status == 200 and r.headers["x-sluice-target"] == "backup"
    assert primary.request_count() == FAILURE_THRESHOLD
    m = s.wait_metric("sluice_circuit_state", 2, target="primary")  # open
    assert m.value("sluice_circuit_transitions_total", target="primary", to="open") == 1

    # While open, primary is not even tried.
    for _ in range(3):
        r = s.chat()
        assert r.status == 200 and r.headers["x-sluice-target"] == "backup"
    assert primary.request_count() == FAILURE_THRESHOLD

    # Primary recovers; after the open period one trial request goes to it and closes the circuit.
    primary.set_behavior(mu.ok(chunks=2))
    time.sleep(OPEN_SECONDS + 0.5)
    r = s.chat()
    assert r.status == 200 and r.headers["x-sluice-target"] == "primary"
    s.wait_metric("sluice_circuit_state", 0, target="primary")
    r = s.chat()
    assert r.headers["x-sluice-target"] == "primary"


def test_admin_health_reports_every_target(sluice_factory, primary):
    primary.set_behavior(mu.ok())
    s = sluice_factory({"primary": primary}, routes=[sh.route()], auth={"admin_key_env": "ADMIN"},
                       env={"ADMIN": "admin-secret"})
    assert s.request("GET", "/admin/health").status == 401
    r = s.request("GET", "/admin/health", headers={"Authorization": "Bearer admin-secret"})
    assert r.status == 200
    names = {t["target"] for t in r.json()["targets"]}
    assert names == {"primary", "local"}
    primary_state = next(t for t in r.json()["targets"] if t["target"] == "primary")
    assert primary_state["state"] == "closed"
