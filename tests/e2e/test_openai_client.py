"""The official `openai` Python client against sluice and a TLS mock upstream: answers, usage, streams,
a stream cut after its first byte, and error statuses mapped to the client's exception types."""

import httpx
import openai
import pytest

import mock_upstream as mu
import sluice_harness as sh

KEY = "e2e-client-key"


@pytest.fixture
def gateway(sluice_factory, primary):
    primary.set_behavior(mu.ok(chunks=4))
    primary.set_behavior(mu.reset_after_first_chunk(chunks=6, cut_after=2), model="cut-upstream")
    primary.set_behavior(mu.error_status(500), model="broken-upstream")
    routes = [
        sh.route("e2e", "gpt-e2e", targets=[{"provider": "primary", "model": "upstream-e2e"}]),
        sh.route("cut", "gpt-cut", targets=[{"provider": "primary", "model": "cut-upstream"}]),
        sh.route("broken", "gpt-broken", targets=[{"provider": "primary", "model": "broken-upstream"}]),
        sh.route("limited", "gpt-limited", limits={"requests_per_second": 0.01, "burst": 1}),
    ]
    return sluice_factory({"primary": primary}, routes=routes, auth={"client_keys_env": "E2E_KEYS"},
                          env={"E2E_KEYS": KEY})


def client(s, key=KEY):
    return openai.OpenAI(base_url=s.base_url + "/v1", api_key=key, max_retries=0, timeout=30.0)


MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}]


def test_chat_non_stream(gateway, primary):
    resp = client(gateway).chat.completions.create(model="gpt-e2e", messages=MESSAGES, max_tokens=16)
    assert resp.choices[0].message.content == mu.content_of(4)
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens == 7
    assert resp.usage.completion_tokens == 4
    assert resp.usage.total_tokens == 11
    (up,) = primary.wait_for_requests(1)
    assert up.json["model"] == "upstream-e2e"
    assert up.json["messages"] == MESSAGES
    assert up.headers["authorization"] == f"Bearer {sh.key_value('primary')}"


def test_chat_stream_with_usage(gateway):
    stream = client(gateway).chat.completions.create(model="gpt-e2e", messages=MESSAGES, stream=True,
                                                     stream_options={"include_usage": True})
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text == mu.content_of(4)
    assert finish == "stop"
    assert usage is not None and usage.prompt_tokens == 7 and usage.completion_tokens == 4


def test_chat_stream_without_usage(gateway):
    chunks = list(client(gateway).chat.completions.create(model="gpt-e2e", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == mu.content_of(4)
    assert all(c.usage is None for c in chunks), "usage chunk sent although the client did not ask"


def test_completions(gateway):
    c = client(gateway)
    resp = c.completions.create(model="gpt-e2e", prompt="Once upon a time", max_tokens=8)
    assert resp.choices[0].text == mu.content_of(4)
    assert resp.usage.completion_tokens == 4
    text = "".join(ch.choices[0].text for ch in c.completions.create(model="gpt-e2e", prompt="Once", stream=True)
                   if ch.choices)
    assert text == mu.content_of(4)


def test_models_list(gateway):
    ids = {m.id for m in client(gateway).models.list()}
    assert {"gpt-e2e", "gpt-cut", "gpt-broken", "gpt-limited"} <= ids


def test_stream_cut_after_first_byte_raises(gateway, primary):
    stream = client(gateway).chat.completions.create(model="gpt-cut", messages=MESSAGES, stream=True)
    received = ""
    with pytest.raises((openai.APIError, httpx.HTTPError)):
        for chunk in stream:
            for choice in chunk.choices:
                received += choice.delta.content or ""
    assert received == mu.content_of(2), "the chunks before the cut should have arrived"


def test_wrong_key_is_authentication_error(gateway):
    with pytest.raises(openai.AuthenticationError) as e:
        client(gateway, key="not-the-key").chat.completions.create(model="gpt-e2e", messages=MESSAGES)
    assert e.value.status_code == 401


def test_unknown_model_is_not_found_error(gateway):
    with pytest.raises(openai.NotFoundError) as e:
        client(gateway).chat.completions.create(model="gpt-unknown", messages=MESSAGES)
    assert e.value.status_code == 404
    assert e.value.code == "model_not_found"


def test_rate_limit_is_rate_limit_error(gateway):
    c = client(gateway)
    c.chat.completions.create(model="gpt-limited", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as e:
        c.chat.completions.create(model="gpt-limited", messages=MESSAGES)
    assert e.value.status_code == 429
    assert int(e.value.response.headers["retry-after"]) >= 1


def test_upstream_failure_is_server_error(gateway):
    with pytest.raises(openai.InternalServerError) as e:
        client(gateway).chat.completions.create(model="gpt-broken", messages=MESSAGES)
    assert e.value.status_code == 502


def test_bad_request_is_bad_request_error(gateway):
    with pytest.raises(openai.BadRequestError) as e:
        client(gateway).chat.completions.create(model="gpt-e2e", messages=MESSAGES, n=1000)
    assert e.value.status_code == 400
