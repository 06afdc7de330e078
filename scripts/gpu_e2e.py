#!/usr/bin/env python3
"""End-to-end check of sluice serving a Hugging Face model directory on the GPU, driven by the official
`openai` client.

1. Builds a SmolLM2-135M-shaped model directory with transformers: random weights (torch's default init),
   saved as bf16 safetensors with its config.json, plus the real SmolLM2 tokenizer files exported from the
   GGUF (scripts/export_tokenizer.py writes them into .gpu-assets/smollm2-tokenizer, which travels with the
   tree). The text it generates is noise; the point is the whole serving path on the device.
2. Starts `sluice serve` with a config whose engine uses that directory (`device: cuda` by default), one
   route `*` -> local with limits far above the load, and waits for /ready.
3. Runs --clients threads for --duration seconds, each sending streaming chat completions back to back
   (`stream_options.include_usage`, temperature 0, max_tokens --max-tokens, prompts that differ per request).
   A request counts as ok when its stream ended with a finish_reason and a usage chunk, the usage's
   completion_tokens is at least 1 (exactly max_tokens when finish_reason is "length") and nothing raised.
   Client-side TTFT = from sending to the first chunk with content; tokens/s = completion tokens of all
   requests / the load phase's wall time.
4. Reads /metrics (engine memory by use, KV usage, preemptions, healthy, responses by class), stops sluice
   with SIGTERM, and writes e2e.json and e2e.md into --out.

Exit status 0 when sluice became ready, every request was ok and it stopped cleanly; 1 otherwise.

Usage: PYTHONPATH=/tmp/site python3 scripts/gpu_e2e.py --sluice build-gpu/bin/sluice --out DIR
         [--tokenizer .gpu-assets/smollm2-tokenizer] [--workdir /tmp/sluice-e2e] [--device cuda]
         [--clients 32] [--duration 20] [--max-tokens 128] [--gpu-memory-utilization 0.3]
         [--max-num-seqs 64] [--start-timeout 120]
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import multiprocessing
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MODEL_NAME = "smollm2-random"
# SmolLM2-135M-Instruct's published config.json values.
SMOLLM2 = dict(vocab_size=49152, hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
               head_dim=64, intermediate_size=1536, rms_norm_eps=1e-5, max_position_embeddings=8192,
               tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2,
               rope_parameters={"rope_type": "default", "rope_theta": 100000.0})


def log(msg):
    print(f"gpu_e2e: {msg}", file=sys.stderr, flush=True)


def percentile(values, p):
    v = sorted(values)
    if not v:
        return 0.0
    rank = int(p / 100.0 * len(v) + 0.999999)
    return v[min(max(rank, 1), len(v)) - 1]


def make_model_dir(path, tokenizer_dir, seed):
    import torch
    import transformers

    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)
    config = transformers.LlamaConfig(**SMOLLM2)
    config.architectures = ["LlamaForCausalLM"]
    torch.manual_seed(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(path, safe_serialization=True)
    for f in os.listdir(path):  # only what the engine reads; the tokenizer comes from the export
        if f not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(path, f))
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tokenizer_dir, f), os.path.join(path, f))
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return {f: os.path.getsize(os.path.join(path, f)) for f in sorted(os.listdir(path))}


def write_config(workdir, model_dir, a):
    policy = os.path.join(workdir, "policy.yaml")
    with open(policy, "w") as f:
        f.write(f"""routes:
  - name: e2e
    model: "*"
    limits:
      requests_per_second: 100000
      burst: 100000
      max_concurrency: 1024
      max_queue: 1024
      queue_timeout_ms: 60000
    retries:
      max_attempts: 1
      backoff_base_ms: 10
      backoff_max_ms: 100
      retry_on: [connect_error]
    fallback_on: []
    targets:
      - provider: local
        tier: 0
""")
    cfg = os.path.join(workdir, "sluice.yaml")
    with open(cfg, "w") as f:
        f.write(f"""server:
  host: 127.0.0.1
  port: 0
  io_threads: 4
  request_timeout_ms: 120000
policies:
  - {json.dumps(policy)}
engine:
  enabled: true
  model_path: {json.dumps(model_dir)}
  served_model_name: {MODEL_NAME}
  device: {a.device}
  gpu_memory_utilization: {a.gpu_memory_utilization}
  max_num_seqs: {a.max_num_seqs}
  max_num_batched_tokens: 4096
  max_model_len: 2048
  max_waiting: 1024
