#!/usr/bin/env python3
"""Writes the reference data the C++ tokenizer and chat-template tests compare against.

Everything is computed offline, without network access, by independent implementations:

* Token ids: Hugging Face `tokenizers` (pip install tokenizers gguf), with a BPE tokenizer BUILT FROM THE
  GGUF's OWN vocabulary and merges (read with the `gguf` package) and SmolLM2's published tokenizer.json
  pipeline: no normalizer; pre-tokenizer Sequence[Digits(individual_digits=True), ByteLevel(
  add_prefix_space=False, use_regex=True)]; ByteLevel decoder; the GGUF's control tokens (token_type 3) as
  special added tokens. The published checks ("Hello, we can use" -> 19556 28 392 416 722, "\\n" -> 198)
  are asserted before anything is written.
* Pre-tokenizer splits of the other byte-level families: `tokenizers`' Split pre-tokenizer with each
  family's published regular expression (GPT-2, Llama 3, Qwen2), which Oniguruma runs.
* Chat templates: transformers' apply_chat_template (pip install transformers jinja2), which renders with
  jinja2 in a sandboxed environment with trim_blocks and lstrip_blocks. The SmolLM2 template is taken from
  the GGUF's tokenizer.chat_template; the others are tests/fixtures/tokenizer/templates/*.jinja (see the
  README there for the models they come from).

Outputs (tests/fixtures/tokenizer/):
  smollm2_golden.jsonl        {"text", "special", "ids", ["decoded"]}: encode(text, parse_special=special)
                               == ids; decode(ids) == decoded where given, else text
  smollm2_decode_golden.jsonl {"ids", "text"}: decode(ids) == text (cut sequences, U+FFFD repair)
  pretokenizer_golden.jsonl   {"text", "gpt2", "smollm", "llama3", "qwen2"}: the pieces of each family
  chat_template_golden.jsonl  {"template", "bos", "eos", "messages", "add_generation_prompt",
                               "expected" | "error"}
  jinja_golden.jsonl          {"source", "context", "expected" | "error"}: Jinja semantics one by one,
                               rendered by jinja2 in transformers' environment

Usage: python3 scripts/make_tokenizer_golden.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]
(default: $SLUICE_MODEL_GGUF, else models/SmolLM2-135M-Instruct.Q4_1.gguf). The corpus is generated from a
fixed seed, so rerunning with the same package versions reproduces the files byte for byte.
"""
import json
import os
import random
import sys
import unicodedata

import gguf
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "tokenizer")

GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")


def read_gguf(path):
    r = gguf.GGUFReader(path)

    def strings(key):
        f = r.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    types = r.fields["tokenizer.ggml.token_type"]
    tmpl = r.fields["tokenizer.chat_template"]
    return {
        "tokens": strings("tokenizer.ggml.tokens"),
        "types": [int(types.parts[i][0]) for i in types.data],
        "merges": strings("tokenizer.ggml.merges"),
        "chat_template": bytes(tmpl.parts[tmpl.data[0]]).decode("utf-8"),
    }


def build_tokenizer(model):
    vocab = {tok: i for i, tok in enumerate(model["tokens"])}
    merges = [tuple(m.split(" ", 1)) for m in model["merges"]]
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tk.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True),
         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tk.decoder = decoders.ByteLevel()
    specials = [AddedToken(t, special=True, normalized=False)
                for t, ty in zip(model["tokens"], model["types"]) if ty == 3]
    tk.add_special_tokens(specials)
    return tk


# ---- corpus ----

WORDS = ("the of and to in is you that it he was for on are as with his they I at be this have from or one had "
         "by word but not what all were we when your can said there use an each which she do how their if will up "
         "other about out many then them these so some her would make like him into time has look two more write "
         "go see number no way could people my than first water been call who oil its now find long down day did "
         "get come made may part tokenizer streaming gateway latency throughput kernel quantization").split()

