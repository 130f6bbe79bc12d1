"""/v1/responses through the official SDK: create, store, previous_response_id, retrieve, delete, input items,
streaming, logprobs, tools and text.format; every body (spec_client) and stream event validated against OpenAI's
OpenAPI schemas; malformed requests get OpenAI's error object with the right 4xx and never break the server.

max_output_tokens is 16 (OpenAI's minimum) and temperature 0 wherever text is compared: each answer is a
second or so on a small CPU."""

from __future__ import annotations

import json
import urllib.request
from typing import Literal

import httpx
import jsonschema
import openai
import pydantic
import pytest

from labkit.server import LocalServer, create_app
from labkit.server.keys import Key
from labkit.server.response_store import ResponseStore
from labkit.server.responses import EventStream, Prepared
from tests.conftest import MODEL
from tests.test_server_errors import assert_error

QUESTION = "Name three colours."
BRIEF = "Answer briefly."
SHORT = {"max_output_tokens": 16, "temperature": 0}
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather now in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                          "additionalProperties": False}, "strict": True}
COLOUR = {"type": "object", "properties": {"name": {"type": "string", "enum": ["red", "green", "blue"]},
                                           "warm": {"type": "boolean"}},
          "required": ["name", "warm"], "additionalProperties": False}
EVENT_SCHEMAS = {
    "response.created": "ResponseCreatedEvent",
    "response.in_progress": "ResponseInProgressEvent",
    "response.output_item.added": "ResponseOutputItemAddedEvent",
    "response.content_part.added": "ResponseContentPartAddedEvent",
    "response.output_text.delta": "ResponseTextDeltaEvent",
    "response.output_text.done": "ResponseTextDoneEvent",
    "response.content_part.done": "ResponseContentPartDoneEvent",
    "response.function_call_arguments.delta": "ResponseFunctionCallArgumentsDeltaEvent",
    "response.function_call_arguments.done": "ResponseFunctionCallArgumentsDoneEvent",
    "response.output_item.done": "ResponseOutputItemDoneEvent",
    "response.completed": "ResponseCompletedEvent",
    "response.incomplete": "ResponseIncompleteEvent",
    "response.failed": "ResponseFailedEvent",
    "error": "ResponseErrorEvent",
}


@pytest.fixture()
def sdk(server, spec_client) -> openai.OpenAI:
    """The SDK against the session's server, every JSON body it receives validated against OpenAI's schema."""
    return spec_client(server.base_url)


