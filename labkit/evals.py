"""Evals: run a model over labeled items and score each answer, with OpenAI Evals' basic templates.

    items = evals.load("sentiment")                       # labkit/data/fewshot/sentiment.jsonl
    result = evals.run(lab, items, evals.Choice(["positive", "negative"]), prompt=my_prompt)
    result.accuracy, result.interval, result.df          # one DataFrame row per item

An item is a dict with "input" and "ideal" (a string or a list of acceptable strings).
`prompt(item)` turns it into chat messages (a list: /v1/chat/completions) or text (a string:
/v1/completions), so the same template scores chat and completion prompting alike.

Templates, as in OpenAI Evals:
  ExactMatch    the answer, stripped, equals an ideal
  Includes      an ideal appears in the answer
  FuzzyMatch    after normalizing case, punctuation, articles and spaces, one contains the other
  JsonReply     the answer is a JSON object of a given shape (format, not facts)
  Choice        the option the model finds likeliest, read from logprobs (no text is parsed)
  ModelGraded   a grader model reads question, reference and answer and says whether it is right

A `Choice` result also holds each option's probability: `result.answered()` is how often each option was the
answer (a model that gives one label for everything shows it here), `reliability(result)` compares its
confidence with its accuracy, and `calibrate(result, prior)` divides out a label prior measured with
`content_free_prior` (Zhao et al. 2021) or `batch_prior` (Zhou et al. 2024).
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from labkit import DATA
from labkit.progress import tqdm

Prompt = str | list[dict]
_ROLE = object()  # run's default model: the lab's model for the prompts' role


def load(name: str, folder: Path | None = None) -> list[dict]:
    """Items of a JSONL dataset: `load("sentiment")` reads labkit/data/fewshot/sentiment.jsonl."""
    path = (folder or DATA / "fewshot") / f"{name}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no dataset {name!r}: {path} does not exist")
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def ideals(item: dict) -> list[str]:
    ideal = item["ideal"]
    return [ideal] if isinstance(ideal, str) else list(ideal)


def normalize(text: str) -> str:
    """Lowercase; drop punctuation, the articles a/an/the and extra spaces (as SQuAD and OpenAI Evals do)."""
    text = "".join(c for c in text.lower() if c not in string.punctuation)
    return " ".join(w for w in text.split() if w not in ("a", "an", "the"))


# ---------------------------------------------------------------- templates


def _complete(client, model: str, prompt: Prompt, **kw):
    """One request; returns (text, logprob entries of the first token as {token: logprob})."""
    if isinstance(prompt, str):
        r = client.completions.create(model=model, prompt=prompt, **kw)
        c = r.choices[0]
        top = c.logprobs.top_logprobs[0] if c.logprobs and c.logprobs.top_logprobs else {}
        return c.text, dict(top or {})
    if "logprobs" in kw:  # chat spells it logprobs=True + top_logprobs=k
        kw = {**kw, "logprobs": True, "top_logprobs": kw["logprobs"]}
    r = client.chat.completions.create(model=model, messages=prompt, **kw)
    c = r.choices[0]
    top = {t.token: t.logprob for t in c.logprobs.content[0].top_logprobs} if c.logprobs and c.logprobs.content else {}
    return c.message.content or "", top


@dataclass(kw_only=True)
class Generated:
    """Base of the templates that let the model write its answer (greedy) and then compare text."""

    max_tokens: int = 32
    stop: list[str] | None = field(default_factory=lambda: ["\n"])
    response_format: dict | None = None  # chat's response_format: the answer constrained to a JSON schema

    def ask(self, client, model: str, prompt: Prompt, item: dict) -> dict:
        kw = {"max_tokens": self.max_tokens, "temperature": 0}
        if self.stop:
            kw["stop"] = self.stop
        if self.response_format is not None:
            kw["response_format"] = self.response_format
        text, _ = _complete(client, model, prompt, **kw)
        return {"answer": text, "correct": self.score(text, item)}

    def score(self, answer: str, item: dict) -> bool:
        raise NotImplementedError


class ExactMatch(Generated):
    def score(self, answer: str, item: dict) -> bool:
        return answer.strip() in [i.strip() for i in ideals(item)]


class Includes(Generated):
    def score(self, answer: str, item: dict) -> bool:
        return any(i.lower() in answer.lower() for i in ideals(item))


class FuzzyMatch(Generated):
    def score(self, answer: str, item: dict) -> bool:
        a = normalize(answer)
        return bool(a) and any(b and (a in b or b in a) for b in map(normalize, ideals(item)))


@dataclass
class JsonReply(Generated):
    """The reply is one JSON object with exactly these keys, each of its type (float accepts ints too).
    It checks the format a system message asked for, not whether the facts are right."""

    keys: dict[str, type] = field(default_factory=dict)
    max_tokens: int = field(default=64, kw_only=True)
    stop: list[str] | None = field(default=None, kw_only=True)

    def ask(self, client, model: str, prompt: Prompt, item: dict) -> dict:
        row = super().ask(client, model, prompt, item)
        return {**row, "valid_json": _parses(row["answer"])}  # JSON at all, whatever its shape

    def schema(self) -> dict:
        """The JSON Schema of the shape, in strict mode's form (every key required, no others)."""
        types = {str: "string", float: "number", int: "integer", bool: "boolean"}
        return {"type": "object", "properties": {k: {"type": types[t]} for k, t in self.keys.items()},
                "required": list(self.keys), "additionalProperties": False}

    def score(self, answer: str, item: dict) -> bool:
        try:
            obj = json.loads(answer)
        except json.JSONDecodeError:
            return False
        return isinstance(obj, dict) and set(obj) == set(self.keys) and all(
            _is(obj[k], t) for k, t in self.keys.items())


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def _is(value, kind: type) -> bool:
    if isinstance(value, bool):  # JSON true is not a number
        return kind is bool
    return isinstance(value, (int, float)) if kind is float else isinstance(value, kind)


