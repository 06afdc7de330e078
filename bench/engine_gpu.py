#!/usr/bin/env python3
"""The embedded engine's speed on the GPU (CUDA backend, random bf16 weights), next to Hugging Face
transformers on the same card in the same run, against the copy-bandwidth roofline and the project's targets.

For each shape: `engine_gpu --shape S` (bench/engine_gpu_main.cpp: bandwidth, batch-1 decode, TTFT, and the
offline 1000-in/1000-out run for the shapes in --offline-shapes), one process per shape so each starts with
the whole device; then one `bench/transformers_gpu.py` process for all shapes (never at the same time as
the engine: both take most of the GPU's memory). Each tool has its own time budget and a hard timeout, so a
slow build of the backend costs a bounded part of the GPU call; what a budget cut is listed in the report.

Outputs with --out DIR: engine_gpu.<shape>.json / .log, transformers_gpu.json / .log, summary.json (all of it
plus the command and machine) and report.md (the Markdown section). --record appends the section to
--results (default bench/RESULTS.md). --report-from DIR re-renders the section from a summary.json written
earlier (on the GPU machine, say) without running anything, e.g. to --record it here.

Usage:
  python3 bench/engine_gpu.py --bin-dir build-gpu/bin --out /tmp/bench [--shapes llama-3.1-8b,llama-3.2-1b,...]
         [--offline-shapes llama-3.1-8b] [--engine-seconds llama-3.1-8b=150,llama-3.2-1b=45,smollm2-135m=45]
         [--engine-args "--offline-prompts 512"] [--enforce-eager] [--skip-transformers] [--hf-seconds 100]
         [--hf-gen-tokens 64] [--compiled] [--total-seconds T] [--record] [--results bench/RESULTS.md]
  python3 bench/engine_gpu.py --report-from DIR --record
"""
import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SHAPES = ["llama-3.1-8b", "llama-3.2-1b", "smollm2-135m"]
DEFAULT_SECONDS = {"llama-3.1-8b": 150, "llama-3.2-1b": 45, "smollm2-135m": 45}
# The project's targets (batch-1 decode tok/s, offline output tok/s at 1000 in / 1000 out, TTFT of 128 tokens).
TARGETS = {
    "llama-3.1-8b": {"decode": 210, "decode_roofline": 0.80, "offline": 8000, "ttft_ms": 15},
    "llama-3.2-1b": {"decode": 1000},
    "smollm2-135m": {"decode": 2500},
}
# Peers measured earlier on the same card (shared REFERENCE.md), quoted for context, not re-measured here.
EARLIER_PEERS = ("gpt-fast (torch.compile + CUDA graphs), measured earlier on this card: 164.7 tok/s (8B), 669 (1B, "
                 "untied), 898 (135M, untied) at batch 1; 4,600 output tok/s at batch 64 and 6,370 at batch 256 (8B); "
                 "TensorRT-LLM's published 17,744 output tok/s is Llama-3.1-8B in FP8 at 1000/1000.")


def log(msg):
    print(f"engine_gpu.py: {msg}", file=sys.stderr, flush=True)


def run_json(cmd, timeout, out_dir, name):
    """Runs cmd; returns (parsed JSON of its last stdout line or None, exit status or 'timeout')."""
    log(f"running {' '.join(shlex.quote(c) for c in cmd)} (timeout {timeout:.0f} s)")
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        status, stdout, stderr = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        status = "timeout"
        stdout = e.stdout.decode("utf-8", "replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        stderr = e.stderr.decode("utf-8", "replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
    except OSError as e:
        status, stdout, stderr = "not started", "", str(e)
    log(f"{name}: exit {status} after {time.monotonic() - t0:.0f} s")
    doc = None
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                doc = json.loads(line)
            except ValueError:
                pass
            break
    if out_dir:
        with open(os.path.join(out_dir, f"{name}.log"), "w") as f:
            f.write(stderr)
        if doc is not None:
            with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
                json.dump(doc, f, indent=2)
    if stderr and status != 0:
        sys.stderr.write(stderr[-3000:])
    return doc, status


def machine():
    info = {"uname": " ".join(os.uname())}
    try:
        info["gpu"] = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                                      "--format=csv,noheader"], capture_output=True, text=True,
                                     timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        info["gpu"] = "unknown (nvidia-smi failed)"
    return info


