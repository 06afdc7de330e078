"""The embedded engine (`local`) serving SmolLM2-135M-Instruct through sluice, driven by the official `openai`
client: answers, streams, stop strings, seeds, usage, batching invariance, cancellation and fallback."""

import os
import pathlib
import threading
import time

import openai
import pytest

import mock_upstream as mu
import sluice_harness as sh

MODEL = "smollm2-135m-instruct"
GGUF = pathlib.Path(os.environ.get("SLUICE_SOURCE_DIR", ".")) / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"

pytestmark = pytest.mark.skipif(not GGUF.exists(), reason="the default model is not fetched (make test fetches it)")

ENGINE = {"enabled": True, "model_path": str(GGUF), "served_model_name": MODEL, "threads": 2,
          "max_num_seqs": 16, "max_num_batched_tokens": 256, "kv_cache_bytes": 64 << 20, "max_model_len": 2048}


@pytest.fixture
def gateway(sluice_factory, primary):
    primary.set_behavior(mu.ok(chunks=3))
    routes = [
        sh.route("local", MODEL, targets=[{"provider": "local", "tier": 0},
                                          {"provider": "primary", "tier": 1, "model": "cloud-model"}],
                 fallback_on=sh.ALL_FALLBACKS + ["context_too_long", "unsupported"]),
    ]
    return sluice_factory({"primary": primary}, routes=routes, engine=ENGINE)


def client(s):
    return openai.OpenAI(base_url=s.base_url + "/v1", api_key="unused", max_retries=0, timeout=120.0)


def ask(c, content, **kw):
    kw.setdefault("temperature", 0)
    kw.setdefault("max_tokens", 24)
    return c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}], **kw)


def test_capital_of_france_says_paris(gateway):
    resp = ask(client(gateway), "What is the capital of France?", max_tokens=40)
    assert "Paris" in resp.choices[0].message.content
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens > 10
    assert resp.usage.completion_tokens >= 1
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert MODEL in [m.id for m in client(gateway).models.list().data]


def test_stream_equals_non_stream_at_temperature_zero(gateway):
    c = client(gateway)
    whole = ask(c, "Name three colors.", max_tokens=20)
    pieces, usage, finish = [], None, None
    for chunk in ask(c, "Name three colors.", max_tokens=20, stream=True, stream_options={"include_usage": True}):
        if chunk.usage:
            usage = chunk.usage
        for ch in chunk.choices:
            pieces.append(ch.delta.content or "")
            finish = ch.finish_reason or finish
    assert "".join(pieces) == whole.choices[0].message.content
    assert finish == whole.choices[0].finish_reason
    assert usage.completion_tokens == whole.usage.completion_tokens
    assert usage.prompt_tokens == whole.usage.prompt_tokens


def test_length_finish_counts_exactly_max_tokens(gateway):
    resp = ask(client(gateway), "Tell me a long story about a dragon.", max_tokens=7)
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage.completion_tokens == 7


def test_stop_string_is_never_leaked(gateway):
    c = client(gateway)
    base = ask(c, "What is the capital of France?", max_tokens=40).choices[0].message.content
    assert "Paris" in base
    resp = ask(c, "What is the capital of France?", max_tokens=40, stop=["Paris"])
    text = resp.choices[0].message.content
    assert "Paris" not in text
    assert base.startswith(text)
    assert resp.choices[0].finish_reason == "stop"
    streamed = "".join(ch.delta.content or "" for chunk in
                       ask(c, "What is the capital of France?", max_tokens=40, stop=["Paris"], stream=True)
                       for ch in chunk.choices)
    assert streamed == text


def test_same_seed_same_sample_different_seed_differs(gateway):
    c = client(gateway)
    kw = dict(temperature=1.0, top_p=0.95, max_tokens=24)
    a = ask(c, "Write a short poem about rivers.", seed=1234, **kw).choices[0].message.content
    b = ask(c, "Write a short poem about rivers.", seed=1234, **kw).choices[0].message.content
    assert a == b
    others = {ask(c, "Write a short poem about rivers.", seed=s, **kw).choices[0].message.content for s in (1, 2, 3)}
    assert len(others | {a}) > 1


def test_concurrent_staggered_requests_match_each_alone(gateway):
    """16 greedy requests arriving at staggered times (so prefill chunks and decodes share steps) give exactly
    the tokens each gives alone; and a seeded sampled request gives the same text alone and in the batch."""
    c = client(gateway)
    prompts = [f"Give me fact number {i} about the ocean." for i in range(15)]
    alone = [ask(c, p, max_tokens=16).choices[0].message.content for p in prompts]
    seeded_kw = dict(temperature=0.8, seed=77, max_tokens=16)
    seeded_alone = ask(c, "Describe a forest.", **seeded_kw).choices[0].message.content

    results: dict = {}

    def run(i, p, kw):
        results[i] = ask(c, p, **kw).choices[0].message.content

    threads = []
    jobs = [(i, p, {"max_tokens": 16}) for i, p in enumerate(prompts)] + [(15, "Describe a forest.", seeded_kw)]
    for i, p, kw in jobs:
        t = threading.Thread(target=run, args=(i, p, kw))
        t.start()
        threads.append(t)
        time.sleep(0.03 * (i % 4))
    for t in threads:
        t.join(120)
    assert [results[i] for i in range(15)] == alone
    assert results[15] == seeded_alone


def test_client_disconnect_frees_the_engine_request(gateway):
    s = gateway
    sse = s.stream({"model": MODEL, "stream": True, "max_tokens": 400, "min_tokens": 400, "temperature": 0,
                    "messages": [{"role": "user", "content": "Count from one to two hundred."}]})
    next(iter(sse.events()))  # the first chunk: the request is running in the engine
    m = s.metrics()
    assert m.value("sluice_engine_running_sequences") == 1
    sse.close()
    s.wait_metric("sluice_engine_running_sequences", 0, timeout=5)
    s.wait_metric("sluice_engine_kv_cache_usage", 0, timeout=5)


def test_context_too_long_falls_back_to_the_provider(gateway, primary):
    resp = ask(client(gateway), "Hello", max_tokens=5000)  # beyond max_model_len 2048
    assert resp.choices[0].message.content == mu.content_of(3)
    assert primary.requests[-1].json["model"] == "cloud-model"


def test_tools_are_unsupported_locally_and_fall_back(gateway, primary):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    resp = ask(client(gateway), "Call f.", tools=tools)
    assert resp.choices[0].message.content == mu.content_of(3)
    m = gateway.metrics()
    assert m.value("sluice_fallbacks_total", reason="unsupported") >= 1
