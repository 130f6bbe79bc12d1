"""/v1/responses: OpenAI's Responses API as a thin layer over the chat machinery.

A request is checked here (its own fields, items and tools), turned into a Chat Completions body (instructions
and items become messages, `text.format` becomes `response_format`, flat function tools become chat's nested
ones), validated as a ChatRequest and run by ChatRun in the model's engine loop exactly as /v1/chat/completions
runs; the chat answer (whole, or its chunks) is turned back into a Response object or the Responses stream
events. `store` (default true) keeps the response in SQLite (labkit.server.response_store), so
`previous_response_id`, retrieve, delete and input_items work across restarts.

What the local engine cannot do is refused by name with a 400 (built-in tools, image/file/audio input,
reasoning settings, background runs, Conversations, reusable prompts, truncation "auto"): never accepted and
ignored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from labkit.engine.loop import engine_loop
from labkit.errors import InvalidRequestError
from labkit.server.errors import APIError, from_validation_error
from labkit.server.generate import ChatRun
from labkit.server.response_store import ResponseStore
from labkit.server.schemas import FUNCTION_NAME, ChatRequest, Temperature, TopP, parse_body

log = logging.getLogger(__name__)

INCLUDE_LOGPROBS = "message.output_text.logprobs"
# include values with nothing to add here: labkit's models make no reasoning items and take no images
INCLUDE_VACUOUS = ("reasoning.encrypted_content", "message.input_image.image_url")

REFUSED = {  # body fields the local engine cannot honour (refused when not null), and why
    "reasoning": "reasoning settings are for OpenAI's reasoning models; labkit's local models do not think in "
                 "hidden reasoning tokens",
    "conversation": "labkit keeps no Conversations objects: chain responses with previous_response_id, or send "
                    "the earlier items in input",
    "prompt": "reusable prompts are kept in OpenAI's dashboard; send instructions and input instead",
    "max_tool_calls": "max_tool_calls limits built-in tool calls, and labkit runs no built-in tools",
    "moderation": "labkit runs no moderation model",
    "context_management": "labkit does not compact conversations",
    "prompt_cache_key": "labkit keeps no prompt cache between requests",
    "prompt_cache_retention": "labkit keeps no prompt cache between requests",
    "prompt_cache_options": "labkit keeps no prompt cache between requests",
    "safety_identifier": "labkit runs no abuse detection that could use a safety_identifier",
}
BUILT_IN_TOOLS = {"file_search", "web_search", "web_search_2025_08_26", "web_search_preview",
                  "web_search_preview_2025_03_11", "computer", "computer_use", "computer_use_preview",
                  "code_interpreter", "image_generation", "mcp", "local_shell", "shell", "apply_patch", "custom",
                  "namespace", "tool_search", "programmatic_tool_calling"}
OTHER_ITEMS = {"reasoning", "item_reference", "file_search_call", "web_search_call", "computer_call",
               "computer_call_output", "image_generation_call", "code_interpreter_call", "local_shell_call",
               "local_shell_call_output", "shell_call", "shell_call_output", "apply_patch_call",
               "apply_patch_call_output", "mcp_list_tools", "mcp_approval_request", "mcp_approval_response",
               "mcp_call", "custom_tool_call", "custom_tool_call_output", "compaction", "tool_search_call",
               "tool_search_output"}
MEDIA_PARTS = {"input_image", "input_file", "input_audio"}
SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority")
MAX_METADATA = 16  # OpenAI's limits: pairs, key and value lengths
MAX_KEY, MAX_VALUE = 64, 512


def _kind(raw: Any) -> str | None:
    """The `type` of an item, part or tool: a string, or None (absent, null, or not a string)."""
    kind = raw.get("type") if isinstance(raw, dict) else None
    return kind if isinstance(kind, str) else None


def _unsupported(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(f"{message}. Use the OpenAI API (set OPENAI_API_KEY) for this feature.", param,
                               code="unsupported_parameter")


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


# ---------------------------------------------------------------- the request


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_obfuscation: StrictBool | None = None


class ResponsesRequest(BaseModel):
    """POST /v1/responses, with OpenAI's types and ranges. Items, tools, tool_choice and text are checked one by
    one afterwards, so each mistake names its place (input[2].content[0], tools[1].name, ...)."""

    model_config = ConfigDict(extra="forbid")

    model: StrictStr
    input: StrictStr | list[Any]
    instructions: StrictStr | None = None
    max_output_tokens: Annotated[StrictInt, Field(ge=16)] | None = None  # OpenAI's minimum is 16
    temperature: Temperature | None = None
    top_p: TopP | None = None
    text: dict | None = None
    tools: list[Any] | None = None
    tool_choice: StrictStr | dict | None = None
    parallel_tool_calls: StrictBool | None = None
    top_logprobs: Annotated[StrictInt, Field(ge=0, le=20)] | None = None
    include: list[StrictStr] | None = None
    store: StrictBool | None = None
    previous_response_id: StrictStr | None = None
    metadata: dict[StrictStr, StrictStr] | None = None
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    user: StrictStr | None = None
    service_tier: StrictStr | None = None
    truncation: Literal["auto", "disabled"] | None = None
    background: StrictBool | None = None


def _validate(model: type[BaseModel], data: Any, where: str) -> BaseModel:
    """model.model_validate(data), its error naming the place in the request (e.g. 'input[2].content')."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = from_validation_error(e)
        param = f"{where}.{err.param}" if err.param else where
        message = err.message.replace(err.param, param, 1) if err.param else f"{err.message} ({where})"
        raise APIError(400, message, param=param, code=err.code) from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputText(_Strict):
    type: Literal["input_text"]
    text: StrictStr


