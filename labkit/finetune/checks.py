"""Fine-tuning data preparation: check a chat JSONL file the way OpenAI's fine-tuning does, count what
it would bill, and say how many epochs it would run.

    report = finetune.validate("labkit/data/finetune/misspell.jsonl", model="gpt-3.5-turbo-0125")
    print(report.summary()); report.to_dict()        # or: labkit validate FILE.jsonl

Every problem carries its line number and a kind; kinds are counted. Nothing in the file can make
`validate` raise: a broken file is a report full of problems.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from labkit import catalog, tokens

TOKEN_LIMITS = {  # tokens per training example
    "gpt-3.5-turbo-0613": 4_096,  # at the August 2023 launch (seed 001)
    "gpt-3.5-turbo-0125": 16_385,
    "gpt-4o-mini-2024-07-18": 65_536,
}
MESSAGE_KEYS = {"role", "content", "name", "weight", "tool_calls", "function_call"}
EXAMPLE_KEYS = {"messages", "tools", "functions"}
ROLES = {"system", "user", "assistant", "tool", "function"}
MIN_EXAMPLES, RECOMMENDED_EXAMPLES = 10, 50
DEFAULT_EPOCHS, MIN_TARGET, MAX_TARGET, MAX_EPOCHS = 3, 100, 25_000, 25


@dataclass(frozen=True)
class Problem:
    line: int | None  # 1-based line of the file; None for the file as a whole
    kind: str
    message: str
    severity: str = "error"  # or "warning"


@dataclass
class Report:
    model: str
    token_limit: int
    examples: int = 0
    problems: list[Problem] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    epochs: int = 0
    billed_tokens: int = 0  # per epoch, each example capped at the token limit
    cost_usd: float | None = None

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(p.kind for p in self.problems))

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok, "counts": self.counts}

    def summary(self) -> str:
        lines = [f"{self.examples} examples for {self.model} (limit {self.token_limit:,} tokens each): "
                 + ("no errors" if self.ok else "ERRORS")]
        for kind, n in sorted(self.counts.items()):
            found = [p for p in self.problems if p.kind == kind]
            where = _where([p.line for p in found])
            lines.append(f"  {kind:24s} {n:5d}  ({found[0].severity}; {where}; the first: {found[0].message})")
        for name, value in self.stats.items():
            lines.append(f"  {name}: {value}")
        if self.examples:
            cost = "" if self.cost_usd is None else f" = ${self.cost_usd:,.2f} at ${_price(self.model):.3f}/1K"
            lines.append(f"  {self.billed_tokens:,} billed tokens per epoch x {self.epochs} epochs{cost}")
        return "\n".join(lines)


def _where(numbers: list[int | None]) -> str:
    """Every line a kind of problem is on, runs of consecutive lines as ranges: 'lines 3-5, 13, 16'."""
    lines = sorted({n for n in numbers if n is not None})
    runs: list[list[int]] = []
    for n in lines:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    spans = [f"{a}" if a == b else f"{a}-{b}" for a, b in runs]
    named = ([f"line{'s' if len(lines) > 1 else ''} " + ", ".join(spans)] if lines else []) + (
        ["the file as a whole"] if None in numbers else [])
    return " and ".join(named)


def default_epochs(examples: int) -> int:
    """OpenAI's default: 3, raised so examples x epochs >= 100 (at most 25), lowered so it stays <= 25,000."""
    if examples <= 0:
        return 0
    if examples * DEFAULT_EPOCHS < MIN_TARGET:
        return min(MAX_EPOCHS, math.ceil(MIN_TARGET / examples))
    if examples * DEFAULT_EPOCHS > MAX_TARGET:
        return max(1, MAX_TARGET // examples)
    return DEFAULT_EPOCHS


def validate(path: str | Path, model: str = "gpt-3.5-turbo-0125", token_limit: int | None = None,
             n_epochs: int | None = None, tokenizer=None) -> Report:
    """Check a chat JSONL file for fine-tuning `model`. Tokens are counted as OpenAI counts them, or,
    given a transformers `tokenizer` (a local model's), through its chat template."""
    limit = token_limit or TOKEN_LIMITS.get(model)
    if limit is None:
        raise ValueError(f"no token limit known for {model!r}: pass token_limit (known: {sorted(TOKEN_LIMITS)})")
    report = Report(model, limit)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        report.problems.append(Problem(None, "unreadable_file", str(e)))
        return report
    text = raw.decode("utf-8", errors="replace")
    counted, seen, duplicates = [], set(), 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        report.examples += 1
        example = _parse(line, number, report.problems)
        if example is None:
            continue
        key = json.dumps(example, sort_keys=True)
        duplicates += key in seen
        seen.add(key)
        if _check_example(example, number, report.problems):
            counted.append(_measure(example, number, _counter(model, tokenizer), limit, report.problems))
    if report.examples < MIN_EXAMPLES:
        report.problems.append(Problem(None, "too_few_examples",
                                       f"{report.examples} examples; fine-tuning needs at least {MIN_EXAMPLES}"))
    elif report.examples < RECOMMENDED_EXAMPLES:
        report.problems.append(Problem(None, "few_examples", f"{report.examples} examples; "
                                       f"{RECOMMENDED_EXAMPLES} to 100 usually help clearly", "warning"))
    report.stats = _stats(counted, duplicates)
    report.epochs = n_epochs or default_epochs(report.examples)
    report.billed_tokens = sum(min(m["total"], limit) for m in counted)
    price = _price(model)
    report.cost_usd = None if price is None else report.billed_tokens * report.epochs / 1000 * price
    return report


def _parse(line: str, number: int, problems: list[Problem]) -> dict | None:
    try:
        example = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as e:
        problems.append(Problem(number, "not_json", f"not valid JSON: {str(e)[:80]}"))
        return None
    if not isinstance(example, dict):
        problems.append(Problem(number, "not_object", f"a line must be a JSON object, not {type(example).__name__}"))
        return None
    return example


def _check_example(example: dict, number: int, problems: list[Problem]) -> bool:
    """Record every problem of one example; True when it is sound enough to count its tokens."""
    before = len(problems)
    for key in sorted(set(example) - EXAMPLE_KEYS, key=str):
        problems.append(Problem(number, "unrecognized_key", f"unrecognized example key {key!r}"))
    messages = example.get("messages")
    if "messages" not in example:
        problems.append(Problem(number, "missing_messages", "no 'messages' list"))
        return False
    if not isinstance(messages, list) or not messages:
        problems.append(Problem(number, "empty_messages", "'messages' must be a non-empty list"))
        return False
    for i, m in enumerate(messages):
        _check_message(m, i, number, problems)
    if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
        problems.append(Problem(number, "no_assistant_message", "no assistant message: nothing to learn"))
    return len(problems) == before


def _check_message(m, i: int, number: int, problems: list[Problem]) -> None:
    where = f"messages[{i}]"
    if not isinstance(m, dict):
        problems.append(Problem(number, "message_not_object", f"{where} is not an object"))
        return
    for key in sorted(set(m) - MESSAGE_KEYS, key=str):
        problems.append(Problem(number, "unrecognized_key", f"{where} has unrecognized key {key!r}"))
    if "role" not in m:
        problems.append(Problem(number, "missing_role", f"{where} has no role"))
    elif not isinstance(m["role"], str) or m["role"] not in ROLES:
        problems.append(Problem(number, "unrecognized_role", f"{where} has role {str(m['role'])[:40]!r}"))
    calls = m.get("tool_calls") or m.get("function_call")
    if "content" not in m or (m["content"] is None and not calls):
        problems.append(Problem(number, "missing_content", f"{where} has no content"))
    elif m["content"] is not None and _text(m["content"]) is None:
        problems.append(Problem(number, "bad_content", f"{where} content must be a string or a list of text parts"))
    if "weight" in m:
        if type(m["weight"]) is not int or m["weight"] not in (0, 1):
            problems.append(Problem(number, "bad_weight", f"{where} weight must be 0 or 1, got {m['weight']!r:.20}"))
        elif m.get("role") != "assistant":
            problems.append(Problem(number, "weight_on_non_assistant", f"{where}: weight is for assistant messages"))


def _text(content) -> str | None:
    """The text of a content value, or None when it is neither a string nor a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    return None


def _counter(model: str, tokenizer) -> tuple[Callable[[list[dict]], int], Callable[[str], int]]:
    """(tokens of a conversation, tokens of a text) for the model being fine-tuned."""
    if tokenizer is not None:
        def conversation(messages):
            try:
                return len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])
            except Exception:  # a template that refuses these roles: count the texts alone
                return sum(len(tokenizer(m["content"]).input_ids) for m in messages)
        return conversation, lambda text: len(tokenizer(text).input_ids)
    encoding_model = "gpt-4o-mini" if model.startswith("gpt-4o") else "gpt-3.5-turbo"
    return (lambda messages: tokens.count_messages(messages, encoding_model),
            lambda text: tokens.count(text, encoding_model))


def _measure(example: dict, number: int, count, limit: int, problems: list[Problem]) -> dict:
    messages = [{"role": m["role"], "content": _text(m.get("content") or "") or ""} for m in example["messages"]]
    conversation, text = count
    total = conversation(messages)
    assistant = sum(text(m["content"]) for m in messages if m["role"] == "assistant")
    if total > limit:
        problems.append(Problem(number, "too_many_tokens", f"{total:,} tokens > {limit:,}: it will be truncated"))
    roles = {m["role"] for m in messages}
    return {"messages": len(messages), "total": total, "assistant": assistant,
            "no_system": "system" not in roles, "no_user": "user" not in roles}


def _distribution(values: list[int]) -> dict:
    if not values:
        return {}
    p5, p50, p95 = np.percentile(values, [5, 50, 95])
    return {"min": min(values), "p5": round(float(p5), 1), "median": round(float(p50), 1),
            "mean": round(float(np.mean(values)), 1), "p95": round(float(p95), 1), "max": max(values)}


def _stats(measured: list[dict], duplicates: int) -> dict:
    return {
        "messages per example": _distribution([m["messages"] for m in measured]),
        "total tokens per example": _distribution([m["total"] for m in measured]),
        "assistant tokens per example": _distribution([m["assistant"] for m in measured]),
        "examples without a system message": sum(m["no_system"] for m in measured),
        "examples without a user message": sum(m["no_user"] for m in measured),
        "duplicate examples": duplicates,
    }


def _price(model: str) -> float | None:
    """Training price per 1K tokens: the seed's gpt-3.5-turbo price; None where the catalog has none."""
    return catalog.FINE_TUNING_2023.training_per_1k if model.startswith("gpt-3.5-turbo") else None
