"""Embeddings on the notebook's side: fetch them through any OpenAI-compatible client (cached on disk, so a
re-run recomputes nothing), compare them, search with them, score retrieval, and lay them out in 2-D.

    docs = embeddings.embed(lab, texts)                       # (n, d) float32 unit rows
    idx, scores = embeddings.top_k(embeddings.embed(lab, ["my query"]), docs, k=5)
    embeddings.retrieval_scores(embeddings.rank(queries, docs), relevant)   # recall@k and MRR
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from labkit.progress import tqdm  # tqdm.auto whose final line stays in a saved notebook


class Cache:
    """Vectors keyed by (model, dimensions, text) in SQLite under LABKIT_HOME."""

    def __init__(self, path: Path | None = None):
        from labkit.engine.registry import home

        self.path = path or home() / "embeddings.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    @staticmethod
    def key(model: str, dimensions: int | None, text: str) -> str:
        return hashlib.sha256(f"{model}\0{dimensions}\0{text}".encode()).hexdigest()

    def get(self, keys: list[str]) -> dict[str, np.ndarray]:
        found = {}
        with self._connect() as db:
            for start in range(0, len(keys), 500):  # SQLite caps the number of ? in one statement
                chunk = keys[start : start + 500]
                rows = db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(chunk))})",
                                  chunk)
                found.update({k: np.frombuffer(v, dtype="<f4") for k, v in rows})
        return found

    def put(self, items: dict[str, np.ndarray]) -> None:
        with self._connect() as db:
            db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                           [(k, v.astype("<f4").tobytes()) for k, v in items.items()])


def embed(lab, texts: Sequence[str], model: str | None = None, dimensions: int | None = None, cache: bool = True,
          batch_size: int = 256, progress: bool = False) -> np.ndarray:
    """One unit vector per text, in order, as a (len(texts), d) float32 array. Texts already embedded with
    this model and dimensions come from the cache; the rest go out in batches of batch_size."""
    model = model or lab.models.embedding
    if model is None:
        raise ValueError("this backend has no embedding model: pass model=...")
    if isinstance(texts, str) or not texts:
        raise ValueError("texts must be a non-empty list of strings")
    store = Cache() if cache else None
    keys = [Cache.key(model, dimensions, t) for t in texts]
    found = store.get(keys) if store else {}
    todo: dict[str, int] = {}  # each text not cached yet, asked for once however often it appears
    for i, k in enumerate(keys):
        if k not in found:
            todo.setdefault(k, i)
    missing = list(todo.values())
    extra = {"dimensions": dimensions} if dimensions is not None else {}
    for start in tqdm(range(0, len(missing), batch_size), disable=not progress, desc=f"embedding with {model}"):
        chunk = missing[start : start + batch_size]
        reply = lab.client.embeddings.create(model=model, input=[texts[i] for i in chunk], **extra)
        fresh = {keys[chunk[d.index]]: np.asarray(d.embedding, dtype=np.float32) for d in reply.data}
        found.update(fresh)
        if store:
            store.put(fresh)
    return np.stack([found[k] for k in keys])


def normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of every row of a with every row of b: shape (len(a), len(b))."""
    return normalize(np.atleast_2d(a)) @ normalize(np.atleast_2d(b)).T


def rank(queries: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """For each query, the rows of matrix from most to least similar (cosine)."""
    return np.argsort(-cosine(queries, matrix), axis=1, kind="stable")


def top_k(queries: np.ndarray, matrix: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The k rows of matrix nearest each query, best first, and their cosine similarities."""
    sims = cosine(queries, matrix)
    idx = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(sims, idx, axis=1)


def retrieval_scores(rankings: np.ndarray, relevant: Sequence[set[int]], ks: Sequence[int] = (1, 3, 10)) -> dict:
    """recall@k (the share of each query's relevant documents in its top k, averaged over queries) and MRR
    (the mean of 1 / the rank of the first relevant document)."""
    if len(rankings) != len(relevant):
        raise ValueError(f"{len(rankings)} rankings but {len(relevant)} sets of relevant documents")
    scores = {f"recall@{k}": float(np.mean([len(set(r[:k]) & rel) / len(rel) for r, rel in zip(rankings, relevant)]))
              for k in ks}
    first = [next(i for i, d in enumerate(r, start=1) if d in rel) for r, rel in zip(rankings, relevant)]
    scores["MRR"] = float(np.mean([1 / f for f in first]))
    return scores


def bag_of_words(corpus: Sequence[str]) -> Callable[[Sequence[str]], np.ndarray]:
    """A baseline with no neural network: TF-IDF vectors over the corpus's vocabulary (English stop words
    dropped), as unit rows. Returns the function that turns texts into such vectors."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True).fit(corpus)
    return lambda texts: normalize(vectorizer.transform(texts).toarray())


def project(vectors: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """2-D coordinates for a map: PCA (the two directions of most variance) or t-SNE (keeps neighbours
    together, distorts distances between groups)."""
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(vectors)
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(n_components=2, perplexity=min(30, len(vectors) - 1), init="pca",
                    random_state=seed).fit_transform(vectors)
    raise ValueError(f"method must be 'pca' or 'tsne', got {method!r}")
