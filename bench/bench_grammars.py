"""Constrained decoding for structured outputs: llguidance, xgrammar and outlines-core side by side on the default
model's tokenizer, beside decode steps of the model measured in the same run.

    python bench/bench_grammars.py [--threads 1] [--repeats 20] [--fresh 3] [--cases all|asked|more|edge|NAME,...]

Only llguidance is meant to be a labkit dependency; a library that is not installed is skipped with a line that
says so. To compare all three, install xgrammar and outlines-core into a separate venv that also sees the
project's packages (docs/structured-outputs.md says how), never into the project's own.

On SmolLM2's tokenizer (49,152 tokens) it measures, for each library:
- building its tokenizer object;
- per token, once warm: the next-token mask (a 32-bit bitmask written into a preallocated tensor by the library's
  own fill function) at every token of a fixed valid JSON answer (WALK_VALUE, tokenized by the model's tokenizer),
  and the mask plus consuming the token; mean, median and p95 in this thread's CPU time, which does not count time
  the thread was preempted (the wall clock is printed too), beside one batch-1 decode step with a KV cache. The
  libraries walk the tokens in lockstep and take turns with the decode steps, so all see the same load;
- a fresh request: compiling the answer's schema, then one cold walk of its tokens, beside decoding them;
- coverage, one JSON Schema keyword per case (CASES): whether the schema compiles, and whether the keyword is
  enforced: a valid instance's tokens must all be accepted and end in an accepting state, and an instance that
  breaks only that keyword must be rejected somewhere along its tokens. "IGNORED" means the schema compiled and
  the broken instance went through: a server has to refuse that keyword itself.

On a machine shared with other work, pass --threads 1: a busy core stalls every two-thread decode step.
Prints the figures; no assertions.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache

from labkit.engine import DEFAULT_MODEL, load
from labkit.engine.text import byte_decoder


def obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """A root object as OpenAI's strict mode wants it: every property required, no others."""
    return {"type": "object", "properties": props, "required": list(props) if required is None else required,
            "additionalProperties": False}


def _tree(depth: int, leaf: Any = 1) -> dict[str, Any]:
    node: dict[str, Any] = {"value": depth, "children": []}
    if depth > 1:
        node["children"] = [_tree(depth - 1, leaf), {"value": 0, "children": []}]
    else:
        node["value"] = leaf
    return node


class Raw(str):
    """An instance given as JSON text, for what json.dumps cannot write (a duplicate key)."""


@dataclass
class Case:
    name: str
    schema: dict[str, Any]
    valid: Any  # must be accepted whole
    broken: Any  # breaks only the keyword the case is about: must be rejected somewhere
    group: str = "asked"


