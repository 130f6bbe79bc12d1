"""Insertion for a model never trained to fill in the middle: sample, then rank by the suffix.

A left-to-right model has never read a suffix before its middle, but it can judge a finished
middle: log p(suffix | prefix + middle) is high when the middle leads into the suffix. So
candidates are sampled from the prefix alone and the one after which the suffix is likeliest
wins. A sampled continuation rarely ends where the suffix should begin, so each candidate is
also tried cut at its sentence and line ends (before a newline, which then joins the suffix).
"""

from __future__ import annotations

import copy
import re

import torch
from transformers import DynamicCache

from labkit.engine.registry import LocalModel

CANDIDATES = 5  # candidates drawn when the request gives no best_of (the seed's "resample 3-5 times")
MAX_CUTS = 4  # sentence or line ends tried per candidate, besides its full length
_END = re.compile(r"[.!?](?=\s)|(?=\n)")  # after a sentence ("self.x" is not one), before a newline


def cut_points(text: str) -> list[int]:
    """Character positions where a middle may end: its first sentence and line ends, and its end."""
    cuts = [m.end() for m in _END.finditer(text)][:MAX_CUTS]
    return sorted({c for c in cuts if 0 < c < len(text)} | {len(text)})


@torch.inference_mode()
def suffix_logprobs(lm: LocalModel, prefix: list[int], middles: list[list[int]], suffix: list[int],
                    batch_size: int = 8) -> list[float]:
    """log p(suffix | prefix + middle) for each middle, summed over the suffix's tokens.
    The prefix runs once; its key/value cache is shared by every row."""
    if not suffix:
        return [0.0] * len(middles)
    head, base = lm.model.get_output_embeddings(), lm.model.get_decoder()
    dev, pad = lm.device, lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    cache = DynamicCache(config=lm.model.config)
    if len(prefix) > 1:
        base(input_ids=torch.tensor([prefix[:-1]], device=dev), cache=cache, use_cache=True)
    target = torch.tensor(suffix, device=dev)
    scores = []
    for start in range(0, len(middles), batch_size):
        rows = [prefix[-1:] + m + suffix for m in middles[start : start + batch_size]]  # the last prefix token
        width = max(map(len, rows))  # predicts a middle's first token, so it runs with each row
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=dev)
        mask = torch.tensor([[1] * (len(prefix) - 1 + len(r)) + [0] * (width - len(r)) for r in rows], device=dev)
        shared = copy.deepcopy(cache)
        if len(prefix) > 1:
            shared.batch_repeat_interleave(len(rows))
        hidden = base(input_ids=ids, attention_mask=mask, cache=shared, use_cache=True).last_hidden_state
        for r, row in enumerate(rows):  # right padding: every real token keeps its position
            first = len(row) - len(suffix)  # the suffix's first token is predicted at first - 1
            logprobs = torch.log_softmax(head(hidden[r, first - 1 : len(row) - 1]).float(), dim=-1)
            scores.append(logprobs.gather(1, target[:, None]).sum().item())
    return scores