@dataclass
class Choice:
    """Pick among fixed options by the logprob of each option's first token: no parsing, and a
    model that would have answered "Positive!" or " positive" still counts.

    top_logprobs: how many alternatives to read (OpenAI allows 20 in chat, 5 in completions).
    An option whose first token is not among them scores -inf."""

    options: Sequence[str]
    top_logprobs: int = 20

    def ask(self, client, model: str, prompt: Prompt, item: dict) -> dict:
        k = min(self.top_logprobs, 5) if isinstance(prompt, str) else self.top_logprobs
        _, top = _complete(client, model, prompt, max_tokens=1, temperature=0, logprobs=k)
        scores = self.option_logprobs(top)
        answer = max(self.options, key=lambda o: scores[o])
        if scores[answer] == -math.inf:  # none of the options is among the likeliest tokens
            answer = ""
        row = {"answer": answer, "correct": answer in ideals(item)}
        row.update({f"logprob[{o}]": scores[o] for o in self.options})
        return row

    def option_logprobs(self, top: dict[str, float]) -> dict[str, float]:
        """Each option's best logprob among the tokens that begin it (case and leading space ignored)."""
        scores = {}
        for option in self.options:
            o = option.strip().lower()
            hits = [lp for tok, lp in top.items() if tok.strip() and o.startswith(tok.strip().lower())]
            scores[option] = max(hits, default=-math.inf)
        return scores


GRADER_PROMPT = """You are grading an answer against a reference answer.
Question: {input}
Reference answer: {ideal}
Submitted answer: {answer}
Does the submitted answer mean the same as the reference answer? Answer Yes or No."""


@dataclass
class ModelGraded:
    """The model under test answers; a grader model (by default the same one) judges it against the
    first reference by the logprobs of Yes and No. Only as good as the grader: check it on items
    whose grade you know before you trust it."""

    grader: str | None = None
    answer_with: Generated = field(default_factory=lambda: ExactMatch(max_tokens=48))

    def ask(self, client, model: str, prompt: Prompt, item: dict) -> dict:
        answer = self.answer_with.ask(client, model, prompt, item)["answer"]
        question = item["input"] if isinstance(item["input"], str) else json.dumps(item["input"])
        grade = [{"role": "user", "content": GRADER_PROMPT.format(input=question, ideal=ideals(item)[0],
                                                                  answer=answer.strip())}]
        verdict = Choice(["Yes", "No"]).ask(client, self.grader or model, grade, {"ideal": "Yes"})
        return {"answer": answer, "correct": verdict["correct"], "grade_logprob_yes": verdict["logprob[Yes]"]}


# ---------------------------------------------------------------- running


