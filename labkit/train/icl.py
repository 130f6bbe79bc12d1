"""In-context learning, grown from scratch (after Chan et al. 2022, "Data distributional properties
drive emergent in-context learning in transformers").

Each training sequence is a list of (symbol, label) pairs. In the `icl` data every sequence draws
its own random symbol -> label mapping, so the only way to predict a label is to find the same
symbol earlier in the sequence: the model has to learn to learn from its context. Sequences are
bursty (a few symbols, each repeated), and every shown label is wrong with probability `noise`,
so one example is evidence, not an answer, and more examples should help.

The `control` data uses one fixed mapping for every sequence: a model can memorize it in its
weights and never needs the context. On a mapping it has never seen, it should stay at chance.

    model_dir = train_icl(ICLConfig(), "runs/icl")             # ~1 minute on 2 CPU cores
    accuracy_by_shots(model_dir, ICLConfig(), shots=(0, 1, 2, 4, 8))

A model already trained in that folder by this code with the same config and steps is reused, not trained again
(lesson 03 and tests/test_icl.py train the same two models: whichever runs first trains them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from labkit.train.fim import EOT
from labkit.train.trainer import TrainConfig, train


@dataclass(frozen=True)
class ICLConfig:
    symbols: int = 64
    labels: int = 4  # chance is 1/labels
    pairs: int = 16  # (symbol, label) pairs per sequence
    distinct: int = 3  # symbols per sequence: bursty, so each recurs
    noise: float = 0.2  # probability that a shown label is a wrong one
    fixed_mapping: bool = False  # the control: one mapping shared by every sequence
    sequences: int = 60_000
    seed: int = 0


def train_config(icl: ICLConfig, steps: int = 1500) -> TrainConfig:
    """A 2-layer model: two layers are what an induction head (find the earlier match, copy what followed) needs."""
    return TrainConfig(vocab_size=icl.symbols + icl.labels + 1, n_layer=2, n_head=4, n_embd=64, n_inner=256,
                       block_size=2 * icl.pairs, batch_size=64, max_steps=steps, lr=3e-3, min_lr=3e-4,
                       warmup_steps=100, eval_every=max(1, steps // 5), eval_batches=8, seed=icl.seed, bf16=False)


def tokenizer(icl: ICLConfig) -> PreTrainedTokenizerFast:
    """Words s0..s63 for symbols and L0..L3 for labels, one token each."""
    vocab = {f"s{i}": i for i in range(icl.symbols)}
    vocab |= {f"L{j}": icl.symbols + j for j in range(icl.labels)} | {EOT: icl.symbols + icl.labels}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=EOT))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOT, pad_token=EOT)


def fixed_mapping(icl: ICLConfig) -> np.ndarray:
    return np.random.default_rng(10_000 + icl.seed).integers(0, icl.labels, icl.symbols)


def sequences(icl: ICLConfig, count: int, seed: int) -> np.ndarray:
    """count training sequences, one per row: s, L, s, L, ... (token ids)."""
    rng = np.random.default_rng(seed)
    out = np.empty((count, 2 * icl.pairs), dtype=np.uint16)
    fixed = fixed_mapping(icl)
    for row in range(count):
        chosen = rng.choice(icl.symbols, icl.distinct, replace=False)
        truth = fixed[chosen] if icl.fixed_mapping else rng.integers(0, icl.labels, icl.distinct)
        which = rng.integers(0, icl.distinct, icl.pairs)
        out[row, 0::2] = chosen[which]
        out[row, 1::2] = icl.symbols + _noisy(truth[which], icl, rng)
    return out


def _noisy(labels: np.ndarray, icl: ICLConfig, rng: np.random.Generator) -> np.ndarray:
    """Each label replaced, with probability noise, by one of the other labels."""
    flip = rng.random(labels.shape) < icl.noise
    return np.where(flip, (labels + rng.integers(1, icl.labels, labels.shape)) % icl.labels, labels)


def train_icl(icl: ICLConfig, out_dir: str | Path, steps: int = 1500, progress: bool = True,
              reuse: bool = True) -> Path:
    """Train a model on `icl` sequences into out_dir, from scratch. With reuse, a model this code already trained
    there with the same config and steps is kept instead (training is deterministic: it would come out the same)."""
    out, stamp = Path(out_dir), _stamp(icl, steps)
    if reuse and _read_stamp(out) == stamp and (out / "model.safetensors").is_file():
        if progress:
            print(f"reusing the model in {out}: trained earlier by this code with this config and {steps} steps")
        return out
    (out / STAMP).unlink(missing_ok=True)
    data = (tokenizer(icl), sequences(icl, icl.sequences, icl.seed), sequences(icl, 512, icl.seed + 1))
    done = train(train_config(icl, steps), out, resume=False, progress=progress, data=data)
    (out / STAMP).write_text(json.dumps(stamp, indent=1))
    return done


def train_pair(icl: ICLConfig, folder: str | Path, steps: int = 1500, progress: bool = True,
               reuse: bool = True) -> tuple[Path, Path]:
    """The in-context learner (folder/icl) and its control (folder/icl-control), trained side by side, each in a
    process of its own, where there are 2 cores or more (labkit.train.parallel: 1.3x on 2 cores)."""
    from labkit.train import parallel

    folder = Path(folder)
    jobs = [(icl, folder / "icl", steps, False, reuse), (control(icl), folder / "icl-control", steps, False, reuse)]
    trained = {}
    parallel.run_all(train_icl, jobs, parallel.workers_for(len(jobs)),
                     lambda job, out: trained.__setitem__(job[1], out))
    if progress:
        for job in jobs:
            log = json.loads((trained[job[1]] / "train_log.json").read_text())
            print(f"{trained[job[1]]}: {steps} steps, valid loss {log['history'][-1]['valid_loss']:.3f}")
    return trained[jobs[0][1]], trained[jobs[1][1]]


STAMP = "icl_stamp.json"  # what trained the model in a folder: the config, the steps, the code and its libraries


def _stamp(icl: ICLConfig, steps: int) -> dict:
    import transformers

    here = Path(__file__).resolve().parent
    code = hashlib.sha256(b"".join((here / name).read_bytes() for name in ("icl.py", "trainer.py"))).hexdigest()
    return {"icl": dataclasses.asdict(icl), "steps": steps, "code": code[:16], "torch": torch.__version__,
            "transformers": transformers.__version__}


def _read_stamp(folder: Path) -> dict | None:
    try:
        return json.loads((folder / STAMP).read_text())
    except (OSError, ValueError):
        return None


def probe(icl: ICLConfig, shots: int, count: int, seed: int, mapping: str = "new") -> tuple[np.ndarray, np.ndarray]:
    """count test sequences whose last symbol (the query) appeared exactly `shots` times before, each
    time with a noisy label; the other pairs are distractors. Returns (token ids ending at the query
    symbol, the query's true label). mapping "new": random mappings no training sequence fixed;
    "fixed": the control's training mapping."""
    rng = np.random.default_rng(seed)
    fixed = fixed_mapping(icl)
    ids = np.empty((count, 2 * icl.pairs - 1), dtype=np.int64)
    answers = np.empty(count, dtype=np.int64)
    for row in range(count):
        chosen = rng.choice(icl.symbols, icl.distinct, replace=False)  # chosen[0] is the query
        truth = fixed[chosen] if mapping == "fixed" else rng.integers(0, icl.labels, icl.distinct)
        which = np.concatenate([np.zeros(shots, int), rng.integers(1, icl.distinct, icl.pairs - 1 - shots)])
        rng.shuffle(which)
        which = np.append(which, 0)
        labels = icl.symbols + _noisy(truth[which], icl, rng)
        ids[row, 0::2], ids[row, 1::2] = chosen[which], labels[:-1]
        answers[row] = truth[0]
    return ids, answers


@torch.no_grad()
def accuracy_by_shots(model_dir: str | Path, icl: ICLConfig, shots=(0, 1, 2, 4, 8), count: int = 400,
                      mapping: str = "new", seed: int = 1) -> dict[int, float]:
    """Accuracy of the model's likeliest label for the query, by the number of earlier examples of it."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a model reused from disk loads in a blink: no "Loading weights" bar
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    result = {}
    for k in shots:
        ids, answers = probe(icl, k, count, seed + k, mapping)
        logits = model(input_ids=torch.from_numpy(ids)).logits[:, -1, icl.symbols : icl.symbols + icl.labels]
        result[k] = float((logits.argmax(-1).numpy() == answers).mean())
    return result


def majority_vote_accuracy(icl: ICLConfig, shots=(0, 1, 2, 4, 8), count: int = 4000, seed: int = 1) -> dict[int, float]:
    """The best any learner can do from the context alone: the most frequent shown label (ties and no
    examples broken at random). The yardstick for the trained model's curve."""
    rng = np.random.default_rng(seed)
    result = {}
    for k in shots:
        ids, answers = probe(icl, k, count, seed + k)
        hits = 0
        for row, answer in zip(ids, answers):
            query = row[-1]
            shown = [row[i + 1] - icl.symbols for i in range(0, len(row) - 1, 2) if row[i] == query]
            votes = np.bincount(shown, minlength=icl.labels) + rng.random(icl.labels) * 0.5
            hits += int(votes.argmax() == answer)
        result[k] = hits / count
    return result


def control(icl: ICLConfig) -> ICLConfig:
    return replace(icl, fixed_mapping=True)
