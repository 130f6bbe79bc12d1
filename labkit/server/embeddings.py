"""POST /v1/embeddings in OpenAI's shapes: strings or token ids in, float lists or base64 out.

base64 is what the official SDK asks for by default: each vector's float32 bytes, little-endian,
base64-encoded; the SDK decodes it back to floats.
"""

from __future__ import annotations

import base64

import numpy as np

from labkit.engine.embeddings import Embedder
from labkit.errors import ContextLengthExceededError, InvalidRequestError
from labkit.server.schemas import MAX_EMBEDDING_TOKENS, EmbeddingRequest


def token_ids(req: EmbeddingRequest, embedder: Embedder) -> list[list[int]]:
    """Each input as the model's token ids, checked: not empty, in the vocabulary, within the limits."""
    vocab = len(embedder.tokenizer)
    rows = []
    for i, item in enumerate(req.inputs()):
        where = "input" if isinstance(req.input, str) or len(req.inputs()) == 1 else f"input[{i}]"
        if isinstance(item, str):
            if not item:
                raise InvalidRequestError(f"{where} is an empty string; each input must hold some text", "input",
                                          code="invalid_value")
            item = embedder.tokenize(item)
        elif any(not 0 <= t < vocab for t in item):
            raise InvalidRequestError(
                f"{where} holds a token id outside {embedder.name}'s vocabulary (0..{vocab - 1}). Token ids must come "
                f"from {embedder.name}'s own tokenizer, not tiktoken's (cl100k/o200k are OpenAI's models' "
                "tokenizers): send the text instead. LangChain's OpenAIEmbeddings sends tiktoken ids by default; "
                "create it with check_embedding_ctx_length=False to send text.", "input", code="invalid_value")
        if len(item) > embedder.max_tokens:
            raise ContextLengthExceededError(
                f"{where} has {len(item)} tokens; {embedder.name} takes at most {embedder.max_tokens} tokens per "
                "input. Shorten it or split it into chunks.", param="input")
        rows.append(item)
    total = sum(map(len, rows))
    if total > MAX_EMBEDDING_TOKENS:
        raise InvalidRequestError(f"the inputs hold {total:,} tokens; one request may hold at most "
                                  f"{MAX_EMBEDDING_TOKENS:,}", "input", code="max_tokens_per_request")
    return rows


def check_dimensions(req: EmbeddingRequest, embedder: Embedder) -> None:
    if req.dimensions is None:
        return
    if not embedder.truncatable:
        raise InvalidRequestError(f"This model does not support specifying dimensions: {embedder.name} is pooled "
                                  "from a language model's hidden states, and its leading coordinates carry no "
                                  "special weight", "dimensions", code="unsupported_parameter")
    if req.dimensions > embedder.dimensions:
        raise InvalidRequestError(f"dimensions must be at most {embedder.dimensions} for {embedder.name}, got "
                                  f"{req.dimensions}", "dimensions", code="invalid_value")


def respond(req: EmbeddingRequest, embedder: Embedder) -> dict:
    check_dimensions(req, embedder)
    rows = token_ids(req, embedder)
    vectors = embedder.embed(rows, req.dimensions)
    tokens = sum(map(len, rows))
    return {"object": "list", "model": embedder.name,
            "data": [{"object": "embedding", "index": i, "embedding": _encode(v, req.encoding_format)}
                     for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _encode(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.tolist()
