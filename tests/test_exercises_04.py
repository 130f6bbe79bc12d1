"""Lesson 04's exercises: each check passes on its solution, raises ExerciseError with a hint on an obvious wrong
answer, and prints what to do while the answer is still `...`. No model: the checks read the lesson's data."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from labkit import DATA, catalog, finetune
from labkit.exercises import ExerciseError, lesson04
from tests.conftest import solutions as load_solutions

BROKEN = DATA / "finetune" / "broken_bad_role.jsonl"


solutions = load_solutions("04")


@pytest.fixture(scope="module")
def report():
    return finetune.validate(DATA / "finetune" / "json_train.jsonl", model=catalog.FINE_TUNING_2023.model)


@pytest.fixture()
def side_by_side():
    """A section-6 table in small: two questions with a fact, one opinion question without."""
    return pd.DataFrame({"ideal": ["Rabat", "Titan", ""],
                         "base": ["The capital of Morocco is Rabat.", "It is Titan.", "I like tea."],
                         "fine_tuned": ['{"answer": "Morocco", "confidence": 0.9}',
                                        '{"answer": "Titan", "confidence": 0.9}',
                                        '{"answer": "tea", "confidence": 0.9}']}).assign(
        **{"fact in reply": [False, True, False]})


@pytest.mark.parametrize("check, args", [(lesson04.check_1, (None, None)), (lesson04.check_2, ()),
                                         (lesson04.check_3, (BROKEN,)), (lesson04.check_4, (None,))])
def test_a_placeholder_prints_what_to_do(check, args, capsys):
    check(..., *args)
    assert "not answered yet" in capsys.readouterr().out


def test_1_cost_of_five_epochs(report, capsys):
    price = catalog.FINE_TUNING_2023
    lesson04.check_1(solutions.cost_for_epochs(report, price), report, price)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(ExerciseError, match="auto"):
        lesson04.check_1(report.cost_usd, report, price)  # the 3-epoch cost the lesson printed
    with pytest.raises(ExerciseError, match="once per epoch"):
        lesson04.check_1(price.training_cost(report.billed_tokens, 1), report, price)


def test_2_auto_epochs_for_a_small_file(capsys):
    lesson04.check_2(solutions.auto_epochs(20))
    assert "correct" in capsys.readouterr().out
    for wrong in (3, 1):
        with pytest.raises(ExerciseError):
            lesson04.check_2(wrong)


def test_3_fixing_the_line_with_an_unknown_role(capsys):
    fixed = solutions.fix_bad_role(BROKEN)
    lesson04.check_3(fixed, BROKEN)
    assert "correct" in capsys.readouterr().out
    broken = json.loads(BROKEN.read_text().splitlines()[2])
    with pytest.raises(ExerciseError, match="narrator"):
        lesson04.check_3(broken, BROKEN)
    emptied = {"messages": [m for m in fixed["messages"] if m["role"] != "assistant"]}
    with pytest.raises(ExerciseError):
        lesson04.check_3(emptied, BROKEN)  # no assistant message left: an error, and nothing to learn
    renamed = {"messages": [dict(m, content="ok") if m["role"] == "user" else m for m in fixed["messages"]]}
    with pytest.raises(ExerciseError, match="keep the user message"):
        lesson04.check_3(renamed, BROKEN)


def test_4_facts_in_the_replies(side_by_side, capsys):
    answer = solutions.fact_shares(side_by_side)
    assert answer == (1.0, 0.5)
    lesson04.check_4(answer, side_by_side)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(ExerciseError, match="without an expected answer"):
        lesson04.check_4((1.0, side_by_side["fact in reply"].mean()), side_by_side)
    with pytest.raises(ExerciseError, match="base"):
        lesson04.check_4((0.5, 0.5), side_by_side)
    with pytest.raises(ExerciseError, match="fraction"):
        lesson04.check_4((2, 1), side_by_side)