CASES = [
    # The issue's list.
    Case("small object (type)", obj({"name": {"type": "string"}, "age": {"type": "integer"}}),
         {"name": "Ada", "age": 36}, {"name": "Ada", "age": "36"}),
    Case("nested objects + arrays",
         obj({"user": obj({"id": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}}),
            "scores": {"type": "array", "items": {"type": "number"}}}),
         {"user": {"id": 7, "tags": ["a", "b"]}, "scores": [1.5, 2]},
         {"user": {"id": 7, "tags": ["a", 3]}, "scores": [1.5, 2]}),
    Case("enum", obj({"color": {"type": "string", "enum": ["red", "green", "blue"]}}),
         {"color": "green"}, {"color": "purple"}),
    Case("const", obj({"version": {"const": 2}}), {"version": 2}, {"version": 3}),
    Case("anyOf", obj({"id": {"anyOf": [{"type": "integer"}, {"type": "string"}]}}), {"id": "x7"}, {"id": True}),
    Case("$ref / $defs",
         {**obj({"a": {"$ref": "#/$defs/point"}, "b": {"$ref": "#/$defs/point"}}),
          "$defs": {"point": obj({"x": {"type": "number"}, "y": {"type": "number"}})}},
         {"a": {"x": 1, "y": 2}, "b": {"x": 3.5, "y": -1}}, {"a": {"x": 1, "y": 2}, "b": {"x": 3.5}}),
    Case("pattern", obj({"code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"}}),
         {"code": "ABC-12"}, {"code": "abc-12"}),
    Case("format: date", obj({"d": {"type": "string", "format": "date"}}), {"d": "2024-02-29"}, {"d": "29/02/2024"}),
    Case("format: email", obj({"e": {"type": "string", "format": "email"}}),
         {"e": "ada@example.com"}, {"e": "ada at example"}),
    Case("minLength", obj({"s": {"type": "string", "minLength": 3}}), {"s": "abcd"}, {"s": "ab"}),
    Case("maxLength", obj({"s": {"type": "string", "maxLength": 5}}), {"s": "abc"}, {"s": "abcdefgh"}),
    Case("minItems", obj({"xs": {"type": "array", "items": {"type": "integer"}, "minItems": 2}}),
         {"xs": [1, 2, 3]}, {"xs": [1]}),
    Case("maxItems", obj({"xs": {"type": "array", "items": {"type": "integer"}, "maxItems": 3}}),
         {"xs": [1, 2]}, {"xs": [1, 2, 3, 4]}),
    Case("minimum (number)", obj({"x": {"type": "number", "minimum": 0}}), {"x": 3.5}, {"x": -1.5}),
    Case("maximum (integer)", obj({"n": {"type": "integer", "maximum": 100}}), {"n": 42}, {"n": 250}),
    Case("additionalProperties: false", obj({"a": {"type": "integer"}}), {"a": 1}, {"a": 1, "b": 2}),
    Case("required subset", obj({"a": {"type": "integer"}, "b": {"type": "integer"}}, ["a"]), {"a": 1}, {"b": 2}),
    Case("recursive $ref (depth 5)",
         {"$defs": {"node": obj({"value": {"type": "integer"},
                               "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}})},
          "$ref": "#/$defs/node"},
         _tree(5), _tree(5, leaf="x")),
    # More keywords: the rest of what OpenAI's strict mode takes, and common ones it does not.
    *[Case(name, schema, valid, broken, "more") for name, schema, valid, broken in [
        ("exclusiveMinimum", obj({"x": {"type": "number", "exclusiveMinimum": 0}}), {"x": 0.5}, {"x": 0}),
        ("exclusiveMaximum", obj({"x": {"type": "number", "exclusiveMaximum": 1}}), {"x": 0.5}, {"x": 1}),
        ("multipleOf", obj({"n": {"type": "integer", "multipleOf": 5}}), {"n": 15}, {"n": 7}),
        ("format: date-time", obj({"t": {"type": "string", "format": "date-time"}}), {"t": "2024-02-29T12:30:00Z"},
         {"t": "yesterday"}),
        ("format: time", obj({"t": {"type": "string", "format": "time"}}), {"t": "12:30:00Z"}, {"t": "noon"}),
        ("format: duration", obj({"p": {"type": "string", "format": "duration"}}), {"p": "P3D"}, {"p": "three days"}),
        ("format: hostname", obj({"h": {"type": "string", "format": "hostname"}}), {"h": "example.com"},
         {"h": "bad host!"}),
        ("format: ipv4", obj({"ip": {"type": "string", "format": "ipv4"}}), {"ip": "192.168.0.1"}, {"ip": "hello"}),
        ("format: ipv6", obj({"ip": {"type": "string", "format": "ipv6"}}), {"ip": "2001:db8::1"}, {"ip": "hello"}),
        ("format: uuid", obj({"u": {"type": "string", "format": "uuid"}}),
         {"u": "123e4567-e89b-12d3-a456-426614174000"}, {"u": "not-a-uuid"}),
        ("format: uri", obj({"u": {"type": "string", "format": "uri"}}), {"u": "https://example.com/a?b=1"},
         {"u": "not a uri"}),
        ("type: [string, null]", obj({"s": {"type": ["string", "null"]}}), {"s": None}, {"s": 3}),
        ("oneOf (disjoint)", obj({"id": {"oneOf": [{"type": "integer"}, {"type": "string"}]}}), {"id": 4},
         {"id": True}),
        ("allOf", obj({"n": {"allOf": [{"type": "integer"}, {"minimum": 10}]}}), {"n": 12}, {"n": 5}),
        ("prefixItems", obj({"p": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}],
                                 "items": False}}), {"p": ["a", 1]}, {"p": [1, "a"]}),
        ("minProperties", obj({"m": {"type": "object", "additionalProperties": {"type": "integer"},
                                   "minProperties": 1}}), {"m": {"a": 1}}, {"m": {}}),
        ("maxProperties", obj({"m": {"type": "object", "additionalProperties": {"type": "integer"},
                                   "maxProperties": 1}}), {"m": {"a": 1}}, {"m": {"a": 1, "b": 2}}),
        ("patternProperties", obj({"m": {"type": "object", "patternProperties": {"^x_": {"type": "integer"}},
                                       "additionalProperties": False}}), {"m": {"x_a": 1}}, {"m": {"x_a": "s"}}),
        ("propertyNames", obj({"m": {"type": "object", "additionalProperties": {"type": "integer"},
                                   "propertyNames": {"pattern": "^[a-z]+$"}}}), {"m": {"ab": 1}}, {"m": {"AB": 1}}),
        ("uniqueItems", obj({"xs": {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}}),
         {"xs": [1, 2]}, {"xs": [1, 1]}),
        ("contains", obj({"xs": {"type": "array", "items": {"type": "integer"}, "contains": {"const": 7}}}),
         {"xs": [1, 7]}, {"xs": [1, 2]}),
        ("dependentRequired", {**obj({"a": {"type": "integer"}, "b": {"type": "integer"}}, []),
                               "dependentRequired": {"a": ["b"]}}, {"a": 1, "b": 2}, {"a": 1}),
        ("if / then", obj({"n": {"type": "integer", "if": {"minimum": 10}, "then": {"maximum": 20}}}), {"n": 15},
         {"n": 30}),
        ("not", obj({"v": {"not": {"type": "string"}}}), {"v": 1}, {"v": "x"}),
    ]],
    # Edge cases: keywords together, and JSON Schema's own semantics.
    *[Case(name, schema, valid, broken, "edge") for name, schema, valid, broken in [
        ("multipleOf 0.5 (number)", obj({"x": {"type": "number", "multipleOf": 0.5}}), {"x": 1.5}, {"x": 0.7}),
        ("minimum 1.5 on an integer", obj({"n": {"type": "integer", "minimum": 1.5}}), {"n": 2}, {"n": 1}),
        ("maximum 123456789", obj({"n": {"type": "integer", "maximum": 123456789}}), {"n": 123456789},
         {"n": 123456790}),
        ("date on the calendar", obj({"d": {"type": "string", "format": "date"}}), {"d": "2024-02-28"},
         {"d": "2024-02-30"}),
        ("pattern + maxLength", obj({"s": {"type": "string", "pattern": "^a+$", "maxLength": 3}}), {"s": "aaa"},
         {"s": "aaaa"}),
        ("format + maxLength", obj({"s": {"type": "string", "format": "email", "maxLength": 8}}), {"s": "a@b.com"},
         {"s": "abcdef@b.com"}),
        ("pattern is a search", obj({"s": {"type": "string", "pattern": "[0-9]{3}"}}), {"s": "ab123cd"},
         {"s": "abc"}),
        ("maxLength counts \\n as one", obj({"s": {"type": "string", "maxLength": 2}}), {"s": "\n\n"},
         {"s": "\n\n\n"}),
        ("minLength counts characters", obj({"s": {"type": "string", "minLength": 2, "maxLength": 2}}),
         {"s": "é€"}, {"s": "é"}),
        ("control character \\u0001", obj({"s": {"type": "string"}}), {"s": "a\u0001b"}, {"s": 1}),
        ("const object", obj({"c": {"const": {"a": 1}}}), {"c": {"a": 1}}, {"c": {"a": 2}}),
        ("enum of mixed values", obj({"c": {"enum": [{"a": 1}, [1, 2], None, "x"]}}), {"c": [1, 2]}, {"c": [2, 1]}),
        ("enum + type", obj({"c": {"type": "string", "enum": ["a", 1]}}), {"c": "a"}, {"c": 1}),
        ("oneOf (overlapping)", obj({"v": {"oneOf": [{"type": "integer"}, {"type": "number"}]}}), {"v": 1.5},
         {"v": 1}),
        ("allOf with $ref", {**obj({"v": {"allOf": [{"$ref": "#/$defs/p"}, {"maximum": 5}]}}),
                             "$defs": {"p": {"type": "integer", "minimum": 1}}}, {"v": 3}, {"v": 9}),
        ("prefixItems + minItems", obj({"p": {"type": "array", "prefixItems": [{"type": "string"}],
                                            "items": {"type": "integer"}, "minItems": 3}}),
         {"p": ["a", 1, 2]}, {"p": ["a", 1]}),
        ("additionalProperties unset", {"type": "object", "properties": {"a": {"type": "integer"}},
                                        "required": ["a"]}, {"a": 1, "z": 2}, {"a": "x"}),
        ("properties in another order", obj({"a": {"type": "integer"}, "b": {"type": "integer"}}),
         {"b": 1, "a": 2}, {"a": 1}),
        ("minProperties vs a duplicate key", obj({"m": {"type": "object", "additionalProperties": {"type": "integer"},
                                                      "minProperties": 2}}),
         {"m": {"a": 1, "b": 2}}, Raw('{"m": {"a": 1, "a": 2}}')),
    ]],
]
STATUSES = ("enforced", "IGNORED", "refused", "rejects valid")
GROUPS = {"asked": "the issue's list", "more": "more keywords", "edge": "edge cases and keywords together"}

