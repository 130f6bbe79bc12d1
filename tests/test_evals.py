"""Eval templates on items whose right answer is known, through a scripted client, then the real local server."""

from __future__ import annotations

import math
from types import SimpleNamespace as NS

import pytest

from labkit import evals


class ScriptedClient:
    """Answers every request with a fixed text and first-token top logprobs, in the SDK's shapes."""

    def __init__(self, text: str, top: dict[str, float] | None = None):
        self.text, self.top, self.requests = text, top or {}, []
        self.chat = NS(completions=NS(create=self._chat))
        self.completions = NS(create=self._completion)

    def _chat(self, **kw):
        self.requests.append(kw)
        top = [NS(top_logprobs=[NS(token=t, logprob=v) for t, v in self.top.items()])]
        return NS(choices=[NS(message=NS(content=self.text), logprobs=NS(content=top) if kw.get("logprobs") else None)])

    def _completion(self, **kw):
        self.requests.append(kw)
        lps = NS(top_logprobs=[self.top]) if kw.get("logprobs") is not None else None
        return NS(choices=[NS(text=self.text, logprobs=lps)])


def lab_with(client, backend="local"):
    return NS(client=client, backend=backend, models=NS(chat="chat-model", completion="text-model"))


def chat(item):
    return [{"role": "user", "content": item["input"]}]


@pytest.mark.parametrize("template, answer, ideal, correct", [
    (evals.ExactMatch(), " 2019-03-05\n", "2019-03-05", True),
    (evals.ExactMatch(), "2019-03-05.", "2019-03-05", False),
    (evals.ExactMatch(), "b", ["a", "b"], True),
    (evals.Includes(), "It is Positive, clearly", "positive", True),
    (evals.Includes(), "negative", "positive", False),
    (evals.FuzzyMatch(), "The meeting is LATER.", "meeting is later", True),
    (evals.FuzzyMatch(), "later", ["We will meet later today", "x"], True),
    (evals.FuzzyMatch(), "", "anything", False),
    (evals.FuzzyMatch(), "sooner", "later", False),
])
def test_text_templates_score_known_answers(template, answer, ideal, correct):
    result = evals.run(lab_with(ScriptedClient(answer)), [{"input": "q", "ideal": ideal}], template, chat,
                       progress=False)
    assert result.df["correct"].tolist() == [correct] and result.df["answer"][0] == answer


@pytest.mark.parametrize("answer, valid_json, correct", [
    ('{"answer": "Rabat", "confidence": 0.9}', True, True),
    ('{"answer": "Rabat", "confidence": "high"}', True, False),
    ('["Rabat", 0.9]', True, False),
    ('The capital is Rabat.', False, False),
])
def test_json_reply_tells_json_from_the_right_shape(answer, valid_json, correct):
    result = evals.run(lab_with(ScriptedClient(answer)), [{"input": "q", "ideal": "Rabat"}],
                       evals.JsonReply({"answer": str, "confidence": float}), chat, progress=False)
    assert result.df["valid_json"].tolist() == [valid_json] and result.df["correct"].tolist() == [correct]


def test_json_reply_sends_its_response_format_and_states_its_schema():
    shape = evals.JsonReply({"answer": str, "confidence": float})
    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": shape.schema(), "strict": True}}
    client = ScriptedClient("{}")
    evals.run(lab_with(client), [{"input": "q", "ideal": "x"}], evals.JsonReply(shape.keys, response_format=fmt),
              chat, progress=False)
    assert client.requests[0]["response_format"] == fmt
    assert shape.schema() == {"type": "object", "properties": {"answer": {"type": "string"},
                                                                "confidence": {"type": "number"}},
                              "required": ["answer", "confidence"], "additionalProperties": False}


def test_a_saved_result_comes_back(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path))
    assert evals.Result.saved("04_fine_tuned") is None
    result = evals.run(lab_with(ScriptedClient("b")), [{"input": "q", "ideal": "b"}, {"input": "r", "ideal": "c"}],
                       evals.ExactMatch(), chat, progress=False)
    result.save("04_fine_tuned")
    back = evals.Result.saved("04_fine_tuned")
    assert back.model == result.model and back.accuracy == 0.5 and back.df.answer.tolist() == ["b", "b"]


def test_choice_reads_logprobs_not_text():
    top = {" Pos": -2.0, "neg": -0.3, "Negative": -0.1, "!": -0.01}
    client = ScriptedClient("whatever the text says", top)
    result = evals.run(lab_with(client), [{"input": "q", "ideal": "negative"}],
                       evals.Choice(["positive", "negative"]), chat, progress=False)
    row = result.df.iloc[0]
    assert row["answer"] == "negative" and row["correct"]
    assert row["logprob[negative]"] == -0.1 and row["logprob[positive]"] == -2.0, "best token that begins each option"
    request = client.requests[0]
    assert request["max_tokens"] == 1 and request["logprobs"] is True and request["top_logprobs"] == 20


def test_choice_on_a_completion_prompt_asks_for_at_most_5_logprobs():
    client = ScriptedClient("", {" positive": -0.5})
    result = evals.run(lab_with(client), [{"input": "q", "ideal": "positive"}], evals.Choice(["positive", "negative"]),
                       lambda item: f"Review: {item['input']}\nSentiment:", progress=False)
    assert result.model == "text-model" and client.requests[0]["logprobs"] == 5
    assert result.df["correct"][0] and result.df["logprob[negative]"][0] == -math.inf


