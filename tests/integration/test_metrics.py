"""/metrics: the counters match the traffic that was sent, and no label carries a string a client chose."""

import mock_upstream as mu
import sluice_harness as sh


def test_counters_match_traffic(sluice_factory, primary, backup):
    primary.set_behavior(mu.ok(chunks=3))
    primary.set_behavior(mu.error_status(500), model="bad")
    backup.set_behavior(mu.ok(chunks=2))
    routes = [
        sh.route("r_ok", "m-ok"),
        sh.route("r_fb", "m-fb", targets=[{"provider": "primary", "tier": 0, "model": "bad"},
                                          {"provider": "backup", "tier": 1}]),
        sh.route("r_lim", "m-lim", limits={"requests_per_second": 0.05, "burst": 1}),
        sh.route("r_retry", "m-retry", retries={"max_attempts": 3},
                 targets=[{"provider": "primary", "tier": 0, "model": "bad"}, {"provider": "backup", "tier": 1}]),
    ]
    s = sluice_factory({"primary": primary, "backup": backup}, routes=routes)

    for _ in range(3):
        assert s.chat("m-ok").status == 200
    with s.stream(sh.chat_body("m-ok", stream=True)) as c:
        c.read_all()
        assert c.clean_end
    for _ in range(2):
        assert s.chat("m-fb").status == 200
    statuses = [s.chat("m-lim").status for _ in range(3)]
    assert statuses == [200, 429, 429]
    assert s.chat("m-retry").status == 200
    assert s.chat("no-such-model").status == 404

    m = s.wait_metric("sluice_requests_total", 8)  # every request above that passed admission
    v = m.value
    assert v("sluice_requests_total", route="r_ok", target="primary", status="200") == 4
    assert v("sluice_requests_total", route="r_ok") == 4
    assert v("sluice_requests_total", route="r_fb", target="backup", status="200") == 2
    assert v("sluice_requests_total", route="r_fb") == 2
    assert v("sluice_requests_total", route="r_lim", status="200") == 1
    assert v("sluice_requests_total", route="r_retry", target="backup", status="200") == 1
    assert v("sluice_fallbacks_total", route="r_fb", reason="upstream_5xx") == 2
    assert v("sluice_fallbacks_total", route="r_retry", reason="upstream_5xx") == 1
    assert v("sluice_fallbacks_total", route="r_ok") == 0
    assert v("sluice_limiter_rejections_total", route="r_lim", limit="route_requests") == 2
    assert v("sluice_limiter_rejections_total", route="r_ok") == 0
    assert v("sluice_retries_total", route="r_retry", target="primary") == 2
    assert v("sluice_retries_total", route="r_fb") == 0
    # Usage: the mock reports 7 prompt tokens and one completion token per chunk (streams included, since
    # sluice forces include_usage upstream).
    assert v("sluice_tokens_in_total", target="primary") == 7 * 5
    assert v("sluice_tokens_out_total", target="primary") == 3 * 5
    assert v("sluice_tokens_in_total", target="backup") == 7 * 3
    assert v("sluice_tokens_out_total", target="backup") == 2 * 3
    # Histograms: one gateway-overhead sample per request handed to a target (4 + 2 + 1 + 1); the one stream
    # of 3 chunks gave 3 chunks (plus the usage-only chunk sluice asked for) and so at least 2 gaps.
    assert v("sluice_gateway_overhead_seconds_count") == 8
    assert 0 < v("sluice_gateway_overhead_seconds_sum") < 8 * 0.5
    assert v("sluice_inter_token_latency_seconds_count", route="r_ok", target="primary") >= 2
    assert v("sluice_inter_token_latency_seconds_count", route="r_fb") == 0  # no streams there
    assert v("sluice_time_to_first_token_seconds_count", route="r_ok", target="primary") == 1
    # Pool gauges: keep-alive connections to each provider, all idle once the traffic is over.
    assert v("sluice_upstream_connections", target="primary", state="open") >= 1
    assert v("sluice_upstream_connections", target="backup", state="idle") >= 1
    # The upstream saw exactly what the counters claim.
    assert primary.request_count() == 5 + 2 + 3  # ok traffic, r_fb attempts, r_retry attempts
    assert backup.request_count() == 3


def test_metrics_format_and_label_hygiene(sluice_factory, primary):
    s = sluice_factory({"primary": primary}, routes=[sh.route("catch-all", "*")])
    evil = "client-chosen-model-\u00e9vil"
    assert s.chat(evil).status == 200
    s.wait_metric("sluice_requests_total", 1, route="catch-all", target="primary", status="200")
    r = s.request("GET", "/metrics")
    assert r.status == 200
    assert r.headers.get("content-type", "").startswith("text/plain")
    text = r.text
    assert "client-chosen-model" not in text, "a client-sent string became a metric label"
    sh.Metrics(text)  # every line parses as Prometheus text
    assert "# TYPE sluice_requests_total counter" in text
