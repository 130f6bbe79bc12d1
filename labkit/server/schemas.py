"""Request bodies of the OpenAI endpoints labkit serves, with OpenAI's types and ranges.

Types are strict ("0.5" is not a number) and unknown fields are refused, as OpenAI does.
Parameters OpenAI has but the local engine cannot honour are listed in UNSUPPORTED and
refused by name: silence would teach a student the wrong thing.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from labkit.errors import InvalidRequestError

Number = StrictInt | StrictFloat
Temperature = Annotated[Number, Field(ge=0, le=2)]
TopP = Annotated[Number, Field(ge=0, le=1)]
Penalty = Annotated[Number, Field(ge=-2, le=2)]
Bias = Annotated[Number, Field(ge=-100, le=100)]
Stop = StrictStr | list[StrictStr] | None  # at most 4: checked in check(), to say so plainly
Seed = Annotated[StrictInt, Field(ge=-(2**63), lt=2**64)]  # what a 64-bit generator seed can hold

UNSUPPORTED = {
    "chat": ["tools", "tool_choice", "functions", "function_call", "parallel_tool_calls", "response_format",
             "audio", "modalities", "prediction", "reasoning_effort", "web_search_options", "verbosity",
             "prompt_cache_key", "safety_identifier"],
    "completions": [],
    "embeddings": [],
}
UNSUPPORTED_WHY: dict[str, str] = {}


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


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant"]
    content: StrictStr | Annotated[list[TextPart], Field(min_length=1)]
    name: StrictStr | None = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class ChatRequest(_Request):
    messages: Annotated[list[Message], Field(min_length=1)]
    max_completion_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    logprobs: StrictBool | None = None
    top_logprobs: Annotated[StrictInt, Field(ge=0, le=20)] | None = None
    store: Literal[False] | None = None  # labkit keeps no completions
    metadata: dict[StrictStr, StrictStr] | None = None
    service_tier: Literal["auto", "default"] | None = None

    def check(self) -> None:
        super().check()
        if self.top_logprobs is not None and not self.logprobs:
            raise InvalidRequestError("top_logprobs requires logprobs to be true", "top_logprobs")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise InvalidRequestError("max_tokens must be at least 1", "max_tokens")


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