def stream_events(server, openapi, body: dict) -> list[dict]:
    """POST a streaming request; its events, each checked: `event:` names the data's type, the data validates
    against that event's schema, and sequence numbers count from 0."""
    req = urllib.request.Request(server.base_url + "/responses", data=json.dumps({"model": MODEL, **body}).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        blocks = [b for b in r.read().decode().split("\n\n") if b.strip()]
    events = []
    for block in blocks:
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        data = json.loads(fields["data"])
        assert fields["event"] == data["type"]
        openapi(data, EVENT_SCHEMAS[data["type"]])
        events.append(data)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def text_events(events: list[dict]) -> list[str]:
    """The event types with runs of deltas shown once."""
    types = [e["type"] for e in events]
    return [t for i, t in enumerate(types) if not (t.endswith(".delta") and i and types[i - 1] == t)]


# ---------------------------------------------------------------- create


def test_create_answers_as_chat_does(sdk, client):
    r = sdk.responses.create(model=MODEL, input=QUESTION, instructions=BRIEF, **SHORT)
    chat = client.chat.completions.create(model=MODEL, messages=[{"role": "developer", "content": BRIEF},
                                                                 {"role": "user", "content": QUESTION}],
                                          max_completion_tokens=16, temperature=0)
    assert r.output_text == chat.choices[0].message.content and r.output_text
    assert (r.usage.input_tokens, r.usage.output_tokens) == (chat.usage.prompt_tokens, chat.usage.completion_tokens)
    assert r.usage.total_tokens == chat.usage.total_tokens
    assert r.id.startswith("resp_") and r.object == "response" and r.model == MODEL
    [message] = r.output
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    finished = chat.choices[0].finish_reason == "stop"
    assert r.status == ("completed" if finished else "incomplete")
    assert r.incomplete_details is None if finished else r.incomplete_details.reason == "max_output_tokens"
    assert (r.instructions, r.max_output_tokens, r.temperature, r.store) == (BRIEF, 16, 0, True)


# ---------------------------------------------------------------- store, chain, retrieve, delete


def test_chain_retrieve_input_items_and_delete(sdk, lm):
    first = sdk.responses.create(model=MODEL, input=[{"role": "user", "content": [
        {"type": "input_text", "text": QUESTION}]}], instructions=BRIEF, metadata={"lesson": "07"}, **SHORT)
    assert sdk.responses.retrieve(first.id).model_dump() == first.model_dump()
    assert first.metadata == {"lesson": "07"}

    second = sdk.responses.create(model=MODEL, input="Now one more.", previous_response_id=first.id, **SHORT)
    assert second.previous_response_id == first.id and second.instructions is None  # instructions do not carry
    conversation = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": first.output_text},
                    {"role": "user", "content": "Now one more."}]
    rendered = lm.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True)
    rendered = rendered["input_ids"] if hasattr(rendered, "keys") else rendered
    assert second.usage.input_tokens == len(rendered), "the model read the whole conversation"

    newest_first = sdk.responses.input_items.list(second.id)
    assert [i.type for i in newest_first.data] == ["message"] * 3
    assert [i.role for i in newest_first.data] == ["user", "assistant", "user"]
    assert newest_first.data[1].id == first.output[0].id and newest_first.data[0].content[0].text == "Now one more."
    assert not newest_first.has_more
    ids = [i.id for i in newest_first.data]
    oldest = sdk.responses.input_items.list(second.id, order="asc", limit=2)
    assert [i.id for i in oldest.data] == ids[::-1][:2] and oldest.has_more and oldest.last_id == ids[1]
    rest = sdk.responses.input_items.list(second.id, order="asc", after=oldest.last_id)
    assert [i.id for i in rest.data] == [ids[0]] and not rest.has_more

    assert sdk.responses.delete(first.id) is None  # the SDK returns nothing; the wire body is checked below
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(first.id)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.responses.create(model=MODEL, input="Again?", previous_response_id=first.id, **SHORT)
    assert caught.value.body["code"] == "previous_response_not_found"
    assert sdk.responses.retrieve(second.id).id == second.id, "a response outlives the one it continued"


def test_delete_body_and_unstored_response(sdk, raw, server):
    unstored = sdk.responses.create(model=MODEL, input="Write a long story about a dragon.", store=False, **SHORT)
    assert unstored.store is False
    assert unstored.status == "incomplete" and unstored.incomplete_details.reason == "max_output_tokens"
    assert unstored.output[0].status == "incomplete" and unstored.usage.output_tokens == 16
    assert unstored.completed_at is None
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.responses.retrieve(unstored.id)
    assert caught.value.body["param"] == "response_id"
    kept = sdk.responses.create(model=MODEL, input=QUESTION, **SHORT)
    request = urllib.request.Request(f"{server.base_url}/responses/{kept.id}", method="DELETE")
    with urllib.request.urlopen(request, timeout=30) as r:
        assert json.loads(r.read()) == {"id": kept.id, "object": "response", "deleted": True}


# ---------------------------------------------------------------- streaming and logprobs


