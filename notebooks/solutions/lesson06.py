"""Solutions to lesson 06's exercises, computed the way the lesson does."""

from __future__ import annotations

from labkit import scaling


def exact_training_flops(shape: scaling.Shape, block_size: int, tokens_per_param: float = 20) -> float:
    """Exercise 1: FLOPs per token (the exact count) times tokens (tokens_per_param x total parameters)."""
    tokens = tokens_per_param * scaling.parameters(shape)["total"]
    return scaling.flops_per_token(shape, block_size)["exact"] * tokens


def predict_10x(flops, losses) -> float:
    """Exercise 2: fit L(C) = a C^b + c to the ladder and read the law at 10x the largest compute."""
    return float(scaling.fit_power_law(flops, losses).predict(10 * max(flops)))


def predict_10x_without_floor(flops, losses) -> float:
    """Exercise 3: the same with the floor held at 0, so only a and b are fitted."""
    return float(scaling.fit_power_law(flops, losses, floor=0.0).predict(10 * max(flops)))


def optimal_tokens_per_parameter(law: scaling.Chinchilla, budget: float) -> float:
    """Exercise 4: the compute-optimal split of the budget (C = 6ND), as D / N."""
    n, d = law.compute_optimal(budget)
    return d / n
