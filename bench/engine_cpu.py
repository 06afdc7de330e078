#!/usr/bin/env python3
"""Embedded engine CPU benchmark: prompt and decode throughput of sluice's CPU backend, next to Hugging Face
transformers on the same CPU cores, the same GGUF model and the same prompts, measured in the same run.

For each batch size B (default 1 and 8):
  1. sluice: `engine_throughput` submits B prompts of exactly P random token ids (fixed seed, normal tokens
     only) at once, greedy, ignore_eos, min_tokens = max_tokens = G. Prompt throughput = B*P / time until every
     request has its first token; decode throughput = B*(G-1) / time from that moment to the last token. It
     writes the prompts it used to a file.
  2. transformers: the same GGUF loaded with AutoModelForCausalLM.from_pretrained(dir, gguf_file=name) in fp32
     (transformers dequantizes the GGUF tensors on load, so it computes on fp32 weights, while sluice computes
     directly on the Q4_1 blocks). Prefill: one forward over the [B, P] batch with logits_to_keep=1 (only the
     last position's logits, as sluice computes), argmax = the first token. Decode: G-1 greedy steps of
     [B, 1] with the KV cache (DynamicCache), argmax each step. Same prompts, same G (or --hf-gen-tokens).
Both run pinned to the same cores (taskset -c --cores), one after the other, never concurrently: all sluice
runs first, then one transformers process (the model is loaded once) for all batch sizes. Each side does a
warm-up, then --repeat measured runs; tables show the median. CPU time (user + system, all threads) over the
same intervals is reported as a share of wall time, which shows how much of its cores each side got on a
shared machine.

Builds nothing: expects engine_throughput in --bin-dir (default build/bin).

    python3 bench/engine_cpu.py [--bin-dir build/bin] [--model models/SmolLM2-135M-Instruct.Q4_1.gguf]
                                [--batches 1,8] [--prompt-tokens 128] [--gen-tokens 64] [--hf-gen-tokens N]
                                [--threads 2[,1]] [--cores 0,1] [--repeat 3] [--max-num-batched-tokens 1024]
                                [--record] [--results bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = "models/SmolLM2-135M-Instruct.Q4_1.gguf"


def log(msg: str) -> None:
    print(f"[engine_cpu] {msg}", file=sys.stderr, flush=True)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def thread_counts(spec: str) -> list[int]:
    return [int(t) for t in str(spec).split(",")]


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (the same definition engine_throughput uses)."""
    if not values:
        return 0.0
    s = sorted(values)
    rank = max(1, min(len(s), int(p / 100.0 * len(s) + 0.999999)))
    return s[rank - 1]


# ---------------------------------------------------------------------------------------------------------
# transformers side (runs in its own process, pinned by the parent)


