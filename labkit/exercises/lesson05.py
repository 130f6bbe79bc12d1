"""Checks for lesson 05's exercises (embeddings): a cosine similarity by hand, MRR by hand, how far vectors can be
truncated, and what storing vectors takes."""

from __future__ import annotations

import math

import numpy as np

from labkit.exercises import answered, expect, not_the_mistake, passed

DOG, MAN = "The dog bit the man.", "The man bit the dog."


def _number(answer) -> bool:
    return isinstance(answer, (int, float, np.floating)) and not isinstance(answer, bool)


def check_1(answer, pairs, method: str = "trained for similarity") -> None:
    """The cosine similarity of DOG and MAN under `method`, computed with numpy from the two vectors."""
    if not answered("Exercise 1", answer, "put the cosine similarity of the two sentences' vectors here"):
        return
    expect(_number(answer), "Exercise 1", "the answer is one number between -1 and 1.")
    expected = float(pairs.loc[(pairs.a == DOG) & (pairs.b == MAN), method].iloc[0])
    expect(-1 - 1e-6 <= answer <= 1 + 1e-6, "Exercise 1",
           f"{answer} is not a cosine: divide the dot product by both vectors' lengths (here they are 1).")
    expect(math.isclose(answer, expected, abs_tol=1e-3), "Exercise 1",
           f"embed the two sentences with ENCODERS[{method!r}] (one call, two texts), then take the dot product "
           "of the two rows: the vectors have length 1, so the dot product is the cosine.")
    passed("Exercise 1", f"{expected:.3f}, the same as section 2's table: word order barely moves a mean-pooled "
                         "vector, although the two sentences describe different events.")


def check_2(answer, retrieval, method: str = "trained for similarity", kind: str = "paraphrase") -> None:
    """The MRR of `method` on the `kind` queries, computed by hand from a ranking; `retrieval` is section 4's
    table, which holds the value labkit computed."""
    if not answered("Exercise 2", answer, f"put the MRR of {method!r} on the {kind} queries, computed by hand"):
        return
    expect(_number(answer), "Exercise 2", "the answer is one number between 0 and 1.")
    expected = float(retrieval.loc[(method, kind), "MRR"])
    recall1 = float(retrieval.loc[(method, kind), "recall@1"])
    expect(0 <= answer <= 1, "Exercise 2", "a reciprocal rank is 1/rank, so their mean lies between 0 and 1.")
    not_the_mistake(answer, recall1, expected, "Exercise 2",
                    "that is recall@1: MRR also gives ½ to a first relevant document at rank 2, ⅓ at rank 3.", 5e-4)
    expect(math.isclose(answer, expected, abs_tol=5e-4), "Exercise 2",
           "for each query, find the position (from 1) of the first relevant document in its ranking row, take "
           "1/position, and average over the queries of that kind only.")
    passed("Exercise 2", f"MRR {expected:.3f}, as embeddings.retrieval_scores computed it in section 4.")


def check_3(answer, truncation, within: float = 0.05) -> None:
    """The fewest dimensions in section 7's table whose MRR stays within `within` of the full vector's."""
    if not answered("Exercise 3", answer, f"put the fewest dimensions whose MRR is within {within} of the full "
                                          "vector's here"):
        return
    expect(isinstance(answer, (int, np.integer)) and not isinstance(answer, bool), "Exercise 3",
           "the answer is a whole number of dimensions, one of the table's index values.")
    expect(answer in truncation.index, "Exercise 3", f"{answer} is not a row of `truncation`.")
    full = truncation["MRR"].loc[truncation.index.max()]
    good = [d for d in truncation.index if truncation["MRR"].loc[d] >= full - within]
    expect(truncation["MRR"].loc[answer] >= full - within, "Exercise 3",
           f"at {answer} dimensions MRR is {truncation['MRR'].loc[answer]:.3f}, more than {within} below the full "
           f"vector's {full:.3f}.")
    expect(answer == min(good), "Exercise 3", "it keeps MRR, but fewer dimensions do too: look further down.")
    passed("Exercise 3", f"{answer} of {truncation.index.max()} dimensions keep MRR within {within}: "
                         f"{truncation.index.max() // answer}x less to store, for a model never trained for it.")


def check_4(answer, n_vectors: int = 1_000_000, dims: tuple[int, int] = (384, 96)) -> None:
    """Gigabytes (1e9 bytes) to store `n_vectors` float32 vectors of each size in `dims`."""
    if not answered("Exercise 4", answer, f"put the GB for {n_vectors:,} float32 vectors of {dims[0]} and of "
                                          f"{dims[1]} dimensions here"):
        return
    expect(isinstance(answer, (tuple, list)) and len(answer) == len(dims), "Exercise 4",
           f"the answer is a pair: (GB at {dims[0]} dimensions, GB at {dims[1]}).")
    expected = [n_vectors * d * np.dtype(np.float32).itemsize / 1e9 for d in dims]
    expect(not all(math.isclose(a, n_vectors * d / 1e9, rel_tol=1e-3) for a, d in zip(answer, dims)),
           "Exercise 4", "that counts one byte per number: a float32 takes 4.")
    expect(all(math.isclose(a, e, rel_tol=1e-3) for a, e in zip(answer, expected)), "Exercise 4",
           "vectors x dimensions x bytes per number (np.dtype(np.float32).itemsize), divided by 1e9.")
    passed("Exercise 4", f"{expected[0]:.3f} GB and {expected[1]:.3f} GB: storage is linear in dimensions.")