@dataclass
class Result:
    df: pd.DataFrame  # one row per item: input, ideal, answer, correct, and the template's own columns
    model: str
    options: tuple[str, ...] | None = None  # Choice's options, in order (None for templates that write text)

    @property
    def n(self) -> int:
        return len(self.df)

    @property
    def accuracy(self) -> float:
        return float(self.df["correct"].mean()) if self.n else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(int(self.df["correct"].sum()), self.n)

    def __repr__(self) -> str:
        lo, hi = self.interval
        return f"{self.model}: accuracy {self.accuracy:.1%} (95% CI {lo:.1%}-{hi:.1%}) over {self.n} items"

    def answered(self) -> dict[str, float]:
        """The share of items given each answer, most frequent first; a Choice result lists every option, 0 too
        ("" is an item where none of the options was among the likeliest tokens)."""
        shares = self.df["answer"].value_counts(normalize=True)
        out = {str(a): float(v) for a, v in shares.items()}
        if self.options:
            out = {**{o: out.get(o, 0.0) for o in self.options}, **out}
            out = dict(sorted(out.items(), key=lambda kv: -kv[1]))
        return out

    def summary(self, top: int | None = None) -> str:
        """One line: accuracy, its interval, and how often each answer was given: every option of a Choice result
        (0% too), else the `top` (4) most frequent answers; answers left out are counted ("2 others")."""
        lo, hi = self.interval
        shares = list(self.answered().items())
        top = top if top is not None else (len(shares) if self.options else 4)
        rest = [a for a, v in shares[top:] if v > 0]
        said = ", ".join(f"{a or '(none)'} {v:.0%}" for a, v in shares[:top])
        return (f"accuracy {self.accuracy:4.0%} (95% CI {lo:.0%}-{hi:.0%}) | answered {said}"
                + (f", {len(rest)} other{'s' if len(rest) > 1 else ''}" if rest else ""))

    def probabilities(self) -> pd.DataFrame:
        """A Choice result's probability of each option per item, renormalized over the options (the mass the
        model puts on other tokens left out). An option outside the top logprobs counts as 0; an item with no
        option there gets 1/len(options) each: nothing was learned about it."""
        if not self.options:
            raise ValueError("probabilities() needs a Choice result: the template wrote text, not option logprobs")
        return pd.DataFrame(_normalize(self.df[[f"logprob[{o}]" for o in self.options]].to_numpy(float)),
                            columns=list(self.options), index=self.df.index)

    def save(self, name: str) -> Path:
        """Keep this result as LABKIT_HOME/results/NAME.json, where a later lesson can compare with it."""
        path = _results() / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"model": self.model, "options": self.options, "rows": self.df.to_dict("records")},
                                   default=str))
        return path

    @classmethod
    def saved(cls, name: str) -> Result | None:
        """A result save(name) kept, or None if none was saved on this machine."""
        path = _results() / f"{name}.json"
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        options = data.get("options")
        return cls(pd.DataFrame(data["rows"]), data["model"], tuple(options) if options else None)


def _normalize(logprobs: np.ndarray) -> np.ndarray:
    """Rows of logprobs (-inf allowed) -> rows of probabilities summing to 1; an all -inf row -> uniform."""
    logprobs = np.atleast_2d(np.asarray(logprobs, dtype=float))
    top = logprobs.max(axis=1, keepdims=True)
    seen = np.isfinite(top)
    p = np.where(seen, np.exp(logprobs - np.where(seen, top, 0.0)), 1.0)
    return p / p.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- label priors, calibration, reliability

CONTENT_FREE = ("N/A", "", "[MASK]")  # Zhao et al. 2021's content-free inputs


def content_free_prior(lab, template: Choice, prompt: Callable[[dict], Prompt], inputs: Sequence[str] = CONTENT_FREE,
                       model: str | None = _ROLE) -> dict[str, float]:  # type: ignore[assignment]
    """The label prior a prompt carries, as Zhao et al. 2021 ("Calibrate Before Use") measure it: the prompt,
    its shots included, asked about inputs with no content ("N/A", "", "[MASK]"), each option's probability
    averaged over them. An unbiased prompt gives each option 1/len(options)."""
    items = [{"input": text, "ideal": template.options[0]} for text in inputs]
    probs = run(lab, items, template, prompt, model=model, progress=False).probabilities()
    return {o: float(probs[o].mean()) for o in template.options}


def batch_prior(result: Result) -> dict[str, float]:
    """The label prior as Zhou et al. 2024 ("Batch Calibration") measure it: each option's probability averaged
    over the items asked. It needs no extra request and no label, only a batch of real inputs; on a task whose
    labels are balanced it is what a prompt adds to them."""
    probs = result.probabilities()
    return {o: float(probs[o].mean()) for o in result.options}


def calibrate(result: Result, prior: dict[str, float], floor: float = 1e-3) -> Result:
    """Contextual calibration (Zhao et al. 2021): divide each option's probability by the prompt's prior for it
    and renormalize, so an input that only carries the prior comes out uniform. Answers are re-read from the
    calibrated probabilities (the logprob columns hold their logs); nothing is asked again. A prior below `floor`
    counts as `floor`: an option never among the top logprobs has a probability too small to read, not 0."""
    options = list(result.options or ())
    if not options:
        raise ValueError("calibrate() needs a Choice result")
    weights = np.maximum(np.array([prior[o] for o in options], dtype=float), floor)
    probs = result.probabilities().to_numpy() / weights
    probs /= probs.sum(axis=1, keepdims=True)
    df = result.df.copy()
    answered = result.df["answer"] != ""
    df["answer"] = np.where(answered, np.array(options, dtype=object)[probs.argmax(axis=1)], "")
    df["correct"] = [a in ideals(row) for a, row in zip(df["answer"], df.to_dict("records"))]
    with np.errstate(divide="ignore"):
        for i, o in enumerate(options):
            df[f"logprob[{o}]"] = np.where(answered, np.log(probs[:, i]), -math.inf)
    return Result(df, result.model, result.options)