class OutputText(_Strict):
    type: Literal["output_text"]
    text: StrictStr
    annotations: list | None = None  # labkit makes none; ones sent back are not read
    logprobs: list | None = None


class Refusal(_Strict):
    type: Literal["refusal"]
    refusal: StrictStr


Status = Literal["in_progress", "completed", "incomplete"]


class MessageItem(_Strict):
    type: Literal["message"] | None = None
    role: Literal["user", "assistant", "system", "developer"]
    content: StrictStr | list[Any]
    id: StrictStr | None = None
    status: Status | None = None


class FunctionCallItem(_Strict):
    type: Literal["function_call"]
    call_id: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    name: StrictStr
    arguments: StrictStr
    id: StrictStr | None = None
    status: Status | None = None


class FunctionCallOutputItem(_Strict):
    type: Literal["function_call_output"]
    call_id: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    output: StrictStr | list[Any]
    id: StrictStr | None = None
    status: Status | None = None


class FunctionToolParam(_Strict):
    type: Literal["function"]
    name: Annotated[StrictStr, Field(pattern=FUNCTION_NAME)]
    description: StrictStr | None = None
    parameters: dict | None = None
    strict: StrictBool | None = None


class NamedFunctionChoice(_Strict):
    type: Literal["function"]
    name: StrictStr


class TextFormatText(_Strict):
    type: Literal["text"]


class TextFormatJsonObject(_Strict):
    type: Literal["json_object"]


class TextFormatJsonSchema(_Strict):
    type: Literal["json_schema"]
    name: Annotated[StrictStr, Field(pattern=FUNCTION_NAME)]
    schema_: dict = Field(alias="schema")
    description: StrictStr | None = None
    strict: StrictBool | None = None


FORMATS = {"text": TextFormatText, "json_object": TextFormatJsonObject, "json_schema": TextFormatJsonSchema}


def _parts(content: list, where: str, role: str) -> list[dict]:
    """A message's content parts as stored: input_text for user, system and developer; output_text (or
    refusal) for the assistant."""
    allowed = ("output_text", "refusal", "input_text") if role == "assistant" else ("input_text",)
    parts = []
    for j, raw in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = _kind(raw)
        if kind in MEDIA_PARTS:
            raise _unsupported(f"{at} is an {kind} part: labkit's local models read text only, not images, files "
                               "or audio", at)
        if kind not in allowed:
            raise InvalidRequestError(f"Invalid value for '{at}.type': {kind!r}. A {role} message's content parts "
                                      f"may be: {', '.join(allowed)}.", f"{at}.type", code="invalid_value")
        part = _validate({"input_text": InputText, "output_text": OutputText, "refusal": Refusal}[kind], raw, at)
        if kind == "refusal":
            parts.append({"type": "refusal", "refusal": part.refusal})
        elif role == "assistant":
            parts.append({"type": "output_text", "text": part.text, "annotations": [], "logprobs": []})
        else:
            parts.append({"type": "input_text", "text": part.text})
    return parts


