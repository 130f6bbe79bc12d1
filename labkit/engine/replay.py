"""Deterministic work kept on disk: a seeded generation asked again gets the tokens it got the first time, and
a fine-tuning run asked again gets the checkpoints and events it got the first time, without running the model.

A generation is deterministic when its tokens depend only on the model, the prompt and the sampling parameters:
it has a `seed`, or samples greedily (temperature 0). Its deltas, sequences and prompt logprobs are then stored
under LABKIT_HOME/generations, keyed by a digest of the model's weights, the prompt's token ids and every
sampling parameter (grammar, stops, penalties, logit_bias, logprobs and `n` included); any difference is a
different key, and anything else runs the model.

A fine-tuning run (labkit.finetune.sft) is keyed by the base model's files, the training and validation files
and every hyperparameter (its seed included); its checkpoints and step events are kept under
LABKIT_HOME/generations/training.

Off unless LABKIT_GENERATION_CACHE is set to a true value. `make test` sets it: the suite runs each lesson
locally, against `labkit serve`, against a fake OpenAI and in Chinese with the same seeded requests, and pays for
each request's decoding once (the first run's numbers are what every later run shows). A student's JupyterLab
leaves it off, so a lesson's timings always time the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from labkit.engine.registry import LocalModel, home
from labkit.engine.sampling import Delta, Generation

ENV = "LABKIT_GENERATION_CACHE"

_weights: dict[int, tuple[torch.nn.Module, str]] = {}  # id(model) -> (model, digest of its weights)
_weights_lock = threading.Lock()


def enabled() -> bool:
    return os.environ.get(ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def folder() -> Path:
    return home() / "generations"


@dataclass
class Recording:
    """One generation's deltas as the loop handed them out, and its final state."""

    key: str
    steps: list[list[Delta]] = field(default_factory=list)

    def save(self, gen: Generation) -> None:
        """Store a generation that ran to its end (a cancelled one is not kept)."""
        if gen.cancelled:
            return
        path = folder() / self.key[:2] / f"{self.key}.pkl"
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"steps": self.steps, "sequences": gen.sequences, "prompt_logprobs": gen.prompt_logprobs,
                 "completion_tokens": gen.completion_tokens}
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(tmp, path)  # whole or absent, whichever process reads it


def key(lm: LocalModel, gen: Generation) -> str | None:
    """The generation's key, or None when it is not deterministic (no seed, temperature above 0)."""
    p = gen.p
    if p.seed is None and p.temperature >= 1e-5:
        return None
    params = asdict(p)
    params["logit_bias"] = sorted(p.logit_bias.items())
    blob = json.dumps([lm.name, weights_digest(lm), gen.prompt_ids, params], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def weights_digest(lm: LocalModel) -> str:
    """A digest of every parameter and buffer of the model (once per loaded model): a fine-tuned model that
    reuses a name, or a model trained anew, is a different key."""
    with _weights_lock:
        entry = _weights.get(id(lm.model))
        if entry is not None and entry[0] is lm.model:
            return entry[1]
        h = hashlib.sha256()
        with torch.no_grad():
            for name, t in [*lm.model.named_parameters(), *lm.model.named_buffers()]:
                h.update(name.encode())
                h.update(str((tuple(t.shape), t.dtype)).encode())
                flat = t.detach().reshape(-1)
                flat = flat.double() if flat.is_floating_point() else flat.long()
                h.update(repr(flat.sum().item()).encode())
                h.update(flat[:64].cpu().numpy().tobytes())
        digest = h.hexdigest()
        _weights[id(lm.model)] = (lm.model, digest)
        return digest


def lookup(lm: LocalModel, gen: Generation) -> tuple[list[list[Delta]] | None, Recording | None]:
    """(the stored deltas, already applied to `gen`, None) on a hit; (None, a Recording to fill) on a miss of a
    deterministic generation; (None, None) when the cache is off or the generation is not deterministic."""
    if not enabled():
        return None, None
    k = key(lm, gen)
    if k is None:
        return None, None
    path = folder() / k[:2] / f"{k}.pkl"
    try:
        state = pickle.loads(path.read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError):
        return None, Recording(k)
    gen.sequences = state["sequences"]
    gen.prompt_logprobs = state["prompt_logprobs"]
    gen.completion_tokens = state["completion_tokens"]
    gen.done, gen.keep = True, []
    return state["steps"], None


# ---------------------------------------------------------------- fine-tuning runs


def training_key(base: Path, train_file: Path, valid_file: Path | None, hyper: object) -> str:
    """A digest of the base model's files, the data and the hyperparameters (a dataclass)."""
    h = hashlib.sha256(json.dumps(asdict(hyper), sort_keys=True).encode())
    for path in sorted(p for p in Path(base).rglob("*") if p.is_file()):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    for data in (train_file, valid_file):
        h.update(Path(data).read_bytes() if data is not None else b"-")
    return h.hexdigest()


def stored_training(key: str) -> Path | None:
    """The folder of a kept run (its `events.json` and checkpoint folders), or None."""
    kept = folder() / "training" / key
    return kept if (kept / "events.json").is_file() else None


def keep_training(key: str, events: list[dict], out_dir: Path) -> None:
    """Keep a finished run: its events (checkpoint paths relative to out_dir) and out_dir's checkpoints."""
    kept = folder() / "training" / key
    tmp = kept.with_name(f"{key}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(out_dir, tmp)
    relative = [{**e, "checkpoint": str(Path(e["checkpoint"]).relative_to(out_dir))} if "checkpoint" in e else e
                for e in events]
    (tmp / "events.json").write_text(json.dumps(relative))
    try:
        tmp.rename(kept)
    except OSError:  # another process kept the same run first
        shutil.rmtree(tmp, ignore_errors=True)
