"""Lesson 06's exercises: each check passes on its solution, raises ExerciseError with a hint on an obvious wrong
answer, and prints what to do while the answer is still `...`. Nothing trains: formulas and synthetic rungs."""

from __future__ import annotations

import pytest

from labkit import scaling
from labkit.exercises import ExerciseError, lesson06
from tests.conftest import solutions as load_solutions

SHAPE, BLOCK = scaling.Shape(4, 96, 4), 128
REPLICATION = scaling.Chinchilla(E=1.82, A=482, B=2085, alpha=0.348, beta=0.366)


solutions = load_solutions("06")
FLOPS, LOSSES = lesson06.practice_ladder()


@pytest.mark.parametrize("check, args", [(lesson06.check_1, (SHAPE, BLOCK)), (lesson06.check_2, (FLOPS, LOSSES)),
                                         (lesson06.check_3, (FLOPS, LOSSES)), (lesson06.check_4, (REPLICATION, 1e21))])
def test_a_placeholder_prints_what_to_do(check, args, capsys):
    check(..., *args)
    assert "not answered yet" in capsys.readouterr().out


def test_practice_ladder_is_the_same_every_call_and_follows_its_law():
    flops, losses = lesson06.practice_ladder()
    assert (flops == FLOPS).all() and (losses == LOSSES).all()
    assert abs(losses / lesson06.PRACTICE.predict(flops) - 1).max() < 0.05


def test_1_exact_training_flops(capsys):
    lesson06.check_1(solutions.exact_training_flops(SHAPE, BLOCK), SHAPE, BLOCK)
    assert "correct" in capsys.readouterr().out
    tokens = 20 * scaling.parameters(SHAPE)["total"]
    with pytest.raises(ExerciseError, match="rule of thumb"):
        lesson06.check_1(scaling.flops_per_token(SHAPE, BLOCK)["6N"] * tokens, SHAPE, BLOCK)
    with pytest.raises(ExerciseError, match="FLOPs per token times tokens"):
        lesson06.check_1(scaling.flops_per_token(SHAPE, BLOCK)["exact"], SHAPE, BLOCK)


def test_2_prediction_at_10x(capsys):
    lesson06.check_2(solutions.predict_10x(FLOPS, LOSSES), FLOPS, LOSSES)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(ExerciseError, match="largest rung's own loss"):
        lesson06.check_2(float(LOSSES.min()), FLOPS, LOSSES)
    wrong_point = float(scaling.fit_power_law(FLOPS, LOSSES).predict(10 * FLOPS.min()))
    with pytest.raises(ExerciseError, match="10 \\* flops.max"):
        lesson06.check_2(wrong_point, FLOPS, LOSSES)


def test_3_prediction_without_a_floor(capsys):
    lesson06.check_3(solutions.predict_10x_without_floor(FLOPS, LOSSES), FLOPS, LOSSES)
    out = capsys.readouterr().out
    assert "correct" in out and "below the floored fit" in out, "no floor: the straight line is more optimistic"
    with pytest.raises(ExerciseError, match="floor=0.0"):
        lesson06.check_3(solutions.predict_10x(FLOPS, LOSSES), FLOPS, LOSSES)


def test_4_compute_optimal_tokens_per_parameter(capsys):
    lesson06.check_4(solutions.optimal_tokens_per_parameter(REPLICATION, 1e21), REPLICATION, 1e21)
    assert "correct" in capsys.readouterr().out
    n, d = REPLICATION.compute_optimal(1e21)
    with pytest.raises(ExerciseError, match="divide D by N"):
        lesson06.check_4(n / d, REPLICATION, 1e21)
    with pytest.raises(ExerciseError, match="one ratio"):
        lesson06.check_4("20", REPLICATION, 1e21)