def fmt(v, digits=0, unit=""):
    if v is None:
        return "–"
    return f"{v:,.{digits}f}{unit}"


def get(d, *path):
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def verdict(ok):
    return "–" if ok is None else ("yes" if ok else "**no**")


def render(summary):
    lines = [f"## {summary['date']} — engine on the GPU (CUDA backend, random bf16 weights)", ""]
    m = summary["machine"]
    lines += [f"- machine: {m.get('gpu')}; `{m.get('uname')}`",
              f"- command: `{summary['command']}` (from the repository root)"]
    first = next((e for e in summary["engine"].values() if e.get("json")), None)
    if first:
        s, b = first["json"].get("settings", {}), first["json"].get("bandwidth", {})
        lines.append(f"- engine settings: max_num_seqs {s.get('max_num_seqs')}, max_batched_tokens "
                     f"{s.get('max_batched_tokens')}, block_size {s.get('block_size')}, gpu_memory_utilization "
                     f"{s.get('gpu_memory_utilization')}, enforce_eager {str(s.get('enforce_eager')).lower()}, "
                     f"max_model_len = the longest request of the run; {s.get('sampling')}")
        if b:
            per = ", ".join(f"{k} {fmt(get(v, 'json', 'bandwidth', 'gb_s'))}" for k, v in summary["engine"].items())
            lines.append(f"- copy bandwidth, measured by each engine_gpu run: {per} GB/s ({b.get('convention')}); "
                         "roofline = bandwidth ÷ bf16 bytes of all weights (tied embedding once)")
    hf = summary.get("transformers") or {}
    hj = hf.get("json") or {}
    if hj:
        st = hj.get("settings", {})
        lines.append(f"- peer: transformers {hj.get('transformers')} / torch {hj.get('torch')}, bf16, random weights, "
                     f"eager at batch 1: {st.get('prompt_tokens')}-token prompt, {st.get('gen_tokens')} generated "
                     f"tokens, TTFT median of {st.get('ttft_repeats')}"
                     + (f"; compiled static cache at batch {st.get('compiled_batch')}" if st.get("compiled") else ""))
    elif hf:
        lines.append(f"- peer: transformers did not report (exit {hf.get('status')})")
    lines.append(f"- for context: {EARLIER_PEERS}")
    lines += ["", "| shape | measure | sluice | transformers (same run) | roofline | target | met |",
              "|---|---|---:|---:|---:|---|---|"]
    for shape in summary["shapes"]:
        e = summary["engine"].get(shape, {})
        ej = e.get("json") or {}
        hs = get(hj, "shapes", shape) or {}
        t = TARGETS.get(shape, {})
        roof = ej.get("roofline_decode_b1_tok_s")
        dec = get(ej, "decode_b1", "tok_s")
        frac = get(ej, "decode_b1", "fraction_of_roofline")
        met = None
        if dec is not None and "decode" in t:
            met = dec >= t["decode"] and (frac is None or frac >= t.get("decode_roofline", 0))
        target = f"≥ {t['decode']:,}" + (f" and ≥ {t['decode_roofline']:.0%} of roofline"
                                         if "decode_roofline" in t else "") if "decode" in t else "–"
        dec_cell = fmt(dec, 1) + (f" ({frac:.0%} of roofline)" if frac else "")
        lines.append(f"| {shape} | batch-1 decode tok/s | {dec_cell} | {fmt(get(hs, 'decode_b1', 'tok_s'), 1)} | "
                     f"{fmt(roof)} | {target} | {verdict(met)} |")
        ttft = get(ej, "ttft_b1", "median_ms")
        tmet = None if ttft is None or "ttft_ms" not in t else ttft <= t["ttft_ms"]
        lines.append(f"| {shape} | TTFT, {get(ej, 'ttft_b1', 'prompt_tokens') or 128}-token prompt, median ms | "
                     f"{fmt(ttft, 2)} | {fmt(get(hs, 'ttft_b1', 'median_ms'), 1)} | – | "
                     f"{'≤ %d' % t['ttft_ms'] if 'ttft_ms' in t else '–'} | {verdict(tmet)} |")
        itl = get(ej, "decode_b1", "itl_ms") or {}
        hitl = get(hs, "decode_b1", "itl_ms") or {}
        lines.append(f"| {shape} | batch-1 inter-token ms p50 / p99 | {fmt(itl.get('p50'), 2)} / "
                     f"{fmt(itl.get('p99'), 2)} | {fmt(hitl.get('p50'), 1)} / {fmt(hitl.get('p99'), 1)} "
                     "| – | – | – |")
        off = ej.get("offline")
        if not off and shape in summary.get("offline_shapes", []):
            lines.append(f"| {shape} | offline output tok/s | – | – | – | "
                         f"{'≥ %s' % format(t['offline'], ',') if 'offline' in t else '–'} | – |")
        if off:
            omet = None if "offline" not in t or not off.get("complete") else off["output_tok_s"] >= t["offline"]
            label = (f"offline {off['prompts']} × {off['input_tokens']} in / {off['output_tokens']} out, "
                     "output tok/s" + ("" if off.get("complete") else " (cut by the time budget)"))
            comp = get(hs, "compiled")
            peer = (f"{fmt(comp['output_tok_s'])} (compiled static cache, batch {comp['batch']}, "
                    f"{comp['prompt_tokens']} in / {comp['gen_tokens']} out)" if comp else "–")
            lines.append(f"| {shape} | {label} | {fmt(off.get('output_tok_s'))} | {peer} | – | "
                         f"{'≥ %s' % format(t['offline'], ',') if 'offline' in t else '–'} | {verdict(omet)} |")
            lines.append(f"| {shape} | offline total tok/s (prompt + output); mean decode batch; preemptions | "
                         f"{fmt(off.get('total_tok_s'))}; {fmt(off.get('mean_decode_batch'), 1)}; "
                         f"{off.get('preemptions')} | – | – | – | – |")
    lines.append("")
    notes = []
    for shape in summary["shapes"]:
        e = summary["engine"].get(shape, {})
        ej = e.get("json") or {}
        if e.get("status") not in (0, None):
            notes.append(f"engine_gpu {shape}: exit {e.get('status')}")
        for err in ej.get("errors", []):
            notes.append(f"engine_gpu {shape}: {err}")
        if ej.get("cut_by_time_budget"):
            notes.append(f"engine_gpu {shape}: cut by its time budget: {', '.join(ej['cut_by_time_budget'])}")
        be = ej.get("backend") or {}
        if be:
            notes.append(f"engine_gpu {shape}: max_model_len {get(ej, 'settings', 'max_model_len')}; "
                         f"backend created in {fmt(be.get('create_s'), 1)} s; weights "
                         f"{fmt(be.get('weights_bytes', 0) / 2**30, 2)} GiB, KV cache "
                         f"{fmt(be.get('kv_cache_bytes', 0) / 2**30, 1)} GiB ({be.get('kv_blocks')} blocks), other "
                         f"{fmt(be.get('other_bytes', 0) / 2**30, 2)} GiB; CUDA graphs captured "
                         f"{be.get('graphs_captured')}, replays {be.get('graph_replays')}"
                         + (f"; graphs off: {be['graph_disabled_reason']}" if be.get("graph_disabled_reason") else ""))
    for err in hj.get("errors", []):
        notes.append(f"transformers: {err}")
    if hj.get("cut_by_time_budget"):
        notes.append(f"transformers: cut by its time budget: {', '.join(hj['cut_by_time_budget'])}")
    if notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines) + "\n"