def reliability(results: Result | Sequence[Result], bins: int = 5) -> pd.DataFrame:
    """How well a Choice result's probabilities are calibrated: items binned by confidence (the probability of
    the option answered, from 1/len(options) to 1, in `bins` equal bins), each bin's mean confidence against
    its accuracy. Well calibrated: accuracy = confidence in every bin. Several results (e.g. every draw of a
    prompt) are pooled. Columns: bin, n, confidence, accuracy."""
    results = [results] if isinstance(results, Result) else list(results)
    options = results[0].options
    if not options or any(r.options != options for r in results):
        raise ValueError("reliability() needs Choice results over the same options")
    confidence = np.concatenate([r.probabilities().max(axis=1).to_numpy() for r in results])
    correct = np.concatenate([r.df["correct"].to_numpy(bool) for r in results])
    edges = np.linspace(1 / len(options), 1, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)
    rows = [{"bin": f"{edges[b]:.0%}-{edges[b + 1]:.0%}", "n": int((which == b).sum()),
             "confidence": float(confidence[which == b].mean()) if (which == b).any() else math.nan,
             "accuracy": float(correct[which == b].mean()) if (which == b).any() else math.nan}
            for b in range(bins)]
    return pd.DataFrame(rows)


def calibration_error(table: pd.DataFrame) -> float:
    """Expected calibration error of a `reliability` table: the mean |accuracy - confidence| over items (each
    bin weighted by its share of the items). 0 is perfectly calibrated."""
    filled = table[table["n"] > 0]
    return float((filled["n"] * (filled["accuracy"] - filled["confidence"]).abs()).sum() / filled["n"].sum())


def _results() -> Path:
    from labkit.engine.registry import home

    return home() / "results"


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion: sensible at 0%, 100% and small n, unlike p +- z*se."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def concurrently(fn: Callable, *iterables, concurrency: int = 8) -> list:
    """[fn(*args) for args in zip(*iterables)], `concurrency` calls at a time, results in order. Requests sent
    together are decoded together by the local server's engine loop, each answering exactly as it would alone,
    and overlap on a remote API: `run` sends its requests this way too."""
    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(fn, *iterables))


def run(lab, items: Sequence[dict], template, prompt: Callable[[dict], Prompt], model: str | None = _ROLE,  # type: ignore[assignment]
        concurrency: int = 8, progress: bool = True, desc: str | None = None) -> Result:
    """Ask `model` (default: the lab's chat model for chat prompts, completion model for text) about
    every item and score it. Requests run `concurrency` at a time on either backend: the local
    server's engine loop decodes them together, and a seeded item answers as it would alone.

    Without `model`, the role comes from `lab.for_role`: where the backend cannot serve it (no completions
    model left on OpenAI; a chat model without logprobs for `Choice`) the local model answers, and one line
    is printed saying so."""
    if not items:
        raise ValueError("items is empty: nothing to evaluate")
    for i, item in enumerate(items):
        if "input" not in item or "ideal" not in item:
            raise ValueError(f"item {i} needs 'input' and 'ideal' keys, got {sorted(item)}")
    prompts = [prompt(item) for item in items]
    client = lab.client
    if model is None:  # a role the backend has no model for (lab.models.fine_tune on OpenAI): never a silent switch
        raise ValueError("model is None: this backend has no model for that role. Take the role from "
                         "lab.for_role(role), which falls back to the local model and says so, and pass its .lab")
    if model is _ROLE:
        role = "completion" if isinstance(prompts[0], str) else "chat"
        needs = ("logprobs",) if isinstance(template, Choice) and role == "chat" else ()
        served = lab.for_role(role, needs=needs) if hasattr(lab, "for_role") else None
        if served is None and hasattr(lab, "for_role"):
            raise ValueError(f"no model can serve the {role} role here: see the line above")
        client, model = served if served is not None else (lab.client, getattr(lab.models, role))

    def one(k: int) -> dict:
        return template.ask(client, model, prompts[k], items[k])

    with ThreadPoolExecutor(concurrency) as pool:
        rows = list(tqdm(pool.map(one, range(len(items))), total=len(items), disable=not progress,
                         desc=desc or f"{type(template).__name__} on {model}", leave=False))
    df = pd.DataFrame([{"input": it["input"], "ideal": it["ideal"], **row} for it, row in zip(items, rows)])
    return Result(df, model, tuple(template.options) if isinstance(template, Choice) else None)