SNIPPETS = [
    "The quick brown fox jumps over the lazy dog.",
    "สวัสดีครับ ยินดีต้อนรับสู่ประเทศไทย ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ",
    "我们今天去公园散步，天气非常好。机器学习是人工智能的一个分支。",
    "日本語のテキストです。カタカナとひらがなと漢字が混ざっています。",
    "안녕하세요, 만나서 반갑습니다. 한국어 문장입니다.",
    "Привет, как дела? Это предложение на русском языке.",
    "Γειά σου κόσμε! Αυτή είναι μια ελληνική πρόταση.",
    "مرحبا بالعالم، هذه جملة باللغة العربية ١٢٣٤٥.",
    "שלום עולם, זה משפט בעברית.",
    "नमस्ते दुनिया, यह हिंदी में एक वाक्य है। १२३",
    "Tiếng Việt có nhiều dấu thanh: ă, â, ê, ô, ơ, ư, đ.",
    "Zażółć gęślą jaźń. Straße, Müller, naïve café, résumé.",
    "Emoji: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇺🇸🇯🇵 ❤️ 🏳️‍🌈 🤖",
    "def main():\n    print(\"Hello, world!\")\n    return 0\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}\n",
    "{\"model\": \"smollm2\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 128}",
    "<html><body><div class=\"x\">Hello &amp; welcome</div></body></html>",
    "SELECT id, name FROM users WHERE age >= 21 ORDER BY name DESC LIMIT 10;",
    "I'm sure you're right; we'll see what they've done. He'd say it's John's. I'M SHOUTING, YOU'RE LATE",
    "Prices: $1,234.56 or €99,99; call +1 (555) 123-4567 by 2024-12-31T23:59:59Z.",
    "½ ¼ ¾ ² ³ ¹ Ⅻ ⅻ ① ② ٣ ٤ ۵ ߁ ५ ௫ ๕ 五 ０１２ 𝟘𝟙",
    "tabs\tand\ttabs\t\t\tthen spaces     and newlines\n\n\n\r\n\rend",
    "   leading spaces", "trailing spaces   ", "\n\nleading newlines", "trailing newlines\n\n",
    "e\u0301 a\u0308 n\u0303 combining marks \u0915\u094d\u0937",
    "zero\u200bwidth\u200cjoiners\u200d and\u00a0nbsp\u2003em\u3000ideographic\u2028line\u2029para",
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|><|im_start|><|im_end|><repo_name><file_sep><empty_output>",
    "<|im_start <|im_end| <|im_|> <| im_start |> <|IM_START|>",
    "control \x00\x01\x04\x06\x13\x14\x16\x1b\x1d\x7f bytes, some without a token",
    "it'\u017fx it'Sx it'\ufb05x it'\u212ax it'LL it'Ve",
    "Hello, we can use", "\n", "", " ", "  ", "\t", "a", "1", "12", "123", "1234", "'", "''", "'s", "'S",
]

SPECIAL_TEXTS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<repo_name>", "<reponame>", "<file_sep>",
                 "<filename>", "<gh_stars>", "<issue_start>", "<jupyter_code>", "<empty_output>", "<|im_",
                 "im_end|>", "<", ">", "|"]

SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u2003", "\u3000", "\x0b", "\x0c",
          "\u2028", "\u0085", "    \n    "]

# Code point ranges to draw random characters from; unassigned ones are skipped.
BLOCKS = [(0x20, 0x7E), (0xA0, 0xFF), (0x100, 0x24F), (0x250, 0x2FF), (0x300, 0x36F), (0x370, 0x3FF),
          (0x400, 0x4FF), (0x530, 0x58F), (0x590, 0x5FF), (0x600, 0x6FF), (0x900, 0x97F), (0x980, 0x9FF),
          (0xE00, 0xE7F), (0x10A0, 0x10FF), (0x1100, 0x11FF), (0x16A0, 0x16FF), (0x1E00, 0x1EFF),
          (0x2000, 0x206F), (0x2070, 0x209F), (0x20A0, 0x20CF), (0x2100, 0x218F), (0x2190, 0x23FF),
          (0x2460, 0x24FF), (0x2500, 0x27BF), (0x3000, 0x303F), (0x3040, 0x30FF), (0x4E00, 0x9FFF),
          (0xAC00, 0xD7A3), (0xF900, 0xFAFF), (0xFE30, 0xFE4F), (0xFF00, 0xFFEF), (0x10300, 0x1034F),
          (0x1D400, 0x1D7FF), (0x1F300, 0x1F6FF), (0x1F900, 0x1F9FF), (0x20000, 0x2A6DF)]


def random_char(rng):
    while True:
        lo, hi = rng.choice(BLOCKS)
        c = chr(rng.randint(lo, hi))
        if unicodedata.category(c) not in ("Cn", "Cs", "Co"):
            return c