def hf_worker(args) -> None:
    """Measures transformers for every prompt file in --prompts; prints one JSON object on stdout."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_path = (REPO / args.model) if not Path(args.model).is_absolute() else Path(args.model)
    t = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(str(model_path.parent), gguf_file=model_path.name,
                                                 dtype=torch.float32)
    model.eval()
    load_s = time.perf_counter() - t
    tok = AutoTokenizer.from_pretrained(str(model_path.parent), gguf_file=model_path.name)
    gen = args.gen_tokens

    def one_run(ids: "torch.Tensor", steps: int) -> dict:
        mask = torch.ones_like(ids)
        c0, t0 = time.process_time(), time.perf_counter()
        out = model(input_ids=ids, attention_mask=mask, use_cache=True, logits_to_keep=1)
        nxt = out.logits[:, -1, :].argmax(-1, keepdim=True)
        t1, c1 = time.perf_counter(), time.process_time()
        past = out.past_key_values
        tokens = [nxt]
        step_ms = []
        for _ in range(steps - 1):
            s = time.perf_counter()
            out = model(input_ids=nxt, past_key_values=past, use_cache=True)
            nxt = out.logits[:, -1, :].argmax(-1, keepdim=True)
            past = out.past_key_values
            tokens.append(nxt)
            step_ms.append((time.perf_counter() - s) * 1e3)
        t2, c2 = time.perf_counter(), time.process_time()
        b, p = ids.shape
        return {
            "prefill_s": t1 - t0, "decode_s": t2 - t1,
            "prompt_tok_s": b * p / (t1 - t0), "decode_tok_s": b * (steps - 1) / (t2 - t1) if steps > 1 else 0.0,
            "prefill_cpu_s": c1 - c0, "decode_cpu_s": c2 - c1,
            "itl_ms": {"mean": statistics.fmean(step_ms) if step_ms else 0.0, "p50": percentile(step_ms, 50),
                       "p90": percentile(step_ms, 90), "p99": percentile(step_ms, 99),
                       "max": max(step_ms, default=0.0)},
            "token_ids": torch.cat(tokens, dim=1).tolist(),
        }

    results = []
    with torch.inference_mode():
        for threads in thread_counts(args.threads):
            torch.set_num_threads(threads)
            for path in args.prompts.split(","):
                prompts = json.loads(Path(path).read_text())
                ids = torch.tensor(prompts, dtype=torch.long)
                name = f"transformers threads={threads} B={ids.shape[0]}"
                log(f"{name}: warm-up")
                one_run(ids, min(4, gen))
                runs = []
                for r in range(args.repeat):
                    res = one_run(ids, gen)
                    log(f"{name} run {r + 1}: prompt {res['prompt_tok_s']:.1f} tok/s, "
                        f"decode {res['decode_tok_s']:.1f} tok/s")
                    runs.append(res)
                texts = [tok.decode(row, skip_special_tokens=False, clean_up_tokenization_spaces=False)
                         for row in runs[-1]["token_ids"]]
                for r in runs:
                    del r["token_ids"]
                results.append({"threads": threads, "torch_threads": torch.get_num_threads(),
                                "batch": int(ids.shape[0]), "prompt_tokens": int(ids.shape[1]), "gen_tokens": gen,
                                "runs": runs, "texts": texts})
    print(json.dumps({"torch": torch.__version__, "transformers": transformers.__version__,
                      "model_load_s": load_s, "results": results}))


# ---------------------------------------------------------------------------------------------------------
# orchestration


def write_prompts(args, batch: int, path: Path) -> None:
    """The prompt ids engine_throughput would use (a one-token run: only the file matters)."""
    cmd = [str(Path(args.bin_dir) / "engine_throughput"), "--model", args.model, "--batch", str(batch),
           "--prompt-tokens", str(args.prompt_tokens), "--gen-tokens", "2", "--repeat", "1", "--warmup-tokens", "0",
           "--seed", str(args.seed), "--max-num-batched-tokens", str(args.max_num_batched_tokens),
           "--prompts-out", str(path)]
    subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, check=True)


def run_sluice(args, batch: int, threads: int, prompts_path: Path) -> dict:
    cmd = ["taskset", "-c", args.cores, str(Path(args.bin_dir) / "engine_throughput"), "--model", args.model,
           "--batch", str(batch), "--prompt-tokens", str(args.prompt_tokens), "--gen-tokens", str(args.gen_tokens),
           "--threads", str(threads), "--max-num-batched-tokens", str(args.max_num_batched_tokens),
           "--repeat", str(args.repeat), "--seed", str(args.seed), "--prompts-out", str(prompts_path), "--texts"]
    log("sluice: " + shlex.join(cmd))
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"engine_throughput exited with {proc.returncode}")
    return json.loads(proc.stdout)


# transformers configurations: the name --hf-variants uses, the table's label, extra environment.
# "passive" makes libgomp threads sleep at once when idle instead of spinning first (OMP_WAIT_POLICY), which
# matters on a shared machine: a spinning thread can hold the core the thread it waits for needs.
HF_VARIANTS = {
    "default": ("transformers (fp32)", {}),
    "passive": ("transformers (fp32, OMP_WAIT_POLICY=PASSIVE)", {"OMP_WAIT_POLICY": "PASSIVE"}),
}


def run_hf(args, prompt_paths: list[Path], variant: str) -> dict:
    gen = args.hf_gen_tokens or args.gen_tokens
    cmd = ["taskset", "-c", args.cores, sys.executable, str(Path(__file__).resolve()), "--hf-worker",
           "--model", args.model, "--prompts", ",".join(str(p) for p in prompt_paths), "--gen-tokens", str(gen),
           "--threads", str(args.threads), "--repeat", str(args.repeat)]
    extra = HF_VARIANTS[variant][1]
    log("transformers: " + " ".join(f"{k}={v}" for k, v in extra.items()) + (" " if extra else "") + shlex.join(cmd))
    env = dict(os.environ, TRANSFORMERS_VERBOSITY="error", HF_HUB_OFFLINE="1", HF_HUB_DISABLE_PROGRESS_BARS="1",
               TOKENIZERS_PARALLELISM="false", TQDM_DISABLE="1", **extra)
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"the transformers worker exited with {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarize(runs: list[dict]) -> dict:
    """Medians over runs of the figures the tables show."""
    med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
    return {
        "prompt_tok_s": med("prompt_tok_s"), "decode_tok_s": med("decode_tok_s"),
        "prefill_s": med("prefill_s"), "decode_s": med("decode_s"),
        "itl_p50_ms": statistics.median(r["itl_ms"]["p50"] for r in runs),
        "itl_p90_ms": statistics.median(r["itl_ms"]["p90"] for r in runs),
        "prefill_share": statistics.median(r["prefill_cpu_s"] / r["prefill_s"] for r in runs),
        "decode_share": statistics.median(r["decode_cpu_s"] / r["decode_s"] for r in runs if r["decode_s"] > 0),
        "runs_prompt": [r["prompt_tok_s"] for r in runs], "runs_decode": [r["decode_tok_s"] for r in runs],
    }


def text_agreement(a: list[str], b: list[str]) -> str:
    """'k/n' identical texts (sluice's `a` may be longer when transformers generated fewer tokens: then `b`
    must be its prefix), plus the shortest common prefix (characters) when some differ."""
    same = sum(x == y or (len(x) > len(y) and x.startswith(y)) for x, y in zip(a, b))
    if same == len(a):
        return f"{same}/{len(a)}"
    prefix = min(len(os.path.commonprefix([x, y])) for x, y in zip(a, b) if not x.startswith(y))
    return f"{same}/{len(a)} (others agree on ≥ {prefix} chars)"


def order_note(args) -> str:
    first, second = "sluice (every case)", "transformers (one process per configuration, every case)"
    if args.transformers_first:
        first, second = second, first
    return (f"- placement: both pinned to cores {args.cores} (`taskset -c {args.cores}`), run one after the other, "
            f"never concurrently: {first}, then {second}")


def render(args, meta: dict, sluice: dict[tuple[int, int], dict], hf: dict[str, dict]) -> str:
    """The markdown section: setup, one row per (engine, threads, batch), ratios, per-run figures."""
    g_hf = args.hf_gen_tokens or args.gen_tokens
    st = next(iter(sluice.values()))["settings"]
    threads = ", ".join(str(t) for t in thread_counts(args.threads))
    lines = [
        f"## {meta['date']} — embedded engine CPU throughput ({Path(args.model).name})",
        "",
        f"- machine: `{meta['uname']}`",
        f"- CPU: {meta['cpu']}, {meta['nproc']} cores; load average before/after: {meta['load_before']} / "
        f"{meta['load_after']}",
        f"{order_note(args)}; default scheduling; compute threads: {threads}",
        f"- workload: B prompts of {args.prompt_tokens} random token ids (normal tokens only, seed {args.seed}, the "
        f"same ids for both), all submitted at once, greedy, EOS ignored, exactly G tokens generated: "
        f"G = {args.gen_tokens} for sluice, {g_hf} for transformers; medians of {args.repeat} runs after a warm-up",
        f"- sluice: CPU backend computing on the Q4_1 blocks directly (dequantized inside the matmul), fp32 "
        f"activations and KV cache; max_num_batched_tokens {st['max_num_batched_tokens']}, "
        f"max_num_seqs {st['max_num_seqs']}, block_size {st['block_size']}, kv_cache_bytes "
        f"{st['kv_cache_bytes'] >> 20} MiB ({st['kv_blocks']} blocks), chunked prefill "
        f"{'on' if st['enable_chunked_prefill'] else 'off'} (each batch's prompts fit one step)",
    ]
    if hf:
        any_hf = next(iter(hf.values()))
        lines.append(
            f"- transformers {any_hf['transformers']} + torch {any_hf['torch']} (CPU): the same GGUF via "
            f"`AutoModelForCausalLM.from_pretrained(dir, gguf_file=…, dtype=float32)`, which dequantizes it on load, "
            f"so it computes on **fp32 weights** (6.4× the bytes per weight of Q4_1, 32 bits against 5); "
            f"`torch.set_num_threads` = the threads column; prefill = one forward over [B, {args.prompt_tokens}] "
            f"with `logits_to_keep=1`; decode = a greedy loop of [B, 1] steps with the KV cache (DynamicCache), "
            f"argmax per step; configurations: "
            + ", ".join(f"{HF_VARIANTS[v][0]}" for v in hf))
    lines += [
        f"- command: `{meta['command']}` (from main/)",
        "",
        "| engine | threads | batch | prompt tok/s | decode tok/s | prefill s | decode s "
        "| per-token latency p50 / p90 ms | CPU/wall prefill, decode | greedy text = transformers |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    hf_by_key = {(v, r["threads"], r["batch"]): r for v, out in hf.items() for r in out["results"]}
    ratios = []
    runs_lines = []
    fmt_runs = lambda xs: ", ".join(f"{x:.1f}" for x in xs)  # noqa: E731
    for (t, batch) in sorted(sluice, key=lambda k: (-k[0], k[1])):
        res = sluice[(t, batch)]
        s = summarize(res["runs"])
        peers = [(v, hf_by_key[(v, t, batch)]) for v in hf if (v, t, batch) in hf_by_key]
        agree = text_agreement(res["texts"], peers[0][1]["texts"]) if peers else "–"
        checks = [r for r in res["runs"]
                  if r["engine_steps"] != r["expected_steps"] or r["preemptions"] or r["first_token_delayed"]]
        note = " ⚠" if checks else ""
        lines.append(f"| sluice (Q4_1){note} | {t} | {batch} | {s['prompt_tok_s']:.1f} | {s['decode_tok_s']:.1f} | "
                     f"{s['prefill_s']:.2f} | {s['decode_s']:.2f} | {s['itl_p50_ms']:.1f} / {s['itl_p90_ms']:.1f} | "
                     f"{s['prefill_share']:.2f}, {s['decode_share']:.2f} | {agree} |")
        discarded = res.get("discarded_runs", 0)
        runs_lines.append(f"sluice t={t} B={batch}: prompt {fmt_runs(s['runs_prompt'])}; decode "
                          f"{fmt_runs(s['runs_decode'])}"
                          + (f" ({discarded} more discarded: prompts split over steps)" if discarded else ""))
        for v, hr in peers:
            h = summarize(hr["runs"])
            label = HF_VARIANTS[v][0]
            lines.append(f"| {label} | {t} | {batch} | {h['prompt_tok_s']:.1f} | {h['decode_tok_s']:.1f} | "
                         f"{h['prefill_s']:.2f} | {h['decode_s']:.2f} | {h['itl_p50_ms']:.1f} / {h['itl_p90_ms']:.1f} "
                         f"| {h['prefill_share']:.2f}, {h['decode_share']:.2f} | |")
            runs_lines.append(f"{label} t={t} B={batch}: prompt {fmt_runs(h['runs_prompt'])}; "
                              f"decode {fmt_runs(h['runs_decode'])}")
            ratios.append((t, batch, label, s["prompt_tok_s"] / h["prompt_tok_s"],
                           s["decode_tok_s"] / h["decode_tok_s"]))
    if ratios:
        lines += ["", "| threads | batch | peer | sluice ÷ peer, prompt | sluice ÷ peer, decode |",
                  "|---:|---:|---|---:|---:|"]
        lines += [f"| {t} | {b} | {label} | {p:.2f}× | {d:.2f}× |" for t, b, label, p, d in ratios]
    lines += ["", "Per-run tok/s: " + "; ".join(runs_lines) + "."]
    lines += ["", "Columns: *prompt tok/s* = B·P / time until every request had its first token; *decode tok/s* = "
              "B·(G−1) / time from then to the last token; *per-token latency* = gap between a request's successive "
              "tokens (one decode step of the whole batch); *CPU/wall* = process CPU time (all threads) over wall "
              "time in each phase, at most the thread count — below it the process was waiting for a core "
              "(shared machine), and busy-waiting threads count as CPU; *greedy text*: requests whose generated text "
              "is the same in both (sluice against the first transformers configuration). ⚠ marks a sluice run "
              "whose step count, preemptions or first-token timing deviated from one prefill step plus G−1 decode "
              "steps."]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default="build/bin")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--hf-gen-tokens", type=int, default=0, help="G for transformers when smaller (0: same)")
    ap.add_argument("--threads", default="2", help="compute threads, or a list (2,1) to run each")
    ap.add_argument("--cores", default="0,1")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--max-num-batched-tokens", type=int, default=1024)
    ap.add_argument("--skip-transformers", action="store_true")
    ap.add_argument("--hf-variants", default="default",
                    help="transformers configurations to run: " + ", ".join(HF_VARIANTS))
    ap.add_argument("--transformers-first", action="store_true", help="run transformers before sluice")
    ap.add_argument("--record", action="store_true", help="append the section to --results")
    ap.add_argument("--results", default="bench/RESULTS.md")
    ap.add_argument("--hf-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--prompts", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.hf_worker:
        hf_worker(args)
        return 0

    batches = [int(b) for b in args.batches.split(",")]
    if any(b * args.prompt_tokens > args.max_num_batched_tokens for b in batches):
        log("note: some batch's prompts exceed --max-num-batched-tokens; prefill will take several steps")
    meta = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "uname": subprocess.run(["uname", "-a"], stdout=subprocess.PIPE, text=True).stdout.strip(),
        "cpu": cpu_model(), "nproc": os.cpu_count(), "load_before": load_average(),
        "command": shlex.join(["python3", "bench/engine_cpu.py"] + sys.argv[1:]),
    }
    sluice: dict[tuple[int, int], dict] = {}
    with tempfile.TemporaryDirectory(prefix="engine_cpu.") as tmp:
        paths = [Path(tmp) / f"prompts_{b}.json" for b in batches]  # the same ids for every thread count
        variants = [] if args.skip_transformers else args.hf_variants.split(",")
        hf: dict[str, dict] = {}

        def sluice_runs() -> None:
            for t in thread_counts(args.threads):
                for b, path in zip(batches, paths):
                    sluice[(t, b)] = run_sluice(args, b, t, path)

        if args.transformers_first and variants:
            # transformers reads the prompt files: write them without timing anything.
            for b, path in zip(batches, paths):
                write_prompts(args, b, path)
            hf = {v: run_hf(args, paths, v) for v in variants}
            sluice_runs()
        else:
            sluice_runs()
            hf = {v: run_hf(args, paths, v) for v in variants}
    meta["load_after"] = load_average()

    section = render(args, meta, sluice, hf)
    print(section)
    if args.record:
        results = REPO / args.results
        with results.open("a") as f:
            f.write("\n" + section)
        log(f"appended to {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
