#include "gateway/admin/dashboard_page.h"

#include <string>

namespace sluice {

namespace {

// Element ids are the page's contract with its browser test (tests/integration/test_dashboard.py).
constexpr std::string_view kHead = R"page(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>sluice dashboard</title>
<style>
:root { --bg:#0f1419; --panel:#171d24; --line:#2a3440; --text:#d8dee6; --dim:#8393a4;
        --ok:#3fb950; --warn:#d29922; --bad:#f85149; --a:#58a6ff; --b:#d2a8ff; --c:#f0883e; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--text); font:14px/1.4 system-ui, sans-serif; }
header { display:flex; align-items:baseline; gap:16px; padding:12px 20px; border-bottom:1px solid var(--line); }
header h1 { font-size:18px; margin:0; }
#conn { font-size:12px; padding:2px 8px; border-radius:10px; background:var(--line); }
#conn.live { background:#1f4a2c; color:#b6f0c2; }
#conn.down { background:#5a1e1e; color:#ffc9c4; }
.dim { color:var(--dim); font-size:12px; }
main { padding:16px 20px; display:grid; gap:16px; }
.tiles { display:grid; grid-template-columns:repeat(auto-fill, minmax(150px, 1fr)); gap:10px; }
.tile { background:var(--panel); border:1px solid var(--line); border-radius:6px; padding:8px 12px; }
.tile .v { font-size:22px; font-variant-numeric:tabular-nums; }
.tile .k { color:var(--dim); font-size:12px; }
.grid { display:grid; grid-template-columns:repeat(auto-fill, minmax(420px, 1fr)); gap:16px; }
section { background:var(--panel); border:1px solid var(--line); border-radius:6px; padding:10px 12px; }
section h2 { font-size:13px; margin:0 0 6px; color:var(--dim); font-weight:600; text-transform:uppercase;
             letter-spacing:.04em; }
canvas { width:100%; height:180px; display:block; }
table { border-collapse:collapse; width:100%; font-variant-numeric:tabular-nums; }
th, td { text-align:left; padding:4px 8px; border-bottom:1px solid var(--line); white-space:nowrap; }
th { color:var(--dim); font-weight:500; font-size:12px; }
.badge { padding:1px 8px; border-radius:9px; font-size:12px; }
.closed { background:#1f4a2c; color:#b6f0c2; }
.half_open { background:#4d3a10; color:#f5d88a; }
.open { background:#5a1e1e; color:#ffc9c4; }
.kv { display:flex; flex-wrap:wrap; gap:6px 16px; font-size:13px; }
.kv span b { font-weight:600; }
</style>
</head>
)page";

constexpr std::string_view kBody = R"page(<body>
<header>
  <h1>sluice</h1><span id="conn">connecting</span>
  <span class="dim">updated <span id="stat-updated">never</span> &middot; polls <span id="stat-polls">0</span>
  &middot; charts cover up to the last 5 minutes; rates and quantiles over a sliding 10 s window</span>
</header>
<main>
  <div class="tiles">
    <div class="tile"><div class="v" id="stat-requests">0</div><div class="k">requests (total)</div></div>
    <div class="tile"><div class="v" id="stat-rps">0</div><div class="k">requests / s</div></div>
    <div class="tile"><div class="v" id="stat-eps">0</div><div class="k">5xx errors / s</div></div>
    <div class="tile"><div class="v" id="stat-p50">&ndash;</div><div class="k">latency p50</div></div>
    <div class="tile"><div class="v" id="stat-p99">&ndash;</div><div class="k">latency p99</div></div>
    <div class="tile"><div class="v" id="stat-ttft-p50">&ndash;</div><div class="k">first token p50</div></div>
    <div class="tile"><div class="v" id="stat-tps">0</div><div class="k">tokens out / s</div></div>
    <div class="tile"><div class="v" id="stat-tokens-out">0</div><div class="k">tokens out (total)</div></div>
    <div class="tile"><div class="v" id="stat-fallbacks">0</div><div class="k">fallbacks (total)</div></div>
    <div class="tile"><div class="v" id="stat-rejections">0</div><div class="k">limiter rejections</div></div>
    <div class="tile"><div class="v" id="stat-engine-running">&ndash;</div><div class="k">engine running</div></div>
    <div class="tile"><div class="v" id="stat-engine-waiting">&ndash;</div><div class="k">engine waiting</div></div>
    <div class="tile"><div class="v" id="stat-kv">&ndash;</div><div class="k">KV cache used</div></div>
  </div>
  <section>
    <h2>Targets</h2>
    <table>
      <thead><tr><th>target</th><th>circuit</th><th>routable</th><th>probe</th><th>engine</th>
        <th>req/s</th><th>5xx/s</th><th>requests</th><th>TTFT p50</th><th>failures in a row</th>
        <th>last error</th></tr></thead>
      <tbody id="targets"></tbody>
    </table>
  </section>
  <div class="grid">
    <section><h2>Requests / s</h2><canvas id="chart-rate"></canvas></section>
    <section><h2>Request latency</h2><canvas id="chart-latency"></canvas></section>
    <section><h2>Time to first token</h2><canvas id="chart-ttft"></canvas></section>
    <section><h2>Tokens / s</h2><canvas id="chart-tokens"></canvas></section>
    <section><h2>Engine queue and KV cache</h2><canvas id="chart-engine"></canvas>
      <div class="dim" id="engine-note"></div></section>
    <section><h2>Fallbacks and limiter rejections / s</h2><canvas id="chart-limits"></canvas></section>
  </div>
  <div class="grid">
    <section><h2>Requests by status class</h2><div class="kv" id="by-class"></div>
      <h2 style="margin-top:10px">Fallbacks by reason</h2><div class="kv" id="by-reason"></div>
      <h2 style="margin-top:10px">Limiter rejections by limit</h2><div class="kv" id="by-limit"></div></section>
    <section><h2>Recent fallbacks (<span id="events-total">0</span> in all)</h2>
      <table><thead><tr><th>time</th><th>route</th><th>from target</th><th>reason</th></tr></thead>
        <tbody id="events"></tbody></table></section>
  </div>
</main>
)page";

constexpr std::string_view kScript = R"page(<script>
"use strict";
const POLL_MS = 1000, SPAN_S = 300, WIN_S = 10;
let snaps = [];    // recent raw snapshots, enough to reach WIN_S back
let points = [];   // one per snapshot: derived rates and windowed quantiles, SPAN_S back
let polls = 0, inFlight = false;
const $ = (id) => document.getElementById(id);

function quantile(bounds, buckets, q) {
  let total = 0;
  for (const b of buckets) total += b;
  if (total <= 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    const b = buckets[i];
    if (b > 0 && seen + b >= rank) {
      const lo = i === 0 ? 0 : bounds[i - 1];
      if (i === bounds.length) return lo;
      const frac = Math.min(1, Math.max(0, (rank - seen) / b));
      return lo + (bounds[i] - lo) * frac;
    }
    seen += b;
  }
  return bounds.length ? bounds[bounds.length - 1] : null;
}

// Quantile of the observations made between two snapshots of one histogram.
function windowQuantile(a, b, q) {
  if (!a || !b || a.buckets.length !== b.buckets.length) return null;
  const delta = b.buckets.map((v, i) => v - a.buckets[i]);
  if (delta.some((v) => v < 0)) return null;  // the server restarted
  return quantile(b.bounds, delta, q);
}

function rate(a, b, dt) { return dt > 0 && b >= a ? (b - a) / dt : null; }

function fmtNum(v, digits) {
  if (v === null || v === undefined || !isFinite(v)) return "\u2013";
  if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(1) + "k";
  return v.toFixed(digits === undefined ? (Number.isInteger(v) ? 0 : 1) : digits);
}
function fmtSec(v) {
  if (v === null || v === undefined || !isFinite(v)) return "\u2013";
  if (v === 0) return "0";
  if (v < 1e-3) return (v * 1e6).toFixed(0) + " \u00b5s";
  if (v < 1) return (v * 1e3).toFixed(v < 0.01 ? 2 : 1) + " ms";
  return v.toFixed(2) + " s";
}
function fmtTick(v) {
  if (Math.abs(v) >= 1e4) return fmtNum(v);
  return String(Math.round(v * 100) / 100);
}
function fmtPct(v) { return v === null || v === undefined ? "\u2013" : (v * 100).toFixed(1) + " %"; }

function derive(d) {
  snaps.push(d);
  while (snaps.length > 2 && (d.now_ms - snaps[1].now_ms) / 1000 >= WIN_S) snaps.shift();
  const base = snaps[0];
  const dt = (d.now_ms - base.now_ms) / 1000;
  const p = { t: d.now_ms };
  if (base !== d && dt > 0) {
    p.rps = rate(base.requests.total, d.requests.total, dt);
    p.eps = rate(base.requests.errors, d.requests.errors, dt);
    p.tin = rate(base.tokens.in, d.tokens.in, dt);
    p.tout = rate(base.tokens.out, d.tokens.out, dt);
    p.fb = rate(base.fallbacks.total, d.fallbacks.total, dt);
    p.rej = rate(base.limiter_rejections.total, d.limiter_rejections.total, dt);
    p.lat50 = windowQuantile(base.latency, d.latency, 0.5);
    p.lat99 = windowQuantile(base.latency, d.latency, 0.99);
    p.ttft50 = windowQuantile(base.ttft, d.ttft, 0.5);
    p.ttft99 = windowQuantile(base.ttft, d.ttft, 0.99);
    p.targets = {};
    const old = {};
    for (const t of base.targets) old[t.target] = t;
    for (const t of d.targets) {
      const o = old[t.target];
      p.targets[t.target] = o ? { rps: rate(o.requests, t.requests, dt), eps: rate(o.errors, t.errors, dt),
                                  ttft50: windowQuantile(o.ttft, t.ttft, 0.5) } : {};
    }
  }
  if (d.engine) { p.run = d.engine.running; p.wait = d.engine.waiting; p.kv = d.engine.kv_cache_usage; }
  points.push(p);
  while (points.length && d.now_ms - points[0].t > SPAN_S * 1000) points.shift();
  return p;
}

function setText(id, text) { const e = $(id); if (e.textContent !== text) e.textContent = text; }

function cell(tr, text, cls) {
  const td = document.createElement("td");
  if (cls) { const s = document.createElement("span"); s.className = "badge " + cls; s.textContent = text; td.appendChild(s); }
  else td.textContent = text;
  tr.appendChild(td);
}

function renderCounts(id, counts) {
  const box = $(id);
  box.replaceChildren();
  const keys = Object.keys(counts);
  if (!keys.length) { box.textContent = "none yet"; return; }
  for (const k of keys) {
    const s = document.createElement("span");
    const b = document.createElement("b");
    b.textContent = fmtNum(counts[k]);
    s.append(k + " ", b);
    box.appendChild(s);
  }
}

function render(d, p) {
  setText("stat-updated", new Date(d.now_ms).toLocaleTimeString());
  setText("stat-polls", String(polls));
  setText("stat-requests", fmtNum(d.requests.total));
  setText("stat-rps", fmtNum(p.rps, 1));
  setText("stat-eps", fmtNum(p.eps, 2));
  setText("stat-p50", fmtSec(p.lat50));
  setText("stat-p99", fmtSec(p.lat99));
  setText("stat-ttft-p50", fmtSec(p.ttft50));
  setText("stat-tps", fmtNum(p.tout, 1));
  setText("stat-tokens-out", fmtNum(d.tokens.out));
  setText("stat-fallbacks", fmtNum(d.fallbacks.total));
  setText("stat-rejections", fmtNum(d.limiter_rejections.total));
  setText("stat-engine-running", d.engine ? fmtNum(d.engine.running) : "off");
  setText("stat-engine-waiting", d.engine ? fmtNum(d.engine.waiting) : "off");
  setText("stat-kv", d.engine ? fmtPct(d.engine.kv_cache_usage) : "off");
  setText("engine-note", d.engine ? "preemptions so far: " + fmtNum(d.engine.preemptions) +
          " \u00b7 last step " + fmtSec(d.engine.step_seconds) + (d.engine.healthy ? "" : " \u00b7 UNHEALTHY")
          : "The embedded engine is off in this server's config.");

  const body = $("targets");
  body.replaceChildren();
  for (const t of d.targets) {
    const r = (p.targets && p.targets[t.target]) || {};
    const tr = document.createElement("tr");
    cell(tr, t.target);
    cell(tr, t.state.replace("_", "-"), t.state);
    cell(tr, t.routable ? "yes" : "no", t.routable ? "closed" : "open");
    cell(tr, t.probe);
    cell(tr, t.engine_healthy ? "ok" : "unhealthy");
    cell(tr, fmtNum(r.rps, 1));
    cell(tr, fmtNum(r.eps, 2));
    cell(tr, fmtNum(t.requests));
    cell(tr, fmtSec(r.ttft50));
    cell(tr, String(t.consecutive_failures));
    cell(tr, t.last_error_kind || "\u2013");
    body.appendChild(tr);
  }

  renderCounts("by-class", d.requests.by_class);
  renderCounts("by-reason", d.fallbacks.by_reason);
  renderCounts("by-limit", d.limiter_rejections.by_limit);

  setText("events-total", fmtNum(d.events.total));
  const ev = $("events");
  ev.replaceChildren();
  const recent = d.events.recent.filter((e) => e.kind === "fallback").slice(-20).reverse();
  if (!recent.length) {
    const tr = document.createElement("tr");
    cell(tr, "no fallbacks yet");
    ev.appendChild(tr);
  }
  for (const e of recent) {
    const tr = document.createElement("tr");
    cell(tr, new Date(e.time_ms).toLocaleTimeString());
    cell(tr, e.route);
    cell(tr, e.target);
    cell(tr, e.reason);
    ev.appendChild(tr);
  }

  const css = getComputedStyle(document.documentElement);
  const c = (n) => css.getPropertyValue(n).trim();
  drawChart($("chart-rate"), [{ k: "rps", label: "requests/s", color: c("--a") },
                              { k: "eps", label: "5xx/s", color: c("--bad") }], fmtTick);
  drawChart($("chart-latency"), [{ k: "lat50", label: "p50", color: c("--a") },
                                 { k: "lat99", label: "p99", color: c("--c") }], fmtSec);
  drawChart($("chart-ttft"), [{ k: "ttft50", label: "p50", color: c("--b") },
                              { k: "ttft99", label: "p99", color: c("--c") }], fmtSec);
  drawChart($("chart-tokens"), [{ k: "tout", label: "out/s", color: c("--ok") },
                                { k: "tin", label: "in/s", color: c("--a") }], fmtTick);
  drawChart($("chart-engine"), [{ k: "run", label: "running", color: c("--a") },
                                { k: "wait", label: "waiting", color: c("--warn") },
                                { k: "kv", label: "KV used (right, %)", color: c("--b"), right: true }], fmtTick);
  drawChart($("chart-limits"), [{ k: "fb", label: "fallbacks/s", color: c("--warn") },
                                { k: "rej", label: "rejections/s", color: c("--bad") }], fmtTick);
}
)page";

constexpr std::string_view kChart = R"page(
// A line chart of `defs` over the last minutes of `points`; gaps (null) break the line. A series
// marked `right` is a fraction 0..1 drawn against its own axis on the right.
function drawChart(canvas, defs, fmt) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const css = getComputedStyle(document.documentElement);
  const dim = css.getPropertyValue("--dim").trim(), line = css.getPropertyValue("--line").trim();
  const left = 56, right = defs.some((d) => d.right) ? 44 : 10, top = 22, bottom = 18;
  const pw = w - left - right, ph = h - top - bottom;
  // The span grows by whole minutes with the data the page has, from 1 to SPAN_S/60 minutes.
  const tEnd = points.length ? points[points.length - 1].t : Date.now();
  const have = points.length ? (tEnd - points[0].t) / 1000 : 0;
  const span = Math.min(SPAN_S, Math.max(60, Math.ceil(have / 60) * 60)), tStart = tEnd - span * 1000;
  let max = 0;
  for (const p of points) for (const d of defs) if (!d.right && p[d.k] != null) max = Math.max(max, p[d.k]);
  max = niceMax(max);
  g.font = "11px system-ui, sans-serif";
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = top + ph - (ph * i) / 4;
    g.strokeStyle = line;
    g.beginPath(); g.moveTo(left, y); g.lineTo(left + pw, y); g.stroke();
    g.fillStyle = dim;
    g.textAlign = "right";
    g.fillText(fmt((max * i) / 4), left - 6, y + 4);
    if (right > 10) { g.textAlign = "left"; g.fillText(25 * i + "%", left + pw + 6, y + 4); }
  }
  g.textAlign = "center";
  const step = span > 60 ? 60 : 15;
  for (let s = 0; s <= span; s += step) {
    const x = left + pw - (pw * s) / span;
    g.fillText(s === 0 ? "now" : step === 60 ? "-" + s / 60 + "m" : "-" + s + "s", x, h - 4);
  }
  let lx = left;
  g.textAlign = "left";
  for (const d of defs) {
    g.fillStyle = d.color;
    g.fillRect(lx, 6, 10, 10);
    g.fillStyle = dim;
    g.fillText(d.label, lx + 14, 15);
    lx += 24 + g.measureText(d.label).width;
  }
  g.lineWidth = 1.8;
  for (const d of defs) {
    g.strokeStyle = d.color;
    g.beginPath();
    let pen = false;
    for (const p of points) {
      const v = p[d.k];
      if (v == null || p.t < tStart) { pen = false; continue; }
      const x = left + (pw * (p.t - tStart)) / (span * 1000);
      const frac = d.right ? Math.min(1, Math.max(0, v)) : (max > 0 ? v / max : 0);
      const y = top + ph - ph * frac;
      if (pen) g.lineTo(x, y); else g.moveTo(x, y);
      pen = true;
    }
    g.stroke();
  }
  if (!points.some((p) => defs.some((d) => p[d.k] != null))) {
    g.fillStyle = dim;
    g.textAlign = "center";
    g.fillText("no data yet", left + pw / 2, top + ph / 2);
  }
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

async function poll() {
  if (inFlight) return;
  inFlight = true;
  try {
    const r = await fetch("/dashboard/data", { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    const d = await r.json();
    polls++;
    render(d, derive(d));
    $("conn").textContent = "live";
    $("conn").className = "live";
  } catch (e) {
    $("conn").textContent = "disconnected";
    $("conn").className = "down";
  } finally {
    inFlight = false;
  }
}

poll();
setInterval(poll, POLL_MS);
window.addEventListener("resize", () => { if (snaps.length) render(snaps[snaps.length - 1], points[points.length - 1]); });
</script>
</body>
</html>
)page";

}  // namespace

std::string_view dashboard_page() {
  static const std::string page = [] {
    std::string s;
    s.reserve(kHead.size() + kBody.size() + kScript.size() + kChart.size());
    s += kHead;
    s += kBody;
    s += kScript;
    s += kChart;
    return s;
  }();
  return page;
}

std::string_view dashboard_csp() {
  return "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
         "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
}

}  // namespace sluice
