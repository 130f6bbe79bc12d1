"""Scaling laws on a laptop: train a ladder of small GPTs, each on about 20 tokens per parameter with its
own cosine schedule, fit how the final loss falls with compute, and predict a bigger run before training it.

    results = sweep(PROFILES["default"], "runs/scaling.jsonl")       # resumes if interrupted
    law = fit_power_law([r["flops"] for r in results], [r["loss"] for r in results])
    law.predict(10 * max_flops)

The models are labkit.train's Llama GPTs reading bytes (a vocabulary of 256, so the output head does not
dominate compute at these sizes). Every run reads fresh data (no window is seen twice) and is scored on
the same held-out windows, so runs differ only in size, length and seed.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import optimize

from labkit.progress import tqdm  # tqdm.auto whose final line stays in a saved notebook
from labkit.train import corpus, parallel
from labkit.train.trainer import TrainConfig, build_model, lr_at, window_losses

VOCAB = 256  # bytes
TRAIN_SPLITS = ("train", "eval")  # 11.6 MB; these models are scored on `valid`, so `eval` is spare text here


# ---------------------------------------------------------------- runs


@dataclass(frozen=True)
class Shape:
    n_layer: int
    n_embd: int
    n_head: int

    def __post_init__(self):
        if self.n_embd % self.n_head or (self.n_embd // self.n_head) % 2:
            raise ValueError(f"n_embd {self.n_embd} must split into {self.n_head} heads of an even size (RoPE)")

    @property
    def n_inner(self) -> int:  # SwiGLU's usual 8/3 d, rounded to a multiple of 16
        return 16 * round(8 * self.n_embd / 3 / 16)


@dataclass(frozen=True)
class Sweep:
    shapes: tuple[Shape, ...]  # the ladder, smallest first
    target: Shape  # the run to predict (about 10x the compute of the largest rung)
    tokens_per_param: float = 20.0  # Chinchilla's compute-optimal ratio
    seeds: tuple[int, ...] = (0,)
    block_size: int = 128
    batch_size: int = 4  # small: at 16 the smallest rungs are step-limited (width 16: 2.63 vs 2.24 nats/byte)
    lr: float = 3e-3  # at width 64; each run uses lr * 64 / n_embd (muP's rule for Adam, applied to every weight)
    warmup_fraction: float = 0.05
    eval_windows: int = 256  # the fixed held-out set: this many non-overlapping windows of valid text (at most 4287)
    schedule_steps: int | None = None  # None: each run's schedule ends with the run (the matched setting)


PROFILES = {
    # about 3 minutes: the same code path and a prediction compared with a measured run, on a shorter ladder
    "ci": Sweep(shapes=tuple(Shape(3, d, 2) for d in (16, 20, 24, 28, 32)), target=Shape(3, 60, 2),
                eval_windows=512),
    # a laptop CPU: 8 rungs of one depth spanning 33x compute (about 5 minutes), then a run 10x the largest
    # (about 10). The ladder starts at width 24: below it the models sit near the plateau of byte statistics
    # that any tiny model learns, and the loss falls slower than the law (lesson 06 shows it).
    "default": Sweep(shapes=tuple(Shape(3, d, 2) for d in (24, 28, 32, 36, 40, 48, 56, 64)), target=Shape(3, 120, 2),
                     eval_windows=2048),
    # with CUDA: 3 seeds per rung and a 30x extrapolation (the data caps the target near 570K parameters)
    "gpu": Sweep(shapes=tuple(Shape(3, d, 2) for d in (24, 28, 32, 36, 40, 44, 48)), target=Shape(3, 120, 2),
                 seeds=(0, 1, 2), eval_windows=4096),
}


def below_ladder(sweep: Sweep) -> tuple[Shape, Shape]:
    """Two rungs narrower than the ladder's first (by 8 and 4), with its recipe: lesson 06's too-small rungs."""
    first = sweep.shapes[0]
    return tuple(Shape(first.n_layer, first.n_embd - k, first.n_head) for k in (8, 4))


def train_config(sweep: Sweep, shape: Shape, seed: int) -> tuple[TrainConfig, int]:
    """labkit.train's config for one run (tokens_per_param x its parameters, its own cosine schedule) and its steps."""
    tokens = sweep.tokens_per_param * parameters(shape)["total"]
    steps = max(20, round(tokens / (sweep.batch_size * sweep.block_size)))
    schedule = sweep.schedule_steps or steps
    return TrainConfig(vocab_size=VOCAB, n_layer=shape.n_layer, n_head=shape.n_head, n_embd=shape.n_embd,
                       n_inner=shape.n_inner, block_size=sweep.block_size, batch_size=sweep.batch_size,
                       max_steps=schedule, lr=sweep.lr * 64 / shape.n_embd, min_lr=sweep.lr * 6.4 / shape.n_embd,
                       warmup_steps=max(5, round(sweep.warmup_fraction * schedule)), seed=seed, bf16=False), steps


