#!/usr/bin/env python3
"""Gateway latency benchmark: what sluice adds on top of a fast upstream, under open-loop load.

For each rate it runs the open-loop load generator twice with the same schedule: straight at the mock
upstream (the peer), then through sluice to that same mock. Added latency at a percentile is the
through-sluice figure minus the direct figure at that percentile. It also reads sluice's CPU time from
/proc/PID/stat around each through-sluice run and divides it by the requests sent.

Placement on a 2-core machine: mock_upstream (1 thread) and loadgen (1 thread) share core 0, sluice
(io_threads: 1) has core 1 to itself, so sluice's figures are not disturbed by the load it is measured with.
The direct run pays the same core-0 sharing, which the subtraction cancels.

Builds nothing: expects sluice, mock_upstream and loadgen in --bin-dir (default build/bin).

    python3 bench/gateway_latency.py [--bin-dir build/bin] [--rates 1000,5000] [--duration 10] [--warmup 2]
                                     [--modes json,stream] [--record]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_P99_ADDED_US = 1000
TARGET_RATE = 5000


def log(msg: str) -> None:
    print(f"[gateway_latency] {msg}", file=sys.stderr, flush=True)


def wait_for_line(proc: subprocess.Popen, out_path: Path, prefix: str, timeout_s: float = 20.0) -> str:
    """Polls a process's stdout file for the first line starting with `prefix`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}: {out_path.read_text()[-2000:]}")
        for line in out_path.read_text(errors="replace").splitlines():
            if line.startswith(prefix):
                return line
        time.sleep(0.05)
    raise RuntimeError(f"{proc.args} printed no '{prefix}' line within {timeout_s} s")


def port_of(line: str) -> int:
    return int(line.rstrip().rsplit(":", 1)[1].split("/")[0])


def cpu_ticks(pid: int) -> tuple[int, int]:
    """(utime, stime) of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]), int(fields[12])  # fields[0] is field 3 (state)


def cpu_us_per_request(before: tuple[int, int], after: tuple[int, int], tick_us: float,
                       requests: int) -> tuple[float, float]:
    """(user, system) CPU microseconds per request between two cpu_ticks() readings."""
    n = max(requests, 1)
    return (after[0] - before[0]) * tick_us / n, (after[1] - before[1]) * tick_us / n


def pinned(args, core: int) -> list[str]:
    """The command prefix that pins to `core`, under SCHED_FIFO (--fifo) or reniced (--nice) when asked."""
    prefix = ["taskset", "-c", str(core)]
    if args.fifo:
        return ["chrt", "-f", str(args.fifo)] + prefix
    return (["nice", "-n", str(args.nice)] + prefix) if args.nice else prefix


def sched_note(args) -> str:
    if args.fifo:
        return f"; all three under SCHED_FIFO priority {args.fifo} (`chrt -f {args.fifo}`)"
    return f"; all three under `nice -n {args.nice}`" if args.nice else "; default scheduling (SCHED_OTHER, nice 0)"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def write_config(tmp: Path, mock_port: int) -> Path:
    (tmp / "policy.yaml").write_text(
        """# Generous limits: no limiter may trigger during the benchmark.
routes:
  - name: bench
    model: "*"
    limits:
      requests_per_second: 100000
      burst: 100000
      max_concurrency: 10000
      max_queue: 10000
    retries:
      max_attempts: 1
    targets:
      - provider: mock
"""
    )
    cfg = tmp / "sluice.yaml"
    cfg.write_text(
        f"""server:
  host: 127.0.0.1
  port: 0
  io_threads: 1
  shutdown_grace_ms: 1000
policies:
  - policy.yaml
engine:
  enabled: false
providers:
  - name: mock
    base_url: http://127.0.0.1:{mock_port}
    pool_size: 256
