"""Chat's structured output: `response_format` and `tools` as a grammar the engine enforces, the tools shown
to the model, and its text read back as tool calls.

SmolLM2's chat template has no place for tools, so labkit shows them in the system message in the format
Hermes-style models (Qwen2.5, SmolLM3) are trained on, and the model calls one by writing

    <tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>

The grammar admits only declared names and arguments valid under each function's `parameters`; with
tool_choice "auto" it admits plain text too, with "none" only plain text. docs/structured-outputs.md has more.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from labkit.engine.constraint import GrammarError, check, embedded_json, json_schema_grammar, lark_grammar
from labkit.engine.registry import LocalModel
from labkit.errors import InvalidRequestError
from labkit.server.schemas import AssistantMessage, ChatRequest, FunctionDefinition, NamedToolChoice, ToolMessage

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
NO_PARAMETERS = {"type": "object", "properties": {}, "additionalProperties": False}
# text that does not open a call: what "none" allows, and "auto" besides calls
PLAIN_TEXT = r"/(?s:.*)/ & ~/(?s:\s*<tool_call>.*)/"


_JSON = json.JSONDecoder()


@dataclass
class ToolCallText:
    """A reply read back: its tool calls, if it made any, else its text."""

    content: str | None
    tool_calls: list[dict]


# ---------------------------------------------------------------- what the model is shown


def render_messages(req: ChatRequest) -> list[dict]:
    """Messages for the chat template: developer acts as system, tools are described in the system message,
    earlier calls and their results are written as the model would have written and read them."""
    msgs = []
    for m in req.messages:
        if isinstance(m, AssistantMessage) and m.tool_calls:
            calls = "\n".join(f"{CALL_OPEN}{json.dumps({'name': c.function.name, 'arguments': _arguments(c)})}"
                              f"{CALL_CLOSE}" for c in m.tool_calls)
            msgs.append({"role": "assistant", "content": (m.text() + "\n" if m.text() else "") + calls})
        elif isinstance(m, ToolMessage):
            msgs.append({"role": "tool", "content": m.text()})
        else:
            msgs.append({"role": "system" if m.role == "developer" else m.role, "content": m.text()})
    if req.tools:
        tools = _tools_prompt(req)
        if msgs[0]["role"] == "system":
            msgs[0] = {"role": "system", "content": msgs[0]["content"] + "\n\n" + tools}
        else:
            msgs.insert(0, {"role": "system", "content": tools})
    return msgs


def _arguments(call) -> object:
    try:
        return json.loads(call.function.arguments)
    except json.JSONDecodeError:  # an earlier reply's arguments, as given: show them as they were
        return call.function.arguments


def _tools_prompt(req: ChatRequest) -> str:
    lines = ["You can call functions. Each is described by its JSON Schema:"]
    for t in req.tools:
        f = t.function
        lines.append(json.dumps({"name": f.name, "description": f.description or "",
                                 "parameters": f.parameters or NO_PARAMETERS}))
    lines.append(f'To call a function, reply with {CALL_OPEN}{{"name": NAME, "arguments": {{...}}}}{CALL_CLOSE}, '
                 "one line per call. A function's result comes back in a message with role tool.")
    return "\n".join(lines)


# ---------------------------------------------------------------- the grammar


def output_grammar(req: ChatRequest, lm: LocalModel) -> str | None:
    """The grammar every reply must follow, or None for free text. Raises InvalidRequestError naming the
    parameter when a schema is invalid, breaks strict mode's rules, or uses what cannot be enforced."""
    fmt = req.response_format
    if req.tools:
        return _checked(lm, lark_grammar(_tools_lark(req, lm)), "tools")
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        if not any("json" in m.text().lower() for m in req.messages):
            raise InvalidRequestError("'messages' must contain the word 'json' in some form, to use "
                                      "'response_format' of type 'json_object'.", "messages")
        return _checked(lm, json_schema_grammar({"type": "object"}), "response_format")
    spec = fmt.json_schema
    schema = spec.schema_ if spec.schema_ is not None else {"type": "object"}
    if spec.strict:
        _check_strict(schema, f"Invalid schema for response_format '{spec.name}'", "response_format")
    return _checked(lm, json_schema_grammar(schema), "response_format",
                    f"Invalid schema for response_format '{spec.name}'", schema)


