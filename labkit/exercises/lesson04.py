"""Checks for lesson 04's exercises (fine-tuning): what training costs, the "auto" number of epochs, fixing a
broken training line, and reading the facts in the replies honestly."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from labkit.exercises import answered, expect, not_the_mistake, passed
from labkit.finetune import default_epochs, validate
from labkit.i18n import _


def check_1(answer, report, price) -> None:
    """The cost of training the lesson's file for 5 epochs at the 2023 price (`report` and `price` from the
    lesson)."""
    exercise = _("Exercise 1")
    if not answered(exercise, answer, _("put the dollar cost of 5 epochs of json_train.jsonl here")):
        return
    expect(isinstance(answer, (int, float)) and not isinstance(answer, bool), exercise,
           _("the answer is one number of dollars."))
    expected = price.training_cost(report.billed_tokens, 5)
    expect(not math.isclose(answer, report.cost_usd, rel_tol=1e-6), exercise,
           _("that is the cost for {epochs} epochs, the auto setting: the file is billed once per epoch.",
             epochs=report.epochs))
    expect(math.isclose(answer, expected, rel_tol=1e-3), exercise,
           _("OpenAI bills the file's tokens once per epoch: billed tokens per epoch ({tokens:,}) x epochs, at "
             "${per_1k} per 1K tokens (price.training_cost does the arithmetic).",
             tokens=report.billed_tokens, per_1k=price.training_per_1k))
    passed(exercise, _("${cost:.4f}: {tokens:,} tokens x 5 epochs. Cost grows with epochs exactly as with the "
                       "file's size.", cost=expected, tokens=report.billed_tokens))


def check_2(answer) -> None:
    """The epochs OpenAI's "auto" chooses for a file of 20 examples."""
    exercise = _("Exercise 2")
    if not answered(exercise, answer, _("put the number of epochs 'auto' picks for 20 examples here")):
        return
    expect(isinstance(answer, int) and not isinstance(answer, bool), exercise,
           _("the answer is a whole number of epochs."))
    expected = default_epochs(20)
    expect(answer != 3, exercise,
           _("3 is the default for a file of ordinary size; a small file gets more epochs (section 2, 'What it "
             "would cost')."))
    expect(answer == expected, exercise,
           _("'auto' raises the epochs of a small file until examples x epochs reaches at least 100."))
    passed(exercise, _("{epochs} epochs: 20 examples x {epochs} = {passes} example passes.",
                       epochs=expected, passes=20 * expected))


def check_3(answer, path) -> None:
    """Line 3 of broken_bad_role.jsonl (`path`), fixed: the file then validates, and the example still teaches
    the same reply to the same question."""
    exercise = _("Exercise 3")
    if not answered(exercise, answer, _("put line 3 of broken_bad_role.jsonl, fixed, here (a dict)")):
        return
    expect(isinstance(answer, dict) and isinstance(answer.get("messages"), list), exercise,
           _("the answer is one example as a dict: {'messages': [...]}, as json.loads gives it."))
    lines = Path(path).read_text().splitlines()
    original = json.loads(lines[2])
    lines[2] = json.dumps(answer)
    with tempfile.TemporaryDirectory() as folder:
        fixed = Path(folder) / "fixed.jsonl"
        fixed.write_text("\n".join(lines) + "\n")
        report = validate(fixed)
    errors = [p for p in report.problems if p.severity == "error"]
    expect(not errors, exercise,
           _("the file still has errors: {errors}. finetune.validate names the message and the role it does not "
             "know.", errors="; ".join(_("line {line}: {message}", line=p.line, message=p.message)
                                       for p in errors[:2])))
    by_role = {m.get("role"): m.get("content") for m in answer["messages"]}
    for role in ("user", "assistant"):
        want = next(m["content"] for m in original["messages"] if m["role"] == role)
        expect(by_role.get(role) == want, exercise,
               _("keep the {role} message as it was: the fix removes the problem, not the example's content.",
                 role=role))
    passed(exercise, _("the file validates: only known roles (system, user, assistant, tool), and the example "
                       "still teaches the same reply to the same question."))


def check_4(answer, side_by_side) -> None:
    """(base, fine-tuned): the share of replies that contain the expected answer, over the questions that have
    one (`side_by_side` from section 6)."""
    exercise = _("Exercise 4")
    if not answered(exercise, answer, _("put (base share, fine-tuned share) of replies containing the fact here")):
        return
    expect(isinstance(answer, (tuple, list)) and len(answer) == 2, exercise,
           _("the answer is a pair: (share for the base model, share for the fine-tuned model), each from 0 to 1."))
    has_fact = side_by_side[side_by_side.ideal.astype(bool)]

    def share(column):
        return sum(i.lower() in a.lower() for i, a in zip(has_fact.ideal, has_fact[column])) / len(has_fact)

    expected = (share("base"), share("fine_tuned"))
    expect(all(0 <= x <= 1 for x in answer), exercise, _("each share is a fraction from 0 to 1, not a count."))
    not_the_mistake(answer[1], side_by_side["fact in reply"].mean(), expected[1], exercise,
                    _("leave out the questions without an expected answer (ideal is ''): they have no fact to "
                      "find."))
    expect(all(math.isclose(a, e, abs_tol=1e-3) for a, e in zip(answer, expected)), exercise,
           _("for each model, count the rows whose reply contains the ideal answer (case-insensitive), over the "
             "rows that have an ideal answer; do it for the `base` column too."))
    passed(exercise, _("base {base:.0%}, fine-tuned {fine_tuned:.0%} of the replies contain the fact. Valid JSON "
                       "is one measure; the facts inside it are another.", base=expected[0], fine_tuned=expected[1]))