def parameters(shape: Shape) -> dict[str, int]:
    """Total parameters (the tied embedding counted once) and non-embedding ones, by formula."""
    d, layers = shape.n_embd, shape.n_layer
    per_layer = 4 * d * d + 3 * d * shape.n_inner + 2 * d  # attention, SwiGLU MLP, two RMSNorm gains
    non_embedding = layers * per_layer + d  # + the final norm
    return {"total": non_embedding + VOCAB * d, "non_embedding": non_embedding}


def forward_flops(shape: Shape, block_size: int) -> dict[str, float]:
    """Forward FLOPs per token by part, 2 per multiply-add: the weight matmuls of every layer (attention
    projections and the SwiGLU MLP), attention itself (scores and the weighted sum over the causal context,
    on average (block_size + 1) / 2 positions), and the output head. Norms, softmax, activations and the
    embedding lookup are left out: a few percent at these sizes."""
    d, layers = shape.n_embd, shape.n_layer
    return {"weights": layers * 2 * (4 * d * d + 3 * d * shape.n_inner),
            "attention": layers * 2 * 2 * d * (block_size + 1) / 2, "head": 2 * d * VOCAB}


def flops_per_token(shape: Shape, block_size: int) -> dict[str, float]:
    """Training FLOPs per token: exact (forward x 3: the backward pass costs twice the forward) and the
    usual 6N estimates, with N all parameters or only the non-embedding ones (Kaplan et al.)."""
    n = parameters(shape)
    return {"exact": 3 * sum(forward_flops(shape, block_size).values()), "6N": 6 * n["total"],
            "6N_non_embedding": 6 * n["non_embedding"]}


@functools.cache
def _bytes(*splits: str) -> np.ndarray:
    text = "\n".join(d.text for split in splits for d in corpus.stdlib_documents(split))
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def run(sweep: Sweep, shape: Shape, seed: int, progress: bool = False) -> dict:
    """Train one model from scratch; return its sizes, FLOPs, time and final held-out loss."""
    cfg, steps = train_config(sweep, shape, seed)
    torch.manual_seed(seed)
    model = build_model(cfg, VOCAB, eos_id=0)
    assert sum(p.numel() for p in model.parameters()) == parameters(shape)["total"], "the formula is the model"
    train, valid = _bytes(*TRAIN_SPLITS), _bytes("valid")
    windows = len(train) // (cfg.block_size + 1)
    needed = steps * cfg.batch_size
    if needed > windows:
        raise ValueError(f"{shape} needs {needed:,} windows of fresh data; the corpus has {windows:,}")
    order = np.random.default_rng(seed).permutation(windows)[:needed]  # each window read once
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    started = time.perf_counter()
    model.train()
    for step in tqdm(range(steps), disable=not progress, leave=False, desc=f"{shape} seed {seed}", unit="step"):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        rows = order[step * cfg.batch_size : (step + 1) * cfg.batch_size] * (cfg.block_size + 1)
        x = torch.from_numpy(np.stack([train[r : r + cfg.block_size] for r in rows]).astype(np.int64))
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
    seconds = time.perf_counter() - started
    tokens = steps * cfg.batch_size * cfg.block_size
    per_token = flops_per_token(shape, cfg.block_size)
    return {"shape": dataclasses.asdict(shape), "seed": seed, "steps": steps, "schedule_steps": cfg.max_steps,
            "tokens": tokens, **{f"params_{k}": v for k, v in parameters(shape).items()},
            "flops": per_token["exact"] * tokens, "flops_6N": per_token["6N"] * tokens,
            "flops_6N_non_embedding": per_token["6N_non_embedding"] * tokens,
            "loss": held_out_loss(model, valid, sweep), "seconds": round(seconds, 2)}