def test_choice_with_no_option_among_the_top_tokens_answers_nothing():
    result = evals.run(lab_with(ScriptedClient("", {"maybe": -0.1})), [{"input": "q", "ideal": "positive"}],
                       evals.Choice(["positive", "negative"]), chat, progress=False)
    assert result.df["answer"][0] == "" and not result.df["correct"][0]


@pytest.mark.parametrize("top, correct", [({"Yes": -0.1, "No": -2.5}, True), ({"Yes": -3.0, "No": -0.2}, False)])
def test_model_graded_follows_the_graders_yes_or_no(top, correct):
    client = ScriptedClient("We made less money.", top)
    item = {"input": "Revenue headwinds impacted the top line.", "ideal": "We earned less."}
    result = evals.run(lab_with(client), [item], evals.ModelGraded(grader="judge"), chat, progress=False)
    assert result.df["correct"][0] == correct
    graded = client.requests[-1]
    assert graded["model"] == "judge" and "We earned less." in graded["messages"][0]["content"]
    assert "We made less money." in graded["messages"][0]["content"]


def test_accuracy_and_wilson_interval():
    items = [{"input": str(i), "ideal": "yes" if i < 3 else "no"} for i in range(4)]
    result = evals.run(lab_with(ScriptedClient("yes")), items, evals.ExactMatch(), chat, progress=False)
    assert result.accuracy == 0.75 and len(result.df) == 4
    lo, hi = result.interval
    assert 0.25 < lo < 0.75 < hi < 1.0
    assert evals.wilson(0, 10)[0] == 0.0 and evals.wilson(10, 10)[1] == 1.0
    assert "accuracy 75.0%" in repr(result)


def test_concurrency_keeps_item_order():
    class Echo(ScriptedClient):  # answers each request with its own input, from many threads at once
        def _chat(self, **kw):
            return NS(choices=[NS(message=NS(content=kw["messages"][0]["content"]), logprobs=None)])

    items = [{"input": str(i), "ideal": str(i)} for i in range(30)]
    result = evals.run(lab_with(Echo(""), backend="openai"), items, evals.ExactMatch(), chat, progress=False)
    assert result.df["input"].tolist() == [str(i) for i in range(30)] and result.accuracy == 1.0


def test_concurrently_overlaps_calls_and_keeps_their_order():
    import threading
    import time

    lock, running, peak = threading.Lock(), [0], [0]

    def slow(i, x):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return i * x

    assert evals.concurrently(slow, range(20), range(20), concurrency=4) == [i * i for i in range(20)]
    assert 1 < peak[0] <= 4, f"{peak[0]} calls ran at once"


@pytest.mark.parametrize("items, message", [([], "empty"), ([{"input": "x"}], "'ideal'")])
def test_bad_items_name_the_problem(items, message):
    with pytest.raises(ValueError, match=message):
        evals.run(lab_with(ScriptedClient("")), items, evals.ExactMatch(), chat, progress=False)


def test_choice_through_the_local_server(client):
    """The real path: SmolLM2 behind labkit's server, logprobs over an easy label set."""
    from tests.conftest import MODEL

    lab = NS(client=client, backend="local", models=NS(chat=MODEL, completion=MODEL))
    ask = "Is this review positive or negative? Answer with one word. Review: "
    items = [{"input": ask + "I loved it, wonderful!", "ideal": "positive"},
             {"input": ask + "Awful, I hated it.", "ideal": "negative"}]
    result = evals.run(lab, items, evals.Choice(["positive", "negative"]), chat, progress=False)
    assert result.df["logprob[positive]"][0] > result.df["logprob[positive]"][1], "the scores move with the review"
    assert all(v <= 0 for v in result.df["logprob[negative]"])


# ---------------------------------------------------------------- few-shot prompts


def test_draw_is_reproducible_and_never_shows_the_asked_item():
    from labkit import fewshot

    items = evals.load("sentiment")
    asked = items[0]
    shots = fewshot.draw(items, 8, seed=3, exclude=asked)
    assert shots == fewshot.draw(items, 8, seed=3, exclude=asked) and asked not in shots and len(shots) == 8
    assert shots != fewshot.draw(items, 8, seed=4, exclude=asked)
    balanced = fewshot.draw(items, 8, seed=3, balanced=True)
    assert sorted(fewshot.answer(s) for s in balanced) == ["negative"] * 4 + ["positive"] * 4
    assert {fewshot.answer(s) for s in fewshot.draw(items, 6, seed=1, only="positive")} == {"positive"}
    with pytest.raises(ValueError, match="only 63 items"):
        fewshot.draw(items, 64, seed=0, exclude=asked)


def test_the_same_shots_as_chat_turns_and_as_text():
    from labkit import fewshot

    shots = [{"input": "a", "ideal": "A"}, {"input": "b", "ideal": ["B", "bee"]}]
    item = {"input": "c", "ideal": "C"}
    messages = fewshot.chat("Upper-case it.", shots, item)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert [m["content"] for m in messages[1:]] == ["a", "A", "b", "B", "c"]
    expected = "Upper-case it.\n\nInput: a\nOutput: A\n\nInput: b\nOutput: B\n\nInput: c\nOutput:"
    assert fewshot.text("Upper-case it.", shots, item) == expected
    assert fewshot.chat(None, [], item) == [{"role": "user", "content": "c"}]


def test_datasets_are_well_formed():
    for name, minimum in (("sentiment", 50), ("dates", 50), ("jargon", 50)):
        items = evals.load(name)
        assert len(items) >= minimum and all(it["input"] and it["ideal"] for it in items)
        assert len({it["input"] for it in items}) == len(items), f"{name} has duplicate inputs"
    with pytest.raises(FileNotFoundError, match="no dataset 'nope'"):
        evals.load("nope")
