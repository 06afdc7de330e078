#!/usr/bin/env python3
"""Exports SmolLM2's tokenizer from the default GGUF model into Hugging Face files (tokenizer.json,
tokenizer_config.json), so that a model directory built elsewhere (the GPU machine, which has no network and
no copy of the real checkpoint) can carry the real vocabulary, merges, special tokens and chat template.

The GGUF holds everything the tokenizer is made of (tokenizer.ggml.tokens / token_type / merges, the special
ids, tokenizer.chat_template); what it does not hold is the pipeline around the BPE, which for the `smollm`
pre-tokenizer id is SmolLM2's published one: no normalizer; pre-tokenizer Sequence[Digits(individual_digits),
ByteLevel(add_prefix_space=False, use_regex=True)]; ByteLevel post-processor and decoder; the control tokens
(token_type 3) as special added tokens. The file is written with the `tokenizers` library itself, so its
format is whatever that library reads back.

Checks before it reports success (exit status 1 otherwise):
  * SmolLM2's published ids ("Hello, we can use" -> 19556 28 392 416 722; "\\n" -> 198);
  * every record of tests/fixtures/tokenizer/smollm2_golden.jsonl — the ids the engine's own GGUF tokenizer is
    tested against — encoded by `tokenizers` from the exported file gives the same ids;
  * with --check-bin, a program that prints the engine's encodings of stdin lines through both the GGUF and
    the exported directory (see --help) agrees on every golden text.

Usage: python3 scripts/export_tokenizer.py [--gguf models/SmolLM2-135M-Instruct.Q4_1.gguf]
                                           [--out .gpu-assets/smollm2-tokenizer] [--check-bin PATH]
Needs gguf and tokenizers (pip). Deterministic: the same GGUF gives the same files byte for byte.
"""
import argparse
import json
import os
import subprocess
import sys

import gguf
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
GOLDEN = os.path.join(ROOT, "tests", "fixtures", "tokenizer", "smollm2_golden.jsonl")
PUBLISHED = [("Hello, we can use", [19556, 28, 392, 416, 722]), ("\n", [198])]
CONTROL = 3  # tokenizer.ggml.token_type of special (control) tokens


def read_gguf(path):
    r = gguf.GGUFReader(path)

    def strings(key):
        f = r.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    def scalar(key, default=None):
        f = r.fields.get(key)
        return default if f is None else f.parts[f.data[0]].tolist()[0]

    pre = bytes(r.fields["tokenizer.ggml.pre"].parts[r.fields["tokenizer.ggml.pre"].data[0]]).decode()
    model = bytes(r.fields["tokenizer.ggml.model"].parts[r.fields["tokenizer.ggml.model"].data[0]]).decode()
    if model != "gpt2" or pre != "smollm":
        sys.exit(f"export_tokenizer: {path} has tokenizer {model}/{pre}; this exporter writes SmolLM2's "
                 "byte-level pipeline (gpt2/smollm) only")
    types = r.fields["tokenizer.ggml.token_type"]
    tmpl = r.fields["tokenizer.chat_template"]
    return {
        "tokens": strings("tokenizer.ggml.tokens"),
        "types": [int(types.parts[i][0]) for i in types.data],
        "merges": strings("tokenizer.ggml.merges"),
        "chat_template": bytes(tmpl.parts[tmpl.data[0]]).decode("utf-8"),
        "bos": scalar("tokenizer.ggml.bos_token_id"),
        "eos": scalar("tokenizer.ggml.eos_token_id"),
        "unk": scalar("tokenizer.ggml.unknown_token_id"),
        "pad": scalar("tokenizer.ggml.padding_token_id"),
        "add_bos": bool(scalar("tokenizer.ggml.add_bos_token", False)),
        "context": scalar("llama.context_length", 8192),
    }


def build(m):
    vocab = {tok: i for i, tok in enumerate(m["tokens"])}
    if len(vocab) != len(m["tokens"]):
        sys.exit("export_tokenizer: the GGUF vocabulary has duplicate token strings")
    merges = [tuple(x.split(" ", 1)) for x in m["merges"]]
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tk.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True),
         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tk.post_processor = processors.ByteLevel(trim_offsets=False)
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False)
                           for t, ty in zip(m["tokens"], m["types"]) if ty == CONTROL])
    return tk