def sentence(rng, n):
    out = []
    for _ in range(n):
        w = rng.choice(WORDS)
        r = rng.random()
        if r < 0.1:
            w = w.capitalize()
        elif r < 0.13:
            w = w.upper()
        out.append(w)
        if rng.random() < 0.12:
            out.append(rng.choice([",", ".", "!", "?", ";", ":", "'s", "'re", " -", "(", ")", "\"", "..."]))
    text = " ".join(out)
    return text[0].upper() + text[1:] if text else text


def build_corpus(rng):
    cases = []  # (text, parse_special)
    for s in SNIPPETS:
        cases.append((s, True))
    for _ in range(220):
        cases.append((sentence(rng, rng.randint(1, 40)), True))
    for _ in range(160):  # languages, emoji and code mixed
        parts = [rng.choice(SNIPPETS) for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.5:
            parts.insert(rng.randint(0, len(parts)), sentence(rng, rng.randint(1, 8)))
        cases.append((rng.choice(["", " ", "\n", "\n\n"]).join(parts), True))
    for _ in range(260):  # random code points from many scripts and symbol blocks
        n = rng.randint(1, 30)
        text = "".join(random_char(rng) if rng.random() < 0.8 else rng.choice(SPACES) for _ in range(n))
        cases.append((text, True))
    for _ in range(120):  # whitespace runs between words
        parts = []
        for _ in range(rng.randint(1, 8)):
            parts.append(rng.choice(WORDS + ["1", "42", "(", "'ll", "x"]))
            parts.append("".join(rng.choice(SPACES) for _ in range(rng.randint(0, 4))))
        cases.append(("".join(parts), True))
    for _ in range(100):  # numbers
        pieces = []
        for _ in range(rng.randint(1, 6)):
            r = rng.random()
            if r < 0.4:
                pieces.append(str(rng.randint(0, 10 ** rng.randint(1, 15))))
            elif r < 0.6:
                pieces.append(f"{rng.uniform(-1e4, 1e4):.{rng.randint(0, 6)}f}")
            elif r < 0.8:
                pieces.append("".join(rng.choice("0123456789٠١٢٣٤٥٦٧٨٩०१२३४५६७८९０１２３") for _ in range(rng.randint(1, 8))))
            else:
                pieces.append(rng.choice(WORDS))
        cases.append((rng.choice([" ", "", ", ", "\n", " + "]).join(pieces), True))
    for _ in range(120):  # special-token text, parsed and not parsed
        parts = []
        for _ in range(rng.randint(1, 8)):
            parts.append(rng.choice(SPECIAL_TEXTS) if rng.random() < 0.5 else sentence(rng, rng.randint(0, 4)))
        text = rng.choice(["", " ", "\n"]).join(parts)
        cases.append((text, True))
        cases.append((text, False))
    for _ in range(12):  # long texts
        parts = []
        while sum(len(p) for p in parts) < rng.randint(2000, 6000):
            r = rng.random()
            parts.append(rng.choice(SNIPPETS) if r < 0.3 else sentence(rng, 30) if r < 0.8
                         else "".join(random_char(rng) for _ in range(40)))
        cases.append(("\n".join(parts), True))
    cases.append((" " * 300 + "x" + "\t" * 50 + "\n" * 40, True))
    cases.append(("a" * 2000, True))
    cases.append(("9" * 500, True))
    cases.append(("😀" * 200, True))
    seen = set()
    unique = []
    for c in cases:
        if c not in seen:
            seen.add(c)
            unique.append(c)
    return unique


# ---- chat templates ----

TEMPLATE_TOKENS = {  # the bos/eos texts each family's tokenizer_config.json names (None: not set)
    "smollm2": ("<|im_start|>", "<|im_end|>"),
    "chatml": ("<|im_start|>", "<|im_end|>"),
    "qwen2": (None, "<|im_end|>"),
    "llama3": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama3.1": ("<|begin_of_text|>", "<|eot_id|>"),
    "mistral": ("<s>", "</s>"),
}


def conversations():
    sys_msg = {"role": "system", "content": "You are a terse assistant. Answer in one line."}
    u1 = {"role": "user", "content": "What is the capital of France?"}
    a1 = {"role": "assistant", "content": "Paris."}
    u2 = {"role": "user", "content": "  And of Japan?\n\n"}
    a2 = {"role": "assistant", "content": "\nTokyo — 東京. 🗼\n"}
    odd = {"role": "user", "content": "Braces {{ not a tag }} {% nor this %} and <|im_start|> text\twith tabs"}
    empty = {"role": "user", "content": ""}
    tool = {"role": "tool", "content": "{\"temperature\": 21}"}
    return [
        [u1], [sys_msg, u1], [u1, a1], [u1, a1, u2], [sys_msg, u1, a1, u2, a2], [odd], [empty], [sys_msg],
        [u1, a1, u2, a2, odd], [sys_msg, u2], [a1], [u1, u2], [u1, tool],
        [{"role": "user", "content": "Thai: สวัสดี, Chinese: 你好, emoji: 👋🏽"}],
    ]


def render_templates(tk, gguf_template):
    from transformers import PreTrainedTokenizerFast

    records = []
    for name, (bos, eos) in TEMPLATE_TOKENS.items():
        path = os.path.join(FIXTURES, "templates", name + ".jinja")
        with open(path, encoding="utf-8") as f:
            source = f.read()
        if name == "smollm2" and source != gguf_template:
            sys.exit(f"{path} differs from the GGUF's tokenizer.chat_template")
        hf = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token=bos, eos_token=eos)
        for messages in conversations():
            for gen in (True, False):
                rec = {"template": name, "bos": bos, "eos": eos, "messages": messages,
                       "add_generation_prompt": gen}
                try:
                    rec["expected"] = hf.apply_chat_template(messages, chat_template=source, tokenize=False,
                                                             add_generation_prompt=gen)
                except Exception as e:  # jinja2's TemplateError from raise_exception, or a render failure
                    rec["error"] = str(e)
                records.append(rec)
    return records


