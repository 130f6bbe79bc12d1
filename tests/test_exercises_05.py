"""Lesson 05's exercises: each check passes on its solution, raises ExerciseError with a hint on an obvious wrong
answer, and prints what to do while the answer is still `...`. No model: bag of words and small tables stand in
for the lesson's embeddings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labkit import embeddings
from labkit.exercises import ExerciseError, lesson05
from tests.conftest import solutions as load_solutions

solutions = load_solutions("05")
TEXTS = [lesson05.DOG, lesson05.MAN, "The bank raised interest rates.", "A dog chased the cat up a tree."]


@pytest.fixture(scope="module")
def encoder():
    """A deterministic embedder whose vectors differ for the two sentences (bag of words would not)."""
    words = embeddings.bag_of_words(TEXTS)
    return lambda texts: embeddings.normalize(words(texts) + np.array([[0.1 * t.find("man")] for t in texts]))


@pytest.fixture(scope="module")
def pairs(encoder):
    a, b = encoder([lesson05.DOG]), encoder([lesson05.MAN])
    return pd.DataFrame({"a": [lesson05.DOG, TEXTS[2]], "b": [lesson05.MAN, TEXTS[3]], "label": ["related"] * 2,
                         "trained for similarity": [float(embeddings.cosine(a, b)[0, 0]), 0.1]})


@pytest.fixture(scope="module")
def ranked():
    """Three queries over five documents: first relevant document at positions 1, 2 and 4."""
    ranking = np.array([[0, 1, 2, 3, 4], [3, 1, 0, 2, 4], [4, 3, 2, 0, 1]])
    relevant = [{0}, {1, 2}, {0}]
    scores = embeddings.retrieval_scores(ranking, relevant)
    table = pd.DataFrame([{"method": "trained for similarity", "queries": "paraphrase", **scores}]).set_index(
        ["method", "queries"]).round(3)
    return ranking, relevant, table


@pytest.fixture()
def truncation():
    return pd.DataFrame({"dimensions": [384, 192, 96, 48], "MRR": [0.95, 0.91, 0.93, 0.77]}).set_index("dimensions")


@pytest.mark.parametrize("check, args", [(lesson05.check_1, (None,)), (lesson05.check_2, (None,)),
                                         (lesson05.check_3, (None,)), (lesson05.check_4, ())])
def test_a_placeholder_prints_what_to_do(check, args, capsys):
    check(..., *args)
    assert "not answered yet" in capsys.readouterr().out


def test_1_cosine_by_hand(encoder, pairs, capsys):
    answer = solutions.pair_cosine(encoder)
    lesson05.check_1(answer, pairs)
    assert "correct" in capsys.readouterr().out
    assert answer < 0.999, "the stand-in embedder tells the two sentences apart"
    with pytest.raises(ExerciseError, match="dot product"):
        lesson05.check_1(1.0, pairs)  # "same words, so identical"
    with pytest.raises(ExerciseError, match="not a cosine"):
        lesson05.check_1(3.2, pairs)


def test_2_mrr_by_hand(ranked, capsys):
    ranking, relevant, table = ranked
    answer = solutions.mrr(ranking, relevant)
    assert answer == pytest.approx((1 + 1 / 2 + 1 / 4) / 3)
    lesson05.check_2(answer, table)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(ExerciseError, match="recall@1"):
        lesson05.check_2(table.loc[("trained for similarity", "paraphrase"), "recall@1"], table)
    with pytest.raises(ExerciseError, match="1/position"):
        lesson05.check_2(1 / float(np.mean([1, 2, 4])), table)  # one over the mean rank: not the mean of 1/rank


def test_3_fewest_dimensions(truncation, capsys):
    answer = solutions.fewest_dimensions(truncation)
    assert answer == 96, "192 and 96 stay within 0.05 of 0.95; 48 does not"
    lesson05.check_3(answer, truncation)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(ExerciseError, match="fewer dimensions"):
        lesson05.check_3(192, truncation)
    with pytest.raises(ExerciseError, match="more than 0.05 below"):
        lesson05.check_3(48, truncation)
    with pytest.raises(ExerciseError, match="not a row"):
        lesson05.check_3(100, truncation)


def test_4_storage(capsys):
    lesson05.check_4(solutions.storage_gb())
    assert "correct" in capsys.readouterr().out
    with pytest.raises(ExerciseError, match="4"):
        lesson05.check_4((0.384, 0.096))  # one byte per number
    with pytest.raises(ExerciseError, match="pair"):
        lesson05.check_4(1.536)