# The fixed text whose tokens every library walks: what a chat model is asked for in a lesson.
WALK_SCHEMA = obj({
    "name": {"type": "string"},
    "age": {"type": "integer", "minimum": 0},
    "role": {"type": "string", "enum": ["student", "teacher", "assistant"]},
    "active": {"type": "boolean"},
    "scores": {"type": "array", "items": {"type": "number"}, "maxItems": 10},
    "address": obj({"city": {"type": "string"}, "postcode": {"type": "string", "pattern": "^[0-9]{5}$"}}),
    "courses": {"type": "array", "items": obj({"title": {"type": "string"}, "credits": {"type": "integer"}})},
    "bio": {"type": "string", "maxLength": 400},
})
WALK_VALUE = {
    "name": "Ada Lovelace", "age": 36, "role": "teacher", "active": True, "scores": [9.5, 8.25, 10, 7],
    "address": {"city": "London", "postcode": "10115"},
    "courses": [{"title": "Analytical Engines", "credits": 6}, {"title": "Notes on Bernoulli numbers", "credits": 3}],
    "bio": "Wrote the first published program for a general-purpose machine and saw that it could act on "
           "symbols as well as numbers, so music and text were within its reach.",
}


class Refused(Exception):
    pass


class Library:
    """One constrained-decoding library behind the few calls a decode loop makes."""

    name = ""
    package = ""

    def version(self) -> str:
        return importlib.metadata.version(self.package)

    warnings: list[str] = []  # what the last compile warned of

    def setup(self, tokenizer, vocab_size: int, eos: int) -> None: ...

    def compile(self, schema: dict) -> Any: ...  # raises Refused

    def matcher(self, compiled) -> Any: ...

    def fill(self, m, mask: torch.Tensor) -> None: ...

    def advance(self, m, token: int) -> bool: ...  # False: the token was rejected

    def advance_checked(self, m, token: int) -> bool:
        return self.advance(m, token)

    def accepting(self, m) -> bool: ...

    def reset(self, m) -> None: ...