def input_item(raw: Any, where: str) -> dict:
    """One input item, checked, as OpenAI lists it back (an id and a status on each)."""
    if not isinstance(raw, dict):
        raise InvalidRequestError(f"Invalid type for '{where}': expected an input item (an object), but got "
                                  f"{type(raw).__name__}.", where, code="invalid_type")
    if raw.get("type") is not None and _kind(raw) is None:
        raise InvalidRequestError(f"Invalid type for '{where}.type': expected a string, but got "
                                  f"{type(raw['type']).__name__}.", f"{where}.type", code="invalid_type")
    kind = _kind(raw) or "message"
    if kind == "message":
        m = _validate(MessageItem, raw, where)
        content = m.content if isinstance(m.content, list) else [
            {"type": "output_text" if m.role == "assistant" else "input_text", "text": m.content}]
        return {"id": m.id or _new_id("msg"), "type": "message", "role": m.role,
                "content": _parts(content, where, m.role), "status": "completed"}
    if kind == "function_call":
        c = _validate(FunctionCallItem, raw, where)
        return {"id": c.id or _new_id("fc"), "type": "function_call", "call_id": c.call_id, "name": c.name,
                "arguments": c.arguments, "status": "completed"}
    if kind == "function_call_output":
        o = _validate(FunctionCallOutputItem, raw, where)
        output = o.output if isinstance(o.output, str) else _parts(o.output, f"{where}.output", "tool")
        return {"id": o.id or _new_id("fco"), "type": "function_call_output", "call_id": o.call_id,
                "output": output, "status": "completed"}
    if kind in OTHER_ITEMS:
        raise _unsupported(f"{where} is a {kind} item, which labkit's local engine neither makes nor reads (it "
                           "takes message, function_call and function_call_output items)", f"{where}.type")
    raise InvalidRequestError(f"Invalid value for '{where}.type': {kind!r}. Supported values are: 'message', "
                              "'function_call' and 'function_call_output'.", f"{where}.type", code="invalid_value")


def strict_schema(schema: Any) -> Any:
    """What OpenAI's Responses API does with a function's parameters when `strict` is left out: every object
    closed (additionalProperties false) and every property required."""
    if isinstance(schema, list):
        return [strict_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict_schema(v) if k in ("items", "anyOf", "oneOf", "allOf", "prefixItems") else v
           for k, v in schema.items()}
    for key in ("properties", "$defs", "definitions"):
        if isinstance(schema.get(key), dict):
            out[key] = {name: strict_schema(s) for name, s in schema[key].items()}
    if schema.get("type") == "object" or "properties" in schema:
        out.setdefault("additionalProperties", False)
        out["required"] = list(out.get("properties") or {})
    return out


def _tools(raw: list) -> tuple[list[dict], list[dict]]:
    """Responses' flat function tools -> (as the Response echoes them, as Chat Completions takes them)."""
    echoed, chat = [], []
    for i, tool in enumerate(raw):
        where = f"tools[{i}]"
        kind = _kind(tool)
        if kind in BUILT_IN_TOOLS:
            raise _unsupported(f"{where} is the built-in tool {kind!r}, which OpenAI runs on its servers; labkit "
                               "takes function tools only (your code runs them)", "tools")
        if isinstance(tool, dict) and "function" in tool and "name" not in tool:
            raise InvalidRequestError(f"{where} is in Chat Completions' shape; the Responses API takes function "
                                      'tools flat: {"type": "function", "name": ..., "parameters": {...}}',
                                      f"{where}.function")
        t = _validate(FunctionToolParam, tool, where)
        strict = True if t.strict is None else t.strict
        params = t.parameters
        if t.strict is None:  # OpenAI's Responses default: strict, the schema made strict
            params = strict_schema(params if params is not None else {"type": "object", "properties": {}})
        echoed.append({"type": "function", "name": t.name, "description": t.description, "parameters": params,
                       "strict": strict})
        function = {"name": t.name, "strict": strict, **({"description": t.description} if t.description else {}),
                    **({"parameters": params} if params is not None else {})}
        chat.append({"type": "function", "function": function})
    names = [t["name"] for t in echoed]
    if raw == []:
        raise InvalidRequestError("tools must not be empty: leave it out, or give at least one function",
                                  "tools", code="empty_array")
    if len(set(names)) < len(names):
        raise InvalidRequestError(f"tools name a function twice: {sorted({n for n in names if names.count(n) > 1})}",
                                  "tools", code="invalid_value")
    return echoed, chat


