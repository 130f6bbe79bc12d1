"""Solutions to lesson 03's exercises, computed the way the lesson does."""

from __future__ import annotations

import math

import pandas as pd

from labkit import evals


def share_answered_positive(results: list[evals.Result]) -> float:
    """Exercise 1: pool the answers of every result and take the share that is "positive" (right or wrong)."""
    answers = pd.concat([r.df["answer"] for r in results])
    return float((answers == "positive").mean())


def positive_prior(result: evals.Result) -> float:
    """Exercise 2: per review, P(positive) renormalized over the two labels, p+ / (p+ + p-); then the mean."""
    shares = [math.exp(pos) / (math.exp(pos) + math.exp(neg))
              for pos, neg in zip(result.df["logprob[positive]"], result.df["logprob[negative]"])]
    return sum(shares) / len(shares)


def calibrated_accuracy(result: evals.Result) -> float:
    """Exercise 3: divide the batch prior out with evals.calibrate; nothing is asked again."""
    return evals.calibrate(result, evals.batch_prior(result)).accuracy


def expected_calibration_error(table: pd.DataFrame) -> float:
    """Exercise 4: each bin's |accuracy - confidence| weighted by its items, over all the items."""
    filled = table[table["n"] > 0]
    return float((filled["n"] * (filled["accuracy"] - filled["confidence"]).abs()).sum() / filled["n"].sum())
