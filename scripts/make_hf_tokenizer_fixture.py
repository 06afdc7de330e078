#!/usr/bin/env python3
"""Writes the Hugging Face-format tokenizer fixtures: tokenizer.json / tokenizer_config.json files and the
token ids and chat prompts that Hugging Face `tokenizers` and `transformers` compute from them.

SmolLM2's full tokenizer.json is 3.5 MB, too large to commit, so the fixtures use SmolLM2's vocabulary and
merges cut to their first entries: the GGUF's first N tokens (specials, the byte alphabet, then tokens in
merge order) and every merge whose two parts and result all survive. That is a well-formed byte-level BPE of
its own, and the references below are computed by `tokenizers` on exactly the files written, so the cut
changes nothing about what is checked. Offline: no network access; the GGUF is read with the `gguf` package.

Writes:
  tests/fixtures/tokenizer/hf/
    tokenizer.json          2,048 SmolLM2 tokens, SmolLM2's pre-tokenizer (Digits + ByteLevel), merges in
                            the [left, right] array form, two extra non-special added tokens
    tokenizer_config.json   written the way transformers 4.x wrote them: bos_token as an AddedToken
                            object, eos_token as a string, the ChatML template under "chat_template"
    golden.jsonl            {"text", "special", "ids"}: 225 strings encoded by `tokenizers` (loaded from
                            the file above) with special tokens parsed or not
    chat_golden.jsonl       {"messages", "add_generation_prompt", "text", "ids"}: transformers'
                            AutoTokenizer.from_pretrained(dir).apply_chat_template, rendered and tokenized
    special_ids.json        transformers' view of the directory: bos/eos/pad/unk ids and the token count
    tiny_llama_chat.json    the engine test's reference: a conversation, its prompt ids, 10 greedy tokens of
                            tests/fixtures/models/tiny_llama_chat computed by transformers (fp32), their
                            smallest top-1/top-2 logit gap, and encode-with-BOS of a plain text
  tests/fixtures/models/tiny_llama_chat/
    config.json, model.safetensors   a random 2-layer Llama (fp32) whose vocabulary is 512 tokens
    tokenizer.json          512 SmolLM2 tokens with Llama 3's pre-tokenizer (Split regex + ByteLevel without
                            regex, ignore_merges) and a TemplateProcessing post-processor that adds BOS;
                            merges rewritten to the older "left right" string form
    tokenizer_config.json, chat_template.jinja   as transformers 5 saves them (the template in its own file)

Usage: python3 scripts/make_hf_tokenizer_fixture.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]
Needs gguf, tokenizers, transformers, torch, numpy (tests need none of them). Deterministic: fixed seeds.
"""
import json
import os
import random
import sys

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_logits_golden import greedy, randomize  # noqa: E402
from make_tokenizer_golden import LLAMA3_REGEX, ROOT, build_corpus, conversations, read_gguf  # noqa: E402

HF_DIR = os.path.join(ROOT, "tests", "fixtures", "tokenizer", "hf")
MODEL_DIR = os.path.join(ROOT, "tests", "fixtures", "models", "tiny_llama_chat")
TEMPLATES = os.path.join(ROOT, "tests", "fixtures", "tokenizer", "templates")
GOLDEN_VOCAB = 2048
CHAT_VOCAB = 512
USER_TOKENS = ["<tool_call>", "</tool_call>"]


def cut(model, n):
    tokens = model["tokens"][:n]
    types = model["types"][:n]
    kept = set(tokens)
    merges = []
    for m in model["merges"]:
        a, b = m.split(" ", 1)
        if a in kept and b in kept and a + b in kept:
            merges.append((a, b))
    return tokens, types, merges


def byte_level_bpe(tokens, types, merges, family):
    vocab = {t: i for i, t in enumerate(tokens)}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=family == "llama3"))
    if family == "smollm":
        tk.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True),
             pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    else:
        tk.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
             pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False)
                           for t, ty in zip(tokens, types) if ty == 3])
    return tk


def write_json(path, doc, indent=2):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=indent)
        f.write("\n")
    print(f"{os.path.relpath(path, ROOT)}: {os.path.getsize(path)} bytes", file=sys.stderr)


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{os.path.relpath(path, ROOT)}: {len(records)} records, {os.path.getsize(path)} bytes", file=sys.stderr)


def golden_corpus():
    rng = random.Random(20241205)
    cases = build_corpus(random.Random(20241128))
    short = [c for c in cases if len(c[0]) <= 600]
    picked = short[:45] + rng.sample(short[45:], 170)
    picked += [c for c in cases if len(c[0]) > 600][:4]
    for text in ["<tool_call>{\"name\": \"f\"}</tool_call>", "a<tool_call>b</tool_call>c <tool_call >",
                 "<|im_start|>user\n<tool_call>x</tool_call><|im_end|>"]:
        picked += [(text, True), (text, False)]
    seen, out = set(), []
    for c in picked:
        if c not in seen:
            seen.add(c)
            out.append(c)
    return out


