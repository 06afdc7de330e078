#!/usr/bin/env python3
"""Reference logits for the CPU backend's correctness tests, computed with Hugging Face transformers (fp32, CPU).

Writes, under tests/fixtures/:
  logits/smollm2_135m_q4_1.json (+ .f32)  SmolLM2-135M-Instruct loaded by transformers from the SAME GGUF file
                                          the engine reads (transformers dequantizes it and undoes the
                                          converter's attn_q/attn_k row permutation): 5 prompts (token ids),
                                          the fp32 logits of each prompt's last position, and 32 greedy tokens.
  models/tiny_llama/  tiny_qwen2/  tiny_mistral/
                                          small random models saved as config.json + safetensors (fp32 sharded
                                          with an index; bf16; fp16), covering Llama 3 RoPE scaling, GQA, an FFN
                                          width that is not a multiple of 8, Qwen2's QKV bias with tied
                                          embeddings, and Mistral's sliding window.
  logits/tiny_*.json (+ .f32)             their golden logits and greedy tokens.

Golden JSON: {"model", "source", "vocab", "logits_file", "prompts": [{"ids", "greedy", "min_margin"}]}; the
.f32 file holds one little-endian float32 row of `vocab` logits per prompt, in prompt order. min_margin is the
smallest gap between the top two logits along the greedy path (a sanity check that argmax is well defined).

Needs torch, transformers, accelerate and gguf (test time needs none of them). Run from the repository root:
  python3 scripts/make_logits_golden.py [--gguf models/SmolLM2-135M-Instruct.Q4_1.gguf] [--skip-smollm2]
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
SMOLLM2_TEXTS = [
    "Hello, we can use",
    "The capital of France is",
    "<|im_start|>user\nWhat is the boiling point of water at sea level?<|im_end|>\n<|im_start|>assistant\n",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    # Long enough to span many KV blocks and to be split into prefill chunks by the tests.
    "Paged attention stores the keys and values of every sequence in fixed-size blocks, so memory is "
    "allocated on demand and shared prefixes can be reused. A scheduler decides each step which requests run: "
    "some are still reading their prompt, others produce one token at a time. Mixing both kinds in one batch "
    "keeps the accelerator busy, while chunked prefill bounds the latency that a long prompt adds to everyone "
    "else. In short, the engine",
]


def greedy(model, ids, steps):
    """Greedy continuation by full recomputation (no cache), ties broken by the lowest id, plus the
    smallest top-1/top-2 gap seen."""
    seq = list(ids)
    out, margin = [], float("inf")
    with torch.no_grad():
        for _ in range(steps):
            logits = model(torch.tensor([seq])).logits[0, -1].double()
            top2 = torch.topk(logits, 2).values
            margin = min(margin, float(top2[0] - top2[1]))
            nxt = int(torch.argmax(logits))
            out.append(nxt)
            seq.append(nxt)
    return out, margin


def last_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0, -1].float().numpy()


def write_golden(name, model_label, source, prompts, rows, vocab):
    os.makedirs(os.path.join(FIXTURES, "logits"), exist_ok=True)
    bin_name = name + ".f32"
    data = np.stack(rows).astype("<f4")
    data.tofile(os.path.join(FIXTURES, "logits", bin_name))
    doc = {
        "model": model_label,
        "source": source,
        "vocab": vocab,
        "logits_file": bin_name,
        "generator": f"scripts/make_logits_golden.py (torch {torch.__version__}, "
        f"transformers {__import__('transformers').__version__})",
        "prompts": prompts,
    }
    with open(os.path.join(FIXTURES, "logits", name + ".json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {name}: {len(prompts)} prompts, {data.nbytes} bytes of logits", file=sys.stderr)


def smollm2(gguf_path, steps=32):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory, file_name = os.path.split(os.path.abspath(gguf_path))
    tok = AutoTokenizer.from_pretrained(directory, gguf_file=file_name)
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=file_name, dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    with open(gguf_path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    prompts, rows = [], []
    for text in SMOLLM2_TEXTS:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        rows.append(last_logits(model, ids))
        cont, margin = greedy(model, ids, steps)
        prompts.append({"text": text, "ids": ids, "greedy": cont, "min_margin": round(margin, 6)})
        print(f"  {len(ids)} tokens, min margin {margin:.4f}: {tok.decode(cont)!r}", file=sys.stderr)
    write_golden("smollm2_135m_q4_1", file_name, f"sha256:{digest}", prompts, rows, model.config.vocab_size)


def randomize(model, seed, scale):
    """Replaces every parameter with N(0, scale^2) noise (norm weights: 1 + noise) so that activations and
    logits are far from zero and a wrong kernel shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if "norm" in name:
                p.copy_(1.0 + 0.1 * noise)
            elif name.endswith("bias"):
                p.copy_(0.5 * noise)
            else:
                p.copy_(scale * noise)


