"""The live dashboard (/dashboard and /dashboard/data) and the Prometheus exposition of /metrics.

The browser test drives headless Chromium (Debian's `chromium` and `chromium-driver`, through selenium)
against a server carrying live traffic: the rendered numbers move between two reads, the page logs no
errors, and it shows no secret and no string a client sent. A screenshot is kept in tests/artifacts/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from pathlib import Path

import pytest

import mock_upstream as mu
import sluice_harness as sh

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CLIENT_MODEL = "client-chosen-model-7f3a"  # routed by a glob: it must never show up on the open page


def _routes() -> list:
    return [
        sh.route("r_ok", "m-ok"),
        sh.route("r_fb", "m-fb", targets=[{"provider": "flaky", "tier": 0}, {"provider": "backup", "tier": 1}]),
        sh.route("r_lim", "m-lim", limits={"requests_per_second": 1, "burst": 1}),
        sh.route("r_any", "client-*"),
    ]


@pytest.fixture
def traffic_server(sluice_factory, mock_factory):
    primary, backup, flaky = mock_factory("primary"), mock_factory("backup"), mock_factory("flaky")
    primary.set_behavior(mu.ok(chunks=4, chunk_delay=0.01))
    backup.set_behavior(mu.ok(chunks=2, header_delay=0.02))
    flaky.set_behavior(mu.error_status(500))
    return sluice_factory({"primary": primary, "backup": backup, "flaky": flaky}, routes=_routes())


class Traffic(threading.Thread):
    """Sends a steady mix until stopped: streams and plain calls, a route that falls over, a limited one."""

    def __init__(self, s: sh.Sluice):
        super().__init__(name="traffic", daemon=True)
        self.s = s
        self.stop_flag = threading.Event()
        self.sent = 0
        self.errors: list[str] = []

    def run(self) -> None:
        i = 0
        while not self.stop_flag.is_set():
            try:
                if i % 3 == 0:
                    with self.s.stream(sh.chat_body("m-ok", stream=True)) as c:
                        c.read_all()
                else:
                    r = self.s.chat(["m-ok", "m-fb", "m-lim", CLIENT_MODEL][i % 4])
                    if r.status not in (200, 429):
                        self.errors.append(f"status {r.status}: {r.text[:200]}")
                self.sent += 1
            except Exception as e:  # recorded, then asserted on by the test
                self.errors.append(repr(e))
            i += 1
            time.sleep(0.03)

    def stop(self) -> None:
        self.stop_flag.set()
        self.join(timeout=30)


def _browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (scripts/setup.sh installs it)")
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.skip("chromium and chromedriver are not installed (Debian packages chromium, chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1440,1500", "--hide-scrollbars"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)


def _read(driver) -> dict:
    from selenium.webdriver.common.by import By
    ids = ["stat-requests", "stat-polls", "stat-updated", "stat-rps", "stat-tokens-out", "stat-fallbacks",
           "stat-rejections", "stat-p50", "stat-ttft-p50", "stat-engine-running"]
    return {i: driver.find_element(By.ID, i).text for i in ids}


def _number(text: str) -> float:
    text = text.strip()
    scale = 1.0
    if text.endswith("k"):
        text, scale = text[:-1], 1e3
    elif text.endswith("M"):
        text, scale = text[:-1], 1e6
    return float(text) * scale


def test_dashboard_renders_live_numbers(traffic_server):
    s = traffic_server
    driver = _browser()
    traffic = Traffic(s)
    traffic.start()
    try:
        s.wait_metric("sluice_requests_total", 5, timeout=20)  # traffic is flowing before the page loads
        driver.set_page_load_timeout(30)
        driver.get(s.base_url + "/dashboard")
        assert driver.title == "sluice dashboard"
        # Wait for two polls, so rates (which need two snapshots) are on screen.
        deadline = time.monotonic() + 20
        while _number(_read(driver)["stat-polls"]) < 3:
            assert time.monotonic() < deadline, f"the page did not poll: {_read(driver)}"
            time.sleep(0.1)
        first = _read(driver)

        def checks(second):
            return [
                _number(second["stat-polls"]) >= _number(first["stat-polls"]) + 2,
                _number(second["stat-requests"]) > _number(first["stat-requests"]) > 0,
                _number(second["stat-tokens-out"]) > _number(first["stat-tokens-out"]) > 0,
                second["stat-updated"] != first["stat-updated"],
                _number(second["stat-rps"]) > 0,
                _number(second["stat-fallbacks"]) > 0,       # r_fb moves from flaky to backup
                _number(second["stat-rejections"]) > 0,      # r_lim allows one request per second
                second["stat-p50"].endswith("s"),            # a duration, not the empty placeholder
                second["stat-ttft-p50"].endswith("s"),
                second["stat-engine-running"] == "off",      # the engine is disabled in this config
            ]

        # Read again after 2.5 s; on a loaded machine the page may need a few more polls to show everything.
        time.sleep(2.5)
        second = _read(driver)
        deadline = time.monotonic() + 15
        while not all(checks(second)) and time.monotonic() < deadline:
            time.sleep(0.5)
            second = _read(driver)
        assert all(checks(second)), (checks(second), first, second)

        from selenium.webdriver.common.by import By
        rows = driver.find_elements(By.CSS_SELECTOR, "#targets tr")
        names = sorted(r.find_element(By.TAG_NAME, "td").text for r in rows)
        assert names == ["backup", "flaky", "local", "primary"], names
        assert driver.find_element(By.ID, "conn").text == "live"

        page = driver.page_source
        assert CLIENT_MODEL not in page, "a client-sent string reached the open page"
        for name in ("primary", "backup", "flaky"):
            assert sh.key_value(name) not in page, "a provider key reached the open page"

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "dashboard.png"))

        severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        assert severe == [], severe
    finally:
        traffic.stop()
        driver.quit()
    assert traffic.errors == [], traffic.errors[:5]


def test_metrics_parse_and_match_traffic(traffic_server):
    from prometheus_client.parser import text_string_to_metric_families

    s = traffic_server
    n_ok, n_stream, n_fb, n_any = 5, 3, 2, 2
    for _ in range(n_ok):
        assert s.chat("m-ok").status == 200
    for _ in range(n_stream):
        with s.stream(sh.chat_body("m-ok", stream=True)) as c:
            c.read_all()
            assert c.clean_end
    for _ in range(n_fb):
        assert s.chat("m-fb").status == 200
    for _ in range(n_any):
        assert s.chat(CLIENT_MODEL).status == 200
    total = n_ok + n_stream + n_fb + n_any
    s.wait_metric("sluice_requests_total", total)

    text = s.request("GET", "/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    # The parser names counter families without their _total suffix; the samples keep it.
    req = families["sluice_requests"]
    assert req.type == "counter"
    assert sum(smp.value for smp in req.samples if smp.name == "sluice_requests_total") == total
    by_route = {}
    for smp in req.samples:
        if smp.name == "sluice_requests_total":
            by_route[smp.labels["route"]] = by_route.get(smp.labels["route"], 0) + smp.value
    assert by_route == {"r_ok": n_ok + n_stream, "r_fb": n_fb, "r_any": n_any}
    assert families["sluice_fallbacks"].samples[0].labels["reason"] == "upstream_5xx"
    assert sum(smp.value for smp in families["sluice_fallbacks"].samples
               if smp.name == "sluice_fallbacks_total") == n_fb
    lat = families["sluice_request_duration_seconds"]
    assert lat.type == "histogram"
    counts = [smp.value for smp in lat.samples if smp.name == "sluice_request_duration_seconds_count"]
    assert sum(counts) == total
    ttft = families["sluice_time_to_first_token_seconds"]
    assert sum(smp.value for smp in ttft.samples if smp.name.endswith("_count")) == n_stream
    for f in families.values():
        assert f.name.startswith("sluice_"), f.name
        assert f.type in ("counter", "gauge", "histogram"), (f.name, f.type)
        assert f.documentation, f"{f.name} has no HELP text"
    assert CLIENT_MODEL not in text


def test_dashboard_data_shape(traffic_server):
    s = traffic_server
    for _ in range(3):
        assert s.chat("m-ok").status == 200
    with s.stream(sh.chat_body("m-ok", stream=True)) as c:
        c.read_all()
    assert s.chat("m-fb").status == 200
    assert [s.chat("m-lim").status for _ in range(3)] == [200, 429, 429]
    assert s.chat(CLIENT_MODEL).status == 200
    s.wait_metric("sluice_requests_total", 7)

    r = s.request("GET", "/dashboard/data")
    assert r.status == 200
    assert r.headers.get("content-type", "").startswith("application/json")
    assert r.headers.get("cache-control") == "no-store"
    assert CLIENT_MODEL not in r.text
    d = r.json()
    assert set(d) >= {"now_ms", "targets", "requests", "fallbacks", "limiter_rejections", "retries",
                      "stream_errors", "tokens", "latency", "ttft", "engine", "events"}
    assert abs(d["now_ms"] / 1000 - time.time()) < 60
    assert d["requests"]["total"] == 7
    assert d["requests"]["errors"] == 0
    assert d["requests"]["by_class"] == {"2xx": 7}
    assert d["fallbacks"] == {"total": 1, "by_reason": {"upstream_5xx": 1}}
    assert d["limiter_rejections"] == {"total": 2, "by_limit": {"route_requests": 2}}
    # The mock reports 7 prompt tokens and one completion token per chunk for each answer it gives: primary
    # answered m-ok x4, m-lim x1 and the glob route x1 (4 chunks each), backup answered m-fb (2 chunks);
    # flaky's 500s carry no usage.
    assert d["tokens"]["in"] == 7 * 7
    assert d["tokens"]["out"] == 6 * 4 + 2
    for h in (d["latency"], d["ttft"]):
        assert set(h) == {"count", "sum", "p50", "p90", "p99", "bounds", "buckets"}
        assert len(h["buckets"]) == len(h["bounds"]) + 1
        assert sum(h["buckets"]) == h["count"]
        assert h["p50"] <= h["p90"] <= h["p99"]
    assert d["latency"]["count"] == 7
    assert d["ttft"]["count"] == 1
    assert d["engine"] is None
    targets = {t["target"]: t for t in d["targets"]}
    assert sorted(targets) == ["backup", "flaky", "local", "primary"]
    assert targets["primary"]["requests"] == 6      # m-ok x4, m-lim x1, the glob route x1
    assert targets["backup"]["requests"] == 1
    assert targets["flaky"]["last_error_kind"] == "upstream_5xx"
    for t in targets.values():
        assert t["state"] in ("closed", "half_open", "open")
        assert isinstance(t["routable"], bool)
    assert isinstance(d["events"]["recent"], list)
    assert d["events"]["total"] >= len(d["events"]["recent"])

    page = s.request("GET", "/dashboard")
    assert page.status == 200
    assert page.headers.get("content-type", "").startswith("text/html")
    assert "default-src 'none'" in page.headers.get("content-security-policy", "")
    assert s.request("POST", "/dashboard/data", body={}).status == 405
    assert s.request("GET", "/dashboard/nope").status == 404


def test_every_metric_is_documented_and_the_grafana_dashboard_uses_real_ones():
    root = Path(os.environ.get("SLUICE_SOURCE_DIR", Path(__file__).resolve().parents[2]))
    in_code = set()
    for folder in ("gateway", "engine"):
        for path in (root / folder).rglob("*"):
            if path.suffix in (".cpp", ".h"):
                in_code.update(re.findall(r'"(sluice_[a-z0-9_]+)"', path.read_text(errors="replace")))
    assert "sluice_requests_total" in in_code
    readme = (root / "gateway/metrics/README.md").read_text()
    documented = set(re.findall(r"^\| `(sluice_[a-z0-9_]+)` \|", readme, re.M))
    assert in_code - documented == set(), "metrics without documentation in gateway/metrics/README.md"
    assert documented - in_code == set(), "documented metrics that the code does not export"

    dash = json.loads((root / "deploy/grafana/sluice.json").read_text())
    assert any(v["type"] == "datasource" and v["query"] == "prometheus" for v in dash["templating"]["list"])
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert exprs
    used = set()
    for e in exprs:
        used.update(re.sub(r"_(bucket|sum|count)$", "", m) for m in re.findall(r"\b(sluice_[a-z0-9_]+)", e))
    assert used - in_code == set(), "the Grafana dashboard queries metrics that do not exist"
    for p in dash["panels"]:
        for t in p.get("targets", []):
            assert t["datasource"]["uid"] == "${datasource}", p["title"]