class LLGuidance(Library):
    name, package = "llguidance", "llguidance"

    def setup(self, tokenizer, vocab_size, eos):
        import llguidance
        import llguidance.hf
        import llguidance.torch

        self.ll, self.fill_fn = llguidance, llguidance.torch.fill_next_token_bitmask
        self.tok = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size, eos_token=eos)

    def compile(self, schema):
        m = self.ll.LLMatcher(self.tok, self.ll.LLMatcher.grammar_from_json_schema(schema), log_level=0)
        if m.is_error():  # it does not raise: an unsupported schema leaves the matcher in an error state
            raise Refused(m.get_error())
        self.warnings = m.get_grammar_warnings()
        return m

    def matcher(self, compiled):
        return compiled  # one matcher per compile; reset() before reuse

    def fill(self, m, mask):
        self.fill_fn(m, mask, 0)

    def advance(self, m, token):
        return m.consume_token(token)

    def accepting(self, m):
        return m.is_accepting()

    def reset(self, m):
        m.reset()


class XGrammar(Library):
    name, package = "xgrammar", "xgrammar"

    def setup(self, tokenizer, vocab_size, eos):
        import xgrammar

        self.xgr = xgrammar
        info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=[eos])
        # one thread per core, no cache: every compile below is timed from scratch
        self.compiler = xgrammar.GrammarCompiler(info, max_threads=os.cpu_count() or 1, cache_enabled=False)

    def compile(self, schema):
        try:
            return self.compiler.compile_json_schema(json.dumps(schema))  # strict_mode=True, any_whitespace=True
        except Exception as e:  # noqa: BLE001 - whatever it raises is a refusal
            raise Refused(f"{type(e).__name__}: {e}") from e

    def matcher(self, compiled):
        return self.xgr.GrammarMatcher(compiled)

    def fill(self, m, mask):
        m.fill_next_token_bitmask(mask)

    def advance(self, m, token):
        return m.accept_token(token)

    def accepting(self, m):
        return m.accept_token(self.eos) and m.is_terminated()

    def reset(self, m):
        m.reset()


