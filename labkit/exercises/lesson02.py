"""Exercises for lesson 02 (insertion with a suffix). Each check is cheap: no model is called."""

from __future__ import annotations

from labkit.engine.ranking import cut_points
from labkit.exercises import answered, expect, passed
from labkit.i18n import _
from labkit.insertion import by_finish
from labkit.train.fim import insertion_prompt


def check_1(answer) -> None:
    """How many candidates does a request with n=3, best_of=8 draw and bill?"""
    exercise = _("Exercise 1")
    if not answered(exercise, answer, _("give the number of candidates the server draws (an int).")):
        return
    expect(isinstance(answer, int), exercise, _("the answer is a whole number of candidates."))
    expect(answer != 3 * 8, exercise, _("best_of is not per answer: it counts the candidates of the whole "
                                        "request, of which n are returned."))
    expect(answer != 3, exercise, _("3 is how many come back (n); every candidate drawn is billed, "
                                    "returned or not."))
    expect(answer == 8, exercise, _("reread the story cell: which parameter says how many are drawn in all?"))
    passed(exercise, _("best_of=8 draws 8 candidates in all and returns the best n=3; all 8 are billed."))


def check_2(answer, prefix: str, suffix: str) -> None:
    """The PSM prompt a FIM model reads for prefix and suffix."""
    exercise = _("Exercise 2")
    if not answered(exercise, answer, _("write the PSM prompt as a string, with the three sentinels.")):
        return
    expect(isinstance(answer, str), exercise, _("the prompt is one string."))
    want = insertion_prompt(prefix, suffix)
    expect("<|endoftext|>" not in answer, exercise, _("<|endoftext|> is what the model writes when the middle "
                                                      "is done; the prompt does not contain it."))
    expect(answer.endswith("<|fim_middle|>"), exercise, _("the prompt ends where the model starts writing: "
                                                           "after the middle's sentinel."))
    expect(answer == want, exercise, _("PSM order: the prefix's sentinel and the prefix, the suffix's sentinel "
                                       "and the suffix, then the middle's sentinel; no spaces or newlines added."))
    passed(exercise, _("the server builds exactly this from prompt= and suffix= for a FIM model."))


def check_3(answer, rows: list[dict]) -> None:
    """The share of good middles among the answers that finished with "stop"."""
    exercise = _("Exercise 3")
    if not answered(exercise, answer, _("give a fraction between 0 and 1 computed from the rows.")):
        return
    good, total = by_finish(rows).get("stop", (0, 0))
    expect(total > 0, exercise, _("these rows have no 'stop' answer: pass the rows the lesson measured."))
    expect(isinstance(answer, (int, float)) and 0 <= answer <= 1, exercise,
           _("a share is a number from 0 to 1 (good 'stop' answers / all 'stop' answers)."))
    overall = sum(r["good"] for r in rows) / len(rows)
    expect(abs(answer - good / total) < 1e-9, exercise,
           _("keep only rows whose finish_reason is 'stop', then divide the good ones by how many there are "
             "({remark}).", remark=_("that is the share over every row") if abs(answer - overall) < 1e-9
             else _("check the filter")))
    passed(exercise, _("{good} of {total} 'stop' answers are good.", good=good, total=total))


def check_4(answer, text: str) -> None:
    """The character positions where the server tries to end a sampled candidate."""
    exercise = _("Exercise 4")
    if not answered(exercise, answer, _("give a list of character positions (ints) in the candidate.")):
        return
    want = cut_points(text)
    expect(isinstance(answer, (list, tuple)) and all(isinstance(a, int) for a in answer), exercise,
           _("a list of ints, one per place the middle may end."))
    expect(len(text) in answer, exercise, _("the candidate's full length is always one of the tries."))
    expect(sorted(answer) == list(answer), exercise, _("list the positions in increasing order."))
    expect(list(answer) == want, exercise,
           _("a cut falls after '.', '!' or '?' followed by whitespace, and just before each newline (never at 0), "
             "at most the first 4 of those, plus the end."))
    passed(exercise, _("the server scores the suffix after each of these cuts and keeps the best."))