def _tool_choice(raw: str | dict | None, names: list[str]) -> tuple[str | dict, str | dict | None]:
    """tool_choice -> (as echoed, as chat takes it; None to leave it out)."""
    if raw is None:
        return "auto", None
    if isinstance(raw, str):
        if raw not in ("none", "auto", "required"):
            raise InvalidRequestError(f"Invalid value for 'tool_choice': {raw!r}. Supported values are: 'none', "
                                      "'auto', 'required', or a function as {\"type\": \"function\", \"name\": ...}.",
                                      "tool_choice", code="invalid_value")
        if raw == "required" and not names:
            raise InvalidRequestError("tool_choice 'required' needs at least one tool in tools", "tool_choice")
        return raw, raw if names else None
    kind = raw.get("type")
    if kind != "function":
        raise _unsupported(f"tool_choice of type {kind!r} is not available locally: labkit takes 'none', 'auto', "
                           "'required' or one function tool", "tool_choice")
    choice = _validate(NamedFunctionChoice, raw, "tool_choice")
    if choice.name not in names:
        raise InvalidRequestError(f"tool_choice names function {choice.name!r}, which is not in tools"
                                  f"{' (' + ', '.join(names) + ')' if names else ''}", "tool_choice",
                                  code="invalid_value")
    return {"type": "function", "name": choice.name}, {"type": "function", "function": {"name": choice.name}}


def _text_format(text: dict | None) -> tuple[dict, dict | None]:
    """text -> (the format as echoed, chat's response_format; None for plain text)."""
    if text is None:
        return {"type": "text"}, None
    extra = set(text) - {"format", "verbosity"}
    if extra:
        name = sorted(extra)[0]
        raise InvalidRequestError(f"Unrecognized request argument supplied: text.{name}", f"text.{name}")
    if text.get("verbosity") is not None:
        raise _unsupported("text.verbosity is a setting of OpenAI's GPT-5 models; labkit's local models have no "
                           "verbosity control", "text.verbosity")
    raw = text.get("format")
    if raw is None:
        return {"type": "text"}, None
    kind = _kind(raw)
    if kind not in FORMATS:
        raise InvalidRequestError(f"Invalid value for 'text.format.type': {kind!r}. Supported values are: 'text', "
                                  "'json_object' and 'json_schema'.", "text.format.type", code="invalid_value")
    fmt = _validate(FORMATS[kind], raw, "text.format")
    if kind == "text":
        return {"type": "text"}, None
    if kind == "json_object":
        return {"type": "json_object"}, {"type": "json_object"}
    schema = {"name": fmt.name, "schema": fmt.schema_, "strict": bool(fmt.strict),
              **({"description": fmt.description} if fmt.description is not None else {})}
    return {"type": "json_schema", **schema}, {"type": "json_schema", "json_schema": schema}


def check_calls(items: list[dict], first_new: int) -> None:
    """OpenAI's rules for function calls in a conversation: every output answers an earlier call, and every
    call is answered before the conversation goes on. items[first_new:] came in this request's input."""
    pending: dict[str, str] = {}
    last = None
    for i, item in enumerate(items):
        where = f"input[{i - first_new}]" if i >= first_new else "previous_response_id"
        kind = item["type"]
        if kind == "function_call_output":
            if item["call_id"] not in pending:
                raise InvalidRequestError(f"No tool call found for function call output with call_id "
                                          f"{item['call_id']!r} ({where}): it must answer a function_call item "
                                          "earlier in the conversation, once.", f"{where}.call_id",
                                          code="invalid_tool_call_id")
            del pending[item["call_id"]]
        elif pending and (kind == "message" or last == "function_call_output"):
            raise InvalidRequestError(f"No tool output found for function call {next(iter(pending))}: give a "
                                      "function_call_output item for each call before the conversation goes on "
                                      f"({where}).", "input", code="invalid_tool_call_id")
        if kind == "function_call":
            pending[item["call_id"]] = item["name"]
        last = kind
    if pending:
        raise InvalidRequestError(f"No tool output found for function call {next(iter(pending))}: end input with a "
                                  "function_call_output item for each call the model made.", "input",
                                  code="invalid_tool_call_id")


def chat_messages(instructions: str | None, items: list[dict]) -> list[dict]:
    """Items as Chat Completions messages: instructions first as a developer message; function calls join the
    assistant message before them; outputs become tool messages."""
    messages = [{"role": "developer", "content": instructions}] if instructions is not None else []
    for item in items:
        if item["type"] == "message":
            text = "".join(p.get("text", p.get("refusal", "")) for p in item["content"])
            messages.append({"role": item["role"], "content": text})
        elif item["type"] == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            if messages and messages[-1]["role"] == "assistant":
                messages[-1].setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        else:
            output = item["output"]
            text = output if isinstance(output, str) else "".join(p["text"] for p in output)
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})
    return messages


