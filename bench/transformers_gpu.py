#!/usr/bin/env python3
"""The peer of engine_gpu on the same GPU: Hugging Face transformers with random bf16 weights of the same
model shapes, measured the way the engine is.

For each shape a LlamaForCausalLM is built directly on the GPU from its config (torch's default init, bf16,
attention through torch SDPA, transformers' defaults otherwise), then:

  ttft_b1     generate(max_new_tokens=1) on a P-token prompt at batch 1, wall time with the device
              synchronized before and after: prefill + the first greedy token. Median of --ttft-repeats.
  decode_b1   generate(max_new_tokens=G, min_new_tokens=G, greedy) at batch 1 (eager, dynamic KV cache);
              a streamer synchronizes the device and timestamps every new token, and decode tok/s =
              (G - 1) / (time of token G - time of token 1), as engine_gpu counts it. Inter-token gaps too.
  compiled    (--compiled) batch B (default 64) with a static KV cache, which makes generate() compile the
              forward pass (torch.compile, CUDA graphs); one untimed call compiles, the next is timed: output
              tok/s = B * G / wall time (prefill included). Skipped when the time budget is short.

Sizes are small on purpose (eager transformers runs ~15-20 tokens/s): the JSON states every size used.
`--max-seconds` stops starting new measurements once spent; the parts skipped are listed.

Usage: python3 bench/transformers_gpu.py [--shapes llama-3.1-8b,llama-3.2-1b,smollm2-135m] [--prompt-tokens 128]
         [--gen-tokens 64] [--ttft-repeats 5] [--compiled] [--compiled-batch 64] [--compiled-gen-tokens 128]
         [--max-seconds 240] [--seed 1234]
Prints one JSON object on stdout; progress on stderr.
"""
import argparse
import json
import statistics
import sys
import time