def held_out_loss(model, valid: np.ndarray, sweep: Sweep) -> float:
    """Mean next-byte loss (nats) on the first eval_windows non-overlapping windows of valid text."""
    return float(np.mean(window_losses(model, valid[: sweep.eval_windows * sweep.block_size + 1], sweep.block_size,
                                       batch_size=64)))


def ngram_loss(sweep: Sweep, order: int) -> float:
    """The held-out loss of a table of byte n-grams counted on the training text: what a model that looks back
    only order - 1 bytes can reach. Scored on the same bytes as held_out_loss (a table's context may reach
    back across a window's start, where a model's cannot)."""
    if order not in (1, 2, 3):
        raise ValueError(f"order must be 1, 2 or 3 (a table of 256**order counts), got {order}")
    valid = _bytes("valid")
    starts = np.arange(sweep.eval_windows) * sweep.block_size
    scored = (starts[:, None] + np.arange(1, sweep.block_size)).ravel()  # a model predicts all but a window's first
    return table_loss(_bytes(*TRAIN_SPLITS), valid, scored[scored >= order - 1], order)


def table_loss(train: np.ndarray, text: np.ndarray, positions: np.ndarray, order: int, alpha: float = 0.01) -> float:
    """Mean -log p(text[i] | the order - 1 bytes before it) at positions, from add-alpha smoothed counts in train."""

    def contexts(a):  # the id of the order - 1 bytes before each position from order - 1 on
        a = a.astype(np.int64)
        ids = np.zeros(len(a) - order + 1, dtype=np.int64)
        for j in range(order - 1):
            ids = ids * 256 + a[j : len(a) - order + 1 + j]
        return ids

    counts = np.bincount(contexts(train) * 256 + train[order - 1 :], minlength=256**order).reshape(-1, 256) + alpha
    row = contexts(text)[positions - (order - 1)]
    return float(-np.mean(np.log(counts[row, text[positions]] / counts.sum(axis=1)[row])))


