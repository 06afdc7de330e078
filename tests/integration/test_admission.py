"""Admission and request validation: client keys, token buckets (429 + Retry-After), the route's
concurrency queue (503), and the HTTP-level rejections (413, 431, 400, 404, 405, 415)."""

import json
import threading
import time

import mock_upstream as mu
import sluice_harness as sh


def assert_openai_error(r, status, type_=None, code=None):
    assert r.status == status, r
    assert r.headers.get("content-type", "").startswith("application/json"), r
    err = r.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"]
    if type_ is not None:
        assert err["type"] == type_, err
    if code is not None:
        assert err["code"] == code, err
    return err


# --- authentication ------------------------------------------------------------------------------------


def test_client_keys(sluice_factory, primary):
    s = sluice_factory({"primary": primary}, routes=[sh.route()],
                       auth={"client_keys_env": "TEST_CLIENT_KEYS", "admin_key_env": "TEST_ADMIN_KEY"},
                       env={"TEST_CLIENT_KEYS": "key-one,key-two", "TEST_ADMIN_KEY": "admin-secret"})
    assert_openai_error(s.chat(), 401, "authentication_error")
    assert_openai_error(s.chat(headers={"Authorization": "Bearer key-three"}), 401, "authentication_error")
    assert_openai_error(s.chat(headers={"Authorization": "Basic a2V5LW9uZQ=="}), 401)
    assert_openai_error(s.chat(headers={"Authorization": "Bearer admin-secret"}), 401)
    assert primary.request_count() == 0, "an unauthenticated request reached the provider"
    for key in ("key-one", "key-two"):
        r = s.chat(headers={"Authorization": f"Bearer {key}"})
        assert r.status == 200, r
    assert s.request("GET", "/health").status == 200
    assert s.metrics().value("sluice_auth_failures_total") == 4


# --- sluice's own token bucket -------------------------------------------------------------------------


def test_route_bucket_rejects_with_retry_after(sluice_factory, primary):
    s = sluice_factory({"primary": primary},
                       routes=[sh.route(limits={"requests_per_second": 0.2, "burst": 2})])
    assert s.chat().status == 200
    assert s.chat().status == 200
    r = s.chat()
    assert_openai_error(r, 429, "rate_limit_error")
    retry_after = int(r.headers["retry-after"])
    assert 1 <= retry_after <= 5, retry_after  # one token takes 5 s at 0.2/s
    assert primary.request_count() == 2
    assert s.metrics().value("sluice_limiter_rejections_total", route="r1", limit="route_requests") == 1


def test_client_key_bucket(sluice_factory, primary):
    policy = {"client_limits": {"requests_per_second": 0.1, "burst": 1}, "routes": [sh.route()]}
    s = sluice_factory({"primary": primary}, policies={"policy.yaml": policy},
                       auth={"client_keys_env": "TEST_CLIENT_KEYS"}, env={"TEST_CLIENT_KEYS": "ka,kb"})
    assert s.chat(headers={"Authorization": "Bearer ka"}).status == 200
    r = s.chat(headers={"Authorization": "Bearer ka"})
    assert_openai_error(r, 429)
    assert int(r.headers["retry-after"]) >= 1
    # Another key has its own bucket.
    assert s.chat(headers={"Authorization": "Bearer kb"}).status == 200


# --- the route's concurrency limit and queue -----------------------------------------------------------


def test_route_queue_full_gives_503(sluice_factory, primary):
    primary.set_behavior(mu.slow_stream(chunks=6, chunk_delay=0.25))
    s = sluice_factory({"primary": primary},
                       routes=[sh.route(limits={"max_concurrency": 1, "max_queue": 0})])
    with s.stream(sh.chat_body(stream=True)) as first:
        assert first.status == 200
        primary.wait_for_requests(1)
        r = s.chat()
        assert_openai_error(r, 503, code="queue_full")
        assert primary.request_count() == 1
        first.read_all()
        assert first.clean_end
    # The slot is free again.
    primary.set_behavior(mu.ok())
    assert s.chat().status == 200
    assert s.metrics().value("sluice_limiter_rejections_total", route="r1", limit="route_queue_full") == 1


def test_route_queue_timeout_gives_503(sluice_factory, primary):
    primary.set_behavior(mu.slow_stream(chunks=10, chunk_delay=0.3))
    s = sluice_factory({"primary": primary},
                       routes=[sh.route(limits={"max_concurrency": 1, "max_queue": 1, "queue_timeout_ms": 400})])
    with s.stream(sh.chat_body(stream=True)) as first:
        assert first.status == 200
        primary.wait_for_requests(1)
        t0 = time.monotonic()
        r = s.chat()
        waited = time.monotonic() - t0
        assert_openai_error(r, 503, code="queue_timeout")
        assert 0.3 <= waited < 5.0, waited
    assert s.metrics().value("sluice_limiter_rejections_total", route="r1", limit="route_queue_timeout") == 1