# The same shapes as engine_gpu's --shape (Hugging Face config.json values of the published models).
SHAPES = {
    "llama-3.1-8b": dict(vocab_size=128256, hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=8, head_dim=128, intermediate_size=14336, tie_word_embeddings=False,
                         max_position_embeddings=131072,
                         rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                          "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                          "original_max_position_embeddings": 8192}),
    "llama-3.2-1b": dict(vocab_size=128256, hidden_size=2048, num_hidden_layers=16, num_attention_heads=32,
                         num_key_value_heads=8, head_dim=64, intermediate_size=8192, tie_word_embeddings=True,
                         max_position_embeddings=131072,
                         rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
                                          "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                          "original_max_position_embeddings": 8192}),
    "smollm2-135m": dict(vocab_size=49152, hidden_size=576, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, head_dim=64, intermediate_size=1536, tie_word_embeddings=True,
                         max_position_embeddings=8192,
                         rope_parameters={"rope_type": "default", "rope_theta": 100000.0}),
}


def log(msg):
    print(f"transformers_gpu: {msg}", file=sys.stderr, flush=True)


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    rank = int(p / 100.0 * len(sorted_values) + 0.999999)
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


def dist(values):
    v = sorted(values)
    return {"n": len(v), "mean": statistics.fmean(v) if v else 0.0, "p50": percentile(v, 50),
            "p90": percentile(v, 90), "p99": percentile(v, 99), "min": v[0] if v else 0.0,
            "max": v[-1] if v else 0.0}


def build_model(name, torch, transformers, device="cuda"):
    cfg = dict(SHAPES[name])
    rope = cfg.pop("rope_parameters")
    config = transformers.LlamaConfig(rms_norm_eps=1e-5, bos_token_id=0, eos_token_id=1, pad_token_id=1,
                                      attention_bias=False, mlp_bias=False, rope_parameters=rope, **cfg)
    config.architectures = ["LlamaForCausalLM"]
    with torch.device(device):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.eval()
    return model


class TokenClock:
    """A generate() streamer that synchronizes the device and timestamps each new token (the first put()
    carries the prompt and is skipped)."""

    def __init__(self, torch, sync):
        self.torch = torch
        self.sync = sync
        self.times = []
        self.seen_prompt = False

    def put(self, value):
        if not self.seen_prompt:
            self.seen_prompt = True
            return
        self.sync()
        self.times.append(time.perf_counter())

    def end(self):
        pass


def measure_shape(name, a, torch, transformers, deadline, cut):
    out = {"shape": name}
    t0 = time.perf_counter()
    dev = a.device
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    model = build_model(name, torch, transformers, dev)
    sync()
    out["build_s"] = time.perf_counter() - t0
    out["parameters"] = sum(p.numel() for p in model.parameters())
    out["attn_implementation"] = getattr(model.config, "_attn_implementation", None)
    gen = torch.Generator(device="cpu").manual_seed(a.seed)
    vocab = SHAPES[name]["vocab_size"]

    def prompt(batch, n):
        return torch.randint(0, vocab, (batch, n), generator=gen).to(dev)

    common = dict(do_sample=False, pad_token_id=1, eos_token_id=None)
    with torch.inference_mode():
        ids = prompt(1, a.prompt_tokens)
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, min_new_tokens=4, **common)

        if time.perf_counter() < deadline:
            ttft = []
            for _ in range(a.ttft_repeats):
                if time.perf_counter() >= deadline:
                    break
                ids = prompt(1, a.prompt_tokens)
                sync()
                s = time.perf_counter()
                model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=1, min_new_tokens=1,
                               **common)
                sync()
                ttft.append((time.perf_counter() - s) * 1e3)
            out["ttft_b1"] = {"prompt_tokens": a.prompt_tokens, "median_ms": statistics.median(ttft) if ttft else 0,
                              "ms": dist(ttft)}
            log(f"{name}: TTFT({a.prompt_tokens}) median {out['ttft_b1']['median_ms']:.1f} ms")
        else:
            cut.append(f"{name}:ttft_b1")

        if time.perf_counter() < deadline:
            ids = prompt(1, a.prompt_tokens)
            clock = TokenClock(torch, sync)
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=a.gen_tokens,
                           min_new_tokens=a.gen_tokens, streamer=clock, **common)
            t = clock.times
            rate = (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 else 0.0
            out["decode_b1"] = {"prompt_tokens": a.prompt_tokens, "gen_tokens": a.gen_tokens, "tokens_seen": len(t),
                                "tok_s": rate, "itl_ms": dist([(t[i] - t[i - 1]) * 1e3 for i in range(1, len(t))]),
                                "mode": "eager, DynamicCache"}
            log(f"{name}: batch-1 eager decode {rate:.1f} tok/s")
        else:
            cut.append(f"{name}:decode_b1")

        if a.compiled:
            # Compilation itself takes about a minute; start only with room for it and two runs.
            if deadline - time.perf_counter() > a.compiled_min_seconds:
                b, g = a.compiled_batch, a.compiled_gen_tokens
                ids = prompt(b, a.prompt_tokens)
                kw = dict(attention_mask=torch.ones_like(ids), max_new_tokens=g, min_new_tokens=g,
                          cache_implementation="static", **common)
                s = time.perf_counter()
                model.generate(ids, **kw)
                sync()
                compile_s = time.perf_counter() - s
                sync()
                s = time.perf_counter()
                model.generate(ids, **kw)
                sync()
                el = time.perf_counter() - s
                out["compiled"] = {"batch": b, "prompt_tokens": a.prompt_tokens, "gen_tokens": g,
                                   "first_call_s": compile_s, "seconds": el, "output_tok_s": b * g / el,
                                   "mode": "static cache, generate()'s automatic torch.compile; prefill included"}
                log(f"{name}: batch-{b} compiled {b * g / el:.0f} output tok/s")
            else:
                cut.append(f"{name}:compiled")
    del model
    torch.cuda.empty_cache()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="llama-3.1-8b,llama-3.2-1b,smollm2-135m")
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--ttft-repeats", type=int, default=5)
    ap.add_argument("--compiled", action="store_true", help="also run batch-B static-cache compiled generation")
    ap.add_argument("--compiled-batch", type=int, default=64)
    ap.add_argument("--compiled-gen-tokens", type=int, default=128)
    ap.add_argument("--compiled-min-seconds", type=float, default=150,
                    help="start the compiled run only with at least this much of the budget left")
    ap.add_argument("--max-seconds", type=float, default=240)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--device", default="cuda", help=argparse.SUPPRESS)  # cpu: a smoke test of the script
    a = ap.parse_args()
    start = time.perf_counter()
    deadline = start + a.max_seconds
    shapes = [s for s in a.shapes.split(",") if s]
    for s in shapes:
        if s not in SHAPES:
            sys.exit(f"transformers_gpu: unknown shape '{s}' ({', '.join(SHAPES)})")

    import torch
    import transformers

    doc = {"tool": "transformers_gpu", "torch": torch.__version__, "transformers": transformers.__version__,
           "settings": {"prompt_tokens": a.prompt_tokens, "gen_tokens": a.gen_tokens,
                        "ttft_repeats": a.ttft_repeats, "compiled": a.compiled, "compiled_batch": a.compiled_batch,
                        "compiled_gen_tokens": a.compiled_gen_tokens, "max_seconds": a.max_seconds,
                        "seed": a.seed, "dtype": "bfloat16", "sampling": "greedy, min_new_tokens = max_new_tokens"},
           "shapes": {}, "cut_by_time_budget": [], "errors": []}
    if a.device == "cuda" and not torch.cuda.is_available():
        doc["errors"].append("no CUDA device visible to torch")
        print(json.dumps(doc))
        return 1
    doc["device"] = torch.cuda.get_device_name(0) if a.device == "cuda" else a.device
    for s in shapes:
        if time.perf_counter() >= deadline:
            doc["cut_by_time_budget"].append(s)
            continue
        try:
            doc["shapes"][s] = measure_shape(s, a, torch, transformers, deadline, doc["cut_by_time_budget"])
        except Exception as e:  # one shape failing (out of memory, an API change) must not lose the others
            doc["errors"].append(f"{s}: {type(e).__name__}: {e}")
            log(f"{s}: {type(e).__name__}: {e}")
            torch.cuda.empty_cache()
    doc["elapsed_s"] = time.perf_counter() - start
    print(json.dumps(doc))
    return 1 if doc["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
