"""Checks for lesson 05's exercises (embeddings): a cosine similarity by hand, MRR by hand, how far vectors can be
truncated, and what storing vectors takes."""

from __future__ import annotations

import math

import numpy as np

from labkit.exercises import answered, expect, not_the_mistake, passed
from labkit.i18n import _

DOG, MAN = "The dog bit the man.", "The man bit the dog."


def _number(answer) -> bool:
    return isinstance(answer, (int, float, np.floating)) and not isinstance(answer, bool)


def check_1(answer, pairs, method: str = "trained for similarity") -> None:
    """The cosine similarity of DOG and MAN under `method`, computed with numpy from the two vectors."""
    exercise = _("Exercise 1")
    if not answered(exercise, answer, _("put the cosine similarity of the two sentences' vectors here")):
        return
    expect(_number(answer), exercise, _("the answer is one number between -1 and 1."))
    expected = float(pairs.loc[(pairs.a == DOG) & (pairs.b == MAN), method].iloc[0])
    expect(-1 - 1e-6 <= answer <= 1 + 1e-6, exercise,
           _("{answer} is not a cosine: divide the dot product by both vectors' lengths (here they are 1).",
             answer=answer))
    expect(math.isclose(answer, expected, abs_tol=1e-3), exercise,
           _("embed the two sentences with ENCODERS[{method!r}] (one call, two texts), then take the dot product "
             "of the two rows: the vectors have length 1, so the dot product is the cosine.", method=method))
    passed(exercise, _("{cosine:.3f}, the same as section 2's table: word order barely moves a mean-pooled "
                       "vector, although the two sentences describe different events.", cosine=expected))


def check_2(answer, retrieval, method: str = "trained for similarity", kind: str = "paraphrase") -> None:
    """The MRR of `method` on the `kind` queries, computed by hand from a ranking; `retrieval` is section 4's
    table, which holds the value labkit computed."""
    exercise = _("Exercise 2")
    if not answered(exercise, answer, _("put the MRR of {method!r} on the {kind} queries, computed by hand",
                                        method=method, kind=kind)):
        return
    expect(_number(answer), exercise, _("the answer is one number between 0 and 1."))
    expected = float(retrieval.loc[(method, kind), "MRR"])
    recall1 = float(retrieval.loc[(method, kind), "recall@1"])
    expect(0 <= answer <= 1, exercise, _("a reciprocal rank is 1/rank, so their mean lies between 0 and 1."))
    not_the_mistake(answer, recall1, expected, exercise,
                    _("that is recall@1: MRR also gives ½ to a first relevant document at rank 2, ⅓ at rank 3."),
                    5e-4)
    expect(math.isclose(answer, expected, abs_tol=5e-4), exercise,
           _("for each query, find the position (from 1) of the first relevant document in its ranking row, take "
             "1/position, and average over the queries of that kind only."))
    passed(exercise, _("MRR {mrr:.3f}, as embeddings.retrieval_scores computed it in section 4.", mrr=expected))


def check_3(answer, truncation, within: float = 0.05) -> None:
    """The fewest dimensions in section 7's table whose MRR stays within `within` of the full vector's."""
    exercise = _("Exercise 3")
    if not answered(exercise, answer, _("put the fewest dimensions whose MRR is within {within} of the full "
                                        "vector's here", within=within)):
        return
    expect(isinstance(answer, (int, np.integer)) and not isinstance(answer, bool), exercise,
           _("the answer is a whole number of dimensions, one of the table's index values."))
    expect(answer in truncation.index, exercise, _("{answer} is not a row of `truncation`.", answer=answer))
    full = truncation["MRR"].loc[truncation.index.max()]
    good = [d for d in truncation.index if truncation["MRR"].loc[d] >= full - within]
    expect(truncation["MRR"].loc[answer] >= full - within, exercise,
           _("at {answer} dimensions MRR is {mrr:.3f}, more than {within} below the full vector's {full:.3f}.",
             answer=answer, mrr=truncation["MRR"].loc[answer], within=within, full=full))
    expect(answer == min(good), exercise, _("it keeps MRR, but fewer dimensions do too: look further down."))
    passed(exercise, _("{answer} of {dimensions} dimensions keep MRR within {within}: {times}x less to store, for "
                       "a model never trained for it.", answer=answer, dimensions=truncation.index.max(),
                       within=within, times=truncation.index.max() // answer))


def check_4(answer, n_vectors: int = 1_000_000, dims: tuple[int, int] = (384, 96)) -> None:
    """Gigabytes (1e9 bytes) to store `n_vectors` float32 vectors of each size in `dims`."""
    exercise = _("Exercise 4")
    if not answered(exercise, answer, _("put the GB for {n_vectors:,} float32 vectors of {large} and of {small} "
                                        "dimensions here", n_vectors=n_vectors, large=dims[0], small=dims[1])):
        return
    expect(isinstance(answer, (tuple, list)) and len(answer) == len(dims), exercise,
           _("the answer is a pair: (GB at {large} dimensions, GB at {small}).", large=dims[0], small=dims[1]))
    expected = [n_vectors * d * np.dtype(np.float32).itemsize / 1e9 for d in dims]
    expect(not all(math.isclose(a, n_vectors * d / 1e9, rel_tol=1e-3) for a, d in zip(answer, dims)),
           exercise, _("that counts one byte per number: a float32 takes 4."))
    expect(all(math.isclose(a, e, rel_tol=1e-3) for a, e in zip(answer, expected)), exercise,
           _("vectors x dimensions x bytes per number (np.dtype(np.float32).itemsize), divided by 1e9."))
    passed(exercise, _("{large:.3f} GB and {small:.3f} GB: storage is linear in dimensions.",
                       large=expected[0], small=expected[1]))
