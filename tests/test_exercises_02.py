"""Lesson 02's exercise checks: each passes on its solution, fails on an obvious wrong answer, and waits on `...`."""

from __future__ import annotations

import pytest

from labkit.exercises import ExerciseError, lesson02
from tests.conftest import solutions as load_solutions

solutions = load_solutions("02")

PREFIX, SUFFIX = "def average(numbers):\n", "\n    return total / len(numbers)\n"
ROWS = [{"finish_reason": "stop", "good": True}, {"finish_reason": "stop", "good": False},
        {"finish_reason": "stop", "good": True}, {"finish_reason": "length", "good": False}]
TEXT = "Hi. I moved.\nself.x = 1"

CASES = [  # check, its extra arguments, the solution's answer, an obvious wrong answer
    (lesson02.check_1, (), solutions.solution_1(), 24),
    (lesson02.check_2, (PREFIX, SUFFIX), solutions.solution_2(PREFIX, SUFFIX), PREFIX + SUFFIX),
    (lesson02.check_3, (ROWS,), solutions.solution_3(ROWS), 0.5),
    (lesson02.check_4, (TEXT,), solutions.solution_4(TEXT), [len(TEXT)]),
]


@pytest.mark.parametrize("check, args, right, wrong", CASES)
def test_check_passes_on_the_solution(check, args, right, wrong, capsys):
    check(right, *args)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("check, args, right, wrong", CASES)
def test_check_fails_on_a_wrong_answer(check, args, right, wrong):
    with pytest.raises(ExerciseError):
        check(wrong, *args)


@pytest.mark.parametrize("check, args, right, wrong", CASES)
def test_check_waits_for_an_answer(check, args, right, wrong, capsys):
    check(..., *args)
    assert "not answered yet" in capsys.readouterr().out


def test_exercise_1_hints_at_what_was_returned():
    with pytest.raises(ExerciseError, match="how many come back"):
        lesson02.check_1(3)


def test_exercise_3_names_the_share_over_every_row():
    with pytest.raises(ExerciseError, match="share over every row"):
        lesson02.check_3(2 / 4, ROWS)


def test_solution_4_matches_the_server_on_the_lesson_s_candidates():
    from labkit.engine.ranking import cut_points

    for text in ("\n    x = 1\n    y = 2\n", "A. B! C? D.\nE\nF\nG", "no end", " Wednesday,"):
        assert solutions.solution_4(text) == cut_points(text)
