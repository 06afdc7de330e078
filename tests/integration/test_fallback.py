"""Fallback: every failure before the first byte moves on to the next target; a failure after it ends the
client's stream with an error event and never with [DONE]."""

import time

import mock_upstream as mu
import sluice_harness as sh

TWO_TIERS = [{"provider": "primary", "tier": 0}, {"provider": "backup", "tier": 1}]


def two_tier(sluice_factory, primary, backup, targets=None, provider_options=None, **route_kw):
    return sluice_factory({"primary": primary, "backup": backup},
                          routes=[sh.route(targets=targets or TWO_TIERS, **route_kw)],
                          provider_options=provider_options)


def assert_served_by_backup(r, backup, chunks=3):
    assert r.status == 200, r
    assert r.headers.get("x-sluice-target") == "backup"
    assert r.json()["choices"][0]["message"]["content"] == mu.content_of(chunks)
    assert backup.request_count() >= 1


def fallbacks(s, reason):
    return s.metrics().value("sluice_fallbacks_total", route="r1", reason=reason)


def test_refused_connection_falls_back(sluice_factory, backup, refused_url):
    s = sluice_factory({"primary": refused_url, "backup": backup}, routes=[sh.route(targets=TWO_TIERS)])
    assert_served_by_backup(s.chat(), backup)
    assert fallbacks(s, "connect_error") == 1


def test_upstream_500_falls_back(sluice_factory, primary, backup):
    primary.set_behavior(mu.error_status(500))
    s = two_tier(sluice_factory, primary, backup)
    assert_served_by_backup(s.chat(), backup)
    assert primary.request_count() == 1
    assert fallbacks(s, "upstream_5xx") == 1


def test_upstream_500_is_retried_then_falls_back(sluice_factory, primary, backup):
    primary.set_behavior(mu.error_status(503))
    s = two_tier(sluice_factory, primary, backup, retries={"max_attempts": 3})
    assert_served_by_backup(s.chat(), backup)
    assert primary.request_count() == 3
    m = s.metrics()
    assert m.value("sluice_retries_total", route="r1", target="primary") == 2
    assert m.value("sluice_fallbacks_total", route="r1", reason="upstream_5xx") == 1


def test_stream_falls_back_before_first_byte(sluice_factory, primary, backup):
    primary.set_behavior(mu.error_status(502))
    s = two_tier(sluice_factory, primary, backup)
    with s.stream(sh.chat_body(stream=True)) as c:
        assert c.status == 200, c.body
        assert c.headers.get("x-sluice-target") == "backup"
        events = c.read_all()
    assert c.clean_end and events[-1].data == "[DONE]"
    assert sh.stream_text(events) == mu.content_of(3)
    assert not any("error" in e.json for e in events[:-1])


def test_hang_past_first_byte_timeout_falls_back(sluice_factory, primary, backup):
    primary.set_behavior(mu.hang())
    s = two_tier(sluice_factory, primary, backup,
                 targets=[{"provider": "primary", "tier": 0, "timeouts": {"first_byte_ms": 600}},
                          {"provider": "backup", "tier": 1}])
    t0 = time.monotonic()
    r = s.chat()
    elapsed = time.monotonic() - t0
    assert_served_by_backup(r, backup)
    assert 0.5 <= elapsed < 8.0, elapsed
    assert fallbacks(s, "timeout") == 1
    # The timed-out exchange cannot be reused: its connection must be closed, not left hanging.
    rec = primary.wait_for_close(0, timeout=5.0)
    assert rec.closed_at is not None and rec.closed_by == "peer", rec


def test_hang_with_stream_falls_back(sluice_factory, primary, backup):
    primary.set_behavior(mu.hang())
    s = two_tier(sluice_factory, primary, backup, provider_options={"primary": {"timeouts": {"first_byte_ms": 500}}})
    with s.stream(sh.chat_body(stream=True)) as c:
        assert c.status == 200
        assert c.headers.get("x-sluice-target") == "backup"
        events = c.read_all()
    assert c.clean_end and events[-1].data == "[DONE]"
    assert sh.stream_text(events) == mu.content_of(3)


def test_reset_before_first_byte_falls_back(sluice_factory, primary, backup):
    primary.set_behavior(mu.reset_before_first_byte())
    s = two_tier(sluice_factory, primary, backup)
    assert_served_by_backup(s.chat(), backup)
    assert primary.request_count() >= 1
    m = s.metrics()
    assert m.value("sluice_fallbacks_total", route="r1") == 1


def test_non_stream_body_cut_midway_falls_back(sluice_factory, primary, backup):
    # A non-stream answer reaches the client only whole, so a cut inside it is still "before the first byte".
    primary.set_behavior(mu.reset_after_first_chunk())
    s = two_tier(sluice_factory, primary, backup)
    assert_served_by_backup(s.chat(), backup)


def test_reset_after_first_chunk_ends_stream_with_error(sluice_factory, primary, backup):
    primary.set_behavior(mu.reset_after_first_chunk(chunks=5, cut_after=2))
    s = two_tier(sluice_factory, primary, backup)
    with s.stream(sh.chat_body(stream=True)) as c:
        assert c.status == 200
        assert c.headers.get("x-sluice-target") == "primary"
        events = c.read_all()
    datas = [e.data for e in events]
    assert "[DONE]" not in datas, datas
    assert not c.clean_end, "a cut stream must not end with the terminating chunk"
    assert sh.stream_text(events[:2]) == mu.content_of(2)
    last = events[-1].json
    assert "error" in last, datas
    assert set(last["error"]) >= {"message", "type", "code"}
    # Never a half answer followed by another target's answer.
    assert backup.request_count() == 0
    s.wait_metric("sluice_stream_errors_total", 1, route="r1", target="primary")


