"""Structured outputs and tools on chat completions, through the official SDK, every body checked against
OpenAI's schemas: the grammar holds on every seed, calls name declared functions with valid arguments,
and the constraint composes with n, seed, logprobs, streaming and the batched engine loop."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import pytest
from pydantic import BaseModel

from tests.conftest import MODEL


class Person(BaseModel):
    name: str
    age: int


PERSON = [{"role": "user", "content": "Invent a person: give a name and an age."}]
CITY = {"type": "object", "additionalProperties": False, "required": ["city", "country", "population", "tags"],
        "properties": {"city": {"type": "string", "maxLength": 20},
                       "country": {"enum": ["France", "Japan", "Peru"]},
                       "population": {"type": "integer", "minimum": 1, "maximum": 40_000_000},
                       "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]{1,8}$"},
                                "maxItems": 2}}}
CITY_FORMAT = {"type": "json_schema", "json_schema": {"name": "city", "schema": CITY, "strict": True}}
ADD = {"type": "function", "function": {
    "name": "add", "description": "Add two numbers", "strict": True,
    "parameters": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                   "required": ["a", "b"], "additionalProperties": False}}}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city", "strict": True,
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
                   "required": ["city"], "additionalProperties": False}}}
SUM = [{"role": "user", "content": "What is 12.5 plus 30?"}]


@pytest.fixture()
def sdk(server, spec_client):
    return spec_client(server.base_url)


def test_parse_returns_parsed_on_every_one_of_20_seeds(sdk):
    def ask(seed: int):
        return sdk.chat.completions.parse(model=MODEL, messages=PERSON, response_format=Person, seed=seed,
                                          temperature=1.0, max_completion_tokens=40)

    with ThreadPoolExecutor(20) as pool:  # the engine loop decodes them together
        answers = list(pool.map(ask, range(20)))
    for seed, r in enumerate(answers):
        choice = r.choices[0]
        assert choice.finish_reason == "stop", (seed, choice.message.content)
        assert isinstance(choice.message.parsed, Person), (seed, choice.message.content)
    assert len({r.choices[0].message.content for r in answers}) > 1, "20 seeds at temperature 1 drew one answer"


def test_strict_json_schema_outputs_all_validate(sdk):
    r = sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Describe a city."}],
                                    response_format=CITY_FORMAT, n=12, seed=7, max_completion_tokens=60)
    for choice in r.choices:
        assert choice.finish_reason == "stop", choice.message.content
        jsonschema.validate(json.loads(choice.message.content), CITY)


def test_json_object_gives_objects(sdk):
    r = sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Reply in JSON: a colour."}],
                                    response_format={"type": "json_object"}, n=4, seed=2, max_completion_tokens=60)
    finished = [c.message.content for c in r.choices if c.finish_reason == "stop"]
    assert len(finished) >= 2, [c.message.content for c in r.choices]  # the others ran out of tokens mid-string
    assert all(isinstance(json.loads(text), dict) for text in finished)


def test_the_same_seed_gives_the_same_json_alone_streamed_and_under_load(sdk):
    ask = dict(model=MODEL, messages=PERSON, response_format={"type": "json_schema", "json_schema": {
        "name": "person", "schema": Person.model_json_schema()}}, seed=11, max_completion_tokens=40)
    alone = sdk.chat.completions.create(**ask).choices[0].message.content
    streamed = "".join(c.choices[0].delta.content or "" for c in sdk.chat.completions.create(**ask, stream=True)
                       if c.choices)
    with ThreadPoolExecutor(6) as pool:
        loaded = list(pool.map(lambda seed: sdk.chat.completions.create(**{**ask, "seed": seed}), [11, 1, 2, 3, 4, 5]))
    assert streamed == alone
    assert loaded[0].choices[0].message.content == alone


def test_logprobs_are_those_of_the_constrained_distribution(sdk):
    r = sdk.chat.completions.parse(model=MODEL, messages=PERSON, response_format=Person, seed=3,
                                   logprobs=True, top_logprobs=5, max_completion_tokens=30)
    content = r.choices[0].logprobs.content
    assert "".join(t.token for t in content) == r.choices[0].message.content
    # the schema allows only '{' or a token that starts with it first: no other token is an alternative
    assert content[0].top_logprobs and all(t.token.startswith("{") for t in content[0].top_logprobs)
    assert sum(math.exp(t.logprob) for t in content[0].top_logprobs) > 0.99  # they share all the probability


def test_forced_call_parses_and_names_the_declared_function(sdk):
    r = sdk.chat.completions.create(model=MODEL, messages=SUM, tools=[ADD, WEATHER], seed=3,
                                    tool_choice={"type": "function", "function": {"name": "add"}},
                                    max_completion_tokens=40)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.function.name == "add" and call.id.startswith("call_")
    jsonschema.validate(json.loads(call.function.arguments), ADD["function"]["parameters"])


def test_required_calls_name_declared_functions_on_every_seed(sdk):
    def ask(seed):
        return sdk.chat.completions.create(model=MODEL, messages=SUM, tools=[ADD, WEATHER], tool_choice="required",
                                           parallel_tool_calls=False, seed=seed, max_completion_tokens=40)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(8)))
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in (ADD, WEATHER)}
    for r in answers:
        (call,) = r.choices[0].message.tool_calls
        jsonschema.validate(json.loads(call.function.arguments), schemas[call.function.name])


def test_tool_choice_none_never_calls(sdk):
    r = sdk.chat.completions.create(model=MODEL, messages=SUM, tools=[ADD], tool_choice="none", seed=1, n=4,
                                    max_completion_tokens=20)
    assert all(c.message.tool_calls is None and not c.message.content.lstrip().startswith("<tool_call>")
               for c in r.choices)


def test_streamed_call_arrives_in_openai_chunks(server, raw_stream, openapi):
    body = dict(model=MODEL, messages=SUM, tools=[ADD], tool_choice="required", parallel_tool_calls=False, seed=3,
                max_completion_tokens=40, stream=True)
    chunks = raw_stream("/chat/completions", body)
    for chunk in chunks:
        openapi(chunk, "CreateChatCompletionStreamResponse")
    calls = [tc for c in chunks for ch in c["choices"] for tc in ch["delta"].get("tool_calls") or []]
    assert [tc["function"]["name"] for tc in calls] == ["add"] and calls[0]["index"] == 0
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert not any(ch["delta"].get("content") for c in chunks[1:] for ch in c["choices"])


def test_a_tool_result_goes_back_into_the_conversation(sdk):
    first = sdk.chat.completions.create(model=MODEL, messages=SUM, tools=[ADD], tool_choice="required",
                                        parallel_tool_calls=False, seed=3, max_completion_tokens=40)
    call = first.choices[0].message.tool_calls[0]
    history = [*SUM, first.choices[0].message.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": call.id, "content": "42.5"}]
    r = sdk.chat.completions.create(model=MODEL, messages=history, tools=[ADD], tool_choice="none", seed=3,
                                    max_completion_tokens=12)
    assert r.choices[0].message.content and r.choices[0].message.tool_calls is None