def test_stream_events_and_logprobs(server, openapi, sdk):
    body = {"input": QUESTION, "instructions": BRIEF, "include": ["message.output_text.logprobs"], "top_logprobs": 2,
            **SHORT}
    events = stream_events(server, openapi, {**body, "stream": True})
    last = events[-1]["type"]
    assert text_events(events) == ["response.created", "response.in_progress", "response.output_item.added",
                                   "response.content_part.added", "response.output_text.delta",
                                   "response.output_text.done", "response.content_part.done",
                                   "response.output_item.done", last]
    assert last in ("response.completed", "response.incomplete")
    final = events[-1]["response"]
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    done = next(e for e in events if e["type"] == "response.output_text.done")
    assert text == done["text"] == final["output"][0]["content"][0]["text"]
    assert final["output"][0]["id"] == events[2]["item"]["id"] == done["item_id"]
    logprobs = done["logprobs"]
    assert "".join(t["token"] for t in logprobs) == text
    assert logprobs == [t for e in events if e["type"] == "response.output_text.delta" for t in e["logprobs"]]
    assert all(len(t["top_logprobs"]) == 2 and t["top_logprobs"][0]["token"] == t["token"] for t in logprobs)

    assert sdk.responses.retrieve(final["id"]).model_dump(mode="json", exclude_none=True)["output"] == final["output"]
    whole = sdk.responses.create(model=MODEL, store=False, **body)
    assert whole.output_text == text
    assert [t.model_dump() for t in whole.output[0].content[0].logprobs] == logprobs


def test_an_engine_failure_mid_stream_ends_it_with_failed(openapi, tmp_path):
    """No model needed: a run whose chunks break after the first delta."""
    class Broken:
        def chunks(self):
            yield {"choices": [{"index": 0, "delta": {"content": "Red"}, "logprobs": None, "finish_reason": None}]}
            raise RuntimeError("the engine loop stopped")

    prep = Prepared({"model": MODEL, "input": QUESTION}, ResponseStore(tmp_path))
    events = [json.loads(e.split("data: ", 1)[1]) for e in EventStream(prep, Broken()).events()]
    for event in events:
        openapi(event, EVENT_SCHEMAS[event["type"]])
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    assert events[-1]["response"]["status"] == "failed" and events[-1]["response"]["error"]["code"] == "server_error"


# ---------------------------------------------------------------- tools and text.format


def test_tool_call_and_its_output(sdk, server, openapi):
    loose = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}}}}  # strict left out: the Responses API makes the schema strict
    ask = {"input": "What is the weather in Paris?", "tools": [loose], "tool_choice": "required",
           "parallel_tool_calls": False, "max_output_tokens": 32, "temperature": 0, "stream": True}
    events = stream_events(server, openapi, ask)
    assert text_events(events) == ["response.created", "response.in_progress", "response.output_item.added",
                                   "response.function_call_arguments.delta", "response.function_call_arguments.done",
                                   "response.output_item.done", "response.completed"]
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    r = sdk.responses.retrieve(events[-1]["response"]["id"])  # stored, and validated as a whole Response
    [call] = r.output
    assert call.type == "function_call" and call.name == done["name"] == "get_weather" and call.call_id
    assert call.arguments == done["arguments"] and isinstance(json.loads(call.arguments)["city"], str)
    assert r.status == "completed" and r.tool_choice == "required"
    assert r.tools[0].strict is True and r.tools[0].parameters == WEATHER["parameters"]

    answer = sdk.responses.create(model=MODEL, previous_response_id=r.id, tools=[WEATHER], tool_choice="none",
                                  input=[{"type": "function_call_output", "call_id": call.call_id,
                                          "output": "18 C and sunny"}], **SHORT)
    assert [item.type for item in answer.output] == ["message"] and answer.output_text
    assert answer.usage.input_tokens > r.usage.input_tokens + r.usage.output_tokens, "it read the call and output"


class Colour(pydantic.BaseModel):
    name: Literal["red", "green", "blue"]
    warm: bool


def test_text_format_json_schema_through_parse(sdk):
    r = sdk.responses.parse(model=MODEL, input="Pick a colour.", text_format=Colour, max_output_tokens=32,
                            temperature=0)
    assert isinstance(r.output_parsed, Colour), r.output_text
    jsonschema.validate(json.loads(r.output_text), r.text.format.schema_)
    assert r.text.format.type == "json_schema" and r.text.format.strict is True


# ---------------------------------------------------------------- malformed requests

PATH = "/responses"


def body(**kw) -> dict:
    return {"model": MODEL, "input": QUESTION, **kw}


def call_then(*items) -> list:
    return [{"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"}, *items]


