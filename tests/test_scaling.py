"""labkit.scaling: the fits recover known laws from noisy synthetic data, FLOPs and parameters match the
model torch builds, and a sweep never repeats data and resumes where it stopped."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import optimize
from torch.utils.flop_counter import FlopCounterMode

from labkit import scaling
from labkit.scaling import PROFILES, Shape

CHINCHILLA = scaling.Chinchilla(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)  # Hoffmann et al. 2022


def test_power_law_fit_recovers_its_parameters_through_noise():
    rng = np.random.default_rng(0)
    true = scaling.PowerLaw(a=40.0, b=-0.12, c=1.3)
    flops = np.logspace(10, 13, 12)
    losses = true.predict(flops) * np.exp(rng.normal(0, 0.003, len(flops)))
    law = scaling.fit_power_law(flops, losses)
    assert law.b == pytest.approx(true.b, abs=0.02) and law.c == pytest.approx(true.c, abs=0.1)
    assert law.predict(1e14) == pytest.approx(true.predict(1e14), rel=0.01), "a 10x extrapolation"


def test_power_law_floor_stays_below_every_observed_loss():
    flops = np.logspace(9, 12, 6)
    losses = 30 * flops**-0.1  # no floor at all: the fit must not invent one above the data
    law = scaling.fit_power_law(flops, losses)
    assert 0 <= law.c < losses.min()
    assert np.allclose(law.predict(flops), losses, rtol=0.01)
    with pytest.raises(ValueError, match="at least 3"):
        scaling.fit_power_law(flops[:2], losses[:2])


def test_chinchilla_fit_recovers_the_published_constants():
    rng = np.random.default_rng(1)
    n = np.repeat(np.logspace(7, 10, 8), 4)
    d = n * np.tile([5, 20, 80, 320], 8)
    losses = CHINCHILLA.predict(n, d) * np.exp(rng.normal(0, 0.002, len(n)))
    fit = scaling.fit_chinchilla(n, d, losses)
    assert fit.alpha == pytest.approx(0.34, abs=0.04) and fit.beta == pytest.approx(0.28, abs=0.04)
    assert abs(fit.E - 1.69) < 0.05
    with pytest.raises(ValueError, match="at least 5"):
        scaling.fit_chinchilla(n[:4], d[:4], losses[:4])


def test_compute_optimal_size_is_the_minimum_along_the_budget():
    budget = 5.76e23  # Gopher's and Chinchilla's compute
    n, d = CHINCHILLA.compute_optimal(budget)
    assert 6 * n * d == pytest.approx(budget)
    best = optimize.minimize_scalar(lambda log_n: CHINCHILLA.predict(np.exp(log_n), budget / (6 * np.exp(log_n))),
                                    bounds=(np.log(1e8), np.log(1e12)), method="bounded")
    assert np.log(n) == pytest.approx(best.x, abs=0.01)


def test_bootstrap_interval_brackets_the_truth():
    rng = np.random.default_rng(2)
    true = scaling.PowerLaw(a=40.0, b=-0.12, c=1.3)
    flops = np.repeat(np.logspace(10, 12, 5), 3)
    losses = true.predict(flops) * np.exp(rng.normal(0, 0.004, len(flops)))
    lo, hi = scaling.bootstrap(scaling.fit_power_law, flops, losses, at=1e13, samples=100)
    assert lo < float(true.predict(1e13)) < hi and hi - lo < 0.2


def test_bootstrap_fits_spread_the_parameters_and_a_fixed_floor_narrows_the_interval():
    rng = np.random.default_rng(3)
    true = scaling.PowerLaw(a=40.0, b=-0.12, c=1.3)
    flops = np.logspace(10, 12, 8)
    losses = true.predict(flops) * np.exp(rng.normal(0, 0.004, len(flops)))
    fits = scaling.bootstrap_fits(scaling.fit_power_law, flops, losses, samples=60)
    assert 50 < len(fits) <= 60 and all(0 <= f.c < losses.max() for f in fits)
    predictions = [float(f.predict(1e13)) for f in fits]
    assert scaling.bootstrap(scaling.fit_power_law, flops, losses, at=1e13, samples=60) == pytest.approx(
        tuple(np.quantile(predictions, [0.05, 0.95]))), "the interval is the fits' predictions' central 90%"
    assert np.ptp([f.c for f in fits]) > 0.05, "8 noisy rungs leave the floor uncertain"
    law = scaling.fit_power_law(flops, losses)
    held = scaling.fit_power_law(flops, losses, floor=law.c)
    assert held.c == law.c and held.b == pytest.approx(law.b, abs=1e-3), "the best floor gives the same slope"
    free = scaling.bootstrap(scaling.fit_power_law, flops, losses, at=1e13, samples=60)
    fixed = scaling.bootstrap(lambda x, y: scaling.fit_power_law(x, y, floor=law.c), flops, losses, at=1e13,
                              samples=60)
    assert fixed[1] - fixed[0] < free[1] - free[0]
    with pytest.raises(ValueError, match="below the smallest loss"):
        scaling.fit_power_law(flops, losses, floor=losses.min())


def test_bootstrap_then_its_refits_fit_once():
    flops = np.logspace(10, 12, 6)
    losses = 40 * flops**-0.12 + 1.3
    calls = []

    def counted(x, y):
        calls.append(1)
        return scaling.fit_power_law(x, y)

    interval = scaling.bootstrap(counted, flops, losses, at=1e13, samples=20)
    fitted = len(calls)
    fits = scaling.bootstrap_fits(counted, flops, losses, samples=20)
    assert len(calls) == fitted == len(fits), "the lesson's second look reuses the interval's refits"
    assert interval == pytest.approx(tuple(np.quantile([float(f.predict(1e13)) for f in fits], [0.05, 0.95])))
    scaling.bootstrap_fits(counted, flops, losses * 1.01, samples=20)
    assert len(calls) > fitted, "other losses are refitted"


@pytest.mark.parametrize("shape", [Shape(1, 16, 2), Shape(3, 56, 4), Shape(4, 88, 4)])
def test_parameters_and_weight_flops_match_the_model(shape):
    sweep = PROFILES["ci"]
    model = scaling.build_model(scaling.train_config(sweep, shape, 0)[0], scaling.VOCAB, eos_id=0)
    counted = scaling.parameters(shape)
    assert sum(p.numel() for p in model.parameters()) == counted["total"]
    embedding = model.get_input_embeddings().weight.numel()
    assert counted["total"] - counted["non_embedding"] == embedding
    x = torch.randint(0, scaling.VOCAB, (2, sweep.block_size))
    with FlopCounterMode(display=False) as flops:  # torch counts every matmul it runs
        model(input_ids=x)
    parts = scaling.forward_flops(shape, sweep.block_size)
    assert flops.get_total_flops() / x.numel() == parts["weights"] + parts["head"]
    exact, six_n = (scaling.flops_per_token(shape, sweep.block_size)[k] for k in ("exact", "6N"))
    assert exact > six_n, "6N leaves out attention (and here the head is inside N only once)"


def test_a_sweep_appends_runs_and_resumes_without_repeating_any(tmp_path):
    tiny = dataclasses.replace(PROFILES["ci"], shapes=(Shape(1, 8, 2), Shape(1, 12, 2)), tokens_per_param=2,
                               seeds=(0, 1), eval_windows=8)
    path = tmp_path / "runs.jsonl"
    first = scaling.sweep(tiny, path, shapes=tiny.shapes[:1], progress=False)
    assert [(r["shape"]["n_embd"], r["seed"]) for r in first] == [(8, 0), (8, 1)]
    results = scaling.sweep(tiny, path, progress=False)  # as if the first call had been interrupted
    assert len(path.read_text().splitlines()) == 4, "the two finished runs were not trained again"
    assert sorted((r["shape"]["n_embd"], r["seed"]) for r in results) == [(8, 0), (8, 1), (12, 0), (12, 1)]
    r = results[-1]
    assert r["tokens"] == r["steps"] * tiny.batch_size * tiny.block_size and r["schedule_steps"] == r["steps"]
    assert r["flops"] == scaling.flops_per_token(Shape(1, 12, 2), tiny.block_size)["exact"] * r["tokens"]
    assert np.isfinite(r["loss"]) and r["loss"] < np.log(256), "it learned something about bytes"
    other = scaling.sweep(dataclasses.replace(tiny, batch_size=2, seeds=(0,)), path, shapes=tiny.shapes[:1],
                          progress=False)
    assert len(path.read_text().splitlines()) == 5, "a run under another recipe is trained, not reused"
    assert other[0]["recipe"]["batch_size"] == 2 and other[0]["tokens"] == other[0]["steps"] * 2 * tiny.block_size
    assert len(scaling.sweep(tiny, path, progress=False)) == 4, "each recipe sees only its own runs"


def test_runs_trained_side_by_side_equal_runs_trained_one_at_a_time(tmp_path):
    from labkit.train import parallel

    tiny = dataclasses.replace(PROFILES["ci"], shapes=(Shape(1, 8, 2), Shape(1, 12, 2), Shape(1, 16, 2)),
                               tokens_per_param=2, eval_windows=8)
    alone = scaling.sweep(tiny, tmp_path / "alone.jsonl", progress=False, workers=1)
    together = scaling.sweep(tiny, tmp_path / "together.jsonl", progress=False, workers=2)
    assert parallel.started(), "a helper process trained some of them"
    timeless = [[{k: v for k, v in r.items() if k != "seconds"} for r in rs] for rs in (alone, together)]
    assert timeless[0] == timeless[1], "the same losses to the last bit, returned in the ladder's order"
    with pytest.raises(ValueError, match="fresh data"):  # a helper's error reaches the caller
        scaling.sweep(dataclasses.replace(tiny, tokens_per_param=10_000), tmp_path / "greedy.jsonl", progress=False,
                      workers=2)


def test_a_run_that_would_repeat_data_is_refused():
    greedy = dataclasses.replace(PROFILES["ci"], tokens_per_param=10_000)
    with pytest.raises(ValueError, match="fresh data"):
        scaling.run(greedy, Shape(2, 64, 4), seed=0)


def test_byte_tables_score_what_their_context_can_know():
    train = np.frombuffer(b"ab" * 500, dtype=np.uint8)
    text = np.frombuffer(b"abababab", dtype=np.uint8)
    every = np.arange(1, len(text))
    unigram = -np.log(500.01 / (1000 + 256 * 0.01))  # a or b, about a bit, less what smoothing gives the rest
    assert scaling.table_loss(train, text, every, order=1) == pytest.approx(unigram, rel=1e-6)
    assert scaling.table_loss(train, text, every, order=2) < 0.01, "after a comes b (but for the smoothing)"
    surprise = np.frombuffer(b"abba", dtype=np.uint8)  # b after b was never counted: only the smoothing is left
    assert scaling.table_loss(train, surprise, np.array([2]), order=2) == pytest.approx(
        -np.log(0.01 / (499 + 256 * 0.01)), rel=1e-6)
    with pytest.raises(ValueError, match="order"):
        scaling.ngram_loss(PROFILES["ci"], order=4)