"""
    )
    return cfg


def run_loadgen(args, bin_dir: Path, url: str, rate: int, stream: bool) -> dict:
    cmd = [*pinned(args, args.loadgen_core), str(bin_dir / "loadgen"), "--url", url, "--rate", str(rate),
           "--duration", str(args.duration), "--warmup", str(args.warmup), "--connections",
           str(args.connections), "--json"]
    if stream:
        cmd.append("--stream")
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode not in (0, 3):  # 3: the run completed but some requests failed
        raise RuntimeError(f"loadgen failed ({res.returncode}): {res.stderr.strip()}")
    return json.loads(res.stdout)


def fmt_row(rate: int, path: str, r: dict, cpu_us: tuple[float, float] | None) -> str:
    lat = r["latency_us"]
    cpu = f"{sum(cpu_us):.1f} ({cpu_us[0]:.0f} / {cpu_us[1]:.0f})" if cpu_us is not None else "–"
    return (f"| {rate} | {path} | {r['ok']} | {r['errors']} | {r['achieved_rps']:.0f} | {lat['p50']} | {lat['p90']} | "
            f"{lat['p99']} | {lat['p999']} | {lat['max']} | {r['send_lag_us']['p99']} | "
            f"{r['connections_opened_midrun']} / {r['max_backlog']} | {cpu} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default=str(REPO / "build" / "bin"))
    ap.add_argument("--rates", default="1000,5000", help="comma-separated request rates (req/s)")
    ap.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each run")
    ap.add_argument("--modes", default="json", help="comma-separated: json (non-stream), stream")
    ap.add_argument("--connections", type=int, default=32, help="loadgen's initial keep-alive connections")
    ap.add_argument("--mock-core", type=int, default=0)
    ap.add_argument("--loadgen-core", type=int, default=0)
    ap.add_argument("--sluice-core", type=int, default=1)
    ap.add_argument("--sluice-log-level", default="info")
    ap.add_argument("--nice", type=int, default=0,
                    help="run the three processes under `nice -n N` (negative needs root)")
    ap.add_argument("--fifo", type=int, default=0,
                    help="run the three processes under SCHED_FIFO priority N (root): on a shared machine, other "
                         "work can no longer delay their wake-ups (the kernel's RT throttling still leaves other work 5%% of each second)")
    ap.add_argument("--record", action="store_true", help="append the tables to --results")
    ap.add_argument("--results", default=str(REPO / "bench" / "RESULTS.md"))
    args = ap.parse_args()

    bin_dir = Path(args.bin_dir).resolve()
    for name in ("sluice", "mock_upstream", "loadgen"):
        if not (bin_dir / name).is_file():
            log(f"missing {bin_dir / name}: build the targets sluice, mock_upstream and loadgen first")
            return 2
    if shutil.which("taskset") is None:
        log("taskset (util-linux) is required for CPU placement")
        return 2
    rates = [int(r) for r in args.rates.split(",") if r]
    modes = [m for m in args.modes.split(",") if m]
    if any(m not in ("json", "stream") for m in modes):
        log("--modes takes json and/or stream")
        return 2

    command = " ".join(shlex.quote(a) for a in [sys.executable.rsplit("/", 1)[-1], *sys.argv])
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    started = dt.datetime.now(dt.timezone.utc)
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")

    tmp = Path(tempfile.mkdtemp(prefix="sluice-bench-"))
    mock = sluice = None
    results: dict[tuple[str, int], tuple[dict, dict, tuple[float, float], float, float]] = {}
    try:
        mock_out = tmp / "mock.out"
        with open(mock_out, "w") as f:
            mock = subprocess.Popen([*pinned(args, args.mock_core), str(bin_dir / "mock_upstream"),
                                     "--port", "0", "--threads", "1"], stdout=f, stderr=subprocess.STDOUT)
        mock_port = port_of(wait_for_line(mock, mock_out, "listening on "))
        cfg = write_config(tmp, mock_port)
        sluice_out = tmp / "sluice.out"
        with open(sluice_out, "w") as f:
            sluice = subprocess.Popen([*pinned(args, args.sluice_core), str(bin_dir / "sluice"), "serve",
                                       "--config", str(cfg), "--log-level", args.sluice_log_level],
                                      stdout=f, stderr=subprocess.STDOUT)
        sluice_port = port_of(wait_for_line(sluice, sluice_out, "sluice: listening on "))
        log(f"mock on :{mock_port} (core {args.mock_core}), sluice on :{sluice_port} (core {args.sluice_core}), "
            f"loadgen on core {args.loadgen_core}")

        for mode in modes:
            stream = mode == "stream"
            for rate in rates:
                log(f"{mode} {rate} req/s: direct to the mock")
                m0 = cpu_ticks(mock.pid)
                direct = run_loadgen(args, bin_dir, f"http://127.0.0.1:{mock_port}/v1/chat/completions", rate, stream)
                mock_direct_us = sum(cpu_us_per_request(m0, cpu_ticks(mock.pid), tick_us, direct["total_requests"]))
                time.sleep(0.5)
                log(f"{mode} {rate} req/s: through sluice")
                s0, m0 = cpu_ticks(sluice.pid), cpu_ticks(mock.pid)
                via = run_loadgen(args, bin_dir, f"http://127.0.0.1:{sluice_port}/v1/chat/completions", rate, stream)
                sluice_us = cpu_us_per_request(s0, cpu_ticks(sluice.pid), tick_us, via["total_requests"])
                mock_via_us = sum(cpu_us_per_request(m0, cpu_ticks(mock.pid), tick_us, via["total_requests"]))
                results[(mode, rate)] = (direct, via, sluice_us, mock_direct_us, mock_via_us)
                time.sleep(0.5)
                if sluice.poll() is not None:
                    raise RuntimeError(f"sluice exited with {sluice.returncode}: {sluice_out.read_text()[-2000:]}")
    finally:
        stop(sluice)
        stop(mock)
    load_after = Path("/proc/loadavg").read_text().split()[:3]

    lines: list[str] = []
    uname = subprocess.run(["uname", "-a"], capture_output=True, text=True).stdout.strip()
    lines.append(f"## {started.strftime('%Y-%m-%d %H:%M UTC')} — gateway added latency (open loop)")
    lines.append("")
    lines.append(f"- machine: `{uname}`")
    lines.append(f"- CPU: {cpu_model()}, {os.cpu_count()} cores; load average before/after: "
                 f"{' '.join(load_before)} / {' '.join(load_after)}")
    lines.append(f"- placement: mock_upstream (1 thread) on core {args.mock_core}, loadgen on core {args.loadgen_core}, "
                 f"sluice (io_threads: 1, log level {args.sluice_log_level}) on core {args.sluice_core}"
                 + sched_note(args))
    lines.append(f"- schedule: {args.duration:g} s measured after {args.warmup:g} s warm-up per run, "
                 f"{args.connections} initial keep-alive connections; latency from the intended send time to the "
                 "last response byte")
    lines.append(f"- command: `{command}` (from {REPO.name}/)")
    any_errors = False
    for mode in modes:
        lines.append("")
        lines.append(f"### {'non-stream' if mode == 'json' else 'stream (SSE, 6 events)'} chat completions")
        lines.append("")
        lines.append("| rate (req/s) | path | ok | errors | achieved (req/s) | p50 µs | p90 µs | p99 µs | p99.9 µs | "
                     "max µs | send lag p99 µs | new conns / max backlog | sluice CPU µs/req (user / sys) |")
        lines.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for rate in rates:
            direct, via, sluice_us, _, _ = results[(mode, rate)]
            lines.append(fmt_row(rate, "direct to mock (peer)", direct, None))
            lines.append(fmt_row(rate, "through sluice", via, sluice_us))
            any_errors |= direct["errors"] > 0 or via["errors"] > 0
        lines.append("")
        lines.append("| rate (req/s) | p50 added µs | p90 added µs | p99 added µs | p99.9 added µs | "
                     "mock CPU µs/req direct / via sluice | p99 added ≤ 1000 µs |")
        lines.append("|---:|---:|---:|---:|---:|---:|---|")
        for rate in rates:
            direct, via, _, mock_d, mock_v = results[(mode, rate)]
            added = {k: via["latency_us"][k] - direct["latency_us"][k] for k in ("p50", "p90", "p99", "p999")}
            verdict = "yes" if added["p99"] <= TARGET_P99_ADDED_US else "**no**"
            lines.append(f"| {rate} | {added['p50']} | {added['p90']} | {added['p99']} | {added['p999']} | "
                         f"{mock_d:.1f} / {mock_v:.1f} | {verdict} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.record:
        results_path = Path(args.results)
        if not results_path.exists():
            results_path.write_text(
                "# Benchmark results\n\nFigures from `bench/` tools, newest last. How to reproduce: "
                "`bench/README.md`.\n\n")
        with open(results_path, "a") as f:
            f.write("\n" + table)
        log(f"appended to {results_path}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 1 if any_errors else 0


if __name__ == "__main__":
    sys.exit(main())
