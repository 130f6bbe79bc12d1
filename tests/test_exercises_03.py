"""Lesson 03's exercises: each check passes on its solution, raises ExerciseError with a hint on an obvious wrong
answer, and prints what to do while the answer is still `...`. No model: made-up Choice results stand in for the
lesson's, with the shape its prompts gave (a collapse to "positive" that still ranks the reviews)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from labkit import evals
from labkit.exercises import ExerciseError, lesson03
from tests.conftest import solutions as load_solutions

solutions = load_solutions("03")


def result(p_positive: list[float], ideals: list[str]) -> evals.Result:
    """A sentiment Choice result: P(positive) per review, the labels sharing 80% of the first token's mass."""
    rows = []
    for p, ideal in zip(p_positive, ideals):
        answer = "positive" if p > 0.5 else "negative"
        rows.append({"input": f"review {len(rows)}", "ideal": ideal, "answer": answer, "correct": answer == ideal,
                     "logprob[positive]": math.log(0.8 * p), "logprob[negative]": math.log(0.8 * (1 - p))})
    return evals.Result(pd.DataFrame(rows), "smollm2-135m-instruct", ("positive", "negative"))


IDEALS = ["positive", "negative"] * 4
# the prompt pushes every review towards "positive", more for the positive ones: 7 of 8 answered positive
ALL_POSITIVE = result([0.97, 0.7, 0.95, 0.8, 0.9, 0.45, 0.99, 0.75], IDEALS)
DRAWS = [ALL_POSITIVE, result([0.6, 0.6, 0.8, 0.4, 0.7, 0.55, 0.9, 0.2], IDEALS)]


@pytest.mark.parametrize("check, args", [(lesson03.check_1, (DRAWS,)), (lesson03.check_2, (ALL_POSITIVE,)),
                                         (lesson03.check_3, (ALL_POSITIVE,)), (lesson03.check_4, (pd.DataFrame(),))])
def test_a_placeholder_prints_what_to_do(check, args, capsys):
    check(..., *args)
    assert "not answered yet" in capsys.readouterr().out


def test_1_share_of_positive_answers(capsys):
    answer = solutions.share_answered_positive(DRAWS)
    assert answer == pytest.approx(13 / 16)
    lesson03.check_1(answer, DRAWS)
    assert "correct" in capsys.readouterr().out
    accuracy = float(pd.concat([r.df["correct"] for r in DRAWS]).mean())
    with pytest.raises(ExerciseError, match="accuracy"):
        lesson03.check_1(accuracy, DRAWS)
    with pytest.raises(ExerciseError, match="ideal"):
        lesson03.check_1(0.5, DRAWS)  # half the reviews ARE positive
    with pytest.raises(ExerciseError, match="between 0 and 1"):
        lesson03.check_1(11, DRAWS)


def test_2_the_batch_prior_by_hand(capsys):
    answer = solutions.positive_prior(ALL_POSITIVE)
    assert answer == pytest.approx(evals.batch_prior(ALL_POSITIVE)["positive"])
    lesson03.check_2(answer, ALL_POSITIVE)
    assert "correct" in capsys.readouterr().out
    raw = float(ALL_POSITIVE.df["logprob[positive]"].map(math.exp).mean())  # not renormalized over the labels
    with pytest.raises(ExerciseError, match="Renormalize"):
        lesson03.check_2(raw, ALL_POSITIVE)
    with pytest.raises(ExerciseError, match="share of \"positive\" answers"):
        lesson03.check_2(7 / 8, ALL_POSITIVE)


def test_3_calibrated_accuracy(capsys):
    answer = solutions.calibrated_accuracy(ALL_POSITIVE)
    assert answer == 1.0 and ALL_POSITIVE.accuracy == 5 / 8, "the prior hid a perfect ranking"
    lesson03.check_3(answer, ALL_POSITIVE)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(ExerciseError, match="before calibration"):
        lesson03.check_3(ALL_POSITIVE.accuracy, ALL_POSITIVE)
    with pytest.raises(ExerciseError):
        lesson03.check_3(0.5, ALL_POSITIVE)


def test_4_expected_calibration_error(capsys):
    table = evals.reliability(DRAWS)
    answer = solutions.expected_calibration_error(table)
    assert answer == pytest.approx(evals.calibration_error(table))
    lesson03.check_4(answer, table)
    assert "correct" in capsys.readouterr().out
    filled = table[table["n"] > 0]
    unweighted = float((filled["accuracy"] - filled["confidence"]).abs().mean())
    assert not math.isclose(unweighted, answer), "the exercise is worth doing: the bins hold different counts"
    with pytest.raises(ExerciseError, match="Weight each bin"):
        lesson03.check_4(unweighted, table)
    with pytest.raises(ExerciseError, match="one number"):
        lesson03.check_4("0.1", table)
