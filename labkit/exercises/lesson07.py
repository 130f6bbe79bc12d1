"""Checks for lesson 07's exercises (structured outputs, tools, Responses): a schema made strict, a tool
defined for Chat Completions, a chat request rewritten for the Responses API, and a tool result sent back. Each
check runs labkit's own server-side validation (what the local server would answer with a 400), no model call."""

from __future__ import annotations

import copy
from typing import Any

from labkit.errors import InvalidRequestError
from labkit.exercises import answered, expect, passed
from labkit.i18n import _
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
    exercise = _("Exercise 1")
    if not answered(exercise, answer, _("write a strict version of lesson07.LOOSE_SCHEMA")):
        return
    expect(isinstance(answer, dict), exercise, _("the answer is a JSON Schema: a dict."))
    expect(_types(answer) == _types(LOOSE_SCHEMA), exercise,
           _("keep the same keys and types, the nested location object included: strict mode changes which keys "
             "are required and whether others may appear, not what each key holds."))
    refused = _strict_error(answer, "Invalid schema for response_format 'city'", "response_format")
    expect(refused is None, exercise,
           _("the server answers 400: {refused} Strict mode wants every object, nested ones too, to list all its "
             "properties in `required` and to set `additionalProperties` to false. (An optional key becomes "
             "required with a type that allows null, e.g. [\"integer\", \"null\"].)", refused=refused))
    passed(exercise, _("every object lists all its keys as required and allows no others, so each reply has "
                       "exactly this shape and the grammar can enforce it token by token."))


def check_2(answer) -> None:
    """A Chat Completions tool `get_weather(city: string, unit: "celsius" | "fahrenheit")`, strict."""
    exercise = _("Exercise 2")
    if not answered(exercise, answer, _("define the get_weather tool as Chat Completions' `tools` takes it")):
        return
    expect(isinstance(answer, dict), exercise, _("the answer is one tool: a dict."))
    expect("function" in answer or "name" not in answer, exercise,
           _("that is the Responses API's flat tool. Chat Completions nests the definition: "
             "{\"type\": \"function\", \"function\": {\"name\": ..., \"parameters\": ...}}."))
    try:
        tool = FunctionTool.model_validate(answer)
    except ValueError as e:
        expect(False, exercise, _("not a Chat Completions tool ({error}). Compare with `chat_tools` in section 3.",
                                  error=str(e).splitlines()[0]))
    f = tool.function
    expect(f.name == "get_weather", exercise, _("name the function get_weather."))
    expect(f.strict is True, exercise, _("set \"strict\": true, so the arguments are enforced like a schema."))
    params = f.parameters or {}
    props = params.get("properties", {})
    expect(set(props) == {"city", "unit"}, exercise, _("the parameters are `city` and `unit`, nothing else."))
    expect(props["city"].get("type") == "string", exercise, _("city is a string."))
    expect(set(props["unit"].get("enum", [])) == {"celsius", "fahrenheit"}, exercise,
           _("unit is one of two values: use \"enum\": [\"celsius\", \"fahrenheit\"], as the calculator's `op` "
             "does."))
    refused = _strict_error(params, "Invalid schema for function 'get_weather'", "tools[0].function.parameters")
    expect(refused is None, exercise, _("the server answers 400: {refused}", refused=refused))
    passed(exercise, _("with strict on, a call's arguments always parse and name a unit the code knows."))


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
    exercise = _("Exercise 3")
    if not answered(exercise, answer, _("rewrite lesson07.CHAT_REQUEST for client.responses.create")):
        return
    expect(isinstance(answer, dict), exercise, _("the answer is the request's keyword arguments: a dict."))
    for chat_name, responses_name in (("messages", "input"), ("max_completion_tokens", "max_output_tokens"),
                                      ("response_format", "text")):
        expect(chat_name not in answer, exercise,
               _("`{chat_name}` is a Chat Completions parameter; section 4's table gives its Responses name "
                 "(`{responses_name}`).", chat_name=chat_name, responses_name=responses_name))
    try:
        got = _chat_of(answer)
    except (APIError, InvalidRequestError) as e:
        expect(False, exercise, _("the server answers 400: {message} (param {param!r}).",
                                  message=e.message, param=e.param))
    except ValueError as e:
        expect(False, exercise, _("not a valid Responses request: {error}", error=str(e).splitlines()[0]))
    want = ChatRequest.model_validate(CHAT_REQUEST).model_dump(exclude_none=True, by_alias=True)
    expect(got["messages"] == want["messages"], exercise,
           _("the model must read the same conversation: the system message goes in `instructions`, the user's "
             "question in `input`."))
    expect(got.get("max_completion_tokens") == want["max_completion_tokens"], exercise,
           _("keep the same token limit, under its Responses name."))
    expect(got.get("response_format") == want["response_format"], exercise,
           _("the schema goes in text={\"format\": {...}}, flat: type, name, schema and strict side by side."))
    passed(exercise, _("labkit's /v1/responses turns your request back into exactly CHAT_REQUEST."))


def check_4(answer, call_id: str, result: Any) -> None:
    """The Chat Completions message that returns a tool's result for the call with id `call_id`."""
    exercise = _("Exercise 4")
    if not answered(exercise, answer, _("write the message that sends `result` back for the call `call_id`")):
        return
    expect(isinstance(answer, dict), exercise, _("the answer is one message: a dict."))
    expect(answer.get("role") == "tool", exercise,
           _("a tool's result goes back in a message of its own, with role \"tool\" (not user, not assistant)."))
    expect(answer.get("tool_call_id") == call_id, exercise,
           _("the message names the call it answers: tool_call_id is the id of the tool call the model made."))
    expect(answer.get("content") == str(result), exercise,
           _("content is text: send str(result), the function's return value as a string."))
    passed(exercise, _("the model pairs the result with its call by id, so it can make several calls in one "
                       "turn."))
