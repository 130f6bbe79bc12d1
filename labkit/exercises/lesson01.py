"""Checks for lesson 01's exercises (completion vs chat): finish_reason, logprobs, tokens of a Chinese sentence,
and what a request costs on the models still served."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from labkit import catalog, tokens
from labkit.exercises import answered, expect, passed
from labkit.i18n import _


def _model_for(encoding: str) -> str:
    """A chat model of the catalog that counts with `encoding` (tokens.count takes a model name)."""
    return next(n for n in catalog.names(catalog.CHAT) if catalog.info(n).encoding == encoding)


def check_1(answer) -> None:
    """The finish_reason of a chat reply cut off by max_tokens=3."""
    exercise = _("Exercise 1")
    if not answered(exercise, answer, _("send `ask` with max_tokens=3 and put the reply's finish_reason here")):
        return
    expect(isinstance(answer, str), exercise,
           _("the answer is a string: r.choices[0].finish_reason of the response you got."))
    expect(answer == "length", exercise,
           _("{answer!r} is not what a reply cut off by max_tokens says. Three tokens cannot hold a list of three "
             "fruits and the end of the turn: look at section 5's first line, then read finish_reason from your "
             "response rather than guessing.", answer=answer))
    passed(exercise, _("'length': the reply ran into max_tokens before the model ended its turn, so the text is "
                       "cut mid-thought. 'stop' would mean the model ended it (or hit one of your stop strings)."))


def check_2(answer, content: Sequence) -> None:
    """The probability of the whole greedy reply: the product of its tokens' probabilities."""
    exercise = _("Exercise 2")
    if not answered(exercise, answer, _("compute the probability of the whole reply from `content` (section 6)")):
        return
    expect(isinstance(answer, (int, float)) and not isinstance(answer, bool), exercise,
           _("the answer is one number, a probability between 0 and 1."))
    expected = math.exp(sum(t.logprob for t in content))
    expect(0 <= answer <= 1, exercise,
           _("{answer} is not a probability: take math.exp of a log-probability.", answer=answer))
    expect(math.isclose(answer, expected, rel_tol=1e-3, abs_tol=1e-15), exercise,
           _("the reply is its tokens in order, so its probability is the product of each token's probability "
             "given the ones before. Log-probabilities add where probabilities multiply: sum every token's "
             "`logprob` in `content`, then take math.exp of the sum."))
    passed(exercise, _("p = exp(sum of {n} logprobs) = {p:.3g}. Even a reply the model was sure of token by token "
                       "is unlikely as a whole: small doubts multiply.", n=len(content), p=expected))


def check_3(answer) -> None:
    """A Chinese sentence of the student's own with its token counts under cl100k_base and o200k_base."""
    exercise = _("Exercise 3")
    how = _("put (your Chinese sentence, its cl100k_base tokens, its o200k_base tokens) here")
    if not answered(exercise, answer, how):
        return
    expect(isinstance(answer, (tuple, list)) and len(answer) == 3, exercise,
           _("the answer is a tuple of three: (sentence, cl100k_base tokens, o200k_base tokens)."))
    sentence, cl100k, o200k = answer
    expect(isinstance(sentence, str) and sum("\u4e00" <= ch <= "\u9fff" for ch in sentence) >= 10, exercise,
           _("write a sentence with at least 10 Chinese characters (not ZH: one of your own)."))
    expect(sentence.strip() != "木星是太阳系中离太阳第五远和最大的行星。它是一个气体巨大行星。", exercise,
           _("that is the lesson's sentence: write one of your own."))
    want = {"cl100k_base": tokens.count(sentence, _model_for("cl100k_base")),
            "o200k_base": tokens.count(sentence, _model_for("o200k_base"))}
    expect((cl100k, o200k) != (want["o200k_base"], want["cl100k_base"]) or want["cl100k_base"] == want["o200k_base"],
           exercise, _("the two counts are swapped: cl100k_base first, then o200k_base."))
    expect(cl100k != len(sentence) or want["cl100k_base"] == len(sentence), exercise,
           _("that is the number of characters; tokens are what the tokenizer cuts the text into."))
    expect((cl100k, o200k) == (want["cl100k_base"], want["o200k_base"]), exercise,
           _("count with labkit.tokens.count(sentence, model) and a model of each encoding "
             "(catalog.info(model).encoding tells you which a model uses), as section 9 does."))
    passed(exercise, _("{cl100k} tokens under cl100k_base, {o200k} under o200k_base for {characters} characters.",
                       cl100k=cl100k, o200k=o200k, characters=len(sentence)))


def check_4(answer, costs: Mapping[str, float]) -> None:
    """The cheapest model still served, among those section 8 priced for the Jupiter request."""
    exercise = _("Exercise 4")
    if not answered(exercise, answer, _("name the cheapest model in `costs` that is still served")):
        return
    served = {n: c for n, c in costs.items() if not catalog.info(n).is_shut_down()}
    expect(answer in costs, exercise,
           _("{answer!r} is not one of the models in `costs` (section 8).", answer=answer))
    expect(answer in served, exercise,
           _("{answer} is shut down: a request to it would fail. Keep only the models whose "
             "catalog.info(name).is_shut_down() is False, then take the cheapest.", answer=answer))
    cheapest = min(served, key=served.get)
    expect(answer == cheapest, exercise,
           _("{answer} is served, but another served model costs less for this request: compare costs[name].",
             answer=answer))
    passed(exercise, _("{answer}: ${cost:.6f} per request, the least among the models still served.",
                       answer=answer, cost=costs[answer]))