def golden_tokenizer(model):
    from transformers import AutoTokenizer

    os.makedirs(HF_DIR, exist_ok=True)
    tokens, types, merges = cut(model, GOLDEN_VOCAB)
    tk = byte_level_bpe(tokens, types, merges, "smollm")
    tk.add_tokens([AddedToken(t, special=False, normalized=False) for t in USER_TOKENS])
    path = os.path.join(HF_DIR, "tokenizer.json")
    tk.save(path)
    with open(os.path.join(TEMPLATES, "chatml.jinja"), encoding="utf-8") as f:
        chatml = f.read()
    write_json(os.path.join(HF_DIR, "tokenizer_config.json"), {
        "add_bos_token": False,
        "add_prefix_space": False,
        "bos_token": {"__type": "AddedToken", "content": "<|im_start|>", "lstrip": False, "normalized": False,
                      "rstrip": False, "single_word": False},
        "chat_template": chatml,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "model_max_length": 8192,
        "pad_token": "<|im_end|>",
        "tokenizer_class": "GPT2Tokenizer",
        "unk_token": "<|endoftext|>",
    })

    ref = Tokenizer.from_file(path)  # the references come from the file as written
    records = []
    for text, special in golden_corpus():
        ref.encode_special_tokens = not special
        records.append({"text": text, "special": special, "ids": ref.encode(text).ids})
    write_jsonl(os.path.join(HF_DIR, "golden.jsonl"), records)

    hf = AutoTokenizer.from_pretrained(HF_DIR)
    chat = []
    for messages in conversations():
        for gen in (True, False):
            text = hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
            ids = hf(text, add_special_tokens=False)["input_ids"]
            chat.append({"messages": messages, "add_generation_prompt": gen, "text": text, "ids": ids})
    write_jsonl(os.path.join(HF_DIR, "chat_golden.jsonl"), chat)
    write_json(os.path.join(HF_DIR, "special_ids.json"), {
        "token_count": len(hf), "bos_id": hf.bos_token_id, "eos_id": hf.eos_token_id,
        "pad_id": hf.pad_token_id, "unk_id": hf.unk_token_id,
        "with_special_tokens": {"text": "Hello world", "ids": hf("Hello world")["input_ids"]},
    })


def tiny_llama_chat(model):
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, PreTrainedTokenizerFast

    os.makedirs(MODEL_DIR, exist_ok=True)
    for f in os.listdir(MODEL_DIR):
        os.remove(os.path.join(MODEL_DIR, f))
    tokens, types, merges = cut(model, CHAT_VOCAB)
    tk = byte_level_bpe(tokens, types, merges, "llama3")
    bos, eos = "<|im_start|>", "<|im_end|>"
    tk.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                      special_tokens=[(bos, tokens.index(bos))])
    with open(os.path.join(TEMPLATES, "smollm2.jinja"), encoding="utf-8") as f:
        template = f.read()
    hf = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token=bos, eos_token=eos)
    hf.chat_template = template
    hf.save_pretrained(MODEL_DIR)
    # Older tokenizers wrote merges as "left right" strings; the engine reads both forms.
    tj_path = os.path.join(MODEL_DIR, "tokenizer.json")
    with open(tj_path, encoding="utf-8") as f:
        tj = json.load(f)
    tj["model"]["merges"] = [" ".join(m) for m in tj["model"]["merges"]]
    write_json(tj_path, tj)

    config = LlamaConfig(vocab_size=CHAT_VOCAB, hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
                         num_key_value_heads=1, head_dim=16, intermediate_size=96, rms_norm_eps=1e-5,
                         max_position_embeddings=256, tie_word_embeddings=False,
                         bos_token_id=tokens.index(bos), eos_token_id=tokens.index(eos),
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    config.architectures = ["LlamaForCausalLM"]
    torch.manual_seed(44)
    net = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    randomize(net, 44, 0.15)
    net.save_pretrained(MODEL_DIR)
    for f in os.listdir(MODEL_DIR):  # keep only what the engine reads
        if f not in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                     "chat_template.jinja"):
            os.remove(os.path.join(MODEL_DIR, f))

    tok = AutoTokenizer.from_pretrained(MODEL_DIR)
    ref = AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32, attn_implementation="eager")
    ref.eval()
    specials = {i for i, ty in enumerate(types) if ty == 3}
    candidates = [[{"role": "user", "content": "What is the capital of France?"}],
                  [{"role": "user", "content": "Say hello."}], [{"role": "user", "content": "Count to 3."}]]
    for messages in candidates:
        prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        cont, margin = greedy(ref, ids, 10)
        print(f"  tiny_llama_chat: {len(ids)} prompt tokens, min margin {margin:.4f}, {cont}", file=sys.stderr)
        # A usable reference: argmax well defined, and no control token (which would end the generation).
        if margin > 1e-3 and not specials.intersection(cont):
            break
    else:
        sys.exit("no candidate conversation gives a clean greedy reference")
    write_json(os.path.join(HF_DIR, "tiny_llama_chat.json"), {
        "model": "tests/fixtures/models/tiny_llama_chat", "messages": messages, "prompt_text": prompt,
        "prompt_ids": ids, "greedy": cont, "min_margin": round(margin, 6),
        "encode_text": {"text": "Hello world", "ids": tok("Hello world")["input_ids"]},
        "generator": f"scripts/make_hf_tokenizer_fixture.py (torch {torch.__version__}, "
                     f"transformers {__import__('transformers').__version__})",
    }, indent=1)


def main():
    path = (sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SLUICE_MODEL_GGUF")
            or os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    torch.set_num_threads(1)
    model = read_gguf(path)
    golden_tokenizer(model)
    tiny_llama_chat(model)


if __name__ == "__main__":
    main()
