"""Request bodies of the OpenAI endpoints labkit serves, with OpenAI's types and ranges.

Types are strict ("0.5" is not a number) and unknown fields are refused, as OpenAI does.
Parameters OpenAI has but the local engine cannot honour are listed in UNSUPPORTED and
refused by name: silence would teach a student the wrong thing.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StrictBool, StrictFloat, StrictInt, StrictStr, Tag

from labkit.errors import InvalidRequestError

Number = StrictInt | StrictFloat
Temperature = Annotated[Number, Field(ge=0, le=2)]
TopP = Annotated[Number, Field(ge=0, le=1)]
Penalty = Annotated[Number, Field(ge=-2, le=2)]
Bias = Annotated[Number, Field(ge=-100, le=100)]
Stop = StrictStr | list[StrictStr] | None  # at most 4: checked in check(), to say so plainly
Seed = Annotated[StrictInt, Field(ge=-(2**63), lt=2**64)]  # what a 64-bit generator seed can hold

UNSUPPORTED = {
    "chat": ["functions", "function_call", "audio", "modalities", "prediction", "reasoning_effort",
             "web_search_options", "verbosity", "prompt_cache_key", "safety_identifier"],
    "completions": [],
    "embeddings": [],
}
UNSUPPORTED_WHY: dict[str, str] = {
    "functions": "`functions` is the deprecated form of `tools`, which labkit serves: send `tools` instead.",
    "function_call": "`function_call` is the deprecated form of `tool_choice`, which labkit serves: send "
                     "`tool_choice` instead.",
}
FUNCTION_NAME = r"^[a-zA-Z0-9_-]{1,64}$"  # OpenAI's rule for function and schema names


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: StrictBool | None = None
    include_obfuscation: StrictBool | None = None


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: StrictStr
    max_tokens: Annotated[StrictInt, Field(ge=0)] | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    n: Annotated[StrictInt, Field(ge=1, le=128)] | None = None
    stop: Stop = None
    seed: Seed | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    logit_bias: dict[StrictStr, Bias] | None = None
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    user: StrictStr | None = None

    def check(self) -> None:
        """Rules that tie fields together; each failure names its field."""
        if isinstance(self.stop, list) and not 1 <= len(self.stop) <= 4:
            raise InvalidRequestError(f"stop takes a string or a list of 1 to 4 strings, got {len(self.stop)}",
                                      "stop", code="invalid_value")
        if "" in self.stop_list():
            raise InvalidRequestError("stop strings must not be empty", "stop", code="invalid_value")
        if self.stream_options is not None and not self.stream:
            raise InvalidRequestError("stream_options is only allowed when stream is true", "stream_options")

    def stop_list(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


TokenIds = Annotated[list[StrictInt], Field(min_length=1)]


class CompletionRequest(_Request):
    prompt: StrictStr | Annotated[list[StrictStr], Field(min_length=1)] | TokenIds | Annotated[
        list[TokenIds], Field(min_length=1)]
    best_of: Annotated[StrictInt, Field(ge=1, le=20)] | None = None
    echo: StrictBool | None = None
    logprobs: Annotated[StrictInt, Field(ge=0, le=5)] | None = None
    suffix: StrictStr | None = None

    def check(self) -> None:
        super().check()
        if self.best_of is not None and self.best_of < (self.n or 1):
            raise InvalidRequestError("best_of must be greater than or equal to n", "best_of")
        if self.best_of is not None and self.best_of > (self.n or 1) and self.stream:
            raise InvalidRequestError("best_of > n cannot be streamed", "best_of")


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: StrictStr


def _text(content: str | list[TextPart] | None) -> str:
    return content if isinstance(content, str) else "".join(p.text for p in content or [])


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def text(self) -> str:
        return _text(self.content)


class SystemMessage(_Message):
    role: Literal["system", "developer"]
    content: StrictStr | Annotated[list[TextPart], Field(min_length=1)]
    name: StrictStr | None = None


class UserMessage(_Message):
    role: Literal["user"]
    content: StrictStr | Annotated[list[TextPart], Field(min_length=1)]
    name: StrictStr | None = None


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: StrictStr
    arguments: StrictStr  # JSON text, as the model wrote it


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: StrictStr
    type: Literal["function"]
    function: FunctionCall


class AssistantMessage(_Message):
    role: Literal["assistant"]
    content: StrictStr | Annotated[list[TextPart], Field(min_length=1)] | None = None
    name: StrictStr | None = None
    refusal: StrictStr | None = None
    tool_calls: Annotated[list[ToolCall], Field(min_length=1)] | None = None


class ToolMessage(_Message):
    role: Literal["tool"]
    content: StrictStr | Annotated[list[TextPart], Field(min_length=1)]
    tool_call_id: StrictStr


def parse_body(raw: bytes) -> dict:
    """A request's body as the JSON object every endpoint takes, or OpenAI's 400."""
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InvalidRequestError(f"We could not parse the JSON body of your request ({e}). The body must be "
                                  "valid JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    return body


UNION_TAG = "union_tag:"  # the error type of a union's unknown tag: "union_tag:" + the field


def _tagged(field: str, tags: dict[str, type[BaseModel]]):
    """A union picked by one field's value. Its tags read "field=value", which labkit.server.errors drops from
    a param's path; an unknown value is an invalid_value error naming the field."""

    def tag(value) -> str | None:
        v = value.get(field) if isinstance(value, dict) else getattr(value, field, None)
        return f"{field}={v}" if isinstance(v, str) and v in tags else None

    allowed = ", ".join(repr(t) for t in tags)
    members = tuple(Annotated[cls, Tag(f"{field}={v}")] for v, cls in tags.items())
    return Annotated[Union[members], Discriminator(  # noqa: UP007 (a tuple of members needs Union[...])
        tag, custom_error_type=f"{UNION_TAG}{field}", custom_error_message=f"{field} must be one of {allowed}")]


