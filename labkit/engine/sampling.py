"""The sampling loop: one prompt, n sequences decoded together, one token per step.

The prompt is run once; its key/value cache is copied to the n rows, so n samples cost
little more than one (decoding reads every weight once per step whatever the batch).
Finished rows leave the batch. Streaming and non-streaming answers come from the same
generator, so for a given seed they are the same text.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from labkit.engine.constraint import Constraint
from labkit.engine.registry import LocalModel
from labkit.engine.text import TextStream


@dataclass
class SamplingParams:
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    logprobs: int | None = None  # None: none; k: the chosen token's logprob and the top k alternatives
    prompt_logprobs: bool = False  # also score the prompt tokens (completions with echo + logprobs)
    grammar: str | None = None  # only texts this grammar accepts (labkit.engine.constraint)


@dataclass
class TokenLogprob:
    token_id: int
    logprob: float
    top: list[tuple[int, float]]  # (token id, logprob), best first


@dataclass
class Delta:
    """What one sequence gained in one step."""

    index: int
    text: str = ""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None


@dataclass
class Sequence:
    index: int
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None
    sum_logprob: float = 0.0  # over every sampled token, the end-of-text one included

    @property
    def mean_logprob(self) -> float:
        """What best_of ranks by: log probability per sampled token."""
        return self.sum_logprob / max(1, len(self.token_ids))


class Generation:
    """One prompt's n sequences. Iterate over `steps()` for deltas; afterwards `sequences`, `prompt_logprobs`,
    `completion_tokens`.

    `steps()` runs the model itself. The engine loop (labkit.engine.loop) runs it instead, for many generations
    in one batch, and drives the same sampling through `begin` (after the prompt) and `advance` (after each
    decode step): a generation's tokens do not depend on which of the two runs it."""

    def __init__(self, lm: LocalModel, prompt_ids: list[int], params: SamplingParams,
                 generator: torch.Generator | None = None):
        self.lm, self.prompt_ids, self.p = lm, prompt_ids, params
        self.generator = generator or new_generator(lm.device, params.seed)
        self.sequences = [Sequence(i) for i in range(params.n)]
        self.prompt_logprobs: list[TokenLogprob | None] = []
        self.completion_tokens = 0
        self.cancelled = False  # set from another thread to stop early (the client went away)
        self.done = False
        self.keep: list[int] = []  # after begin/advance: which of the previous step's rows decode on
        self.next_tokens: torch.Tensor | None = None  # ... and the token each of them feeds next

    @torch.inference_mode()
    def steps(self) -> Iterator[list[Delta]]:
        model = self.lm.model
        ids = torch.tensor([self.prompt_ids], device=self.lm.device)
        cache = DynamicCache(config=model.config)
        out = model(ids, cache=cache, use_cache=True, logits_to_keep=0 if self.p.prompt_logprobs else 1)
        deltas = self.begin(out.logits[0])
        cache.batch_repeat_interleave(self.p.n)
        rows = self.p.n
        while True:
            if deltas:
                yield deltas
            if self.done:
                return
            if len(self.keep) < rows:  # finished rows leave the batch
                cache.batch_select_indices(torch.tensor(self.keep, device=self.lm.device))
                rows = len(self.keep)
            out = model(self.next_tokens[:, None], cache=cache, use_cache=True)
            deltas = self.advance(out.logits[:, -1].float())

    def begin(self, prompt_logits: torch.Tensor) -> list[Delta]:
        """The prompt has run (prompt_logits: [prompt tokens or 1, vocab], the last row predicting the first
        token): score the prompt if asked, then sample every sequence's first token."""
        p, dev = self.p, self.lm.device
        if p.prompt_logprobs:
            self.prompt_logprobs = self._score_prompt(prompt_logits)
        logits = prompt_logits[-1:].float().expand(p.n, -1)
        self._rows = list(range(p.n))  # batch row -> sequence index
        self._texts = [TextStream(self.lm.tokenizer, p.stop) for _ in self._rows]
        vocab = logits.shape[-1]
        self._counts = torch.zeros(p.n, vocab, device=dev)
        self._bias = self._bias_vector(vocab, dev)
        self._eos = torch.tensor(sorted(self.lm.eos_token_ids), device=dev)
        self._released = [0] * p.n  # logprobs already handed out, per sequence
        self._step = 0
        self._constraint = Constraint(self.lm, p.grammar, p.n) if p.grammar is not None else None
        if p.max_tokens == 0:  # only score the prompt (echo)
            for seq in self.sequences:
                seq.finish_reason = "length"
            self.done, self.keep = True, []
            return [Delta(s.index, finish_reason="length") for s in self.sequences]
        return self.advance(logits)

    def advance(self, logits: torch.Tensor) -> list[Delta]:
        """Sample one token for each live row from its logits ([rows, vocab], fp32); return what became
        visible. Afterwards `keep` says which rows go on (none once `done`) and `next_tokens` what they feed."""
        p, rows = self.p, self._rows
        logits = adjust_logits(logits, self._counts, self._bias, p.presence_penalty, p.frequency_penalty)
        if self._constraint is not None:  # logprobs are then those of the constrained distribution
            logits = self._constraint.mask(logits, rows)
        logprobs = torch.log_softmax(logits, dim=-1)
        chosen = self._sample(logits)
        self.completion_tokens += len(rows)
        chosen_lp = logprobs.gather(1, chosen[:, None])[:, 0].tolist()
        top = torch.topk(logprobs, p.logprobs) if p.logprobs else None
        is_eos = torch.isin(chosen, self._eos).tolist()
        chosen_l = chosen.tolist()
        deltas, keep = [], []
        for r, seq_i in enumerate(rows):
            if self._constraint is not None:
                self._constraint.advance(seq_i, chosen_l[r])
            # a token the grammar forbids has probability 0: it is no alternative
            alts = [(t, v) for t, v in zip(top.indices[r].tolist(), top.values[r].tolist())
                    if v != -math.inf] if top is not None else []
            d = self._advance(self.sequences[seq_i], self._texts[seq_i], TokenLogprob(chosen_l[r], chosen_lp[r], alts),
                              is_eos[r], last=self._step == p.max_tokens - 1, released=self._released)
            if d.text or d.logprobs or d.finish_reason:
                deltas.append(d)
            if d.finish_reason is None:
                keep.append(r)
        self._step += 1
        self.done = not keep or self.cancelled
        self.keep = [] if self.done else keep
        if not self.done:
            if len(keep) < len(rows):
                self._counts, chosen = self._counts[keep], chosen[keep]
                self._rows = [rows[r] for r in keep]
            self._counts.scatter_add_(1, chosen[:, None], torch.ones(len(keep), 1, device=chosen.device))
            self.next_tokens = chosen
        return deltas

    def _advance(self, seq: Sequence, ts: TextStream, token: TokenLogprob, is_eos: bool, last: bool,
                 released: list[int]) -> Delta:
        """Add one sampled token to a sequence; return what became visible."""
        d = Delta(seq.index)
        seq.token_ids.append(token.token_id)
        seq.sum_logprob += token.logprob
        if is_eos:  # the end-of-text token ends the text; it is not part of it
            d.text, d.finish_reason = ts.flush(), "stop"
        else:
            d.text = ts.push(token.token_id)
            if self.p.logprobs is not None:
                seq.logprobs.append(token)
            if ts.stopped:
                d.finish_reason = "stop"
            elif last:
                d.text += ts.flush()
                d.finish_reason = "length"
        if self.p.logprobs is not None:  # release logprobs together with the text they belong to
            if ts.stopped:
                del seq.logprobs[ts.n_visible_tokens():]
            visible = len(seq.logprobs) if d.finish_reason else ts.n_visible_tokens()
            d.logprobs = seq.logprobs[released[seq.index]:visible]
            released[seq.index] = visible
        seq.text += d.text
        seq.finish_reason = d.finish_reason
        return d

    def run(self) -> list[Sequence]:
        for _ in self.steps():
            pass
        return self.sequences

    def _sample(self, logits: torch.Tensor) -> torch.Tensor:
        p = self.p
        if p.temperature < 1e-5:  # 0 means greedy; tinier than this overflows logits / temperature
            return logits.argmax(-1)
        probs = torch.softmax(logits / p.temperature, dim=-1)
        if p.top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            # keep the smallest set whose mass reaches top_p (always at least the top token)
            drop = sorted_p.cumsum(-1) - sorted_p >= p.top_p
            drop[:, 0] = False
            sorted_p = sorted_p.masked_fill(drop, 0.0)
            probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
        # inverse-CDF draw: one uniform per row (torch.multinomial spends ~8 ms/step here on exponentials)
        cdf = probs.cumsum(-1)
        u = torch.rand(cdf.shape[0], 1, generator=self.generator, device=cdf.device) * cdf[:, -1:]
        return torch.searchsorted(cdf, u)[:, 0].clamp(max=cdf.shape[-1] - 1)

    def _bias_vector(self, vocab: int, dev) -> torch.Tensor | None:
        if not self.p.logit_bias:
            return None
        bias = torch.zeros(vocab, device=dev)
        for tid, b in self.p.logit_bias.items():
            bias[tid] = b
        return bias

    def _score_prompt(self, logits: torch.Tensor) -> list[TokenLogprob | None]:
        """Logprob of each prompt token given the ones before it (the first has none)."""
        lp = torch.log_softmax(logits.float(), dim=-1)
        ids = torch.tensor(self.prompt_ids, device=lp.device)
        chosen = lp[:-1].gather(1, ids[1:, None])[:, 0].tolist()
        k = self.p.logprobs or 0
        top = torch.topk(lp[:-1], k) if k else None
        scored: list[TokenLogprob | None] = [None]
        for i, v in enumerate(chosen):
            alts = list(zip(top.indices[i].tolist(), top.values[i].tolist())) if top is not None else []
            scored.append(TokenLogprob(self.prompt_ids[i + 1], v, alts))
        return scored


def adjust_logits(logits: torch.Tensor, counts: torch.Tensor, bias: torch.Tensor | None,
                  presence_penalty: float, frequency_penalty: float) -> torch.Tensor:
    """logit_bias, then OpenAI's penalties: each token loses frequency_penalty per time it was already
    generated, and presence_penalty once if it was generated at all."""
    if bias is not None:
        logits = logits + bias
    if presence_penalty or frequency_penalty:
        logits = logits - counts * frequency_penalty - (counts > 0) * presence_penalty
    return logits


def new_generator(device: torch.device, seed: int | None) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed if seed is not None else random.SystemRandom().randrange(2**63))
    return g