def sweep(config: Sweep, results: str | Path, shapes: tuple[Shape, ...] | None = None,
          progress: bool = True, workers: int | None = None) -> list[dict]:
    """Run every (shape, seed) not yet in the results JSONL under this recipe, appending each as it finishes,
    so an interrupted sweep resumes where it stopped. Returns the results for these shapes and seeds, in that order.

    workers: how many runs train at once, each in a process of its own with its share of torch's threads (this
    one and workers - 1 others). None: one per CPU core when there are runs enough to keep them busy, else 1.
    These models are too small for two threads to share one well (2 cores: 8.7 ms a step with both, 10.3 with
    one), so on 2 cores two runs at a time train the ci ladder in 39 s instead of 61 s, the helper's start
    included (labkit.train.parallel). A run computes the same numbers whichever process trains it."""
    path = Path(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    shapes = shapes or config.shapes
    mine = recipe(config)
    done = {_key(r["shape"], r["seed"], r.get("recipe")) for r in load(path)}
    todo = [(s, seed) for s in shapes for seed in config.seeds if _key(dataclasses.asdict(s), seed, mine) not in done]
    tokens_per_step = config.batch_size * config.block_size
    cost = sum(flops_per_token(s, config.block_size)["exact"] * train_config(config, s, 0)[1] * tokens_per_step
               for s, _ in todo)
    if progress and not todo:
        print(f"all {len(shapes) * len(config.seeds)} runs are already in {path}: nothing to train")
    workers = _workers(config, todo) if workers is None else max(1, min(workers, len(todo)))
    bar = tqdm(total=len(todo), disable=not progress or not todo, desc=f"{len(todo)} runs, {cost:.1e} FLOPs",
               unit="run")

    def record(result: dict) -> None:
        with path.open("a") as f:
            f.write(json.dumps({**result, "recipe": mine}) + "\n")
        bar.update()

    with bar:
        if workers == 1:
            for shape, seed in todo:
                one = progress and len(todo) == 1  # a bar per step only for a lone (long) run
                record(run(config, shape, seed, progress=one))
        else:  # longest first, so the last run to finish is a short one
            jobs = sorted(((config, s, seed) for s, seed in todo), key=lambda j: train_config(*j)[1], reverse=True)
            parallel.run_all(run, jobs, workers, lambda job, result: record(result))
    wanted = {_key(dataclasses.asdict(s), seed, mine): i for i, (s, seed) in
              enumerate((s, seed) for s in shapes for seed in config.seeds)}
    found = {}
    for r in load(path):  # the last line of a (shape, seed) wins, as a re-run would have appended it
        key = _key(r["shape"], r["seed"], r.get("recipe"))
        if key in wanted:
            found[key] = r
    return sorted(found.values(), key=lambda r: wanted[_key(r["shape"], r["seed"], r["recipe"])])


PARALLEL_MIN_STEPS = 1000  # a helper process takes seconds to start: worth it for this many steps besides the longest


def _workers(config: Sweep, todo: list[tuple[Shape, int]]) -> int:
    """One process per core when, besides the longest run, there are steps enough to keep another busy while it
    starts (or one has started already)."""
    if len(todo) < 2:
        return 1
    steps = sorted(train_config(config, s, seed)[1] for s, seed in todo)
    if not parallel.started() and sum(steps[:-1]) < PARALLEL_MIN_STEPS:
        return 1
    return parallel.workers_for(len(todo))


def recipe(config: Sweep) -> dict:
    """Everything but the sizes and seeds that decides a run's loss: a run is reused only under the same recipe."""
    fields = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("shapes", "target", "seeds")}
    return {**fields, "train_splits": list(TRAIN_SPLITS)}


