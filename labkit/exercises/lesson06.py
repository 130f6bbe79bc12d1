"""Checks for lesson 06's exercises (scaling laws): a run's exact training FLOPs, a power-law prediction from a
small ladder, what dropping the floor does to it, and the compute-optimal split of a published law. All of
them run on the lesson's formulas and small synthetic numbers: nothing trains."""

from __future__ import annotations

import math

import numpy as np

from labkit import scaling
from labkit.exercises import answered, expect, passed
from labkit.i18n import _

PRACTICE = scaling.PowerLaw(a=60.0, b=-0.15, c=0.9)  # the law behind practice_ladder's losses


def practice_ladder() -> tuple[np.ndarray, np.ndarray]:
    """Eight rungs spanning 100x compute with losses from PRACTICE and 1% noise (the same every call)."""
    flops = np.logspace(11, 13, 8)
    noise = np.random.default_rng(6).normal(0, 0.01, len(flops))
    return flops, PRACTICE.predict(flops) * np.exp(noise)


def _number(answer) -> bool:
    return isinstance(answer, (int, float, np.floating, np.integer)) and not isinstance(answer, bool)


def check_1(answer, shape: scaling.Shape, block_size: int, tokens_per_param: float = 20) -> None:
    """The exact training FLOPs of `shape` trained on tokens_per_param tokens per parameter."""
    exercise = _("Exercise 1")
    if not answered(exercise, answer,
                    _("compute the exact training FLOPs of `shape` (section 'Counting compute')")):
        return
    expect(_number(answer), exercise, _("the answer is one number of FLOPs."))
    n = scaling.parameters(shape)
    tokens = tokens_per_param * n["total"]
    exact = scaling.flops_per_token(shape, block_size)["exact"] * tokens
    for rule in ("6N", "6N_non_embedding"):
        guess = scaling.flops_per_token(shape, block_size)[rule] * tokens
        expect(not math.isclose(answer, guess, rel_tol=1e-6), exercise,
               _("that is the {rule} rule of thumb. The exact count adds what 6N leaves out at this size: "
                 "attention over the context and the output head. Use flops_per_token(...)['exact'].", rule=rule))
    expect(math.isclose(answer, exact, rel_tol=1e-6), exercise,
           _("training FLOPs are FLOPs per token times tokens. The tokens are tokens_per_param times the total "
             "parameters (scaling.parameters(shape)['total']); the FLOPs per token are "
             "scaling.flops_per_token(shape, block_size)['exact']."))
    six_n = scaling.flops_per_token(shape, block_size)["6N"] * tokens
    passed(exercise, _("{flops:.3e} FLOPs, {ratio:.2f}x what 6ND says: the difference is attention over the "
                       "context and the output head, which 6N leaves out.", flops=exact, ratio=exact / six_n))


def check_2(answer, flops, losses) -> None:
    """The loss that L(C) = a C^b + c, fitted to the ladder, predicts at 10x its largest compute."""
    exercise = _("Exercise 2")
    if not answered(exercise, answer,
                    _("fit the practice ladder and predict the loss at 10x its largest compute")):
        return
    expect(_number(answer), exercise, _("the answer is one loss, a number."))
    at = 10 * float(np.max(flops))
    want = float(scaling.fit_power_law(flops, losses).predict(at))
    expect(not math.isclose(answer, float(np.min(losses)), rel_tol=1e-6), exercise,
           _("that is the largest rung's own loss: a 10x bigger run does better. Predict with the fitted law."))
    expect(math.isclose(answer, want, rel_tol=1e-3), exercise,
           _("fit with scaling.fit_power_law(flops, losses), then call the law's .predict at 10 * flops.max() "
             "(10x the largest rung's compute, not 10x the smallest)."))
    passed(exercise, _("{loss:.4f}. The rungs were drawn from a law whose floor is {floor}: print your fit's c. "
                       "Eight noisy rungs pin the floor down poorly, as the lesson's bootstrap showed.",
                       loss=want, floor=PRACTICE.c))


def check_3(answer, flops, losses) -> None:
    """The prediction at 10x the largest compute when the floor is held at 0 (a straight line on log-log)."""
    exercise = _("Exercise 3")
    if not answered(exercise, answer, _("refit with the floor held at 0 and predict at the same compute")):
        return
    expect(_number(answer), exercise, _("the answer is one loss, a number."))
    at = 10 * float(np.max(flops))
    with_floor = float(scaling.fit_power_law(flops, losses).predict(at))
    want = float(scaling.fit_power_law(flops, losses, floor=0.0).predict(at))
    expect(not math.isclose(answer, with_floor, rel_tol=1e-4), exercise,
           _("that is exercise 2's prediction, with the floor fitted. Pass floor=0.0 to scaling.fit_power_law."))
    expect(math.isclose(answer, want, rel_tol=1e-3), exercise,
           _("scaling.fit_power_law(flops, losses, floor=0.0) fits only a and b; predict at 10 * flops.max()."))
    side = _("below") if want < with_floor else _("above")
    passed(exercise, _("{loss:.4f}, {side} the floored fit's {with_floor:.4f}. Without a floor the law keeps the "
                       "ladder's average slope all the way out; with one, the slope flattens as the loss nears c.",
                       loss=want, side=side, with_floor=with_floor))


def check_4(answer, law: scaling.Chinchilla, budget: float) -> None:
    """Tokens per parameter at the compute-optimal point of `law` for `budget` FLOPs."""
    exercise = _("Exercise 4")
    if not answered(exercise, answer, _("find the compute-optimal (N, D) for the budget and divide D by N")):
        return
    expect(_number(answer), exercise, _("the answer is one ratio, tokens per parameter."))
    n, d = law.compute_optimal(budget)
    expect(not math.isclose(answer, n / d, rel_tol=1e-3), exercise,
           _("that is parameters per token: divide D by N."))
    expect(math.isclose(answer, d / n, rel_tol=1e-3), exercise,
           _("law.compute_optimal(budget) returns (N, D) with C = 6ND; the ratio asked for is D / N."))
    passed(exercise, _("{ratio:.1f} tokens per parameter ({n:.2e} parameters on {d:.2e} tokens).",
                       ratio=d / n, n=n, d=d))
