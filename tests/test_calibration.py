"""What lesson 03 reads off a Choice result besides its accuracy: how often each label was answered, the label prior a
prompt carries (content-free inputs, or the batch asked), contextual calibration, and the reliability of the
probabilities (bins, expected calibration error, the chart); the balanced split and the topics dataset."""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace as NS

import numpy as np
import pandas as pd
import pytest

from labkit import evals, fewshot, viz

LABELS = ("positive", "negative")


def choice_result(rows: list[tuple[str, float, float]], options=LABELS) -> evals.Result:
    """A Choice result from (ideal, logprob of the first option, logprob of the second) per item, answered as
    Choice answers: the likelier option, or "" when neither was among the top tokens."""
    records = []
    for ideal, *lps in rows:
        scores = dict(zip(options, lps))
        answer = max(options, key=scores.get)
        answer = "" if scores[answer] == -math.inf else answer
        records.append({"input": f"item {len(records)}", "ideal": ideal, "answer": answer, "correct": answer == ideal,
                        **{f"logprob[{o}]": v for o, v in scores.items()}})
    return evals.Result(pd.DataFrame(records), "m", tuple(options))


def lp(p: float) -> tuple[float, float]:
    """Logprobs of the two labels when P(first) = p and the labels share 90% of the mass."""
    return math.log(0.9 * p), math.log(0.9 * (1 - p))


# a prompt that pushes everything towards "positive" but still ranks the reviews: P(positive) 0.95 on the
# positive ones, 0.75 on the negative ones
COLLAPSED = choice_result([("positive", *lp(0.95))] * 3 + [("negative", *lp(0.75))] * 3)


def test_answered_lists_every_option_most_frequent_first_and_the_summary_shows_it():
    assert COLLAPSED.answered() == {"positive": 1.0, "negative": 0.0}, "an option never answered still shows, at 0"
    assert COLLAPSED.accuracy == 0.5
    line = COLLAPSED.summary()
    assert line.startswith("accuracy  50% (95% CI") and line.endswith("| answered positive 100%, negative 0%")
    nothing = choice_result([("positive", -math.inf, -math.inf), ("negative", *lp(0.2))])
    assert nothing.answered() == {"negative": 0.5, "": 0.5, "positive": 0.0} and "(none) 50%" in nothing.summary()
    text = evals.Result(pd.DataFrame({"answer": list("aaabc"), "correct": [True] * 5}), "m")
    assert text.answered() == {"a": 0.6, "b": 0.2, "c": 0.2} and text.summary(top=1).endswith("a 60%, 2 others")


def test_probabilities_are_renormalized_over_the_options():
    result = choice_result([("positive", *lp(0.8)), ("negative", math.log(0.3), -math.inf),
                            ("negative", -math.inf, -math.inf)])
    probs = result.probabilities()
    assert list(probs.columns) == list(LABELS)
    assert probs.iloc[0].tolist() == pytest.approx([0.8, 0.2]), "the 10% on other tokens is left out"
    assert probs.iloc[1].tolist() == [1.0, 0.0], "an option outside the top logprobs counts as 0"
    assert probs.iloc[2].tolist() == [0.5, 0.5], "no option among them: nothing learned, uniform"
    with pytest.raises(ValueError, match="Choice"):
        evals.Result(pd.DataFrame({"answer": ["x"], "correct": [True]}), "m").probabilities()


def test_calibrating_on_the_batch_prior_undoes_a_collapse_the_ranking_survived():
    prior = evals.batch_prior(COLLAPSED)
    assert prior["positive"] == pytest.approx(0.85) and sum(prior.values()) == pytest.approx(1)
    fixed = evals.calibrate(COLLAPSED, prior)
    assert fixed.accuracy == 1.0 and fixed.answered() == {"positive": 0.5, "negative": 0.5}
    assert fixed.options == LABELS and COLLAPSED.accuracy == 0.5, "a new result; the old one is unchanged"
    calibrated = fixed.probabilities()
    assert calibrated.sum(axis=1).tolist() == pytest.approx([1.0] * 6)
    p, q = 0.95 / 0.85, 0.05 / 0.15  # Zhao et al.: divide by the prior, renormalize
    assert calibrated.iloc[0, 0] == pytest.approx(p / (p + q))
    assert evals.calibrate(COLLAPSED, {"positive": 0.5, "negative": 0.5}).df["answer"].tolist() == \
        COLLAPSED.df["answer"].tolist(), "a uniform prior changes nothing"


def test_calibration_keeps_unanswered_items_unanswered_and_floors_a_zero_prior():
    result = choice_result([("positive", -math.inf, -math.inf), ("negative", math.log(0.4), -math.inf),
                            ("positive", *lp(0.6))])
    fixed = evals.calibrate(result, {"positive": 0.0, "negative": 1.0})  # a label never seen in the prior
    assert fixed.df["answer"].tolist() == ["", "positive", "positive"]
    assert fixed.df["logprob[positive]"][0] == -math.inf
    with pytest.raises(ValueError, match="Choice"):
        evals.calibrate(evals.Result(pd.DataFrame({"answer": ["x"], "correct": [True]}), "m"), {"x": 1.0})


