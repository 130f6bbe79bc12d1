"""Exercises at the end of each lesson, and the checks a student runs on an answer.

A lesson's exercise cell reads:

    answer = ...  # replace ... with your answer
    lesson01.check_1(answer)

`...` (or None) means "not answered yet": the check prints what to do and returns, so a lesson with its
exercises untouched still runs top to bottom (and under nbmake). A right answer prints why it is right; a wrong
one raises `ExerciseError` (an AssertionError) whose message says what to look at. One module per lesson
(`labkit.exercises.lesson01`, ...); the solutions are in `notebooks/solutions/`, and the test suite proves each
check passes on its solution and fails on an obvious wrong answer.
"""

from __future__ import annotations

import math
from typing import Any

from labkit.i18n import _


class ExerciseError(AssertionError):
    """A wrong answer to an exercise; the message is a hint, not the solution."""


def answered(exercise: str, value: Any, how: str) -> bool:
    """False (after printing what to do) while `value` is still the placeholder `...` or None."""
    if value is ... or value is None:
        print(_("{exercise}: not answered yet — {how}", exercise=exercise, how=how))
        return False
    return True


def expect(condition: bool, exercise: str, hint: str) -> None:
    """Raise ExerciseError naming the exercise with `hint` unless `condition` holds."""
    if not condition:
        raise ExerciseError(_("{exercise}: not yet. {hint}", exercise=exercise, hint=hint))


def not_the_mistake(answer: float, mistake: float, right: float, exercise: str, hint: str,
                    abs_tol: float = 1e-9) -> None:
    """Raise ExerciseError with `hint` when `answer` is a known mistake's value (where that differs from `right`)."""
    expect(not math.isclose(answer, mistake, abs_tol=abs_tol) or math.isclose(mistake, right, abs_tol=abs_tol),
           exercise, hint)


def passed(exercise: str, why: str) -> None:
    print(_("{exercise}: correct — {why}", exercise=exercise, why=why))
