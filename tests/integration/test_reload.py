"""Hot reload of policy files: on file change (polled each second), on SIGHUP and through /admin/reload;
a broken policy file keeps the policy in force."""

import os
import signal
import time

import mock_upstream as mu
import sluice_harness as sh

RELOAD_WAIT = 10.0  # seconds: the watcher polls each second; a loaded machine may lag


def policy(model: str) -> dict:
    return {"routes": [sh.route("r1", model)]}


def status_of(s, model):
    return s.chat(model).status


def reloads(s, result):
    return s.metrics().value("sluice_policy_reloads_total", result=result)


def test_file_change_reloads_policy(sluice_factory, primary):
    s = sluice_factory({"primary": primary}, policies={"policy.yaml": policy("model-one")})
    assert status_of(s, "model-one") == 200
    assert status_of(s, "model-two-changed") == 404
    s.write_policy("policy.yaml", policy("model-two-changed"))
    sh.wait_for(lambda: status_of(s, "model-two-changed") == 200, RELOAD_WAIT, 0.1, "the new route")
    assert status_of(s, "model-one") == 404
    sh.wait_for(lambda: reloads(s, "ok") >= 1, 5.0, message="the reload counter")


def test_sighup_reloads_policy(sluice_factory, primary):
    s = sluice_factory({"primary": primary}, policies={"policy.yaml": policy("model-aaa")})
    assert status_of(s, "model-aaa") == 200
    path = s.policy_paths["policy.yaml"]
    st = os.stat(path)
    # Same size and the old modification time: the file watcher cannot tell it changed; only SIGHUP can.
    new_text = sh.to_yaml(policy("model-bbb"))
    assert len(new_text) == st.st_size
    path.write_text(new_text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    time.sleep(1.5)
    assert status_of(s, "model-aaa") == 200, "the test's premise failed: the watcher saw an unchanged stamp"
    s.signal(signal.SIGHUP)
    sh.wait_for(lambda: status_of(s, "model-bbb") == 200, RELOAD_WAIT, 0.1, "the route after SIGHUP")
    assert status_of(s, "model-aaa") == 404
    assert s.alive()


def test_broken_policy_keeps_the_old_one(sluice_factory, primary):
    s = sluice_factory({"primary": primary}, policies={"policy.yaml": policy("model-keep")})
    assert status_of(s, "model-keep") == 200
    broken = sh.to_yaml(policy("model-broken")).replace('"primary"', '"no-such-provider"')
    s.write_policy("policy.yaml", broken)
    sh.wait_for(lambda: reloads(s, "error") >= 1, RELOAD_WAIT, 0.1, "the rejected reload")
    assert status_of(s, "model-keep") == 200
    assert status_of(s, "model-broken") == 404
    s.write_policy("policy.yaml", "routes: [ {name: r1, model: \n")  # not even YAML
    sh.wait_for(lambda: reloads(s, "error") >= 2, RELOAD_WAIT, 0.1, "the second rejected reload")
    assert status_of(s, "model-keep") == 200
    s.signal(signal.SIGHUP)  # a reload of a still-broken file changes nothing either
    time.sleep(0.5)
    assert s.alive()
    assert status_of(s, "model-keep") == 200
    # Fixed again: the new policy takes over.
    s.write_policy("policy.yaml", policy("model-fixed"))
    sh.wait_for(lambda: status_of(s, "model-fixed") == 200, RELOAD_WAIT, 0.1, "the fixed policy")
    assert status_of(s, "model-keep") == 404
    assert "no-such-provider" in s.log_text(), "the rejected reload should say what was wrong"


def test_admin_reload(sluice_factory, primary):
    s = sluice_factory({"primary": primary}, policies={"policy.yaml": policy("model-x")},
                       auth={"admin_key_env": "TEST_ADMIN_KEY"}, env={"TEST_ADMIN_KEY": "admin-key-1"})
    admin = {"Authorization": "Bearer admin-key-1"}
    assert s.request("POST", "/admin/reload").status == 401
    assert s.request("POST", "/admin/reload", headers={"Authorization": "Bearer wrong"}).status == 401
    r = s.request("POST", "/admin/reload", headers=admin)
    assert r.status == 200, r
    assert r.json()["reloaded"] is True

    broken = sh.to_yaml(policy("model-y")).replace("requests_per_second: 1000", "requests_per_second: -5")
    s.write_policy("policy.yaml", broken)
    r = s.request("POST", "/admin/reload", headers=admin)
    assert r.status == 400, r
    out = r.json()
    assert out["reloaded"] is False
    assert any("policy.yaml:" in e for e in out["errors"]), out
    assert status_of(s, "model-x") == 200


def test_reload_keeps_in_flight_stream(sluice_factory, primary):
    primary.set_behavior(mu.slow_stream(chunks=8, chunk_delay=0.25))
    s = sluice_factory({"primary": primary}, policies={"policy.yaml": policy("model-old")})
    with s.stream(sh.chat_body("model-old", stream=True)) as c:
        assert c.status == 200
        s.write_policy("policy.yaml", policy("model-new-name"))
        s.signal(signal.SIGHUP)
        events = c.read_all()
    assert c.clean_end and events[-1].data == "[DONE]"
    assert sh.stream_text(events) == mu.content_of(8)
    primary.set_behavior(mu.ok())
    sh.wait_for(lambda: status_of(s, "model-new-name") == 200, RELOAD_WAIT, 0.1, "the new route")