class OutlinesCore(Library):
    name, package = "outlines-core", "outlines_core"

    def setup(self, tokenizer, vocab_size, eos):
        import outlines_core

        self.oc = outlines_core
        decode = byte_decoder()
        added = set(tokenizer.added_tokens_decoder)  # special and added tokens are no text
        tokens: dict[bytes, list[int]] = {}
        for text, i in tokenizer.get_vocab().items():
            if i not in added:
                tokens.setdefault(bytes(decode[c] for c in text), []).append(i)
        self.vocab = outlines_core.Vocabulary(eos, tokens)

    def compile(self, schema):
        try:
            regex = self.oc.json_schema.build_regex_from_schema(json.dumps(schema))
            return self.oc.Index(regex, self.vocab)
        except Exception as e:  # noqa: BLE001
            raise Refused(f"{type(e).__name__}: {e}") from e

    def matcher(self, compiled):
        return self.oc.Guide(compiled)

    def fill(self, m, mask):
        m.write_mask_into(mask.data_ptr(), mask.numel(), 4)

    def advance(self, m, token):
        m.advance(token, return_tokens=False)
        return True

    def advance_checked(self, m, token):
        if not m.accepts_tokens([token]):
            return False
        m.advance(token, return_tokens=False)
        return True

    def accepting(self, m):
        return m.is_finished()

    def reset(self, m):
        m.reset()


def installed(tokenizer, vocab_size: int, eos: int, wanted: list[str]) -> list[tuple[Library, float]]:
    out = []
    for lib in (LLGuidance(), XGrammar(), OutlinesCore()):
        if lib.name not in wanted:
            continue
        try:
            lib.version()
        except importlib.metadata.PackageNotFoundError:
            print(f"{lib.name}: not installed, skipped")
            continue
        lib.eos = eos
        t = time.perf_counter()
        lib.setup(tokenizer, vocab_size, eos)
        out.append((lib, time.perf_counter() - t))
    return out


@dataclass
class Verdict:
    status: str  # enforced | IGNORED | refused | rejects valid
    compile_ms: float = float("nan")
    first_mask_ms: float = float("nan")
    detail: str = ""