def test_queued_request_runs_when_slot_frees(sluice_factory, primary):
    primary.set_behavior(mu.slow_stream(chunks=4, chunk_delay=0.25))
    s = sluice_factory({"primary": primary},
                       routes=[sh.route(limits={"max_concurrency": 1, "max_queue": 1, "queue_timeout_ms": 15000})])
    result = {}
    with s.stream(sh.chat_body(stream=True)) as first:
        assert first.status == 200
        primary.wait_for_requests(1)
        t = threading.Thread(target=lambda: result.setdefault("r", s.chat()))
        t.start()
        time.sleep(0.3)
        assert primary.request_count() == 1, "the queued request must wait for the slot"
        first.read_all()
        assert first.clean_end
    t.join(timeout=30)
    assert result["r"].status == 200, result["r"]
    assert primary.request_count() == 2


# --- HTTP-level rejections -----------------------------------------------------------------------------


def test_body_too_large_gives_413(sluice_factory, primary):
    s = sluice_factory({"primary": primary}, routes=[sh.route()])
    body_len = 2 * 1024 * 1024  # the limit is 1 MiB
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {body_len}\r\n\r\n").encode()
    raw = sh.raw_exchange(s.port, head)
    assert sh.parse_status(raw) == 413, raw[:300]
    assert json.loads(raw.split(b"\r\n\r\n", 1)[1])["error"]["message"]
    # Sent in full, the body is refused as well, and the answer still reaches the client (which may fail to
    # send the rest of its upload; that is expected).
    body = json.dumps(sh.chat_body(messages=[{"role": "user", "content": "x" * (1024 * 1024 + 10)}])).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    raw = sh.raw_exchange(s.port, head + body)
    assert sh.parse_status(raw) == 413, raw[:300]
    assert primary.request_count() == 0
    assert s.request("GET", "/health").status == 200


def test_huge_headers_give_431(sluice_factory, primary):
    s = sluice_factory({"primary": primary}, routes=[sh.route()])
    head = ("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + "a" * 20000 + "\r\n\r\n").encode()
    raw = sh.raw_exchange(s.port, head)
    assert sh.parse_status(raw) == 431, raw[:300]
    assert s.request("GET", "/health").status == 200


def test_bad_requests_give_400(sluice_factory, primary):
    s = sluice_factory({"primary": primary}, routes=[sh.route()])
    msgs = [{"role": "user", "content": "hi"}]
    table = [
        ("invalid JSON", b'{"model": "m", "messages": [', None),
        ("not an object", b"[1, 2]", None),
        ("empty body", b"", None),
        ("n too large", {"model": "m", "messages": msgs, "n": 1000}, "n"),
        ("missing messages", {"model": "m"}, "messages"),
        ("messages not a list", {"model": "m", "messages": "hi"}, "messages"),
        ("missing model", {"messages": msgs}, "model"),
        ("temperature out of range", {"model": "m", "messages": msgs, "temperature": 7}, "temperature"),
        ("max_tokens negative", {"model": "m", "messages": msgs, "max_tokens": -1}, "max_tokens"),
        ("stream not a bool", {"model": "m", "messages": msgs, "stream": "yes"}, "stream"),
    ]
    problems = []
    for name, body, param in table:
        r = s.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        try:
            err = assert_openai_error(r, 400, "invalid_request_error")
            if param is not None:
                assert err["param"] == param, f"param {err['param']!r} != {param!r}"
        except AssertionError as e:
            problems.append(f"{name}: {e}")
    assert not problems, "\n".join(problems)
    assert primary.request_count() == 0


def test_unknown_model_gives_404_with_exact_routes_only(sluice_factory, primary):
    s = sluice_factory({"primary": primary}, routes=[sh.route("exact", "gpt-exact")])
    assert s.chat("gpt-exact").status == 200
    assert_openai_error(s.chat("gpt-other"), 404, code="model_not_found")
    assert_openai_error(s.chat("gpt-exact-2"), 404)
    assert primary.request_count() == 1


def test_method_not_allowed_gives_405(sluice_factory, primary):
    s = sluice_factory({"primary": primary}, routes=[sh.route()])
    r = s.request("GET", "/v1/chat/completions")
    assert_openai_error(r, 405)
    assert "POST" in r.headers.get("allow", "")
    assert_openai_error(s.request("DELETE", "/v1/completions"), 405)
    assert_openai_error(s.request("POST", "/v1/models", {}), 405)


def test_wrong_content_type_gives_415(sluice_factory, primary):
    s = sluice_factory({"primary": primary}, routes=[sh.route()])
    r = s.request("POST", "/v1/chat/completions", json.dumps(sh.chat_body()), {"Content-Type": "text/plain"})
    assert_openai_error(r, 415)
    r = s.request("POST", "/v1/chat/completions", json.dumps(sh.chat_body()),
                  {"Content-Type": "application/json; charset=utf-8"})
    assert r.status == 200, r
    assert primary.request_count() == 1


def test_unknown_path_gives_404(sluice_factory, primary):
    s = sluice_factory({"primary": primary}, routes=[sh.route()])
    assert_openai_error(s.request("GET", "/v1/nothing-here"), 404)