Message = _tagged("role", {"system": SystemMessage, "developer": SystemMessage, "user": UserMessage,
                           "assistant": AssistantMessage, "tool": ToolMessage})


class FunctionDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[StrictStr, Field(pattern=FUNCTION_NAME)]
    description: StrictStr | None = None
    parameters: dict | None = None  # a JSON Schema; labkit.engine.constraint checks it
    strict: StrictBool | None = None


class FunctionTool(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: StrictStr


class NamedToolChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["function"]
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class TextFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]


class JsonObjectFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["json_object"]


class JsonSchema(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: Annotated[StrictStr, Field(pattern=FUNCTION_NAME)]
    description: StrictStr | None = None
    schema_: dict | None = Field(None, alias="schema")
    strict: StrictBool | None = None


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["json_schema"]
    json_schema: JsonSchema


ResponseFormat = _tagged("type", {"text": TextFormat, "json_object": JsonObjectFormat, "json_schema": JsonSchemaFormat})


class ChatRequest(_Request):
    messages: Annotated[list[Message], Field(min_length=1)]
    max_completion_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    logprobs: StrictBool | None = None
    top_logprobs: Annotated[StrictInt, Field(ge=0, le=20)] | None = None
    store: Literal[False] | None = None  # labkit keeps no completions
    metadata: dict[StrictStr, StrictStr] | None = None
    service_tier: Literal["auto", "default"] | None = None
    response_format: ResponseFormat | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: StrictBool | None = None

    def check(self) -> None:
        super().check()
        if self.top_logprobs is not None and not self.logprobs:
            raise InvalidRequestError("top_logprobs requires logprobs to be true", "top_logprobs")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise InvalidRequestError("max_tokens must be at least 1", "max_tokens")
        self._check_tools()
        self._check_history()

    def _check_tools(self) -> None:
        names = [t.function.name for t in self.tools or []]
        if self.tools is not None and not names:
            raise InvalidRequestError("[] is too short - 'tools'", "tools", code="empty_array")
        if twice := sorted({n for n in names if names.count(n) > 1}):
            raise InvalidRequestError(f"tools name one function twice: {twice}", "tools", code="invalid_value")
        choice = self.tool_choice
        if choice is not None and not names and choice != "none":
            raise InvalidRequestError("tool_choice is only allowed when tools are specified", "tool_choice")
        if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
            raise InvalidRequestError(f"tool_choice names function {choice.function.name!r}, which is not in "
                                      f"tools ({', '.join(names)})", "tool_choice", code="invalid_value")
        if self.parallel_tool_calls is not None and not names:
            raise InvalidRequestError("parallel_tool_calls is only allowed when tools are specified",
                                      "parallel_tool_calls")
        if names and self.response_format is not None and self.response_format.type != "text":
            raise InvalidRequestError("response_format cannot be combined with tools in labkit: a reply is either "
                                      "tool calls or text in the given format, and one grammar decides which",
                                      "response_format", code="unsupported_parameter")

    def _check_history(self) -> None:
        """Every tool message answers a call of the assistant message before it, and every call is answered
        before the conversation goes on (OpenAI's rules)."""
        pending: dict[str, int] = {}  # call id -> the assistant message that made it
        for i, m in enumerate([*self.messages, None]):
            if pending and not isinstance(m, ToolMessage) and m is not None:
                raise InvalidRequestError(
                    f"An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                    f"'tool_call_id'. messages.[{min(pending.values())}] has calls without an answer: "
                    f"{', '.join(pending)}", f"messages.[{i}].role", code="invalid_tool_call_id")
            if isinstance(m, AssistantMessage):
                if m.content is None and not m.tool_calls:
                    raise InvalidRequestError("an assistant message needs content or tool_calls",
                                              f"messages.[{i}].content")
                pending = {c.id: i for c in m.tool_calls or []}
            elif isinstance(m, ToolMessage):
                if m.tool_call_id not in pending:
                    raise InvalidRequestError(
                        f"messages.[{i}] has role 'tool' but answers tool_call_id {m.tool_call_id!r}, which the "
                        "assistant message before it did not make (or another tool message already answered)",
                        f"messages.[{i}].tool_call_id", code="invalid_tool_call_id")
                del pending[m.tool_call_id]


MAX_EMBEDDING_INPUTS = 2048  # items in one request, as OpenAI allows
MAX_EMBEDDING_TOKENS = 300_000  # summed over a request's inputs, as OpenAI allows


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: StrictStr
    input: StrictStr | Annotated[list[StrictStr], Field(min_length=1, max_length=MAX_EMBEDDING_INPUTS)] | Annotated[
        TokenIds, Field(max_length=MAX_EMBEDDING_INPUTS)] | Annotated[
        list[TokenIds], Field(min_length=1, max_length=MAX_EMBEDDING_INPUTS)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[StrictInt, Field(ge=1)] | None = None
    user: StrictStr | None = None

    def inputs(self) -> list[str | list[int]]:
        """One entry per embedding asked for: a string, or one input's token ids."""
        if isinstance(self.input, str) or (self.input and isinstance(self.input[0], int)):
            return [self.input]
        return list(self.input)