def walk(lib: Library, m, ids: list[int], mask: torch.Tensor) -> int:
    """Feed ids one at a time, computing the mask before each as a decode loop would; how many went in."""
    for n, t in enumerate(ids):
        lib.fill(m, mask)
        if not (int(mask[0, t // 32]) >> (t % 32)) & 1 or not lib.advance_checked(m, t):
            return n
    return len(ids)


def as_text(v: Any) -> str:
    """An instance as the model would write it: json.dumps's spacing, UTF-8 rather than \\u escapes."""
    return v if isinstance(v, Raw) else json.dumps(v, ensure_ascii=False)


def judge(lib: Library, case: Case, tokenizer, mask: torch.Tensor) -> Verdict:
    lib.warnings = []
    t = time.perf_counter()
    try:
        m = lib.matcher(lib.compile(case.schema))
    except Refused as e:
        return Verdict("refused", detail=str(e).splitlines()[0][:160])
    compile_ms = (time.perf_counter() - t) * 1e3
    lib.fill(m, mask)
    first = (time.perf_counter() - t) * 1e3
    warned = f" (warnings: {'; '.join(lib.warnings)})" if lib.warnings else ""
    lib.reset(m)
    good = tokenizer.encode(as_text(case.valid), add_special_tokens=False)
    went = walk(lib, m, good, mask)
    if went < len(good) or not lib.accepting(m):
        return Verdict("rejects valid", compile_ms, first,
                       f"{as_text(case.valid)} stopped at {tokenizer.decode(good[: went + 1])!r}{warned}")
    lib.reset(m)
    bad = tokenizer.encode(as_text(case.broken), add_special_tokens=False)
    if walk(lib, m, bad, mask) == len(bad) and lib.accepting(m):
        return Verdict("IGNORED", compile_ms, first, f"accepted {as_text(case.broken)}{warned}")
    return Verdict("enforced", compile_ms, first, warned.strip())


def check_cases(cases: list[Case]) -> None:
    """Valid instances must be valid and broken ones not, as jsonschema (a dev dependency) judges them."""
    try:
        import jsonschema
    except ImportError:
        return
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    for c in cases:
        v = jsonschema.Draft202012Validator(c.schema, format_checker=checker)
        if not v.is_valid(json.loads(as_text(c.valid))):
            print(f"warning: case {c.name!r}: jsonschema finds the valid instance invalid")
        if v.is_valid(json.loads(as_text(c.broken))):
            print(f"note: case {c.name!r}: jsonschema too lets the broken instance through "
                  f"(it lacks a format checker, or the keyword is an annotation)")


@dataclass
class Timings:
    mask_us: list[float] = field(default_factory=list)  # wall clock
    step_us: list[float] = field(default_factory=list)  # mask + advance, wall clock
    mask_cpu_us: list[float] = field(default_factory=list)  # this thread's CPU time: no time spent preempted
    step_cpu_us: list[float] = field(default_factory=list)


def clock_overhead_ns(clock) -> float:
    """What one reading of the clock adds to an interval: subtracted from every interval it times."""
    gaps = []
    for _ in range(2000):
        a = clock()
        gaps.append(clock() - a)
    return statistics.median(gaps)


def timed_walks(walkers: list[tuple[Library, Any, Timings]], ids: list[int], mask: torch.Tensor,
                cpu: bool = False) -> None:
    """Every library's matcher through the same tokens in lockstep, so that all of them run under the same load:
    at each token, each library computes its mask and then consumes the token. cpu: time with this thread's CPU
    clock (time preempted by other work on the machine does not count; each reading costs about a microsecond,
    and its median cost is subtracted), else with the wall clock."""
    clock = time.thread_time_ns if cpu else time.perf_counter_ns
    zero = clock_overhead_ns(clock)
    for lib, m, _ in walkers:
        lib.reset(m)
    for t in ids:
        for lib, m, into in walkers:
            a = clock()
            lib.fill(m, mask)
            b = clock()
            ok = lib.advance(m, t)
            c = clock()
            if not ok:
                raise RuntimeError(f"{lib.name} rejected the walk's token {t}")
            mask_us, step_us = max(b - a - zero, 0) / 1e3, max(c - a - 2 * zero, 0) / 1e3
            (into.mask_cpu_us if cpu else into.mask_us).append(mask_us)
            (into.step_cpu_us if cpu else into.step_us).append(step_us)


@torch.inference_mode()
def decode_steps(lm, prompt: list[int], steps: int) -> list[float]:
    """Batch-1 decode steps with a KV cache, as the engine runs them: ms each."""
    model = lm.model
    cache = DynamicCache(config=model.config)
    out = model(torch.tensor([prompt], device=lm.device), cache=cache, use_cache=True, logits_to_keep=1)
    nxt = out.logits[:, -1].argmax(-1)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        out = model(nxt[:, None], cache=cache, use_cache=True)
        nxt = out.logits[:, -1].float().argmax(-1)
        times.append((time.perf_counter() - t) * 1e3)
    return times


def p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20)[-1] if len(xs) > 1 else xs[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--repeats", type=int, default=20, help="timed walks of the fixed text (after one warm-up)")
    ap.add_argument("--fresh", type=int, default=3, help="fresh requests: compile, then one cold walk")
    ap.add_argument("--steps", type=int, default=8, help="decode steps timed between walks")
    ap.add_argument("--threads", type=int, help="torch threads for the decode steps (default: torch's own); "
                    "on a machine shared with other work, 1 keeps a busy core from stalling every step")
    ap.add_argument("--libraries", default="llguidance,xgrammar,outlines-core")
    ap.add_argument("--cases", default="all", help="'all', groups (asked, more, edge) or case names, comma-separated")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    lm = load(args.model)
    tok = lm.tokenizer
    vocab_size = lm.model.config.vocab_size
    eos = tok.eos_token_id
    print(f"model {lm.name}: {lm.description}; vocab {vocab_size}, eos {tok.convert_ids_to_tokens(eos)} ({eos}); "
          f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at the start")
    libs = installed(tok, vocab_size, eos, [s.strip() for s in args.libraries.split(",")])
    if not libs:
        print("no constrained-decoding library installed")
        return
    mask = torch.full((1, (vocab_size + 31) // 32), -1, dtype=torch.int32)  # batch 1, as the libraries want

    wanted = {x.strip() for x in args.cases.split(",")}
    cases = [c for c in CASES if "all" in wanted or c.group in wanted or c.name in wanted]
    check_cases(cases)

    # The walk: every library compiles the same schema; the walks and the decode steps take turns.
    ids = tok.encode(json.dumps(WALK_VALUE), add_special_tokens=False)
    prompt = tok.apply_chat_template([{"role": "user", "content": "Describe Ada Lovelace as JSON."}],
                                     add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    decode_steps(lm, prompt, 4)  # warm-up
    step_ms: list[float] = []
    # A fresh request: a schema never seen, compiled, then its answer's tokens walked once (caches cold).
    cold: dict[str, list[tuple[float, float]]] = {lib.name: [] for lib, _ in libs}
    for _ in range(args.fresh):
        step_ms += decode_steps(lm, prompt, args.steps)
        walkers = []
        for lib, _ in libs:
            t = time.process_time()  # CPU time of every thread: a compiler may use several
            m = lib.matcher(lib.compile(WALK_SCHEMA))
            compiled_ms = (time.process_time() - t) * 1e3
            walkers.append((lib, m, Timings()))
            cold[lib.name].append((compiled_ms, 0.0))
        timed_walks(walkers, ids, mask, cpu=True)
        for lib, _, t in walkers:
            compiled_ms, _ = cold[lib.name][-1]
            cold[lib.name][-1] = (compiled_ms, sum(t.step_cpu_us) / 1e3)
    # Then the same matchers again and again: the per-token cost once warm.
    for _ in range(args.repeats):
        step_ms += decode_steps(lm, prompt, args.steps)
        timed_walks(walkers, ids, mask)
        timed_walks(walkers, ids, mask, cpu=True)

    step = statistics.mean(step_ms)
    print(f"\none decode step at batch 1 (a forward of one token with a KV cache): mean {step:.1f} ms, median "
          f"{statistics.median(step_ms):.1f} ms, p95 {p95(step_ms):.1f} ms ({len(step_ms)} steps, between the walks)")
    print(f"\nper token, once warm: a {len(ids)}-token JSON answer walked {args.repeats} times in lockstep")
    print(f"{'':14s} {'':8s} {'':11s} {'mask, CPU time (us)':^23s} {'mask, wall clock (us)':^23s}")
    print(f"{'library':14s} {'version':>8s} {'tokenizer s':>11s} {'mean':>7s} {'median':>7s} {'p95':>7s} "
          f"{'mean':>7s} {'p95':>7s} {'max':>7s} {'+advance':>8s} {'% of step':>9s}")
    for (lib, setup_s), (_, _, t) in zip(libs, walkers):
        both = statistics.mean(t.step_cpu_us)
        print(f"{lib.name:14s} {lib.version():>8s} {setup_s:11.2f} {statistics.mean(t.mask_cpu_us):7.1f} "
              f"{statistics.median(t.mask_cpu_us):7.1f} {p95(t.mask_cpu_us):7.1f} {statistics.mean(t.mask_us):7.1f} "
              f"{p95(t.mask_us):7.1f} {max(t.mask_us):7.0f} {both:8.1f} {both / 1e3 / step * 100:8.3f}%")
    print("tokenizer s: building the library's tokenizer object; CPU time: this thread's, so time preempted by other "
          "work\ndoes not count; +advance: mean CPU us of the mask and consuming the token; % of step: +advance "
          "beside the mean decode step")
    if len(walkers) > 1:
        base = walkers[0][2]
        print(f"beside {walkers[0][0].name}, mask + advance: " + ", ".join(
            f"{lib.name} {statistics.mean(t.step_cpu_us) / statistics.mean(base.step_cpu_us):.2f}x in CPU time "
            f"(wall clock: mean {statistics.mean(t.step_us) / statistics.mean(base.step_us):.2f}x, median "
            f"{statistics.median(t.step_us) / statistics.median(base.step_us):.2f}x)" for lib, _, t in walkers[1:]))

    answer_ms = len(ids) * step
    print(f"\na fresh request: the schema compiled, then the {len(ids)} tokens walked once, cold (CPU ms, mean of "
          f"{args.fresh}); beside decoding those tokens ({answer_ms:.0f} ms)")
    print(f"{'library':14s} {'compile':>9s} {'walk':>9s} {'total':>9s} {'% of decoding':>14s}")
    for lib, _ in libs:
        compiled_ms = statistics.mean(c for c, _ in cold[lib.name])
        walked_ms = statistics.mean(w for _, w in cold[lib.name])
        total = compiled_ms + walked_ms
        print(f"{lib.name:14s} {compiled_ms:9.1f} {walked_ms:9.1f} {total:9.1f} {total / answer_ms * 100:13.2f}%")
    print(f"load average {os.getloadavg()[0]:.1f} after the walks")

    # Coverage: one keyword (or one pairing) per case.
    verdicts = {(lib.name, c.name): judge(lib, c, tok, mask) for c in cases for lib, _ in libs}
    print("\nJSON Schema coverage: compile ms, then 'enforced', 'IGNORED' (compiles, lets the broken instance "
          "through), 'refused' (an error at compile) or 'rejects valid'")
    for group, title in GROUPS.items():
        rows = [c for c in cases if c.group == group]
        if not rows:
            continue
        print(f"{title:34s} " + " ".join(f"{lib.name:>24s}" for lib, _ in libs))
        for c in rows:
            cells = []
            for lib, _ in libs:
                v = verdicts[lib.name, c.name]
                cells.append(f"{v.status:>24s}" if v.status == "refused" else f"{v.compile_ms:>9.0f} {v.status:>14s}")
            print(f"  {c.name:32s} " + " ".join(cells))
    for lib, _ in libs:
        parts = []
        for group, title in GROUPS.items():
            mine = [verdicts[lib.name, c.name] for c in cases if c.group == group]
            if mine:
                parts.append(f"{title}: " + ", ".join(f"{sum(v.status == s for v in mine)} {s}" for s in STATUSES))
        ran = [verdicts[lib.name, c.name] for c in cases if verdicts[lib.name, c.name].status != "refused"]
        if ran:
            parts.append(f"compile median {statistics.median(v.compile_ms for v in ran):.0f} ms, max "
                         f"{max(v.compile_ms for v in ran):.0f} ms; to the first mask median "
                         f"{statistics.median(v.first_mask_ms for v in ran):.0f} ms, max "
                         f"{max(v.first_mask_ms for v in ran):.0f} ms")
        print(f"{lib.name}: " + "\n  ".join(parts))

    print("\ndetails")
    for c in cases:
        for lib, _ in libs:
            v = verdicts[lib.name, c.name]
            if v.detail:
                print(f"  {c.name} / {lib.name}: {v.status}: {v.detail}")


if __name__ == "__main__":
    main()
