"""Checks for lesson 07's exercises (structured outputs, tools, Responses): a schema made strict, a tool
defined for Chat Completions, a chat request rewritten for the Responses API, and a tool result sent back. Each
check runs labkit's own server-side validation (what the local server would answer with a 400), no model call."""

from __future__ import annotations

import copy
from typing import Any

from labkit.errors import InvalidRequestError
from labkit.exercises import answered, expect, passed
from labkit.server.errors import APIError
from labkit.server.responses import Prepared
from labkit.server.schemas import ChatRequest, FunctionTool
from labkit.server.structured import _check_strict

# Exercise 1's schema: fine for plain JSON Schema, refused by strict mode
LOOSE_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"},
                   "location": {"type": "object", "properties": {"lat": {"type": "number"},
                                                                 "lon": {"type": "number"}}}},
    "required": ["city"],
}

# Exercise 3's Chat Completions request
CHAT_REQUEST = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "system", "content": "Reply only with JSON."},
                 {"role": "user", "content": "What is the capital of Morocco?"}],
    "max_completion_tokens": 50,
    "response_format": {"type": "json_schema", "json_schema": {
        "name": "answer", "strict": True,
        "schema": {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
                   "additionalProperties": False}}},
}


def _strict_error(schema: dict, what: str, param: str) -> str | None:
    try:
        _check_strict(schema, what, param)
    except (APIError, InvalidRequestError) as e:
        return e.message
    return None


def _types(schema: dict) -> Any:
    """The shape a schema describes, keys and types, nested objects included."""
    if not isinstance(schema, dict):
        return None
    if "properties" in schema:
        return {k: _types(v) for k, v in schema["properties"].items()}
    return schema.get("type")


def check_1(answer) -> None:
    """LOOSE_SCHEMA rewritten to meet OpenAI's strict-mode rules, describing the same keys and types."""
    if not answered("Exercise 1", answer, "write a strict version of lesson07.LOOSE_SCHEMA"):
        return
    expect(isinstance(answer, dict), "Exercise 1", "the answer is a JSON Schema: a dict.")
    expect(_types(answer) == _types(LOOSE_SCHEMA), "Exercise 1",
           "keep the same keys and types, the nested location object included: strict mode changes which keys "
           "are required and whether others may appear, not what each key holds.")
    refused = _strict_error(answer, "Invalid schema for response_format 'city'", "response_format")
    expect(refused is None, "Exercise 1",
           f"the server answers 400: {refused} Strict mode wants every object, nested ones too, to list all its "
           "properties in `required` and to set `additionalProperties` to false. (An optional key becomes "
           "required with a type that allows null, e.g. [\"integer\", \"null\"].)")
    passed("Exercise 1", "every object lists all its keys as required and allows no others, so each reply has "
                         "exactly this shape and the grammar can enforce it token by token.")


def check_2(answer) -> None:
    """A Chat Completions tool `get_weather(city: string, unit: "celsius" | "fahrenheit")`, strict."""
    if not answered("Exercise 2", answer, "define the get_weather tool as Chat Completions' `tools` takes it"):
        return
    expect(isinstance(answer, dict), "Exercise 2", "the answer is one tool: a dict.")
    expect("function" in answer or "name" not in answer, "Exercise 2",
           "that is the Responses API's flat tool. Chat Completions nests the definition: "
           "{\"type\": \"function\", \"function\": {\"name\": ..., \"parameters\": ...}}.")
    try:
        tool = FunctionTool.model_validate(answer)
    except ValueError as e:
        expect(False, "Exercise 2", f"not a Chat Completions tool ({str(e).splitlines()[0]}). Compare with "
                                    "`chat_tools` in section 3.")
    f = tool.function
    expect(f.name == "get_weather", "Exercise 2", "name the function get_weather.")
    expect(f.strict is True, "Exercise 2", "set \"strict\": true, so the arguments are enforced like a schema.")
    params = f.parameters or {}
    props = params.get("properties", {})
    expect(set(props) == {"city", "unit"}, "Exercise 2", "the parameters are `city` and `unit`, nothing else.")
    expect(props["city"].get("type") == "string", "Exercise 2", "city is a string.")
    expect(set(props["unit"].get("enum", [])) == {"celsius", "fahrenheit"}, "Exercise 2",
           "unit is one of two values: use \"enum\": [\"celsius\", \"fahrenheit\"], as the calculator's `op` does.")
    refused = _strict_error(params, "Invalid schema for function 'get_weather'", "tools[0].function.parameters")
    expect(refused is None, "Exercise 2", f"the server answers 400: {refused}")
    passed("Exercise 2", "with strict on, a call's arguments always parse and name a unit the code knows.")


def _chat_of(body: dict) -> dict:
    """What labkit's /v1/responses turns the request into, system/developer treated alike (as OpenAI does)."""
    chat = Prepared(copy.deepcopy(body), store=None).chat.model_dump(exclude_none=True, by_alias=True)
    for m in chat["messages"]:
        if m["role"] == "developer":
            m["role"] = "system"
    return chat


def check_3(answer) -> None:
    """CHAT_REQUEST rewritten as the body of a Responses API request (the keyword arguments of
    client.responses.create)."""
    if not answered("Exercise 3", answer, "rewrite lesson07.CHAT_REQUEST for client.responses.create"):
        return
    expect(isinstance(answer, dict), "Exercise 3", "the answer is the request's keyword arguments: a dict.")
    for chat_name, responses_name in (("messages", "input"), ("max_completion_tokens", "max_output_tokens"),
                                      ("response_format", "text")):
        expect(chat_name not in answer, "Exercise 3",
               f"`{chat_name}` is a Chat Completions parameter; section 4's table gives its Responses name "
               f"(`{responses_name}`).")
    try:
        got = _chat_of(answer)
    except (APIError, InvalidRequestError) as e:
        expect(False, "Exercise 3", f"the server answers 400: {e.message} (param {e.param!r}).")
    except ValueError as e:
        expect(False, "Exercise 3", f"not a valid Responses request: {str(e).splitlines()[0]}")
    want = ChatRequest.model_validate(CHAT_REQUEST).model_dump(exclude_none=True, by_alias=True)
    expect(got["messages"] == want["messages"], "Exercise 3",
           "the model must read the same conversation: the system message goes in `instructions`, the user's "
           "question in `input`.")
    expect(got.get("max_completion_tokens") == want["max_completion_tokens"], "Exercise 3",
           "keep the same token limit, under its Responses name.")
    expect(got.get("response_format") == want["response_format"], "Exercise 3",
           "the schema goes in text={\"format\": {...}}, flat: type, name, schema and strict side by side.")
    passed("Exercise 3", "labkit's /v1/responses turns your request back into exactly CHAT_REQUEST.")


def check_4(answer, call_id: str, result: Any) -> None:
    """The Chat Completions message that returns a tool's result for the call with id `call_id`."""
    if not answered("Exercise 4", answer, "write the message that sends `result` back for the call `call_id`"):
        return
    expect(isinstance(answer, dict), "Exercise 4", "the answer is one message: a dict.")
    expect(answer.get("role") == "tool", "Exercise 4",
           "a tool's result goes back in a message of its own, with role \"tool\" (not user, not assistant).")
    expect(answer.get("tool_call_id") == call_id, "Exercise 4",
           "the message names the call it answers: tool_call_id is the id of the tool call the model made.")
    expect(answer.get("content") == str(result), "Exercise 4",
           "content is text: send str(result), the function's return value as a string.")
    passed("Exercise 4", "the model pairs the result with its call by id, so it can make several calls in one turn.")
