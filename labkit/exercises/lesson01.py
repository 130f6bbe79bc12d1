"""Checks for lesson 01's exercises (completion vs chat): finish_reason, logprobs, tokens of a Chinese sentence,
and what a request costs on the models still served."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from labkit import catalog, tokens
from labkit.exercises import answered, expect, passed


def _model_for(encoding: str) -> str:
    """A chat model of the catalog that counts with `encoding` (tokens.count takes a model name)."""
    return next(n for n in catalog.names(catalog.CHAT) if catalog.info(n).encoding == encoding)


def check_1(answer) -> None:
    """The finish_reason of a chat reply cut off by max_tokens=3."""
    if not answered("Exercise 1", answer, "send `ask` with max_tokens=3 and put the reply's finish_reason here"):
        return
    expect(isinstance(answer, str), "Exercise 1",
           "the answer is a string: r.choices[0].finish_reason of the response you got.")
    expect(answer == "length", "Exercise 1",
           f"{answer!r} is not what a reply cut off by max_tokens says. Three tokens cannot hold a list of three "
           "fruits and the end of the turn: look at section 5's first line, then read finish_reason from your "
           "response rather than guessing.")
    passed("Exercise 1", "'length': the reply ran into max_tokens before the model ended its turn, so the text is "
                         "cut mid-thought. 'stop' would mean the model ended it (or hit one of your stop strings).")


def check_2(answer, content: Sequence) -> None:
    """The probability of the whole greedy reply: the product of its tokens' probabilities."""
    if not answered("Exercise 2", answer, "compute the probability of the whole reply from `content` (section 6)"):
        return
    expect(isinstance(answer, (int, float)) and not isinstance(answer, bool), "Exercise 2",
           "the answer is one number, a probability between 0 and 1.")
    expected = math.exp(sum(t.logprob for t in content))
    expect(0 <= answer <= 1, "Exercise 2", f"{answer} is not a probability: take math.exp of a log-probability.")
    expect(math.isclose(answer, expected, rel_tol=1e-3, abs_tol=1e-15), "Exercise 2",
           "the reply is its tokens in order, so its probability is the product of each token's probability "
           "given the ones before. Log-probabilities add where probabilities multiply: sum every token's "
           "`logprob` in `content`, then take math.exp of the sum.")
    passed("Exercise 2", f"p = exp(sum of {len(content)} logprobs) = {expected:.3g}. Even a reply the model was "
                         "sure of token by token is unlikely as a whole: small doubts multiply.")


def check_3(answer) -> None:
    """A Chinese sentence of the student's own with its token counts under cl100k_base and o200k_base."""
    how = "put (your Chinese sentence, its cl100k_base tokens, its o200k_base tokens) here"
    if not answered("Exercise 3", answer, how):
        return
    expect(isinstance(answer, (tuple, list)) and len(answer) == 3, "Exercise 3",
           "the answer is a tuple of three: (sentence, cl100k_base tokens, o200k_base tokens).")
    sentence, cl100k, o200k = answer
    expect(isinstance(sentence, str) and sum("\u4e00" <= ch <= "\u9fff" for ch in sentence) >= 10, "Exercise 3",
           "write a sentence with at least 10 Chinese characters (not ZH: one of your own).")
    expect(sentence.strip() != "木星是太阳系中离太阳第五远和最大的行星。它是一个气体巨大行星。", "Exercise 3",
           "that is the lesson's sentence: write one of your own.")
    want = {"cl100k_base": tokens.count(sentence, _model_for("cl100k_base")),
            "o200k_base": tokens.count(sentence, _model_for("o200k_base"))}
    expect((cl100k, o200k) != (want["o200k_base"], want["cl100k_base"]) or want["cl100k_base"] == want["o200k_base"],
           "Exercise 3", "the two counts are swapped: cl100k_base first, then o200k_base.")
    expect(cl100k != len(sentence) or want["cl100k_base"] == len(sentence), "Exercise 3",
           "that is the number of characters; tokens are what the tokenizer cuts the text into.")
    expect((cl100k, o200k) == (want["cl100k_base"], want["o200k_base"]), "Exercise 3",
           "count with labkit.tokens.count(sentence, model) and a model of each encoding "
           "(catalog.info(model).encoding tells you which a model uses), as section 9 does.")
    passed("Exercise 3", f"{cl100k} tokens under cl100k_base, {o200k} under o200k_base for {len(sentence)} "
                         "characters.")


def check_4(answer, costs: Mapping[str, float]) -> None:
    """The cheapest model still served, among those section 8 priced for the Jupiter request."""
    if not answered("Exercise 4", answer, "name the cheapest model in `costs` that is still served"):
        return
    served = {n: c for n, c in costs.items() if not catalog.info(n).is_shut_down()}
    expect(answer in costs, "Exercise 4", f"{answer!r} is not one of the models in `costs` (section 8).")
    expect(answer in served, "Exercise 4",
           f"{answer} is shut down: a request to it would fail. Keep only the models whose "
           "catalog.info(name).is_shut_down() is False, then take the cheapest.")
    cheapest = min(served, key=served.get)
    expect(answer == cheapest, "Exercise 4",
           f"{answer} is served, but another served model costs less for this request: compare costs[name].")
    passed("Exercise 4", f"{answer}: ${costs[answer]:.6f} per request, the least among the models still served.")