# chat's parameter names -> the Responses field each came from, so a ChatRequest or ChatRun error names the latter
_CHAT_PARAMS = [
    (r"^max_completion_tokens", "max_output_tokens"),
    (r"^response_format\.json_schema\.schema_?", "text.format.schema"),
    (r"^response_format\.json_schema", "text.format"),
    (r"^response_format", "text.format"),
    (r"^tools\.?\[(\d+)\]\.function", r"tools[\1]"),
    (r"^tools\.\[(\d+)\]", r"tools[\1]"),
    (r"^tool_choice\.function", "tool_choice"),
    (r"^messages.*", "input"),
    (r"^logprobs$", "include"),
]


def _responses_param(param: str | None) -> str | None:
    for pattern, repl in _CHAT_PARAMS:
        if param is not None and re.match(pattern, param):
            return re.sub(pattern, repl, param, count=1)
    return param


def _renamed(e: APIError | InvalidRequestError) -> APIError:
    status = getattr(e, "status", 400)
    param = _responses_param(e.param)
    message = e.message.replace(e.param, param, 1) if e.param and param else e.message
    return APIError(status, message, param=param, code=e.code)


# ---------------------------------------------------------------- the answer


class Prepared:
    """A checked request: its items, the chat request it becomes, and the Response fields it echoes."""

    def __init__(self, body: dict, store: ResponseStore):
        for name, why in REFUSED.items():
            if body.get(name) is not None:
                raise _unsupported(f"`{name}` is not supported by labkit's local engine: {why}", name)
        if body.get("background") is True:
            raise _unsupported("background responses are not supported: labkit answers while the request waits "
                               "(or streams)", "background")
        if body.get("truncation") == "auto":
            raise _unsupported("truncation 'auto' is not supported: labkit never drops items silently; an input "
                               "over the context window is a 400 (context_length_exceeded)", "truncation")
        req = ResponsesRequest.model_validate(body)
        self.req = req
        if req.service_tier is not None and req.service_tier not in ("auto", "default"):
            if req.service_tier in SERVICE_TIERS:
                raise _unsupported(f"service_tier {req.service_tier!r} is an OpenAI processing tier; labkit has "
                                   "one ('default')", "service_tier")
            raise InvalidRequestError(f"Invalid value for 'service_tier': {req.service_tier!r}. Supported values "
                                      f"are: {', '.join(map(repr, SERVICE_TIERS))}.", "service_tier",
                                      code="invalid_value")
        if req.stream_options is not None and not req.stream:
            raise InvalidRequestError("stream_options is only allowed when stream is true", "stream_options")
        self._check_metadata(req.metadata or {})
        include = req.include or []
        for value in include:
            if value not in (INCLUDE_LOGPROBS, *INCLUDE_VACUOUS):
                raise _unsupported(f"include {value!r} names output of a built-in tool or of images, which "
                                   f"labkit does not make; it can include {INCLUDE_LOGPROBS!r}", "include")
        self.logprobs = INCLUDE_LOGPROBS in include
        if req.top_logprobs is not None and not self.logprobs:
            raise InvalidRequestError(f"top_logprobs returns nothing unless include has {INCLUDE_LOGPROBS!r}",
                                      "top_logprobs")
        self.tools, chat_tools = _tools(req.tools) if req.tools is not None else ([], [])
        names = [t["name"] for t in self.tools]
        self.tool_choice, chat_choice = _tool_choice(req.tool_choice, names)
        self.format, response_format = _text_format(req.text)

        raw = [{"role": "user", "content": req.input}] if isinstance(req.input, str) else req.input
        self.items = [input_item(x, f"input[{i}]") for i, x in enumerate(raw)]
        earlier: list[dict] = []
        if req.previous_response_id is not None:
            found = store.conversation(req.previous_response_id)
            if found is None:
                raise APIError(400, f"Previous response with id '{req.previous_response_id}' not found.",
                               param="previous_response_id", code="previous_response_not_found")
            earlier = found
        self.context = earlier + self.items  # what the model reads, and this response's input items
        check_calls(self.context, len(earlier))
        messages = chat_messages(req.instructions, self.context)
        if not messages:
            raise InvalidRequestError("input is empty: give a string or at least one item", "input",
                                      code="empty_array")
        chat: dict[str, Any] = {"model": req.model, "messages": messages}
        for name, value in (("max_completion_tokens", req.max_output_tokens), ("temperature", req.temperature),
                            ("top_p", req.top_p), ("user", req.user), ("response_format", response_format)):
            if value is not None:
                chat[name] = value
        if self.logprobs:
            chat["logprobs"], chat["top_logprobs"] = True, req.top_logprobs
        if chat_tools:
            chat["tools"] = chat_tools
            for name, value in (("tool_choice", chat_choice), ("parallel_tool_calls", req.parallel_tool_calls)):
                if value is not None:
                    chat[name] = value
        if req.stream:
            chat["stream"], chat["stream_options"] = True, {"include_usage": True}
        try:
            self.chat = ChatRequest.model_validate(chat)
        except ValidationError as e:
            raise _renamed(from_validation_error(e)) from None
        self.id, self.created_at = _new_id("resp"), int(time.time())
        self.store, self._kept = req.store is not False, store

    @staticmethod
    def _check_metadata(metadata: dict) -> None:
        if len(metadata) > MAX_METADATA:
            raise InvalidRequestError(f"metadata has {len(metadata)} pairs; at most {MAX_METADATA} are allowed",
                                      "metadata", code="invalid_value")
        for key, value in metadata.items():
            if len(key) > MAX_KEY or len(value) > MAX_VALUE:
                raise InvalidRequestError(f"metadata keys are at most {MAX_KEY} characters and values at most "
                                          f"{MAX_VALUE}; {key[:20]!r}... is longer", "metadata",
                                          code="invalid_value")

    def response(self, status: str, output: list[dict], usage: dict | None, incomplete: bool = False) -> dict:
        """The Response object: every field OpenAI's schema requires, the request's settings echoed."""
        req = self.req
        return {
            "id": self.id, "object": "response", "created_at": self.created_at, "status": status,
            "background": False, "completed_at": int(time.time()) if status == "completed" else None,
            "error": None, "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": req.instructions, "max_output_tokens": req.max_output_tokens, "max_tool_calls": None,
            "model": req.model, "output": output,
            "parallel_tool_calls": True if req.parallel_tool_calls is None else req.parallel_tool_calls,
            "previous_response_id": req.previous_response_id, "reasoning": {"effort": None, "summary": None},
            "service_tier": "default", "store": self.store,
            "temperature": 1.0 if req.temperature is None else req.temperature,
            "text": {"format": self.format}, "tool_choice": self.tool_choice, "tools": self.tools,
            "top_logprobs": req.top_logprobs or 0, "top_p": 1.0 if req.top_p is None else req.top_p,
            "truncation": "disabled", "metadata": req.metadata or {},
            # the spec types `usage` as an object and `user` as a string, neither nullable: left out until known
            **({"usage": usage} if usage is not None else {}), **({"user": req.user} if req.user is not None else {}),
        }

    def finished(self, message: dict, logprobs: list | None, finish_reason: str, usage: dict,
                 ids: list[str] | None = None) -> dict:
        """The finished Response from the chat answer's message, its logprobs and finish reason (and the item
        ids a stream already announced); stored when `store` is on."""
        incomplete = finish_reason == "length"
        output = output_items(message, logprobs if self.logprobs else None, incomplete, ids)
        response = self.response("incomplete" if incomplete else "completed", output,
                                 responses_usage(usage) if usage else None, incomplete)
        if self.store:
            self._kept.put(response, self.context)
        return response