def parse_seconds(text):
    out = dict(DEFAULT_SECONDS)
    for item in filter(None, text.split(",")):
        k, _, v = item.partition("=")
        out[k] = float(v)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--offline-shapes", default="llama-3.1-8b")
    ap.add_argument("--engine-seconds", default="", help="per-shape engine_gpu --max-seconds, e.g. llama-3.1-8b=150")
    ap.add_argument("--engine-args", default="", help="extra engine_gpu arguments for every shape")
    ap.add_argument("--enforce-eager", action="store_true")
    ap.add_argument("--skip-transformers", action="store_true")
    ap.add_argument("--hf-seconds", type=float, default=100)
    ap.add_argument("--hf-gen-tokens", type=int, default=64)
    ap.add_argument("--compiled", action="store_true", help="transformers: also batch-64 compiled static cache")
    ap.add_argument("--total-seconds", type=float, default=0,
                    help="fit everything into this many seconds: scales the engine budgets and --hf-seconds down")
    ap.add_argument("--out", default="")
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--results", default=os.path.join(ROOT, "bench", "RESULTS.md"))
    ap.add_argument("--report-from", default="", help="render from DIR/summary.json instead of running")
    a = ap.parse_args()

    if a.report_from:
        with open(os.path.join(a.report_from, "summary.json")) as f:
            summary = json.load(f)
        failed = False
    else:
        if a.out:
            os.makedirs(a.out, exist_ok=True)
        shapes = [s for s in a.shapes.split(",") if s]
        for s in shapes:
            if s not in SHAPES:
                sys.exit(f"engine_gpu.py: unknown shape {s} ({', '.join(SHAPES)})")
        seconds = parse_seconds(a.engine_seconds)
        if a.total_seconds > 0:
            # Each process also pays for its start (CUDA context, imports, weights): about 30 s set aside apiece.
            procs = len(shapes) + (0 if a.skip_transformers else 1)
            if not a.skip_transformers:
                a.hf_seconds = min(a.hf_seconds, 0.25 * a.total_seconds)
            room = a.total_seconds - 30 * procs - (0 if a.skip_transformers else a.hf_seconds)
            want = sum(seconds.get(s, 60) for s in shapes)
            if room < want:
                scale = max(room, 20 * len(shapes)) / want
                seconds = {s: max(20.0, seconds.get(s, 60) * scale) for s in shapes}
        offline = set(filter(None, a.offline_shapes.split(",")))
        summary = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                   "command": " ".join(shlex.quote(x) for x in ["python3", "bench/engine_gpu.py"] + sys.argv[1:]),
                   "machine": machine(), "shapes": shapes, "offline_shapes": sorted(offline & set(shapes)),
                   "engine": {}}
        failed = False
        for s in shapes:
            parts = "bandwidth,decode,ttft" + (",offline" if s in offline else "")
            budget = round(seconds.get(s, 60))
            cmd = [os.path.join(a.bin_dir, "engine_gpu"), "--shape", s, "--parts", parts, "--max-seconds",
                   str(budget)] + (["--enforce-eager"] if a.enforce_eager else []) + shlex.split(a.engine_args)
            doc, status = run_json(cmd, budget + 60, a.out, f"engine_gpu.{s}")
            summary["engine"][s] = {"status": status, "json": doc}
            failed = failed or status != 0 or doc is None
            if a.out:  # written after every shape so a killed run still leaves what it measured
                with open(os.path.join(a.out, "summary.json"), "w") as f:
                    json.dump(summary, f, indent=2)
        if not a.skip_transformers:
            cmd = [sys.executable, os.path.join(ROOT, "bench", "transformers_gpu.py"), "--shapes", ",".join(shapes),
                   "--gen-tokens", str(a.hf_gen_tokens), "--max-seconds", str(a.hf_seconds)]
            if a.compiled:
                cmd.append("--compiled")
            doc, status = run_json(cmd, a.hf_seconds + 90, a.out, "transformers_gpu")
            summary["transformers"] = {"status": status, "json": doc}
    text = render(summary)
    print(text)
    if a.out and not a.report_from:
        with open(os.path.join(a.out, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
        with open(os.path.join(a.out, "report.md"), "w") as f:
            f.write(text)
    if a.record:
        with open(a.results, "a") as f:
            f.write("\n" + text)
        log(f"appended to {a.results}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