# Jinja semantics the renderer must share with jinja2, each rendered with the environment transformers uses.
JINJA_CASES = [
    ("{% if true %}\n  yes\n{% endif %}\nafter\n", {}),
    ("  {%- if true -%}  a  {%- endif -%}  b", {}),
    ("{% for i in [1, 2] %}\n    {{ i }}\n{% endfor %}\n", {}),
    ("line\n    {# comment #}\nnext {#- trimmed -#}   end", {}),
    ("  {%+ if true %}x{% endif %}|  {% if true %}y{% endif %}", {}),
    ("a  {% if true +%}\nb{% endif %}", {}),
    ("{{- ' x ' -}}\n\n{{ 'y' }}  \n  {{ 'z' }}", {}),
    ("{% if a %}A{% elif b %}B{% else %}C{% endif %}", {"a": False, "b": 0}),
    ("{% if a %}A{% elif b %}B{% else %}C{% endif %}", {"a": "", "b": [1]}),
    ("{% for i in [1, 2] %}{% if i == 2 %}{{ x }}{% endif %}{% set x = i %}{% endfor %}[{{ x }}]", {}),
    ("{% set x = 5 %}{% for i in [1, 2] %}{{ x }}{% set x = i %}{{ x }}{% endfor %}[{{ x }}]", {}),
    ("{% set ns = namespace(n=0, s='') %}{% for i in range(5) %}{% set ns.n = ns.n + i %}"
     "{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }} {{ ns.s }}", {}),
    ("{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}"
     "{{ loop.revindex }}{{ loop.revindex0 }};{% endfor %}", {}),
    ("{% for x in [] %}{{ x }}{% else %}empty{% endfor %}", {}),
    ("{% for x in [1, 2, 3, 4, 5, 6] if x is even %}{{ x }}{{ loop.index }}{{ loop.last }},{% endfor %}", {}),
    ("{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 6 %}{% break %}{% endif %}"
     "{{ x }}{% endfor %}", {}),
    ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}|{% for k in d %}{{ k }}{% endfor %}",
     {"d": {"b": 1, "a": [2, 3], "c": None}}),
    ("{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}", {}),
    ("{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1.5 * 2 }} {{ 10 / 4 }}",
     {}),
    ("{{ 1.0 }} {{ 1e20 }} {{ 0.1 + 0.2 }} {{ 1e-7 }} {{ 123456789.125 }} {{ 3.0e15 }} {{ -0.5 }} {{ 2.5e16 }}",
     {}),
    ("{{ [1, 'a', none, true, false, {'k': [1.5, \"it's\"]}] }} {{ none }} {{ true }} {{ {'a': 'b'} }}", {}),
    ("{{ 'a' ~ 1 ~ none ~ true }} {{ 'ab' * 3 }} {{ [1] * 2 }} {{ [1] + [2] }} {{ 'x' + 'y' }}", {}),
    ("{{ 'a' in 'cat' }} {{ 'z' not in 'cat' }} {{ 2 in [1, 2] }} {{ 'k' in d }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }}",
     {"d": {"k": 1}}),
    ("{{ 0 or 'x' }} {{ 1 and 'y' }} {{ '' and 'z' }} {{ none or [] }} {{ not 0 }} {{ 'a' if x else 'b' }}"
     "|{{ 'c' if false }}|", {"x": [0]}),
    ("{{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' == 'a' }} {{ [1, 2] == [1, 2] }} {{ none == none }} {{ u == v }}", {}),
    ("[{{ '  x \n' | trim }}] {{ 'héllo' | length }} {{ [1, 2] | length }} {{ d | length }} {{ 'ab' | count }}",
     {"d": {"a": 1}}),
    ("{{ d | tojson }} {{ l | tojson }} {{ 'é\"\\\n\t\x01' | tojson }} {{ none | tojson }} {{ 1.5 | tojson }}",
     {"d": {"a": [1, True, None], "b": {"c": "ü"}}, "l": []}),
    ("{{ d | tojson(indent=2) }}|{{ [] | tojson(indent=4) }}|{{ {} | tojson(indent=4) }}|{{ [[1], {'a': []}] "
     "| tojson(indent=1) }}", {"d": {"a": [1, {"x": "y"}], "b": 2}}),
    ("{{ ['a', 'b', 'c'] | join(', ') }} {{ [1, 2] | join }} {{ d | items | list }} {{ 'abc' | list }}",
     {"d": {"x": 1, "y": 2}}),
    ("{{ m | selectattr('role', 'equalto', 'user') | map(attribute='content') | join('/') }} "
     "{{ m | rejectattr('role', 'equalto', 'user') | list | length }} {{ [0, 1, 2, ''] | select | list }} "
     "{{ [1, 2, 3, 4] | reject('odd') | list }} {{ m | map(attribute='role') | first }} "
     "{{ m | map(attribute='role') | list | last }}",
     {"m": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"}]}),
    ("{{ x | default('d') }} {{ '' | default('d') }} {{ '' | default('d', true) }} {{ none | d('e', boolean=true) }}",
     {}),
    ("{{ 'hello WORLD' | upper }} {{ 'hello WORLD' | lower }} {{ 'hello wORLD-x (y' | title }} "
     "{{ 'hello WORLD' | capitalize }} {{ 'a-b-a' | replace('a', 'x') }} {{ 'aaa' | replace('a', 'b', 2) }}", {}),
    ("{{ 42 | string }}{{ '7' | int + 1 }} {{ '3.9' | int }} {{ 'x' | int }} {{ 'x' | int(5) }} {{ 2.7 | int }} "
     "{{ '2.5' | float }} {{ 3 | float }} {{ -3 | abs }} {{ 2.567 | round(2) }} {{ 2.5 | round }} {{ 3.5 | round }}",
     {}),
    ("{{ [3, 1, 2] | sort }} {{ ['b', 'A', 'c'] | sort }} {{ [3, 1, 2] | sort(reverse=true) }} "
     "{{ [1, 2, 1, 3] | unique | list }} {{ [1, 2, 3] | reverse | list }} {{ 'abc' | reverse }} "
     "{{ [1, 2, 3] | sum }} {{ [4, 2, 9] | min }} {{ [4, 2, 9] | max }} {{ {'b': 1, 'a': 2} | dictsort }}", {}),
    ("{{ 'a\nb\n\nc' | indent }}|{{ 'a\nb' | indent(2, true) }}|{{ 'a\n\nb' | indent(width=1, blank=true) }}",
     {}),
    ("{{ x is defined }} {{ y is defined }} {{ none is none }} {{ 'a' is string }} {{ d is mapping }} "
     "{{ 'a' is iterable }} {{ 1 is iterable }} {{ 1 is number }} {{ 3 is odd }} {{ 4 is even }} "
     "{{ 9 is divisibleby 3 }} {{ 1 is equalto 1 }} {{ 2 is in [1, 2] }} {{ x is not none }} {{ true is boolean }} "
     "{{ 1 is integer }} {{ 1.0 is float }} {{ u is undefined }}", {"x": 1, "d": {}}),
    ("{{ '  ab  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ ' a'.lstrip() }}|{{ 'a '.rstrip() }}|{{ 'a,b,,c'.split(',') }}"
     "|{{ ' a  b '.split() }}|{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith(('x', 'c')) }}|{{ 'aXa'.replace('a', 'b') }}"
     "|{{ 'ab'.upper() }}|{{ d.get('k') }}|{{ d.get('z', 0) }}|{{ d.keys() | list }}|{{ d.values() | list }}"
     "|{{ 'héllo wörld'.title() }}|{{ 'abcb'.find('b') }}|{{ 'a b c'.split(' ', 1) }}",
     {"d": {"k": "v"}}),
    ("{{ l[1:] }} {{ l[::-1] }} {{ l[-2:] }} {{ l[:1] }} {{ l[1:3:1] }} {{ 'héllo'[1:3] }} {{ l[-1] }} {{ l[10] }}"
     "|{{ 'abc'[0] }}|{{ d['a'] }}{{ d.a }}|{{ l.0 }}", {"l": [1, 2, 3, 4], "d": {"a": "A"}}),
    ("{% set s %}inner {{ 1 + 1 }}{% endset %}[{{ s }}]", {}),
    ("{{ -x }} {{ +x }} {{ -(1.5) }} {{ not x is defined }} {{ (1, 2) }}", {"x": 3}),
    ("{{ m[0].role | upper }} {{ m[0]['content'] + '!' | trim }} {{ m | length > 1 }}",
     {"m": [{"role": "user", "content": "hi "}]}),
    ("{{ raise_exception('custom failure') }}", {}),
    ("{{ x + 1 }}", {}),
    ("{{ x.y }}", {}),
    ("{{ 'a' + 1 }}", {}),
    ("{{ 1 / 0 }}", {}),
]


def render_jinja_cases():
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    records = []
    for source, context in JINJA_CASES:
        rec = {"source": source, "context": context}
        try:
            rec["expected"] = env.from_string(source).render(**context)
        except Exception as e:
            rec["error"] = str(e)
        records.append(rec)
    return records


def write_jsonl(name, records):
    path = os.path.join(FIXTURES, name)
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{path}: {len(records)} records, {os.path.getsize(path)} bytes")


def main():
    path = (sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SLUICE_MODEL_GGUF")
            or os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    model = read_gguf(path)
    tk = build_tokenizer(model)
    assert tk.encode("Hello, we can use").ids == [19556, 28, 392, 416, 722]
    assert tk.encode("\n").ids == [198]

    rng = random.Random(20241128)
    corpus = build_corpus(rng)
    records = []
    for text, special in corpus:
        tk.encode_special_tokens = not special
        rec = {"text": text, "special": special, "ids": tk.encode(text).ids}
        decoded = tk.decode(rec["ids"], skip_special_tokens=False)
        if decoded != text:  # bytes the vocabulary cannot spell were dropped
            rec["decoded"] = decoded
        records.append(rec)
    tk.encode_special_tokens = False
    write_jsonl("smollm2_golden.jsonl", records)

    decode_records = []
    for rec in records[:400]:
        ids = rec["ids"]
        if len(ids) < 2:
            continue
        a = rng.randint(0, len(ids) - 1)
        b = rng.randint(a + 1, len(ids))
        cut = ids[a:b]
        decode_records.append({"ids": cut, "text": tk.decode(cut, skip_special_tokens=False)})
    write_jsonl("smollm2_decode_golden.jsonl", decode_records)

    families = {
        "gpt2": pre_tokenizers.Split(Regex(GPT2_REGEX), behavior="isolated"),
        "smollm": pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                           pre_tokenizers.Split(Regex(GPT2_REGEX), behavior="isolated")]),
        "llama3": pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated"),
        "qwen2": pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated"),
    }
    pre_records = []
    seen = set()
    for text, _ in corpus:
        if text in seen or len(text) > 1500:
            continue
        seen.add(text)
        rec = {"text": text}
        for fam, pt in families.items():
            rec[fam] = [p for p, _ in pt.pre_tokenize_str(text)]
        pre_records.append(rec)
    write_jsonl("pretokenizer_golden.jsonl", pre_records)

    write_jsonl("chat_template_golden.jsonl", render_templates(tk, model["chat_template"]))
    write_jsonl("jinja_golden.jsonl", render_jinja_cases())


if __name__ == "__main__":
    main()