""")
    return cfg


class Server:
    def __init__(self, binary, config, workdir):
        self.stdout_path = os.path.join(workdir, "sluice.stdout")
        self.stderr_path = os.path.join(workdir, "sluice.stderr")
        self.port = None
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([binary, "serve", "--config", config, "--port", "0", "--log-level", "info"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._err,
                                     cwd=workdir)
        self._found = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        pattern = re.compile(rb"sluice: listening on http://[^\s:]+:(\d+)")
        for line in iter(self.proc.stdout.readline, b""):
            self._out.write(line)
            self._out.flush()
            m = pattern.search(line)
            if m and not self._found.is_set():
                self.port = int(m.group(1))
                self._found.set()

    def get(self, path, timeout=5):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while not self._found.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                return False
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if self.get("/ready", timeout=2)[0] == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def log_tail(self, n=40):
        out = []
        for p in (self.stdout_path, self.stderr_path):
            try:
                with open(p, errors="replace") as f:
                    out += f.read().splitlines()[-n:]
            except OSError:
                pass
        return out


def client_loop(job):
    """One client, in its own process (so 32 clients parsing SSE are not serialized by one interpreter's
    lock): streaming requests back to back until stop_at (a CLOCK_MONOTONIC reading, shared by processes)."""
    import openai

    k, base_url, max_tokens, stop_at = job
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120.0)
    results, n = [], 0
    while time.monotonic() < stop_at:
        n += 1
        r = {"client": k, "ok": False}
        t0 = time.monotonic()
        try:
            stream = client.chat.completions.create(
                model=MODEL_NAME, temperature=0, max_tokens=max_tokens, stream=True,
                stream_options={"include_usage": True},
                messages=[{"role": "user", "content": f"Request {n} of client {k}: write a long story."}])
            ttft, finish, usage, chunks = None, None, None, 0
            for chunk in stream:
                if chunk.usage is not None:
                    usage = chunk.usage
                for ch in chunk.choices:
                    if ch.delta is not None and ch.delta.content:
                        chunks += 1
                        if ttft is None:
                            ttft = time.monotonic() - t0
                    finish = ch.finish_reason or finish
            r.update(seconds=time.monotonic() - t0, ttft_s=ttft, finish=finish, content_chunks=chunks)
            if usage is None:
                r["error"] = "stream ended without a usage chunk"
            elif finish is None:
                r["error"] = "stream ended without a finish_reason"
            else:
                r.update(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)
                if usage.completion_tokens < 1:
                    r["error"] = "usage.completion_tokens is 0"
                elif finish == "length" and usage.completion_tokens != max_tokens:
                    r["error"] = f"finish length after {usage.completion_tokens} != {max_tokens} tokens"
                else:
                    r["ok"] = True
        except Exception as e:  # every failure is a result to report, not a crash of the run
            r.update(seconds=time.monotonic() - t0, error=f"{type(e).__name__}: {e}"[:300])
        results.append(r)
    return results


def run_clients(base_url, a):
    import openai  # noqa: F401  (imported once here; the forked clients inherit it)

    t0 = time.monotonic()
    jobs = [(k, base_url, a.max_tokens, t0 + a.duration) for k in range(a.clients)]
    # fork is safe here: this process never initialized CUDA (the model is built in a child process).
    with multiprocessing.get_context("fork").Pool(a.clients) as pool:
        per_client = pool.map_async(client_loop, jobs).get(a.duration + 180)
    return [r for rs in per_client for r in rs], time.monotonic() - t0


def parse_metrics(text):
    wanted = ("sluice_engine_memory_bytes", "sluice_engine_kv_cache_usage", "sluice_engine_preemptions_total",
              "sluice_engine_healthy", "sluice_engine_running_sequences", "sluice_http_responses_total")
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(wanted):
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            pass
    return out


def report_md(doc):
    lines = [f"### end to end: sluice serve on `{doc['device']}` with a random-weight SmolLM2-135M directory", ""]
    if doc.get("error"):
        lines += [f"**failed**: {doc['error']}", ""]
    c = doc.get("clients")
    if c:
        lines += ["| clients | duration s | requests | ok | failed | completion tok/s | TTFT p50 ms | TTFT p99 ms | "
                  "request p50 s |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
                  f"| {c['clients']} | {c['wall_s']:.1f} | {c['requests']} | {c['ok']} | {c['failed']} | "
                  f"{c['completion_tok_s']:.0f} | {c['ttft_ms_p50']:.1f} | {c['ttft_ms_p99']:.1f} | "
                  f"{c['request_s_p50']:.2f} |", ""]
        if c["errors"]:
            lines += ["errors (first few): " + "; ".join(f"`{e}`" for e in c["errors"][:5]), ""]
    m = doc.get("metrics", {})
    mem = {k.split('use="')[1].split('"')[0]: v for k, v in m.items() if k.startswith("sluice_engine_memory_bytes")}
    if mem:
        lines.append("engine memory: " + ", ".join(f"{k} {v / 2**30:.2f} GiB" for k, v in sorted(mem.items())))
    for k in ("sluice_engine_healthy", "sluice_engine_preemptions_total", "sluice_engine_kv_cache_usage"):
        if k in m:
            lines.append(f"`{k}` {m[k]:g}")
    lines += ["", f"ready after {doc.get('ready_s', 0):.1f} s; sluice exit status {doc.get('exit_status')}"]
    lines += [f"log: `{ln.strip()}`" for ln in doc.get("log_engine", [])] + [""]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sluice", default=os.path.join(ROOT, "build-gpu", "bin", "sluice"))
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, ".gpu-assets", "smollm2-tokenizer"))
    ap.add_argument("--workdir", default="/tmp/sluice-e2e")
    ap.add_argument("--out", default=".")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu", "auto"])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.3)
    ap.add_argument("--max-num-seqs", type=int, default=64)
    ap.add_argument("--start-timeout", type=float, default=120)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--make-model", metavar="DIR", help=argparse.SUPPRESS)  # the child process's job
    a = ap.parse_args()
    if a.make_model:
        print(json.dumps(make_model_dir(a.make_model, a.tokenizer, a.seed)))
        return 0
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(a.workdir, exist_ok=True)
    doc = {"device": a.device, "settings": vars(a)}

    def finish(code):
        with open(os.path.join(a.out, "e2e.json"), "w") as f:
            json.dump(doc, f, indent=2)
        with open(os.path.join(a.out, "e2e.md"), "w") as f:
            f.write(report_md(doc))
        print(report_md(doc))
        return code

    if not os.path.isfile(os.path.join(a.tokenizer, "tokenizer.json")):
        doc["error"] = f"{a.tokenizer}/tokenizer.json is missing (run scripts/export_tokenizer.py and carry it)"
        return finish(1)
    t0 = time.monotonic()
    model_dir = os.path.join(a.workdir, "model")
    # In a child process: this one forks the clients later and must not hold a CUDA context then.
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--make-model", model_dir, "--tokenizer",
                        a.tokenizer, "--seed", str(a.seed)], capture_output=True, text=True)
    if p.returncode != 0:
        doc["error"] = f"building the model directory failed: {p.stderr.strip()[-800:]}"
        return finish(1)
    doc["model_files"] = json.loads(p.stdout.strip().splitlines()[-1])
    doc["model_build_s"] = time.monotonic() - t0
    log(f"model directory {model_dir} written in {doc['model_build_s']:.1f} s")

    try:
        server = Server(os.path.abspath(a.sluice), write_config(a.workdir, model_dir, a), a.workdir)
    except OSError as e:
        doc["error"] = f"starting {a.sluice}: {e}"
        return finish(1)
    t0 = time.monotonic()
    try:
        if not server.wait_ready(a.start_timeout):
            doc["error"] = "sluice did not become ready"
            doc["log_tail"] = server.log_tail()
            doc["exit_status"] = server.stop()
            return finish(1)
        doc["ready_s"] = time.monotonic() - t0
        doc["log_engine"] = [ln for ln in server.log_tail(400) if "] engine: " in ln][:4]
        # Under device cuda the engine must really be on the GPU (it says "on cuda" when it starts).
        if a.device == "cuda" and not any(" on cuda" in ln for ln in doc["log_engine"]):
            doc["error"] = "the engine did not report running on cuda: " + " | ".join(doc["log_engine"])
        log(f"ready after {doc['ready_s']:.1f} s on port {server.port}; {a.clients} clients for {a.duration:.0f} s")
        results, wall = run_clients(f"http://127.0.0.1:{server.port}/v1", a)
        ok = [r for r in results if r["ok"]]
        ttft = [r["ttft_s"] * 1e3 for r in ok if r.get("ttft_s") is not None]
        tokens = sum(r.get("completion_tokens", 0) for r in ok)
        doc["clients"] = {
            "clients": a.clients, "wall_s": wall, "requests": len(results), "ok": len(ok),
            "failed": len(results) - len(ok), "completion_tokens": tokens, "completion_tok_s": tokens / wall,
            "ttft_ms_p50": percentile(ttft, 50), "ttft_ms_p90": percentile(ttft, 90),
            "ttft_ms_p99": percentile(ttft, 99),
            "request_s_p50": statistics.median([r["seconds"] for r in ok]) if ok else 0.0,
            "finish_reasons": {f: sum(1 for r in ok if r["finish"] == f) for f in {r["finish"] for r in ok}},
            "errors": sorted({r["error"] for r in results if "error" in r})[:20],
        }
        status, text = server.get("/metrics")
        doc["metrics"] = parse_metrics(text)
    except Exception as e:
        doc["error"] = f"{type(e).__name__}: {e}"
    finally:
        doc["exit_status"] = server.stop()
    c = doc.get("clients", {})
    failed = (doc.get("error") or not c or c["failed"] > 0 or c["requests"] == 0 or doc["exit_status"] != 0
              or doc.get("metrics", {}).get("sluice_engine_healthy", 1) != 1)
    if failed and not doc.get("error"):
        doc["log_tail"] = server.log_tail()
    return finish(1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
