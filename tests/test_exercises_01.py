"""Lesson 01's exercises: each check passes on its solution, raises ExerciseError with a hint on an obvious wrong
answer, and prints what to do while the answer is still `...`."""

from __future__ import annotations

import pytest

from labkit.engine import DEFAULT_MODEL
from labkit.exercises import ExerciseError, lesson01
from tests.conftest import solutions as load_solutions

solutions = load_solutions("01")
ASK = [{"role": "user", "content": "List three fruits, one per line."}]


@pytest.fixture(scope="module")
def content(client):
    r = client.chat.completions.create(model=DEFAULT_MODEL, messages=ASK, max_tokens=6, temperature=0,
                                       logprobs=True, top_logprobs=2)
    return r.choices[0].logprobs.content


@pytest.mark.parametrize("check, args", [(lesson01.check_1, ()), (lesson01.check_2, ([],)),
                                         (lesson01.check_3, ()), (lesson01.check_4, ({},))])
def test_a_placeholder_prints_what_to_do(check, args, capsys):
    check(..., *args)
    assert "not answered yet" in capsys.readouterr().out


def test_1_finish_reason_of_a_cut_reply(client, capsys):
    lesson01.check_1(solutions.finish_reason_when_cut(client, DEFAULT_MODEL, ASK))
    assert "correct" in capsys.readouterr().out
    with pytest.raises(ExerciseError, match="max_tokens"):
        lesson01.check_1("stop")


def test_2_probability_of_the_whole_reply(content, capsys):
    lesson01.check_2(solutions.reply_probability(content), content)
    assert "correct" in capsys.readouterr().out
    import math
    mean = sum(math.exp(t.logprob) for t in content) / len(content)  # the mean token probability: not the reply's
    with pytest.raises(ExerciseError, match="logprob"):
        lesson01.check_2(mean, content)
    with pytest.raises(ExerciseError, match="not a probability"):
        lesson01.check_2(sum(t.logprob for t in content), content)


def test_3_tokens_of_a_chinese_sentence(capsys):
    sentence, cl100k, o200k = solutions.chinese_token_counts()
    lesson01.check_3((sentence, cl100k, o200k))
    assert "correct" in capsys.readouterr().out
    assert cl100k != o200k, "the exercise is worth doing: the encodings differ on Chinese"
    with pytest.raises(ExerciseError, match="swapped"):
        lesson01.check_3((sentence, o200k, cl100k))
    with pytest.raises(ExerciseError, match="characters"):
        lesson01.check_3((sentence, len(sentence), o200k))
    with pytest.raises(ExerciseError, match="Chinese characters"):
        lesson01.check_3(("Jupiter is a gas giant.", 6, 6))


def test_4_cheapest_model_still_served(capsys):
    from labkit import catalog, tokens
    messages = [{"role": "user", "content": "Summarize: Jupiter is the largest planet."}]
    costs = {n: catalog.cost(n, tokens.count_messages(messages, n), 15)
             for n in catalog.names(catalog.CHAT) if catalog.info(n).encoding}
    answer = solutions.cheapest_served(costs)
    lesson01.check_4(answer, costs)
    assert "correct" in capsys.readouterr().out
    cheapest_of_all = min(costs, key=costs.get)
    if catalog.info(cheapest_of_all).is_shut_down():
        with pytest.raises(ExerciseError, match="shut down"):
            lesson01.check_4(cheapest_of_all, costs)
    dearest = max(costs, key=costs.get)
    with pytest.raises(ExerciseError):
        lesson01.check_4(dearest, costs)
