"""Malformed requests get OpenAI's error object with the right 4xx, and never break the server.

Every case is one line of CASES: (name, path, body, status, param, code). `param` is the field
the error must name (None where no field is at fault) and `code` the exact error code (None: null).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import openai
import pytest

from tests.conftest import MODEL, labkit_serve

CHAT, COMPLETIONS = "/chat/completions", "/completions"
HELLO = [{"role": "user", "content": "Name a colour."}]
VOCAB = 49152  # SmolLM2's vocabulary size: token ids run 0..49151
LONG = "The quick brown fox jumps over the lazy dog. " * 40  # a few hundred tokens
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
OBJECT = {"type": "object", "additionalProperties": False}
CALLED = {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                                               "function": {"name": "get_weather", "arguments": "{}"}}]}


def chat(**kw) -> dict:
    return {"model": MODEL, "messages": HELLO, **kw}


def json_schema(schema: dict, strict: bool | None = None) -> dict:
    return chat(response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema,
                                                                        "strict": strict}})


def completion(**kw) -> dict:
    return {"model": MODEL, "prompt": "Once upon a time", **kw}


CASES = [
    ("temperature-string", CHAT, chat(temperature="hot"), 400, "temperature", "invalid_type"),
    ("max_tokens-float", COMPLETIONS, completion(max_tokens=1.5), 400, "max_tokens", "invalid_type"),
    ("messages-not-list", CHAT, chat(messages="hi"), 400, "messages", "invalid_type"),
    ("stream-string", CHAT, chat(stream="yes"), 400, "stream", "invalid_type"),
    ("temperature-above-2", CHAT, chat(temperature=2.5), 400, "temperature", "invalid_value"),
    ("temperature-negative", COMPLETIONS, completion(temperature=-0.1), 400, "temperature", "invalid_value"),
    ("temperature-nan", CHAT, chat(temperature=float("nan")), 400, "temperature", "invalid_value"),
    ("top_p-above-1", CHAT, chat(top_p=1.5), 400, "top_p", "invalid_value"),
    ("n-zero", CHAT, chat(n=0), 400, "n", "invalid_value"),
    ("n-129", COMPLETIONS, completion(n=129), 400, "n", "invalid_value"),
    ("max_tokens-negative", COMPLETIONS, completion(max_tokens=-1), 400, "max_tokens", "invalid_value"),
    ("logprobs-6", COMPLETIONS, completion(logprobs=6), 400, "logprobs", "invalid_value"),
    ("top_logprobs-21", CHAT, chat(logprobs=True, top_logprobs=21), 400, "top_logprobs", "invalid_value"),
    ("top_logprobs-without-logprobs", CHAT, chat(top_logprobs=2), 400, "top_logprobs", None),
    ("five-stop-strings", CHAT, chat(stop=["a", "b", "c", "d", "e"]), 400, "stop", "invalid_value"),
    ("stop-empty-list", COMPLETIONS, completion(stop=[]), 400, "stop", "invalid_value"),
    ("stop-empty-string", CHAT, chat(stop=[""]), 400, "stop", "invalid_value"),
    ("message-name-unsupported", CHAT, chat(messages=[{"role": "user", "content": "hi", "name": "ann"}]), 400,
     "messages.[0].name", "unsupported_parameter"),
    ("messages-empty", CHAT, chat(messages=[]), 400, "messages", "invalid_value"),
    ("role-unknown", CHAT, chat(messages=[{"role": "wizard", "content": "hi"}]), 400, "messages.[0].role",
     "invalid_value"),
    ("message-without-content", CHAT, chat(messages=[{"role": "user"}]), 400, "messages.[0].content",
     "missing_required_parameter"),
    ("model-missing", CHAT, {"messages": HELLO}, 400, "model", "missing_required_parameter"),
    ("model-unknown", CHAT, chat(model="gpt-9"), 404, "model", "model_not_found"),
    ("model-retired", COMPLETIONS, completion(model="text-davinci-003"), 404, "model", "model_not_found"),
    ("prompt-over-window", COMPLETIONS, completion(prompt=LONG, max_tokens=8000), 400, "prompt",
     "context_length_exceeded"),
    ("messages-over-window", CHAT, chat(max_tokens=8192), 400, "messages", "context_length_exceeded"),
    ("body-not-json", CHAT, b'{"model": "smollm2-135m-instruct", "messages": [', 400, None, None),
    ("body-is-list", CHAT, json.dumps([chat()]).encode(), 400, None, None),
    ("unknown-parameter", CHAT, chat(foo=1), 400, "foo", None),
    ("functions-deprecated", CHAT, chat(functions=[TOOL["function"]]), 400, "functions", "unsupported_parameter"),
    # structured outputs and tools (tests/test_structured.py has what works)
    ("response_format-unknown-type", CHAT, chat(response_format={"type": "xml"}), 400, "response_format.type",
     "invalid_value"),
    ("json_schema-without-name", CHAT, chat(response_format={"type": "json_schema", "json_schema": {
        "schema": OBJECT}}), 400, "response_format.json_schema.name", "missing_required_parameter"),
    ("json_schema-invalid", CHAT, json_schema({"type": "object", "properties": {"a": {"type": "colour"}}}), 400,
     "response_format", "invalid_json_schema"),
    ("json_schema-keyword-not-enforceable", CHAT, json_schema({"type": "array", "uniqueItems": True}), 400,
     "response_format", "invalid_json_schema"),
    ("json_schema-keyword-compiled-not-enforced", CHAT, json_schema({"type": "object", "properties": {
        "a": {"type": "string", "nullable": True}}}), 400, "response_format", "invalid_json_schema"),
    ("json_schema-sets-grammar-options", CHAT, json_schema({"type": "object", "x-guidance": {"lenient": True}}),
     400, "response_format", "invalid_json_schema"),
    ("strict-schema-open-object", CHAT, json_schema({"type": "object", "properties": {"a": {"type": "string"}},
                                                     "required": ["a"]}, strict=True), 400, "response_format",
     "invalid_json_schema"),
    ("strict-schema-optional-property", CHAT, json_schema({**OBJECT, "properties": {"a": {"type": "string"}}},
                                                          strict=True), 400, "response_format", "invalid_json_schema"),
    ("strict-schema-root-array", CHAT, json_schema({"type": "array"}, strict=True), 400, "response_format",
     "invalid_json_schema"),
    ("json_object-without-the-word-json", CHAT, chat(response_format={"type": "json_object"}), 400, "messages",
     None),
    ("tools-empty", CHAT, chat(tools=[]), 400, "tools", "empty_array"),
    ("tools-one-name-twice", CHAT, chat(tools=[TOOL, TOOL]), 400, "tools", "invalid_value"),
    ("tool-name-with-spaces", CHAT, chat(tools=[{"type": "function", "function": {"name": "get weather"}}]), 400,
     "tools.[0].function.name", "invalid_value"),
    ("tool-type-built-in", CHAT, chat(tools=[{"type": "web_search"}]), 400, "tools.[0].type", "invalid_value"),
    ("tool-parameters-not-enforceable", CHAT, chat(tools=[{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "not": {"required": ["a"]}}}}]), 400,
     "tools.[0].function.parameters",
     "invalid_json_schema"),
    ("tool_choice-unknown-function", CHAT, chat(tools=[TOOL], tool_choice={"type": "function", "function": {
        "name": "get_time"}}), 400, "tool_choice", "invalid_value"),
    ("tool_choice-unknown-mode", CHAT, chat(tools=[TOOL], tool_choice="sometimes"), 400, "tool_choice",
     "invalid_value"),
    ("tool_choice-without-tools", CHAT, chat(tool_choice="required"), 400, "tool_choice", None),
    ("parallel_tool_calls-without-tools", CHAT, chat(parallel_tool_calls=False), 400, "parallel_tool_calls", None),
    ("tools-with-response_format", CHAT, chat(tools=[TOOL], response_format={"type": "json_object"}), 400,
     "response_format", "unsupported_parameter"),
    ("tool-message-answering-no-call", CHAT, chat(messages=[*HELLO, {"role": "tool", "tool_call_id": "call_x",
                                                                    "content": "18C"}]), 400,
     "messages.[1].tool_call_id", "invalid_tool_call_id"),
    ("tool-call-left-unanswered", CHAT, chat(messages=[*HELLO, CALLED, {"role": "user", "content": "and?"}]), 400,
     "messages.[2].role", "invalid_tool_call_id"),
    ("assistant-message-empty", CHAT, chat(messages=[*HELLO, {"role": "assistant"}]), 400,
     "messages.[1].content", None),
    ("suffix-streamed-without-fim", COMPLETIONS, completion(suffix="The end.", stream=True), 400, "stream", None),
    ("best_of-below-n", COMPLETIONS, completion(n=3, best_of=2), 400, "best_of", None),
    ("best_of-streamed", COMPLETIONS, completion(best_of=2, stream=True), 400, "best_of", None),
    ("stream_options-without-stream", CHAT, chat(stream_options={"include_usage": True}), 400, "stream_options",
     None),
    ("logit_bias-word-key", CHAT, chat(logit_bias={"hello": 5}), 400, "logit_bias", None),
    ("logit_bias-key-outside-vocab", CHAT, chat(logit_bias={str(VOCAB): 5}), 400, "logit_bias", None),
    ("token-id-outside-vocab", COMPLETIONS, completion(prompt=[1, 2, VOCAB]), 400, "prompt", None),
    ("unknown-url", "/chat/complete", chat(), 404, None, None),
    # found by this file's first version as 500s: seeds beyond 64 bits, keys that str.isdigit() but int() refuses
    ("seed-above-64-bits", CHAT, chat(seed=2**64), 400, "seed", "invalid_value"),
    ("seed-below-int64", COMPLETIONS, completion(seed=-(2**63) - 1), 400, "seed", "invalid_value"),
    ("logit_bias-double-minus-key", CHAT, chat(logit_bias={"--5": 1}), 400, "logit_bias", None),
    ("logit_bias-superscript-key", CHAT, chat(logit_bias={"²": 1}), 400, "logit_bias", None),
    ("logit_bias-arabic-digit-key", CHAT, chat(logit_bias={"١": 1}), 400, "logit_bias", None),
]


def assert_error(status: int, body: dict, openapi, want_status: int, param: str | None, code: str | None) -> None:
    """The server's answer is OpenAI's error object with the status, param and code expected."""
    assert status < 500, f"a caller's mistake got a {status}: {body}"
    assert status == want_status, body
    openapi(body, "ErrorResponse")
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["type"] == "invalid_request_error", error
    assert error["message"], error
    assert error["param"] == param, error
    assert error["code"] == code, error


@pytest.mark.parametrize(("path", "body", "status", "param", "code"),
                         [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_malformed_request_gets_openai_error(raw, openapi, path, body, status, param, code):
    assert_error(*raw(path, body), openapi, status, param, code)


def test_vocab_constant_is_the_models(lm):
    assert lm.model.config.vocab_size == VOCAB


# ---------------------------------------------------------------- through the official SDK


SDK_CASES = [
    ("temperature-above-2", lambda c: c.chat.completions.create(**chat(temperature=2.5)),
     openai.BadRequestError, "temperature", "invalid_value"),
    ("unknown-parameter", lambda c: c.chat.completions.create(**chat(), extra_body={"foo": 1}),
     openai.BadRequestError, "foo", None),
    ("tool_choice-unknown-function", lambda c: c.chat.completions.create(**chat(
        tools=[TOOL], tool_choice={"type": "function", "function": {"name": "get_time"}})),
     openai.BadRequestError, "tool_choice", "invalid_value"),
    ("suffix-streamed-without-fim", lambda c: c.completions.create(**completion(suffix="The end.", stream=True)),
     openai.BadRequestError, "stream", None),
    ("prompt-over-window", lambda c: c.completions.create(**completion(prompt=LONG, max_tokens=8000)),
     openai.BadRequestError, "prompt", "context_length_exceeded"),
    ("model-unknown", lambda c: c.chat.completions.create(**chat(model="gpt-9")),
     openai.NotFoundError, "model", "model_not_found"),
]


@pytest.mark.parametrize(("call", "error", "param", "code"), [pytest.param(*c[1:], id=c[0]) for c in SDK_CASES])
def test_sdk_raises_typed_error(client, call, error, param, code):
    with pytest.raises(error) as caught:
        call(client)
    e = caught.value
    assert e.status_code == (404 if error is openai.NotFoundError else 400)
    assert e.body["type"] == "invalid_request_error"
    assert e.body["param"] == param
    assert e.body["code"] == code


def test_sdk_retired_model_names_its_replacement(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.completions.create(model="text-davinci-003", prompt="Hello")
    assert caught.value.status_code == 404
    assert caught.value.body["code"] == "model_not_found"
    assert "gpt-3.5-turbo-instruct" in caught.value.body["message"]


# ---------------------------------------------------------------- the server survives


def test_server_keeps_serving_after_malformed_requests(raw, client):
    answers = {name: raw(path, body)[0] for name, path, body, *_ in CASES}
    wrong = {name: (answers[name], status) for name, _, _, status, *_ in CASES if answers[name] != status}
    assert not wrong, f"(got, expected) status: {wrong}"

    reply = client.chat.completions.create(**chat(temperature=0, max_tokens=5))
    assert reply.choices[0].message.content.strip()
    done = client.completions.create(**completion(prompt="The capital of France is", temperature=0, max_tokens=5))
    assert done.choices[0].text.strip()


# ---------------------------------------------------------------- API keys, on a real `labkit serve`


def get(url: str, key: str | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory):
    """`labkit serve --api-key k1 --api-key k2` in a subprocess (it inherits LABKIT_HOME); yields its base URL."""
    folder = tmp_path_factory.mktemp("serve")
    with labkit_serve(["--api-key", "k1", "--api-key", "k2", "--data-dir", str(folder / "store")],
                      folder / "serve.log") as (_, base_url):
        yield base_url


def test_no_key_is_refused(keyed_server, openapi):
    status, body = get(keyed_server + "/models")
    assert status == 401
    openapi(body, "ErrorResponse")
    assert body["error"]["code"] == "invalid_api_key"


def test_wrong_key_is_refused(keyed_server, openapi):
    status, body = get(keyed_server + "/models", key="k3")
    assert status == 401
    openapi(body, "ErrorResponse")
    assert body["error"]["code"] == "invalid_api_key"
    sdk = openai.OpenAI(base_url=keyed_server, api_key="k1k2", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk.models.list()
    assert caught.value.status_code == 401


@pytest.mark.parametrize("key", ["k1", "k2"])
def test_each_key_lists_models(keyed_server, key):
    status, body = get(keyed_server + "/models", key=key)
    assert status == 200
    assert body["data"][0]["id"] == MODEL


def test_second_key_gets_a_chat_completion(keyed_server):
    sdk = openai.OpenAI(base_url=keyed_server, api_key="k2", max_retries=0, timeout=60)
    reply = sdk.chat.completions.create(**chat(temperature=0, max_tokens=5))
    assert reply.choices[0].message.content.strip()