def _tools_lark(req: ChatRequest, lm: LocalModel) -> str:
    choice = req.tool_choice or "auto"
    functions = req.tools if not isinstance(choice, NamedToolChoice) else [
        t for t in req.tools if t.function.name == choice.function.name]
    for i, t in enumerate(req.tools):  # each function's own schema first, so an error names it
        what, param = f"Invalid schema for function '{t.function.name}'", f"tools.[{i}].function.parameters"
        if t.function.strict:
            _check_strict(t.function.parameters or NO_PARAMETERS, what, param)
        schema = t.function.parameters or NO_PARAMETERS
        _checked(lm, json_schema_grammar(schema), param, what, schema)
    calls = "call" if isinstance(choice, NamedToolChoice) or req.parallel_tool_calls is False else 'call ("\\n" call)*'
    start = "TEXT" if choice == "none" else f"TEXT | {calls}" if choice == "auto" else calls
    rules = [f"start: {start}", f"TEXT: {PLAIN_TEXT}",
             "call: " + " | ".join(f"call_{i}" for i in range(len(functions)))]
    rules += [f'call_{i}: "{CALL_OPEN}" {embedded_json(_call_schema(t.function))} "{CALL_CLOSE}"'
              for i, t in enumerate(functions)]
    return "\n".join(rules)


def _call_schema(f: FunctionDefinition) -> dict:
    return {"type": "object", "properties": {"name": {"const": f.name}, "arguments": f.parameters or NO_PARAMETERS},
            "required": ["name", "arguments"], "additionalProperties": False}


# keywords llguidance compiles without enforcing them (measured by bench/bench_grammars.py), and its own
# options, which a schema must not change
UNENFORCED = {"nullable": "it is OpenAPI's, not JSON Schema's: write \"type\": [..., \"null\"]",
              "contentSchema": "it is not applied", "x-guidance": "it sets the grammar engine's own options"}


def _unenforced(schema) -> None:
    """Raise GrammarError for a keyword the grammar would accept and not enforce."""
    if isinstance(schema, list):
        for item in schema:
            _unenforced(item)
    if not isinstance(schema, dict):
        return
    for key, why in UNENFORCED.items():
        if key in schema:
            raise GrammarError(f"'{key}' cannot be enforced ({why})")
    if ("minProperties" in schema and (schema.get("additionalProperties", True) is not False
                                       or "patternProperties" in schema)):
        raise GrammarError("'minProperties' cannot be enforced on an object with additional properties (a key "
                           "written twice would count twice)")
    for value in schema.values():
        _unenforced(value)


def _checked(lm: LocalModel, grammar: str, param: str, what: str = "Invalid schema", schema=None) -> str:
    try:
        _unenforced(schema)
        check(lm, grammar)
    except GrammarError as e:
        raise InvalidRequestError(f"{what}: {e}. labkit enforces schemas token by token and refuses what it "
                                  "cannot enforce.", param, code="invalid_json_schema") from None
    return grammar


def _check_strict(schema: dict, what: str, param: str) -> None:
    """OpenAI's strict-mode rules: the root is an object, and every object lists all its properties as
    required and sets additionalProperties to false."""
    if schema.get("type") != "object":
        raise InvalidRequestError(f"{what}: schema must be a JSON Schema of 'type: \"object\"', got "
                                  f"'type: {json.dumps(schema.get('type'))}'.", param, code="invalid_json_schema")

    def visit(node, context: tuple) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" or "properties" in node:
                where = f"In context={context}, "
                if node.get("additionalProperties") is not False:
                    raise InvalidRequestError(f"{what}: {where}'additionalProperties' is required to be supplied "
                                              "and to be false.", param, code="invalid_json_schema")
                missing = [k for k in node.get("properties", {}) if k not in node.get("required", [])]
                if missing:
                    raise InvalidRequestError(f"{what}: {where}'required' is required to be supplied and to be an "
                                              f"array including every key in properties. Missing '{missing[0]}'.",
                                              param, code="invalid_json_schema")
            for key, value in node.items():
                visit(value, (*context, key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                visit(value, (*context, str(i)))

    visit(schema, ())


# ---------------------------------------------------------------- reading a reply back


def read_reply(text: str, req: ChatRequest) -> ToolCallText:
    """A reply of a request with tools: the calls it completed (each with a fresh id, arguments as JSON text),
    and as content whatever else it wrote (a call cut off by max_tokens), or None."""
    if not req.tools or not text.lstrip().startswith(CALL_OPEN):
        return ToolCallText(text, [])
    calls, rest = [], text.lstrip()
    while rest.startswith(CALL_OPEN):
        try:
            call, end = _JSON.raw_decode(rest, len(CALL_OPEN))
        except json.JSONDecodeError:
            break
        if not rest.startswith(CALL_CLOSE, end):
            break
        calls.append(tool_call(call["name"], json.dumps(call["arguments"])))
        rest = rest[end + len(CALL_CLOSE):].removeprefix("\n")
    return ToolCallText(rest or None, calls)


def tool_call(name: str, arguments: str) -> dict:
    return {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
            "function": {"name": name, "arguments": arguments}}


def may_open_call(text: str) -> bool:
    """Whether a streamed reply's text so far could still turn out to be tool calls."""
    head = text.lstrip()
    return head.startswith(CALL_OPEN) or CALL_OPEN.startswith(head)