def test_upstream_429_falls_back_and_skips_primary_for_retry_after(sluice_factory, primary, backup):
    primary.set_behavior(mu.rate_limited(retry_after=30))
    s = two_tier(sluice_factory, primary, backup)
    assert_served_by_backup(s.chat(), backup)
    assert primary.request_count() == 1
    # Within the Retry-After window the primary is not asked at all.
    for _ in range(2):
        assert_served_by_backup(s.chat(), backup)
    assert primary.request_count() == 1
    assert backup.request_count() == 3
    assert fallbacks(s, "rate_limited") == 3


def test_upstream_429_without_fallback_is_relayed_with_retry_after(sluice_factory, primary):
    primary.set_behavior(mu.rate_limited(retry_after=17))
    s = sluice_factory({"primary": primary}, routes=[sh.route()])
    r = s.chat()
    assert r.status == 429, r
    assert int(r.headers["retry-after"]) == 17
    assert r.json()["error"]["type"] == "rate_limit_error"


def test_wrong_host_certificate_is_refused_and_falls_back(sluice_factory, mock_factory, backup):
    wrong = mock_factory("wrong", wrong_host=True)
    s = sluice_factory({"primary": wrong, "backup": backup}, routes=[sh.route(targets=TWO_TIERS)])
    assert_served_by_backup(s.chat(), backup)
    assert wrong.request_count() == 0, "a request was sent over a connection to the wrong host"
    assert fallbacks(s, "connect_error") == 1


def test_wrong_host_certificate_alone_is_an_error(sluice_factory, mock_factory):
    wrong = mock_factory("wrong", wrong_host=True)
    s = sluice_factory({"primary": wrong}, routes=[sh.route()])
    r = s.chat()
    assert r.status == 502, r
    assert r.json()["error"]["message"]
    assert wrong.request_count() == 0
    assert r.headers.get("x-sluice-target") is None


def test_untrusted_ca_is_refused(sluice_factory, primary, backup):
    # No ca_file: the system trust store does not know the test CA.
    s = two_tier(sluice_factory, primary, backup, provider_options={"primary": {"ca_file": None}})
    assert_served_by_backup(s.chat(), backup)
    assert primary.request_count() == 0


def test_full_target_concurrency_falls_back_to_next_tier(sluice_factory, primary, backup):
    primary.set_behavior(mu.slow_stream(chunks=8, chunk_delay=0.25))
    s = two_tier(sluice_factory, primary, backup,
                 targets=[{"provider": "primary", "tier": 0, "max_concurrency": 1}, {"provider": "backup", "tier": 1}])
    with s.stream(sh.chat_body(stream=True)) as first:
        assert first.status == 200 and first.headers["x-sluice-target"] == "primary"
        primary.wait_for_requests(1)
        r = s.chat()
        assert_served_by_backup(r, backup)
        assert primary.request_count() == 1
        events = first.read_all()
        assert first.clean_end and events[-1].data == "[DONE]"
    assert fallbacks(s, "overloaded") == 1
    # With the slot free again the primary serves.
    primary.set_behavior(mu.ok())
    r = s.chat()
    assert r.status == 200 and r.headers["x-sluice-target"] == "primary"


def test_only_failing_target_gives_502(sluice_factory, primary):
    primary.set_behavior(mu.error_status(500))
    s = sluice_factory({"primary": primary}, routes=[sh.route()])
    r = s.chat()
    assert r.status == 502, r
    err = r.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"}


def test_local_target_disabled_gives_503_or_falls_back(sluice_factory, primary):
    s = sluice_factory({"primary": primary}, routes=[
        sh.route("local-only", "only-local", targets=[{"provider": "local"}]),
        sh.route("local-first", "local-first", targets=[{"provider": "local", "tier": 0},
                                                        {"provider": "primary", "tier": 1}]),
    ])
    r = s.chat("only-local")
    assert r.status == 503, r
    assert r.json()["error"]["message"]
    r = s.chat("local-first")
    assert r.status == 200, r
    assert r.headers["x-sluice-target"] == "primary"
    assert s.metrics().value("sluice_fallbacks_total", route="local-first", reason="unavailable") == 1


def test_upstream_4xx_is_relayed_not_fallen_back(sluice_factory, primary, backup):
    primary.set_behavior(mu.error_status(400, "mock says the request is wrong"))
    s = two_tier(sluice_factory, primary, backup)
    r = s.chat()
    assert r.status == 400, r
    assert r.json()["error"]["message"] == "mock says the request is wrong"
    assert backup.request_count() == 0


def test_upstream_refusing_gateway_key_is_502_without_the_key(sluice_factory, primary):
    primary.set_behavior(mu.error_status(401, f"Incorrect API key provided: {sh.key_value('primary')}"))
    s = sluice_factory({"primary": primary}, routes=[sh.route()])
    r = s.chat()
    assert r.status == 502, r
    assert sh.key_value("primary") not in r.text
    assert sh.key_value("primary") not in s.log_text()


def test_request_deadline_gives_504_and_releases_upstream(sluice_factory, primary):
    primary.set_behavior(mu.hang())
    s = sluice_factory({"primary": primary}, routes=[sh.route()], server={"request_timeout_ms": 800})
    t0 = time.monotonic()
    r = s.chat()
    elapsed = time.monotonic() - t0
    assert r.status == 504, r
    assert 0.7 <= elapsed < 6.0, elapsed
    rec = primary.wait_for_close(0, timeout=5.0)
    assert rec.closed_at is not None, "the upstream connection outlived the request deadline"
