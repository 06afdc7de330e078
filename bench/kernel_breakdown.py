#!/usr/bin/env python3
"""Where a batch-1 decode step's GPU time goes, kernel by kernel (CUDA backend, random bf16 weights).

Runs `engine_gpu --parts decode --enforce-eager` under Nsight Compute with one metric (gpu__time_duration),
caches and clocks left alone, then splits the kernel sequence into forward passes (each starts with the
embedding kernel) and averages the last --steps of them (pure decode steps at batch 1). Prints, per kernel
family, launches per step, microseconds per step and per launch, and the share of the step; the sum is the
step's kernel time without launch gaps, to hold against the step time engine_gpu measures with CUDA graphs.

ncu serializes kernels and times each alone: a figure here is a kernel's duration, not its share of an
overlapped timeline. Needs ncu on PATH (or --ncu) and a machine whose runtime lets it read the counters.

Usage: python3 bench/kernel_breakdown.py --bin-dir build-gpu/bin --shapes smollm2-135m,llama-3.2-1b
           [--steps 4] [--out DIR] [--ncu /path/to/ncu]
"""
import argparse
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections import OrderedDict, defaultdict

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def family(name):
    """A short name for a kernel: template arguments and namespaces dropped; cuBLAS kernels grouped."""
    own = "sluice::" in name
    base = re.sub(r"<.*", "", name.replace("(anonymous namespace)::", "").replace("<unnamed>::", "")).split("(")[0].strip()
    base = re.sub(r"^(void|static)\s+", "", base).split("::")[-1]
    return base if own else "cublas:" + base[:48]


def run_ncu(ncu, cmd, timeout):
    full = [ncu, "--csv", "--metrics", "gpu__time_duration.sum", "--cache-control", "none", "--clock-control", "none",
            "--print-units", "base", "--print-kernel-base", "demangled"] + cmd
    p = subprocess.run(full, capture_output=True, text=True, timeout=timeout)
    rows = [line for line in p.stdout.splitlines() if line.startswith('"')]
    if p.returncode != 0 or not rows:
        raise RuntimeError(f"{' '.join(full)} exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    kernels = []
    for r in csv.DictReader(io.StringIO("\n".join(rows))):
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        kernels.append((r["Kernel Name"], float(r["Metric Value"].replace(",", "")) / 1000.0))  # ns -> us
    return kernels


def breakdown(kernels, steps):
    starts = [i for i, (n, _) in enumerate(kernels) if "embedding_kernel" in n]
    if len(starts) < steps + 1:
        raise RuntimeError(f"only {len(starts)} forward passes in the profile")
    # The last forward pass may be cut short by the tool's exit; take the `steps` complete ones before it.
    picked = starts[-steps - 1:]
    per = defaultdict(lambda: [0, 0.0])
    order = OrderedDict()
    for a, b in zip(picked, picked[1:]):
        for name, us in kernels[a:b]:
            f = family(name)
            order.setdefault(f, None)
            per[f][0] += 1
            per[f][1] += us
    total = sum(v[1] for v in per.values()) / steps
    table = []
    for f in order:
        n, us = per[f]
        table.append({"kernel": f, "launches": n / steps, "us_per_step": us / steps, "us_per_launch": us / n,
                      "share": us / steps / total})
    return table, total


def render(shape, table, total):
    lines = [f"### {shape}: {total:.1f} us of kernel time per decode step (batch 1, eager, ncu)", "",
             "| kernel | launches/step | us/step | us/launch | share |", "|---|---:|---:|---:|---:|"]
    for r in sorted(table, key=lambda r: -r["us_per_step"]):
        lines.append(f"| `{r['kernel']}` | {r['launches']:.0f} | {r['us_per_step']:.1f} | {r['us_per_launch']:.2f} | "
                     f"{r['share']:.1%} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--shapes", default="smollm2-135m,llama-3.2-1b,llama-3.1-8b")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--ncu", default=shutil.which("ncu") or "/usr/local/cuda/bin/ncu")
    ap.add_argument("--timeout", type=float, default=240)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    report, data = [], {}
    for shape in [s for s in args.shapes.split(",") if s]:
        cmd = [os.path.join(args.bin_dir, "engine_gpu"), "--shape", shape, "--parts", "decode", "--enforce-eager",
               "--prompt-tokens", "16", "--gen-tokens", str(args.steps + 4), "--decode-repeats", "1"]
        try:
            table, total = breakdown(run_ncu(args.ncu, cmd, args.timeout), args.steps)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            print(f"kernel_breakdown.py: {shape}: {e}", file=sys.stderr)
            continue
        data[shape] = {"kernel_us_per_step": total, "kernels": table, "command": cmd}
        report.append(render(shape, table, total))
        print(report[-1] + "\n", flush=True)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "kernel_breakdown.json"), "w") as f:
            json.dump(data, f, indent=1)
        with open(os.path.join(args.out, "kernel_breakdown.md"), "w") as f:
            f.write("\n\n".join(report) + "\n")
    return 0 if data else 1


if __name__ == "__main__":
    sys.exit(main())