def responses_usage(usage: dict) -> dict:
    return {"input_tokens": usage["prompt_tokens"],
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": usage["completion_tokens"], "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage["total_tokens"]}


def output_items(message: dict, logprobs: list | None, incomplete: bool, ids: list[str] | None = None) -> list[dict]:
    """A chat message as output items: a message with one output_text part (unless the reply is only tool
    calls), then a function_call per call. Cut short (max_output_tokens), the last item is incomplete."""
    given = iter(ids or [])
    content, calls = message.get("content") or "", message.get("tool_calls") or []
    items = []
    if content or not calls:
        part = {"type": "output_text", "text": content, "annotations": [], "logprobs": logprobs or []}
        items.append({"id": next(given, None) or _new_id("msg"), "type": "message", "status": "completed",
                      "role": "assistant", "content": [part]})
    for call in calls:
        items.append({"id": next(given, None) or _new_id("fc"), "type": "function_call", "status": "completed",
                      "call_id": call["id"], "name": call["function"]["name"],
                      "arguments": call["function"]["arguments"]})
    if incomplete:
        items[-1]["status"] = "incomplete"
    return items


class EventStream:
    """The chat answer's chunks as the Responses stream: response.created, response.in_progress, then for the
    text an output_item.added, content_part.added, output_text.delta..., output_text.done, content_part.done and
    output_item.done, for each tool call an output_item.added, function_call_arguments.delta..., .done and
    output_item.done, and last response.completed (or response.incomplete). Each with its sequence_number."""

    def __init__(self, prep: Prepared, run: ChatRun):
        self.prep, self.run, self.seq = prep, run, 0
        self.ids: list[str] = []  # output item ids in output order
        self.text, self.logprobs, self.unsent_logprobs = "", [], []
        self.message_open = self.message_done = False
        self.calls: dict[int, dict] = {}  # chat's tool call index -> the call so far and its item

    def event(self, kind: str, **fields) -> str:
        data = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return f"event: {kind}\ndata: {json.dumps(data)}\n\n"

    def _message(self, status: str) -> dict:
        return {"id": self.message_id, "type": "message", "status": status, "role": "assistant",
                "content": [self._part()] if status != "in_progress" else []}

    def _part(self) -> dict:
        return {"type": "output_text", "text": self.text, "annotations": [], "logprobs": self.logprobs}

    def _open_message(self) -> Iterator[str]:
        self.message_open, self.message_id, self.message_index = True, _new_id("msg"), len(self.ids)
        self.ids.append(self.message_id)
        yield self.event("response.output_item.added", output_index=self.message_index,
                         item=self._message("in_progress"))
        yield self.event("response.content_part.added", item_id=self.message_id, output_index=self.message_index,
                         content_index=0, part={"type": "output_text", "text": "", "annotations": [],
                                                "logprobs": []})

    def _close_message(self, status: str) -> Iterator[str]:
        self.message_done = True
        where = {"item_id": self.message_id, "output_index": self.message_index, "content_index": 0}
        yield self.event("response.output_text.done", **where, text=self.text, logprobs=self.logprobs)
        yield self.event("response.content_part.done", **where, part=self._part())
        yield self.event("response.output_item.done", output_index=self.message_index, item=self._message(status))

    def _call_item(self, call: dict, status: str) -> dict:
        return {"id": call["item_id"], "type": "function_call", "status": status, "call_id": call["id"],
                "name": call["name"], "arguments": call["arguments"]}

    def _tool_call(self, delta: dict) -> Iterator[str]:
        if self.message_open and not self.message_done:
            yield from self._close_message("completed")
        call = self.calls.get(delta["index"])
        function = delta.get("function") or {}
        if call is None:
            call = {"id": delta["id"], "name": function.get("name", ""), "arguments": "",
                    "item_id": _new_id("fc"), "output_index": len(self.ids)}
            self.calls[delta["index"]] = call
            self.ids.append(call["item_id"])
            yield self.event("response.output_item.added", output_index=call["output_index"],
                             item=self._call_item(call, "in_progress"))
        if function.get("arguments"):
            call["arguments"] += function["arguments"]
            yield self.event("response.function_call_arguments.delta", item_id=call["item_id"],
                             output_index=call["output_index"], delta=function["arguments"])

    def events(self) -> Iterator[str]:
        prep = self.prep
        yield self.event("response.created", response=prep.response("in_progress", [], None))
        yield self.event("response.in_progress", response=prep.response("in_progress", [], None))
        finish, usage = "stop", None
        try:
            for chunk in self.run.chunks():
                usage = chunk.get("usage") or usage
                for choice in chunk["choices"]:
                    yield from self._choice(choice)
                    finish = choice.get("finish_reason") or finish
        except Exception as e:  # the engine failed mid-answer: say so in the stream, as OpenAI does
            log.exception("responses stream failed")
            yield self.event("error", code="server_error", message=f"The server had an error: {e!r}", param=None)
            failed = prep.response("failed", [], None)
            failed["error"] = {"code": "server_error", "message": f"The server had an error: {e!r}"}
            yield self.event("response.failed", response=failed)
            return
        incomplete = finish == "length"
        if not self.calls and not self.message_open:  # an empty answer is still a message
            yield from self._open_message()
        if self.message_open and not self.message_done:
            yield from self._close_message("incomplete" if incomplete and not self.calls else "completed")
        last = max(self.calls, default=None)
        for index, call in sorted(self.calls.items()):
            yield self.event("response.function_call_arguments.done", item_id=call["item_id"],
                             output_index=call["output_index"], name=call["name"], arguments=call["arguments"])
            status = "incomplete" if incomplete and index == last else "completed"
            yield self.event("response.output_item.done", output_index=call["output_index"],
                             item=self._call_item(call, status))
        message = {"content": self.text, "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for _, c in sorted(self.calls.items())]}
        response = prep.finished(message, self.logprobs, finish, usage, self.ids)
        yield self.event("response.incomplete" if incomplete else "response.completed", response=response)

    def _choice(self, choice: dict) -> Iterator[str]:
        delta = choice.get("delta") or {}
        new = ((choice.get("logprobs") or {}).get("content") or []) if self.prep.logprobs else []
        self.logprobs += new
        self.unsent_logprobs += new
        if delta.get("content"):
            if not self.message_open:
                yield from self._open_message()
            self.text += delta["content"]
            yield self.event("response.output_text.delta", item_id=self.message_id, output_index=self.message_index,
                             content_index=0, delta=delta["content"], logprobs=self.unsent_logprobs)
            self.unsent_logprobs = []
        for call in delta.get("tool_calls") or []:
            yield from self._tool_call(call)


# ---------------------------------------------------------------- the routes


def _threads_for(requests: int) -> None:
    from labkit.server.app import _threads_for as threads_for  # app imports this module

    threads_for(requests)


def _chat_run(prep: Prepared, lm, engine) -> ChatRun:
    try:
        return ChatRun(prep.chat, lm, engine)
    except InvalidRequestError as e:  # named as chat names it: name the Responses field instead
        raise _renamed(e) from None


def router(store: ResponseStore, models, max_running: int | None = None, max_waiting: int | None = None) -> APIRouter:
    """The /v1/responses routes over MODELS (app.Models), each model run by its engine loop."""
    r = APIRouter()

    @r.post("/v1/responses")
    async def create(request: Request):
        body = parse_body(await request.body())
        prep = await run_in_threadpool(Prepared, body, store)
        lm = await run_in_threadpool(models.get, prep.chat.model)
        engine = engine_loop(lm, max_running, max_waiting)
        _threads_for(len(models.names) * (engine.max_running + engine.max_waiting) + 16)
        run = await run_in_threadpool(_chat_run, prep, lm, engine)
        engine.check_capacity()  # a 429 before a stream's first byte, not in the middle of it
        if prep.req.stream:
            return StreamingResponse(_cancel_when_closed(EventStream(prep, run).events(), run),
                                     media_type="text/event-stream")
        work = asyncio.ensure_future(run_in_threadpool(run.response))
        while not (await asyncio.wait({work}, timeout=0.25))[0]:
            if await request.is_disconnected():  # e.g. a notebook cell interrupted: stop decoding
                run.cancel()
        choice = work.result()["choices"][0]
        logprobs = (choice.get("logprobs") or {}).get("content")
        return JSONResponse(await run_in_threadpool(prep.finished, choice["message"], logprobs,
                                                    choice["finish_reason"], work.result()["usage"]))

    @r.get("/v1/responses/{response_id}")
    def retrieve(response_id: str, stream: bool = False):
        if stream:
            raise _unsupported("streaming a stored response again is for background responses, which labkit does "
                               "not run; retrieve it whole", "stream")
        return store.get(response_id)

    @r.delete("/v1/responses/{response_id}")
    def delete(response_id: str):
        store.delete(response_id)
        return {"id": response_id, "object": "response", "deleted": True}

    @r.post("/v1/responses/{response_id}/cancel")
    def cancel(response_id: str):
        store.get(response_id)
        raise APIError(400, "Only background responses can be cancelled, and labkit runs none: this one has "
                       "finished.", param="response_id")

    @r.get("/v1/responses/{response_id}/input_items")
    def input_items(response_id: str, limit: int = 20, order: str = "desc", after: str | None = None):
        if not 1 <= limit <= 100:
            raise APIError(400, f"limit must be between 1 and 100, got {limit}", param="limit", code="invalid_value")
        if order not in ("asc", "desc"):
            raise APIError(400, f"order must be 'asc' or 'desc', got {order!r}", param="order", code="invalid_value")
        return store.input_items(response_id, limit, order, after)

    return r


async def _cancel_when_closed(events: Iterator[str], run: ChatRun):
    """The stream's events; a client that leaves (the response task is cancelled) cancels the run, so the
    engine loop drops its rows at the next step."""
    try:
        async for event in iterate_in_threadpool(events):
            yield event
    finally:
        run.cancel()