IMAGE = {"type": "input_image", "image_url": "https://example.com/cat.png"}
CASES = [
    ("previous_response_id-unknown", body(previous_response_id="resp_nope"), 400, "previous_response_id",
     "previous_response_not_found"),
    ("built-in-web_search", body(tools=[{"type": "web_search"}]), 400, "tools", "unsupported_parameter"),
    ("built-in-file_search", body(tools=[WEATHER, {"type": "file_search", "vector_store_ids": ["vs_1"]}]), 400,
     "tools", "unsupported_parameter"),
    ("image-input", body(input=[{"role": "user", "content": [{"type": "input_text", "text": "What is it?"}, IMAGE]}]),
     400, "input[0].content[1]", "unsupported_parameter"),
    ("file-input", body(input=[{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]), 400,
     "input[0].content[0]", "unsupported_parameter"),
    ("reasoning", body(reasoning={"effort": "low"}), 400, "reasoning", "unsupported_parameter"),
    ("background", body(background=True), 400, "background", "unsupported_parameter"),
    ("conversation", body(conversation="conv_1"), 400, "conversation", "unsupported_parameter"),
    ("prompt-template", body(prompt={"id": "pmpt_1"}), 400, "prompt", "unsupported_parameter"),
    ("truncation-auto", body(truncation="auto"), 400, "truncation", "unsupported_parameter"),
    ("max_tool_calls", body(max_tool_calls=2), 400, "max_tool_calls", "unsupported_parameter"),
    ("service_tier-flex", body(service_tier="flex"), 400, "service_tier", "unsupported_parameter"),
    ("include-file-search-results", body(include=["file_search_call.results"]), 400, "include",
     "unsupported_parameter"),
    ("text-verbosity", body(text={"verbosity": "low"}), 400, "text.verbosity", "unsupported_parameter"),
    ("item-type-unknown", body(input=[{"type": "shout", "text": "hi"}]), 400, "input[0].type", "invalid_value"),
    ("item-reasoning", body(input=[{"type": "reasoning", "id": "rs_1", "summary": []}]), 400, "input[0].type",
     "unsupported_parameter"),
    ("item-not-object", body(input=["hello"]), 400, "input[0]", "invalid_type"),
    ("output_text-in-user-message", body(input=[{"role": "user", "content": [{"type": "output_text", "text": "x"}]}]),
     400, "input[0].content[0].type", "invalid_value"),
    ("role-unknown", body(input=[{"role": "wizard", "content": "hi"}]), 400, "input[0].role", "invalid_value"),
    ("function_call_output-unknown-call_id", body(input=[{"type": "function_call_output", "call_id": "call_9",
                                                          "output": "18 C"}]), 400, "input[0].call_id",
     "invalid_tool_call_id"),
    ("function_call-unanswered", body(input=call_then({"role": "user", "content": "And?"})), 400, "input",
     "invalid_tool_call_id"),
    ("function_call-answered-twice", body(input=call_then(
        *[{"type": "function_call_output", "call_id": "call_1", "output": "x"}] * 2)), 400, "input[2].call_id",
     "invalid_tool_call_id"),
    ("json_schema-without-schema", body(text={"format": {"type": "json_schema", "name": "c"}}), 400,
     "text.format.schema", "missing_required_parameter"),
    ("json_schema-bad-name", body(text={"format": {"type": "json_schema", "name": "a colour", "schema": COLOUR}}),
     400, "text.format.name", "invalid_value"),
    ("format-type-unknown", body(text={"format": {"type": "yaml"}}), 400, "text.format.type", "invalid_value"),
    ("tool-name-invalid", body(tools=[{**WEATHER, "name": "get weather"}]), 400, "tools[0].name", "invalid_value"),
    ("tool-in-chat-shape", body(tools=[{"type": "function", "function": {"name": "f"}}]), 400, "tools[0].function",
     None),
    ("tool_choice-unknown-function", body(tools=[WEATHER], tool_choice={"type": "function", "name": "fly"}), 400,
     "tool_choice", "invalid_value"),
    ("tool_choice-required-without-tools", body(tool_choice="required"), 400, "tool_choice", None),
    ("tool_choice-built-in", body(tools=[WEATHER], tool_choice={"type": "web_search_preview"}), 400, "tool_choice",
     "unsupported_parameter"),
    ("top_logprobs-without-include", body(top_logprobs=2), 400, "top_logprobs", None),
    ("max_output_tokens-below-16", body(max_output_tokens=8), 400, "max_output_tokens", "invalid_value"),
    ("temperature-string", body(temperature="hot"), 400, "temperature", "invalid_type"),
    ("input-missing", {"model": MODEL}, 400, "input", "missing_required_parameter"),
    ("input-empty", body(input=[]), 400, "input", "empty_array"),
    ("unknown-field-seed", body(seed=1), 400, "seed", None),
    ("stream_options-without-stream", body(stream_options={"include_obfuscation": False}), 400, "stream_options",
     None),
    ("model-unknown", body(model="gpt-9"), 404, "model", "model_not_found"),
    ("input-over-window", body(max_output_tokens=8192), 400, "input", "context_length_exceeded"),
    ("body-not-json", b'{"model": "smollm2-135m-instruct", "input": ', 400, None, None),
]


@pytest.mark.parametrize(("body", "status", "param", "code"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_malformed_request_gets_openai_error(raw, openapi, body, status, param, code):
    assert_error(*raw(PATH, body), openapi, status, param, code)


def test_invalid_schemas_are_refused_by_name(raw, openapi):
    bad = {"type": "object", "properties": {"name": {"type": "colour"}}, "required": ["name"],
           "additionalProperties": False}
    fmt = {"type": "json_schema", "name": "c", "schema": bad, "strict": True}
    status, error = raw(PATH, body(text={"format": fmt}))
    assert status == 400 and error["error"]["param"].startswith("text.format"), error
    openapi(error, "ErrorResponse")
    loose = {**WEATHER, "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
    status, error = raw(PATH, body(tools=[loose]))  # strict but not closed: OpenAI's rules refuse it
    assert status == 400 and error["error"]["param"] == "tools[0].parameters", error


def test_unknown_ids_are_404s(sdk):
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve("resp_nope")
    with pytest.raises(openai.NotFoundError):
        sdk.responses.delete("resp_nope")
    with pytest.raises(openai.NotFoundError):
        sdk.responses.input_items.list("resp_nope")


def test_server_keeps_serving_after_malformed_requests(raw, sdk):
    answers = {name: raw(PATH, b)[0] for name, b, *_ in CASES}
    wrong = {name: (answers[name], status) for name, _, status, *_ in CASES if answers[name] != status}
    assert not wrong, f"(got, expected) status: {wrong}"
    assert sdk.responses.create(model=MODEL, input=QUESTION, store=False, **SHORT).output_text


# ---------------------------------------------------------------- keys: Responses are charged like chat


def test_keys_charge_responses_whole_and_streamed(lm, tmp_path):
    """Also the SDK's own stream helper (responses.stream), through a key."""
    keys = [Key("sk-student", "ada", None, None, False), Key("sk-teacher", "teacher", None, None, True)]
    with LocalServer(create_app([MODEL], keys=keys, data_dir=tmp_path)) as srv:
        ada = openai.OpenAI(base_url=srv.base_url, api_key="sk-student", max_retries=0)
        whole = ada.responses.create(model=MODEL, input=QUESTION, store=False, **SHORT).usage
        with ada.responses.stream(model=MODEL, input=QUESTION, instructions=BRIEF, store=False, **SHORT) as stream:
            deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
            final = stream.get_final_response()  # needs response.completed: the brief answer fits in 16 tokens
        assert "".join(deltas) == final.output_text and final.status == "completed"
        streamed = final.usage
        report = httpx.get(srv.base_url.removesuffix("/v1") + "/labkit/usage", timeout=30,
                           headers={"Authorization": "Bearer sk-teacher"}).json()
    row = {r["name"]: r for r in report["data"]}["ada"]
    assert row["requests"] == 2
    assert row["prompt_tokens"] == whole.input_tokens + streamed.input_tokens
    assert row["completion_tokens"] == whole.output_tokens + streamed.output_tokens