def tiny(name, config, seed, save_dtype, shard_size, scale, prompt_lengths, steps=12):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    randomize(model, seed, scale)
    out_dir = os.path.join(FIXTURES, "models", name)
    os.makedirs(out_dir, exist_ok=True)
    for f in os.listdir(out_dir):
        os.remove(os.path.join(out_dir, f))
    model.to(save_dtype).save_pretrained(out_dir, max_shard_size=shard_size)
    for f in os.listdir(out_dir):  # keep only what the engine reads
        path = os.path.join(out_dir, f)
        if f != "config.json" and not f.endswith(".safetensors") and not f.endswith(".index.json"):
            os.remove(path)
        else:
            os.chmod(path, 0o644)
    # The reference runs on what was saved, upcast to fp32, exactly as the engine loads it.
    ref = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32, attn_implementation="eager")
    ref.eval()
    g = torch.Generator().manual_seed(seed + 1)
    prompts, rows = [], []
    for n in prompt_lengths:
        ids = torch.randint(0, config.vocab_size, (n,), generator=g).tolist()
        rows.append(last_logits(ref, ids))
        cont, margin = greedy(ref, ids, steps)
        prompts.append({"ids": ids, "greedy": cont, "min_margin": round(margin, 6)})
        print(f"  {name}: {n} tokens, min margin {margin:.4f}", file=sys.stderr)
    write_golden(name, name, f"tests/fixtures/models/{name}", prompts, rows, config.vocab_size)


def tiny_models():
    from transformers import LlamaConfig, MistralConfig, Qwen2Config

    llama = LlamaConfig(vocab_size=256, hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
                        num_key_value_heads=1, head_dim=16, intermediate_size=100, rms_norm_eps=1e-5,
                        max_position_embeddings=256, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
                        rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 4.0,
                                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                         "original_max_position_embeddings": 32})
    llama.architectures = ["LlamaForCausalLM"]
    tiny("tiny_llama", llama, seed=11, save_dtype=torch.float32, shard_size="150KB", scale=0.15,
         prompt_lengths=[1, 7, 45])

    qwen = Qwen2Config(vocab_size=256, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, intermediate_size=128, rms_norm_eps=1e-6,
                       max_position_embeddings=512, tie_word_embeddings=True, bos_token_id=None,
                       eos_token_id=[2, 3], rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})
    qwen.architectures = ["Qwen2ForCausalLM"]
    tiny("tiny_qwen2", qwen, seed=22, save_dtype=torch.bfloat16, shard_size="10MB", scale=0.15,
         prompt_lengths=[3, 20, 33])

    mistral = MistralConfig(vocab_size=256, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=2, head_dim=8, intermediate_size=64, rms_norm_eps=1e-5,
                            max_position_embeddings=512, tie_word_embeddings=False, sliding_window=8,
                            rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    mistral.architectures = ["MistralForCausalLM"]
    tiny("tiny_mistral", mistral, seed=33, save_dtype=torch.float16, shard_size="10MB", scale=0.2,
         prompt_lengths=[5, 30])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", default=os.environ.get("SLUICE_MODEL_GGUF",
                                                     os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")))
    ap.add_argument("--skip-smollm2", action="store_true")
    ap.add_argument("--skip-tiny", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    if not args.skip_tiny:
        tiny_models()
    if not args.skip_smollm2:
        if not os.path.exists(args.gguf):
            sys.exit(f"{args.gguf} not found (scripts/setup.sh fetches it; or pass --gguf / --skip-smollm2)")
        smollm2(args.gguf)


if __name__ == "__main__":
    main()
