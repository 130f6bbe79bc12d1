"""Checks for lesson 03's exercises (few-shot learning): the answer distribution behind an accuracy, a label prior
measured by hand, contextual calibration, and the expected calibration error of a reliability table."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from labkit import evals
from labkit.exercises import answered, expect, not_the_mistake, passed
from labkit.i18n import _


def _number(exercise: str, answer) -> None:
    expect(isinstance(answer, (int, float)) and not isinstance(answer, bool) and math.isfinite(answer), exercise,
           _("the answer is one number."))
    expect(0 <= answer <= 1, exercise,
           _("{answer} is not a share or a probability: it lies between 0 and 1.", answer=answer))


def check_1(answer, results: Sequence[evals.Result]) -> None:
    """The share of "positive" answers over every draw of section 2's sentiment prompts with the most shots."""
    exercise = _("Exercise 1")
    if not answered(exercise, answer, _("count the \"positive\" answers over every result in the list")):
        return
    _number(exercise, answer)
    answers = pd.concat([r.df["answer"] for r in results])
    want = float((answers == "positive").mean())
    accuracy = float(pd.concat([r.df["correct"] for r in results]).mean())
    not_the_mistake(answer, accuracy, want, exercise,
                    _("that is the accuracy: the share of answers that were right. Count what was answered, right "
                      "or wrong: each result's df has an `answer` column."))
    truth = float(pd.concat([r.df["ideal"] for r in results]).eq("positive").mean())
    not_the_mistake(answer, truth, want, exercise,
                    _("that is the share of reviews that ARE positive (the `ideal` column), not of the answers."))
    expect(math.isclose(answer, want, abs_tol=1e-9), exercise,
           _("pool the `answer` column of every result in the list (pd.concat), then take the share equal to "
             "\"positive\" (result.answered() gives it per result)."))
    passed(exercise, _("{want:.0%} of the answers were \"positive\" while {truth:.0%} of the reviews are: "
                       "the accuracy ({accuracy:.0%}) alone does not show that.",
                       want=want, truth=truth, accuracy=accuracy))


def check_2(answer, result: evals.Result) -> None:
    """The batch prior of "positive" for one result, computed by hand from its logprob columns."""
    exercise = _("Exercise 2")
    if not answered(exercise, answer,
                    _("average P(positive), renormalized over the two labels, over the reviews")):
        return
    _number(exercise, answer)
    want = evals.batch_prior(result)["positive"]
    raw = float(result.df["logprob[positive]"].map(math.exp).mean())
    not_the_mistake(answer, raw, want, exercise,
                    _("that is the mean of exp(logprob[positive]) as it stands: the model also puts probability on "
                      "other tokens. Renormalize over the two labels first: p+ / (p+ + p-) for each review."), 1e-6)
    share = result.answered().get("positive", 0.0)
    not_the_mistake(answer, share, want, exercise,
                    _("that is the share of \"positive\" answers; the prior is a mean probability, which keeps how "
                      "sure the model was of each answer."), 1e-6)
    expect(math.isclose(answer, want, abs_tol=1e-4), exercise,
           _("for each review take p+ = exp(logprob[positive]) and p- = exp(logprob[negative]), then "
             "p+ / (p+ + p-); the prior is the mean of that over the reviews."))
    passed(exercise, _("P(positive) averages {want:.2f} over reviews that are half negative: that excess is the "
                       "prior the examples set.", want=want))


def check_3(answer, result: evals.Result) -> None:
    """The accuracy of a result calibrated on its own batch prior."""
    exercise = _("Exercise 3")
    if not answered(exercise, answer,
                    _("calibrate the result on evals.batch_prior(result) and read its accuracy")):
        return
    _number(exercise, answer)
    want = evals.calibrate(result, evals.batch_prior(result)).accuracy
    not_the_mistake(answer, result.accuracy, want, exercise,
                    _("that is the accuracy before calibration: pass the result and its prior to evals.calibrate, "
                      "and read .accuracy of what it returns."))
    expect(math.isclose(answer, want, abs_tol=1e-9), exercise,
           _("evals.calibrate(result, evals.batch_prior(result)).accuracy: the prior of exercise 2, divided out."))
    passed(exercise, _("{answered:.0%} as answered, {want:.0%} calibrated: the same logprobs, read against the "
                       "prior instead of against 50%.", answered=result.accuracy, want=want))


def check_4(answer, table: pd.DataFrame) -> None:
    """The expected calibration error of a reliability table, by hand."""
    exercise = _("Exercise 4")
    if not answered(exercise, answer, _("weight each bin's |accuracy - confidence| by its items")):
        return
    _number(exercise, answer)
    want = evals.calibration_error(table)
    filled = table[table["n"] > 0]
    unweighted = float((filled["accuracy"] - filled["confidence"]).abs().mean())
    not_the_mistake(answer, unweighted, want, exercise,
                    _("that is the plain mean over the bins: a bin with 2 items would count as much as one with 60. "
                      "Weight each bin's gap by its `n`, then divide by the total of `n`."), 1e-6)
    expect(math.isclose(answer, want, abs_tol=1e-6), exercise,
           _("ECE = sum over bins of n * |accuracy - confidence|, divided by the sum of n (skip empty bins)."))
    passed(exercise, _("ECE {want:.3f}: on average the confidence misses the accuracy by {want:.0%}.", want=want))