def write_config(m, path):
    tokens = m["tokens"]
    name = lambda i: None if i is None or i < 0 else tokens[i]  # noqa: E731
    specials = [t for t, ty in zip(tokens, m["types"]) if ty == CONTROL]
    doc = {
        "add_bos_token": m["add_bos"],
        "add_eos_token": False,
        "add_prefix_space": False,
        "additional_special_tokens": [t for t in specials if t not in (name(m["bos"]), name(m["eos"]),
                                                                        name(m["unk"]))],
        "bos_token": name(m["bos"]),
        "chat_template": m["chat_template"],
        "clean_up_tokenization_spaces": False,
        "eos_token": name(m["eos"]),
        "model_max_length": m["context"],
        "pad_token": name(m["pad"]),
        "tokenizer_class": "GPT2Tokenizer",
        "unk_token": name(m["unk"]),
        "vocab_size": len(tokens),
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=2)
        f.write("\n")


def check_tokenizers(path):
    """Encodes the published strings and the engine's golden corpus with `tokenizers` from the written file."""
    tk = Tokenizer.from_file(path)
    bad = 0
    for text, ids in PUBLISHED:
        got = tk.encode(text, add_special_tokens=False).ids
        if got != ids:
            print(f"  published {text!r}: expected {ids}, got {got}", file=sys.stderr)
            bad += 1
    records = []
    if os.path.exists(GOLDEN):
        with open(GOLDEN, encoding="utf-8") as f:
            records = [json.loads(line) for line in f if line.strip()]
    for r in records:
        tk.encode_special_tokens = not r["special"]
        got = tk.encode(r["text"], add_special_tokens=False).ids
        if got != r["ids"]:
            bad += 1
            if bad <= 5:
                print(f"  golden {r['text'][:60]!r} (special={r['special']}): ids differ", file=sys.stderr)
    tk.encode_special_tokens = False
    return len(PUBLISHED) + len(records), bad, records


def check_engine(check_bin, gguf_path, out_dir, records):
    """Runs `check_bin GGUF DIR`, feeding one JSON string per line; it prints, per line, a JSON object
    {"gguf": [...], "dir": [...]} of the engine's encodings (special tokens parsed) through each loader."""
    texts = [r["text"] for r in records if r["special"]] + [t for t, _ in PUBLISHED]
    stdin = "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in texts)
    res = subprocess.run([check_bin, gguf_path, out_dir], input=stdin, capture_output=True, text=True,
                         encoding="utf-8", timeout=300)
    if res.returncode != 0:
        print(f"  {check_bin} failed ({res.returncode}): {res.stderr.strip()[:400]}", file=sys.stderr)
        return len(texts), len(texts)
    lines = res.stdout.splitlines()
    bad = 0
    for text, line in zip(texts, lines):
        d = json.loads(line)
        if d["gguf"] != d["dir"]:
            bad += 1
            if bad <= 5:
                print(f"  engine {text[:60]!r}: GGUF {d['gguf'][:12]} vs directory {d['dir'][:12]}", file=sys.stderr)
    if len(lines) != len(texts):
        print(f"  engine: {len(lines)} answers for {len(texts)} texts", file=sys.stderr)
        bad += abs(len(texts) - len(lines))
    return len(texts), bad


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--out", default=os.path.join(ROOT, ".gpu-assets", "smollm2-tokenizer"))
    ap.add_argument("--check-bin", help="engine encoder check program (see the module docstring)")
    a = ap.parse_args()
    if not os.path.exists(a.gguf):
        sys.exit(f"export_tokenizer: {a.gguf} is missing (scripts/fetch_model.sh fetches it)")

    m = read_gguf(a.gguf)
    os.makedirs(a.out, exist_ok=True)
    tj = os.path.join(a.out, "tokenizer.json")
    build(m).save(tj, pretty=False)
    write_config(m, os.path.join(a.out, "tokenizer_config.json"))
    for f in ("tokenizer.json", "tokenizer_config.json"):
        print(f"export_tokenizer: {os.path.join(a.out, f)}: {os.path.getsize(os.path.join(a.out, f))} bytes",
              file=sys.stderr)

    n, bad, records = check_tokenizers(tj)
    print(f"export_tokenizer: tokenizers vs the engine's GGUF golden ids: {n - bad}/{n} strings agree",
          file=sys.stderr)
    failed = bad > 0 or not records
    if not records:
        print(f"export_tokenizer: {GOLDEN} is missing; only the published ids were checked", file=sys.stderr)
    if a.check_bin:
        n2, bad2 = check_engine(a.check_bin, a.gguf, a.out, records)
        print(f"export_tokenizer: engine GGUF vs engine directory loader: {n2 - bad2}/{n2} strings agree",
              file=sys.stderr)
        failed = failed or bad2 > 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
