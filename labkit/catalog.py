"""Facts about models: context windows, prices, endpoints, shutdowns and which model plays each role.

The facts live in one data file, `labkit/data/catalog/models.json` (its README says how to edit it); this
module reads it. Prices are US dollars per 1M tokens. Every figure names its source (a key of the file's
`sources`); "seed 004" means original post 004, one of the Chinese blog posts labkit's lessons reproduce.

    catalog.info("gpt-4o-mini").input_per_1m      # 0.15
    catalog.cost("ft:gpt-4o-mini-2024-07-18:org::id", 1000, 100)   # a fine-tuned model's own prices
    catalog.check_not_retired("gpt-3.5-turbo-instruct")            # RetiredModelError once its shutdown passed
    catalog.preference("chat")                     # the order Lab fills the chat role in

"Today" is `catalog.today()` (datetime.date.today()), which tests replace; every date-dependent function
also takes `today=`.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from labkit.errors import RetiredModelError, UnknownModelError

CHAT = "chat"
COMPLETIONS = "completions"
EMBEDDINGS = "embeddings"
RESPONSES = "responses"
FINE_TUNING = "fine_tuning"
ROLES = ("chat", "completion", "insertion", "embedding", "fine_tune")

PATH = Path(__file__).resolve().parent / "data" / "catalog" / "models.json"


def today() -> _dt.date:
    """The date shutdowns are compared with. Tests monkeypatch this."""
    return _dt.date.today()


def _day(value: _dt.date | str | None) -> _dt.date | None:
    if value is None or isinstance(value, _dt.date):
        return value
    return _dt.date.fromisoformat(value)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    endpoint: str  # the main one: CHAT, COMPLETIONS or EMBEDDINGS (see `endpoints` for all)
    context_window: int | None
    input_per_1m: float  # USD per 1M prompt tokens
    output_per_1m: float  # USD per 1M completion tokens (0 for embeddings)
    source: str  # where the price and window come from, in words
    encoding: str | None = None  # tiktoken encoding, None for local models
    endpoints: tuple[str, ...] = ()
    max_output_tokens: int | None = None
    training_per_1m: float | None = None  # USD per 1M trained tokens; None: not fine-tunable or no source
    fine_tuned_per_1m: tuple[float, float] | None = None  # (input, output) of models fine-tuned from this one
    shutdown: _dt.date | None = None
    replacement: str | None = None
    alias_of: str | None = None
    # reasoning, logprobs, suffix, echo, structured_outputs (None: unknown)
    features: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)  # figure -> its source, in words
    local: bool = False
    note: str | None = None

    def is_shut_down(self, on: _dt.date | None = None) -> bool:
        return self.shutdown is not None and self.shutdown <= (on or today())


@dataclass(frozen=True)
class Retired:
    name: str
    replacement: str
    note: str
    shutdown: _dt.date | None = None
    source: str | None = None


@cache
def _data() -> dict:
    return json.loads(PATH.read_text())


def _source(key: str) -> str:
    return _data()["sources"].get(key, key)


def _model(d: dict) -> ModelInfo:
    endpoints = tuple(d["endpoints"])
    main = next((e for e in endpoints if e in (CHAT, COMPLETIONS, EMBEDDINGS)), endpoints[0])
    sources = {k: _source(v) for k, v in d["sources"].items()}
    price, window = sources["price"], sources["context_window"]
    ft = d.get("fine_tuned")
    return ModelInfo(
        d["name"], main, d["context_window"], d["input_per_1m"], d["output_per_1m"],
        price if price == window else f"price: {price}; context window: {window}", d["encoding"], endpoints,
        d.get("max_output_tokens"), d.get("training_per_1m"),
        (ft["input_per_1m"], ft["output_per_1m"]) if ft else None, _day(d.get("shutdown")), d.get("replacement"),
        d.get("alias_of"), dict(d.get("features") or {}), sources, bool(d.get("local")), d.get("note"))


MODELS: dict[str, ModelInfo] = {d["name"]: _model(d) for d in _data()["models"]}
RETIRED_2024: dict[str, Retired] = {
    r["name"]: Retired(r["name"], r["replacement"], r["note"], _day(r["shutdown"]), r["source"])
    for r in _data()["retired_2024"]}


def retired(on: _dt.date | None = None) -> dict[str, Retired]:
    """Every model no longer served on `on` (default: today): the 2024 retirements and each catalog model
    whose shutdown date has passed, with its replacement."""
    on = on or today()
    out = dict(RETIRED_2024)
    for m in MODELS.values():
        if m.is_shut_down(on):
            out[m.name] = Retired(m.name, m.replacement or "", f"shut down on {m.shutdown.isoformat()}",
                                  m.shutdown, m.sources.get("shutdown"))
    return out


RETIRED: dict[str, Retired] = retired()  # as of import; call retired(on=...) for another day


@dataclass(frozen=True)
class FineTuningPrice:
    """Fine-tuning gpt-3.5-turbo as announced in August 2023 (seed 001), USD per 1K tokens."""

    training_per_1k: float = 0.008
    input_per_1k: float = 0.012
    output_per_1k: float = 0.016
    source: str = "seed 001 (100,000 tokens x 3 epochs = $2.40)"
    model: str = "gpt-3.5-turbo-0613"  # the model and token limits of the seed's launch

    def training_cost(self, tokens: int, epochs: int) -> float:
        return tokens * epochs / 1000 * self.training_per_1k


FINE_TUNING_2023 = FineTuningPrice()


def _base_of(name: str) -> str | None:
    """ft:BASE:ORG:SUFFIX:ID -> BASE (None for other names)."""
    parts = name.split(":")
    return parts[1] if name.startswith("ft:") and len(parts) > 1 else None


def shutdown(name: str) -> _dt.date | None:
    """The day `name` stops (stopped) being served, None when none is known. A fine-tuned model follows its base."""
    base = _base_of(name)
    if base is not None:
        return shutdown(base)
    if name in MODELS:
        return MODELS[name].shutdown
    if name in RETIRED_2024:
        return RETIRED_2024[name].shutdown
    return None


def check_not_retired(name: str, today: _dt.date | None = None) -> None:
    """Raise RetiredModelError naming the replacement if `name` is no longer served (its shutdown date has
    passed, or it was retired in 2024). A fine-tuned model is retired with its base."""
    gone = retired(today)
    key = _base_of(name) or name
    if key in gone:
        r = gone[key]
        whose = f"its base model {key!r}" if key != name else f"model {name!r}"
        raise RetiredModelError(f"{whose} was {r.note}; use {r.replacement!r} instead", model=name,
                                replacement=r.replacement)


def info(name: str) -> ModelInfo:
    """Facts for a model, served or since shut down (history is priced too: see `check_not_retired`).

    A fine-tuned name (ft:BASE:...) gets its base's window and the fine-tuned prices (OpenAI bills a fine-tuned
    model at its own rates); a dated snapshot not listed gets its family's facts. Names retired in 2024 raise
    RetiredModelError; unknown names UnknownModelError."""
    if name in MODELS:
        return MODELS[name]
    if name in RETIRED_2024:
        check_not_retired(name)
    base = _base_of(name)
    if base is not None:
        b = MODELS.get(base) or _family(base)
        if b is not None:
            if b.fine_tuned_per_1m is not None:
                inp, out = b.fine_tuned_per_1m
                source = f"fine-tuned from {b.name}: {b.sources.get('fine_tuned', 'its own price')}"
            else:
                inp, out = b.input_per_1m, b.output_per_1m
                source = f"fine-tuned from {b.name}; no fine-tuned price in the catalog: priced like the base"
            return ModelInfo(name, b.endpoint, b.context_window, inp, out, source, b.encoding, b.endpoints,
                             b.max_output_tokens, None, None, b.shutdown, b.replacement, None, b.features,
                             {**b.sources, "price": source}, b.local)
    family = _family(name)
    if family is not None:
        return family
    raise UnknownModelError(f"labkit's catalog has no facts about model {name!r}", model=name)


def _family(name: str) -> ModelInfo | None:
    """gpt-4o-2024-11-20 -> gpt-4o's facts: a dated snapshot the file does not list shares its family's."""
    import re

    for known in sorted(MODELS, key=len, reverse=True):
        rest = name[len(known):]
        if name.startswith(known) and re.fullmatch(r"-(\d{4}-\d{2}-\d{2}|\d{4})", rest):
            return MODELS[known]
    return None


def cost(name: str, prompt_tokens: int, completion_tokens: int = 0) -> float:
    """Estimated USD for one request; 0 for a model the catalog does not know."""
    try:
        m = info(name)
    except UnknownModelError:
        return 0.0
    return (prompt_tokens * m.input_per_1m + completion_tokens * m.output_per_1m) / 1e6


def training_price(name: str) -> float | None:
    """USD per 1M trained tokens for fine-tuning `name` (a base model); None when the catalog has no price."""
    try:
        return info(name).training_per_1m
    except UnknownModelError:
        return None


def training_cost(name: str, trained_tokens: int) -> float | None:
    """USD for `trained_tokens` (tokens x epochs, as a job's trained_tokens counts them); None: price unknown."""
    price = training_price(name)
    return None if price is None else trained_tokens * price / 1e6


def preference(role: str) -> list[str]:
    """The models that may play `role` on OpenAI, in the order Lab tries them (see the file's roles_why)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    return list(_data()["roles"][role])


def fine_tuning_closures() -> list[tuple[_dt.date, str]]:
    """(date, who) of each stage of the end of OpenAI's self-serve fine-tuning."""
    return [(_day(s["date"]), s["who"]) for s in _data()["fine_tuning"]["self_serve_closed"]]


def fine_tuning_status(on: _dt.date | None = None) -> str | None:
    """Why OpenAI's self-serve fine-tuning may refuse a new job on `on` (None before its first closure)."""
    on = on or today()
    stages = fine_tuning_closures()
    passed = [(d, who) for d, who in stages if d <= on]
    if not passed:
        return None
    end = stages[-1][0]
    if passed[-1][0] == end:
        return f"OpenAI ended self-serve fine-tuning for every organisation on {end.isoformat()}"
    first = passed[0][0]
    return (f"OpenAI closed self-serve fine-tuning to new organisations on {first.isoformat()} (and to those "
            f"without recent fine-tuning on {passed[-1][0].isoformat()}); it ends for everyone on {end.isoformat()}")


def names(endpoint: str | None = None, *, served: bool | None = None, on: _dt.date | None = None) -> list[str]:
    """Catalog model names (OpenAI's, not local ones), in file order: those serving `endpoint`, and with
    served=True/False only those still served / already shut down on `on`. Lessons take names from here
    instead of writing them out."""
    out = []
    for m in MODELS.values():
        if m.local or (endpoint is not None and endpoint not in m.endpoints):
            continue
        if served is not None and m.is_shut_down(on) == served:
            continue
        out.append(m.name)
    return out


def replacements(name: str, on: _dt.date | None = None) -> list[str]:
    """The chain of replacements from a retired model to one still served on `on`:
    text-davinci-003 -> ['gpt-3.5-turbo-instruct', 'gpt-5.6-terra'] (each shut down in turn). Empty for a model
    still served; it ends early where the catalog names no further replacement."""
    gone, chain, seen = retired(on), [], {name}
    while name in gone and gone[name].replacement and gone[name].replacement not in seen:
        name = gone[name].replacement
        chain.append(name)
        seen.add(name)
    return chain