class InputAwareClient:
    """A chat endpoint whose first-token logprobs depend on the last user message: content-free inputs get
    `prior`, anything else `other`."""

    def __init__(self, prior: dict[str, float], other: dict[str, float]):
        self.prior, self.other, self.asked = prior, other, []
        self.chat = NS(completions=NS(create=self._chat))

    def _chat(self, **kw):
        text = kw["messages"][-1]["content"]
        self.asked.append(text)
        top = self.prior if text in evals.CONTENT_FREE else self.other
        entries = [NS(token=t, logprob=math.log(p)) for t, p in top.items()]
        return NS(choices=[NS(message=NS(content=""), logprobs=NS(content=[NS(top_logprobs=entries)]))])


def test_the_content_free_prior_asks_the_prompt_about_n_a_empty_and_mask():
    client = InputAwareClient({"positive": 0.6, "negative": 0.2, " the": 0.2}, {"negative": 0.9})
    lab = NS(client=client, backend="local", models=NS(chat="chat-model", completion="text-model"))
    shots = [{"input": "Loved it.", "ideal": "positive"}]
    prior = evals.content_free_prior(lab, evals.Choice(list(LABELS)),
                                     lambda item: fewshot.chat("Classify.", shots, item))
    assert sorted(client.asked) == sorted(evals.CONTENT_FREE) == ["", "N/A", "[MASK]"]
    assert prior == pytest.approx({"positive": 0.75, "negative": 0.25}), "renormalized over the labels"


def test_reliability_bins_confidence_against_accuracy_and_the_ece_weights_bins_by_items():
    # 10 answers at 95% confidence, 9 right; 10 at 55%, 5 right; pooled over two results
    sure = choice_result([("positive", *lp(0.95))] * 9 + [("negative", *lp(0.95))])
    unsure = choice_result([("positive", *lp(0.55))] * 5 + [("negative", *lp(0.55))] * 5)
    table = evals.reliability([sure, unsure], bins=5)
    assert table["bin"].tolist() == ["50%-60%", "60%-70%", "70%-80%", "80%-90%", "90%-100%"]
    assert table["n"].tolist() == [10, 0, 0, 0, 10]
    assert table["confidence"][[0, 4]].tolist() == pytest.approx([0.55, 0.95])
    assert table["accuracy"][[0, 4]].tolist() == pytest.approx([0.5, 0.9]) and np.isnan(table["accuracy"][1])
    assert evals.calibration_error(table) == pytest.approx(0.05)
    overconfident = evals.reliability(COLLAPSED)
    # sure of "positive" every time: 95% and right for the positive reviews, 75% and wrong for the negative ones
    assert evals.calibration_error(overconfident) == pytest.approx((3 * 0.05 + 3 * 0.75) / 6)
    four = choice_result([("a", -0.1, -3, -3, -3)], options=("a", "b", "c", "d"))
    assert evals.reliability(four, bins=3)["bin"].tolist() == ["25%-50%", "50%-75%", "75%-100%"], "from 1/labels up"
    with pytest.raises(ValueError, match="same options"):
        evals.reliability([sure, four])


def test_the_reliability_chart_is_one_bundle_with_a_png_and_draws_without_a_warning():
    tables = {"sentiment": evals.reliability(COLLAPSED),
              "sentiment, calibrated": evals.reliability(evals.calibrate(COLLAPSED, evals.batch_prior(COLLAPSED)))}
    fig = viz.reliability_chart(tables)
    assert [t.name for t in fig.data] == ["perfectly calibrated", "sentiment: ECE 0.40",
                                          "sentiment, calibrated: ECE 0.29"]
    assert list(fig.data[1].x) == pytest.approx([0.75, 0.95]) and list(fig.data[1].y) == [0.0, 1.0], \
        "one point per bin with items, the empty ones left out"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bundle = viz.mimebundle(fig)
    assert {"application/vnd.plotly.v1+json", "image/png"} <= set(bundle)


def test_split_asks_as_many_of_each_label_and_never_draws_shots_from_them():
    items = evals.load("sentiment")
    asked, pool = fewshot.split(items, 12)
    assert [fewshot.answer(it) for it in asked].count("positive") == 6 and len(asked) == 12
    assert len(pool) == len(items) - 12 and not {it["input"] for it in asked} & {it["input"] for it in pool}
    assert asked == [it for it in items if it in asked], "file order kept"
    topics = fewshot.split(evals.load("topics"), 10)[0]
    assert sorted(pd.Series([fewshot.answer(it) for it in topics]).value_counts().tolist()) == [2, 2, 3, 3]
    positive, negative = ([it for it in items if it["ideal"] == label] for label in LABELS)
    lopsided = positive[:4] + negative[:1]
    with pytest.raises(ValueError, match="too few"):
        fewshot.split(lopsided, 4)
    with pytest.raises(ValueError, match="between 1 and"):
        fewshot.split(items, len(items))


def test_the_topics_dataset_is_balanced_and_never_names_its_topic():
    items = evals.load("topics")
    labels = pd.Series([it["ideal"] for it in items]).value_counts()
    assert labels.to_dict() == {"sports": 16, "food": 16, "weather": 16, "technology": 16}
    assert len({it["input"] for it in items}) == len(items)
    assert not [it for it in items if it["ideal"] in it["input"].lower()], "no sentence names its own topic"
