"""Lesson 07's exercises: each check passes on its solution, raises ExerciseError with a hint on an obvious wrong
answer, and prints what to do while the answer is still `...`. No model runs: the checks use the server's own
validation."""

from __future__ import annotations

import copy

import pytest

from labkit.exercises import ExerciseError, lesson07
from tests.conftest import solutions as load_solutions

solutions = load_solutions("07")


@pytest.mark.parametrize("check, args", [(lesson07.check_1, ()), (lesson07.check_2, ()), (lesson07.check_3, ()),
                                         (lesson07.check_4, ("call_1", 1517))])
def test_a_placeholder_prints_what_to_do(check, args, capsys):
    check(..., *args)
    assert "not answered yet" in capsys.readouterr().out


def test_1_a_strict_schema(capsys):
    lesson07.check_1(solutions.strict_schema(lesson07.LOOSE_SCHEMA))
    assert "correct" in capsys.readouterr().out
    with pytest.raises(ExerciseError, match="additionalProperties"):
        lesson07.check_1(lesson07.LOOSE_SCHEMA)
    top_only = copy.deepcopy(lesson07.LOOSE_SCHEMA)  # the nested object left loose
    top_only.update(required=["city", "population", "location"], additionalProperties=False)
    with pytest.raises(ExerciseError, match="location"):
        lesson07.check_1(top_only)
    dropped = solutions.strict_schema(lesson07.LOOSE_SCHEMA)
    del dropped["properties"]["population"]
    dropped["required"].remove("population")
    with pytest.raises(ExerciseError, match="same keys and types"):
        lesson07.check_1(dropped)


def test_2_a_chat_completions_tool(capsys):
    tool = solutions.weather_tool()
    lesson07.check_2(tool)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(ExerciseError, match="Responses API's flat tool"):
        lesson07.check_2({"type": "function", **tool["function"]})
    loose = copy.deepcopy(tool)
    del loose["function"]["parameters"]["additionalProperties"]
    with pytest.raises(ExerciseError, match="400"):
        lesson07.check_2(loose)
    free_unit = copy.deepcopy(tool)
    free_unit["function"]["parameters"]["properties"]["unit"] = {"type": "string"}
    with pytest.raises(ExerciseError, match="enum"):
        lesson07.check_2(free_unit)


def test_3_the_same_request_for_the_responses_api(capsys):
    body = solutions.as_responses(lesson07.CHAT_REQUEST)
    lesson07.check_3(body)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(ExerciseError, match="Chat Completions parameter"):
        lesson07.check_3({**body, "messages": lesson07.CHAT_REQUEST["messages"]})
    nested = {**body, "text": {"format": lesson07.CHAT_REQUEST["response_format"]}}  # chat's nested shape
    with pytest.raises(ExerciseError, match="400"):
        lesson07.check_3(nested)
    with pytest.raises(ExerciseError, match="same conversation"):
        lesson07.check_3({**body, "instructions": None})


def test_4_a_tool_result_message(capsys):
    lesson07.check_4(solutions.tool_result_message("call_1", 1517), "call_1", 1517)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(ExerciseError, match="role \"tool\""):
        lesson07.check_4({"role": "user", "content": "1517"}, "call_1", 1517)
    with pytest.raises(ExerciseError, match="tool_call_id"):
        lesson07.check_4({"role": "tool", "tool_call_id": "calculate", "content": "1517"}, "call_1", 1517)
    with pytest.raises(ExerciseError, match="str\\(result\\)"):
        lesson07.check_4({"role": "tool", "tool_call_id": "call_1", "content": 1517}, "call_1", 1517)