def load(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _key(shape: dict, seed: int, recipe: dict | None) -> str:
    return json.dumps([shape, seed, recipe], sort_keys=True)


# ---------------------------------------------------------------- fits


@dataclass(frozen=True)
class PowerLaw:
    """L(C) = a * C**b + c: the GPT-4 report's form; c is the loss no amount of compute removes."""

    a: float
    b: float
    c: float

    def predict(self, flops):
        return self.a * np.asarray(flops, dtype=float) ** self.b + self.c


def fit_power_law(flops, losses, floor: float | None = None) -> PowerLaw:
    """Least squares in log space with 0 <= c < the smallest observed loss (a loss floor above an observed
    loss is impossible). Compute is rescaled to its geometric mean so the fit is well conditioned.

    floor: hold c at this value and fit only a and b (to see how much of a fit's uncertainty is the floor's)."""
    x, y = np.asarray(flops, dtype=float), np.asarray(losses, dtype=float)
    if floor is None and len(x) < 3:
        raise ValueError(f"a power law with a floor has 3 parameters: give at least 3 runs, got {len(x)}")
    if floor is not None and not 0 <= floor < y.min():
        raise ValueError(f"the floor must be at least 0 and below the smallest loss ({y.min():.4g}), got {floor}")
    scale = math.exp(np.mean(np.log(x)))
    u = x / scale

    def residuals(p):
        log_a, b, c = p if floor is None else (*p, floor)
        return np.log(np.exp(log_a) * u**b + c) - np.log(y)

    best = None
    for c0 in np.linspace(0, 0.95, 8) * y.min() if floor is None else [floor]:  # the floor and the slope trade off
        start = [math.log(max(y.mean() - c0, 1e-6)), -0.1, c0]
        bounds = ([-50, -5, 0], [50, 0, y.min() * (1 - 1e-9)])
        if floor is not None:
            start, bounds = start[:2], (bounds[0][:2], bounds[1][:2])
        r = optimize.least_squares(residuals, start, bounds=bounds)
        if best is None or r.cost < best.cost:
            best = r
    log_a, b, c = best.x if floor is None else (*best.x, floor)
    return PowerLaw(a=float(math.exp(log_a) * scale**-b), b=float(b), c=float(c))


@dataclass(frozen=True)
class Chinchilla:
    """L(N, D) = E + A / N**alpha + B / D**beta (Hoffmann et al. 2022)."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def predict(self, n, d):
        n, d = np.asarray(n, dtype=float), np.asarray(d, dtype=float)
        return self.E + self.A / n**self.alpha + self.B / d**self.beta

    def compute_optimal(self, flops: float) -> tuple[float, float]:
        """(N, D) with the lowest predicted loss for a budget, using C = 6ND."""
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1 / (self.alpha + self.beta))
        n = g * (flops / 6) ** (self.beta / (self.alpha + self.beta))
        return n, flops / (6 * n)


def fit_chinchilla(n, d, losses, delta: float = 1e-3) -> Chinchilla:
    """Hoffmann et al.'s procedure: the Huber loss (delta 1e-3) between log L and the log of the prediction,
    written as a log-sum-exp, minimized by L-BFGS from a grid of starting points; the best fit is kept."""
    log_n, log_d, log_l = (np.log(np.asarray(v, dtype=float)) for v in (n, d, losses))
    if len(log_l) < 5:
        raise ValueError(f"the Chinchilla form has 5 parameters: give at least 5 runs, got {len(log_l)}")

    def objective(p):
        a, b, e, alpha, beta = p
        pred = np.logaddexp(np.logaddexp(a - alpha * log_n, b - beta * log_d), e)
        r = pred - log_l
        return np.where(np.abs(r) <= delta, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta)).sum()

    best = None
    for a in (0.0, 5.0, 10.0):
        for b in (0.0, 5.0, 10.0):
            for e in (-1.0, 0.0, 0.5):
                for alpha in (0.2, 0.5):
                    for beta in (0.2, 0.5):
                        r = optimize.minimize(objective, [a, b, e, alpha, beta], method="L-BFGS-B")
                        if best is None or r.fun < best.fun:
                            best = r
    a, b, e, alpha, beta = best.x
    return Chinchilla(E=math.exp(e), A=math.exp(a), B=math.exp(b), alpha=float(alpha), beta=float(beta))


_REFITS: dict = {}  # recent bootstrap_fits results: a lesson asks for the interval, then looks inside the same refits


def bootstrap_fits(fit, xs, ys, samples: int = 300, seed: int = 0) -> list:
    """fit(xs, ys) refitted on runs resampled with replacement, one fit per resample (a resample with fewer than
    3 distinct runs is skipped: it cannot place a floor). Their spread is the fit's uncertainty, parameter by
    parameter. The refits are deterministic, so the last few are kept: `bootstrap` and then `bootstrap_fits` on the
    same function, runs and seed fit once."""
    xs, ys = np.asarray(xs), np.asarray(ys)
    key = (fit, xs.dtype.str, xs.tobytes(), ys.dtype.str, ys.tobytes(), samples, seed)
    if key not in _REFITS:
        rng = np.random.default_rng(seed)
        fits = []
        for _ in range(samples):
            pick = rng.integers(0, len(xs), len(xs))
            if len(set(xs[pick])) < 3:
                continue
            fits.append(fit(xs[pick], ys[pick]))
        if len(_REFITS) >= 8:
            _REFITS.pop(next(iter(_REFITS)))
        _REFITS[key] = fits
    return list(_REFITS[key])


def bootstrap(fit, xs, ys, at, samples: int = 300, seed: int = 0, level: float = 0.9) -> tuple[float, float]:
    """An interval for fit(xs, ys).predict(at): the central `level` of the bootstrap fits' predictions."""
    predictions = [float(f.predict(at)) for f in bootstrap_fits(fit, xs, ys, samples, seed)]
    lo, hi = np.quantile(predictions, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
