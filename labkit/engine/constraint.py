"""Constrained decoding: a grammar decides, token by token, which tokens may come next.

The grammars are llguidance's (JSON Schema, or Lark with JSON Schemas inside); docs/structured-outputs.md
says why llguidance. A `Constraint` keeps one matcher per sequence of a generation: before each sample it
masks every token the grammar forbids at that point, and after it feeds the sampled token back. The end of
text is allowed only where the grammar could end, so a text that ends with "stop" is complete.
"""

from __future__ import annotations

import json
import threading
import weakref

import llguidance
import llguidance.hf
import numpy as np
import torch

from labkit.engine.registry import LocalModel

# compact JSON with one space after ',' and ':' (as json.dumps writes it): no room for a model to wander
# into endless whitespace
JSON_STYLE = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


class GrammarError(ValueError):
    """A schema or grammar that cannot be enforced; the message names the problem."""


def json_schema_grammar(schema: dict) -> str:
    """The grammar of JSON texts valid under `schema`."""
    return llguidance.LLMatcher.grammar_from_json_schema(schema, defaults=JSON_STYLE)


def lark_grammar(lark: str) -> str:
    """A grammar in llguidance's Lark dialect (`%json {...}` embeds a JSON Schema)."""
    return llguidance.grammar_from("lark", lark)


def embedded_json(schema: dict) -> str:
    """A JSON Schema as a Lark rule's body, written in the JSON style of json_schema_grammar."""
    return "%json " + json.dumps({**schema, "x-guidance": JSON_STYLE})


_tokenizers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # HF tokenizer -> llguidance's (~0.4 s to make)
_tokenizers_lock = threading.Lock()


def _tokenizer(lm: LocalModel) -> llguidance.LLTokenizer:
    with _tokenizers_lock:
        if lm.tokenizer not in _tokenizers:
            _tokenizers[lm.tokenizer] = llguidance.hf.from_tokenizer(lm.tokenizer, n_vocab=lm.model.config.vocab_size)
        return _tokenizers[lm.tokenizer]


def check(lm: LocalModel, grammar: str) -> None:
    """Raise GrammarError unless llguidance can enforce all of `grammar` for this model's tokenizer
    (a JSON Schema keyword it does not implement is an error, never silently dropped)."""
    failed, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, _tokenizer(lm))
    if failed or messages:
        raise GrammarError("; ".join(messages) or "the grammar is invalid")


class Constraint:
    """One grammar, one matcher per sequence."""

    def __init__(self, lm: LocalModel, grammar: str, n: int):
        tokenizer = _tokenizer(lm)
        first = llguidance.LLMatcher(tokenizer, grammar)
        if first.is_error():
            raise GrammarError(first.get_error())
        self.matchers = [first] + [first.deep_copy() for _ in range(n - 1)]
        self.vocab = lm.model.config.vocab_size
        self.eos = tokenizer.eos_token

    def mask(self, logits: torch.Tensor, sequences: list[int]) -> torch.Tensor:
        """logits ([rows, vocab]) with every token sequences[r] may not take next set to -inf in row r."""
        vocab = logits.shape[-1]
        allowed = np.stack([np.unpackbits(np.frombuffer(self.matchers[s].compute_bitmask(), dtype=np.uint8),
                                          bitorder="little")[:vocab] for s in sequences])  # bit t: token t
        penalty = np.where(allowed, np.float32(0), np.float32(-np.inf))  # numpy: ~6x less CPU than torch here
        return logits + torch.from_numpy(penalty).to(logits.device)

    def advance(self, sequence: int, token_id: int) -> None:
        matcher = self.matchers[sequence]
        if token_id == self.eos and matcher.is_accepting():
            return
        if not matcher.consume_token(token_id):
            raise RuntimeError(f"the grammar refused token {token_id}, which it had allowed: {matcher.get_error()}")
