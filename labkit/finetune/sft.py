"""Supervised fine-tuning of a local causal LM on chat JSONL, as OpenAI's fine-tuning does it:
the base model's own chat template, loss on assistant tokens only (`weight: 0` excludes one),
a validation loss, an event per step and a checkpoint per epoch.

    out = sft(base_folder, "labkit/data/finetune/json_train.jsonl", out_dir, Hyper(n_epochs=3),
              valid_file="labkit/data/finetune/json_valid.jsonl", on_event=print)
"""

from __future__ import annotations

import json
import math
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from labkit.engine import replay

IGNORE = -100  # label of a token the loss skips
BASE_LEARNING_RATE = 5e-5  # what a job's learning_rate_multiplier scales


@dataclass(frozen=True)
class Hyper:
    n_epochs: int = 3
    batch_size: int = 4
    learning_rate: float = BASE_LEARNING_RATE
    seed: int = 0
    max_tokens: int = 1024  # an example is cut to this many tokens


def read_examples(path: str | Path) -> list[list[dict]]:
    """The messages of each line (the file is assumed to pass labkit.finetune.validate)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["messages"] for line in f if line.strip()]


def encode(tokenizer, messages: list[dict], max_tokens: int) -> tuple[list[int], list[int]]:
    """Token ids of the whole conversation and labels that keep only trained assistant tokens.

    Each assistant message's tokens are what the template adds when that message is appended to
    the conversation after the generation prompt: its content and end-of-turn marker."""
    def render(msgs, prompt):
        ids = tokenizer.apply_chat_template(msgs, add_generation_prompt=prompt, tokenize=True)
        return list(ids["input_ids"] if hasattr(ids, "keys") else ids)

    plain = [{"role": m["role"], "content": _text(m.get("content"))} for m in messages]
    ids = render(plain, False)
    labels = [IGNORE] * len(ids)
    for i, m in enumerate(messages):
        if m["role"] != "assistant" or m.get("weight", 1) == 0:
            continue
        start, end = len(render(plain[:i], True)), len(render(plain[: i + 1], False))
        labels[start:end] = ids[start:end]
    return ids[:max_tokens], labels[:max_tokens]


def _text(content) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content)
    return content or ""


def _batches(encoded: list[tuple[list[int], list[int]]], size: int, pad: int, rng: random.Random | None):
    order = list(range(len(encoded)))
    if rng is not None:
        rng.shuffle(order)
    for i in range(0, len(order), size):
        rows = [encoded[j] for j in order[i : i + size]]
        width = max(len(ids) for ids, _ in rows)
        ids = torch.tensor([x + [pad] * (width - len(x)) for x, _ in rows])
        labels = torch.tensor([y + [IGNORE] * (width - len(y)) for _, y in rows])
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _ in rows])
        yield ids, labels, mask


def _loss(model, ids, labels, mask) -> torch.Tensor:
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    return torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels[:, 1:], ignore_index=IGNORE)


@torch.no_grad()
def _valid_loss(model, encoded, hyper: Hyper, pad: int, device) -> float:
    model.eval()
    losses = [_loss(model, *(t.to(device) for t in b)).item() for b in _batches(encoded, hyper.batch_size, pad, None)]
    model.train()
    return sum(losses) / len(losses)


def sft(base: str | Path, train_file: str | Path, out_dir: str | Path, hyper: Hyper = Hyper(),
        valid_file: str | Path | None = None, on_event: Callable[[dict], None] = lambda e: None,
        should_stop: Callable[[], bool] = lambda: False) -> Path | None:
    """Fine-tune `base` (a transformers folder); return the folder of the last epoch's checkpoint
    (out_dir/epoch-N), or None if stopped early.

    on_event receives {"step", "total_steps", "train_loss", "tokens"[, "valid_loss"]} after every step
    (tokens: those in the batch) and {"epoch", "checkpoint"} after every epoch; should_stop is polled
    between steps (cancel). With labkit.engine.replay's cache on, a run already made with the same base, data
    and hyperparameters is replayed: its checkpoints copied to out_dir, its events sent again."""
    out = Path(out_dir)
    key = replay.training_key(Path(base), Path(train_file), valid_file and Path(valid_file), hyper) \
        if replay.enabled() else None
    kept = replay.stored_training(key) if key else None
    if kept is not None:
        return _replay(kept, out, on_event, should_stop)
    events: list[dict] = []

    def record(event: dict) -> None:
        events.append(dict(event))
        on_event(event)

    checkpoint = _train(base, train_file, out, hyper, valid_file, record if key else on_event, should_stop)
    if key and checkpoint is not None:
        replay.keep_training(key, events, out)
    return checkpoint


def _replay(kept: Path, out: Path, on_event: Callable[[dict], None], should_stop: Callable[[], bool]) -> Path | None:
    shutil.copytree(kept, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns("events.json"))
    checkpoint = None
    for event in json.loads((kept / "events.json").read_text()):
        if should_stop():
            return None
        if "checkpoint" in event:
            checkpoint = out / event["checkpoint"]
            event = {**event, "checkpoint": str(checkpoint)}
        on_event(event)
    return checkpoint


def _train(base: str | Path, train_file: str | Path, out: Path, hyper: Hyper, valid_file: str | Path | None,
           on_event: Callable[[dict], None], should_stop: Callable[[], bool]) -> Path | None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(hyper.seed)
    hf_logging.disable_progress_bar()  # a job's log is its events, not bars on the server's stderr
    tok = AutoTokenizer.from_pretrained(base, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, local_files_only=True).to(device)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    train = [encode(tok, m, hyper.max_tokens) for m in read_examples(train_file)]
    valid = [encode(tok, m, hyper.max_tokens) for m in read_examples(valid_file)] if valid_file else []
    opt = torch.optim.AdamW(model.parameters(), lr=hyper.learning_rate, weight_decay=0.0)
    total = hyper.n_epochs * math.ceil(len(train) / hyper.batch_size)
    rng, step = random.Random(hyper.seed), 0
    model.train()
    for epoch in range(1, hyper.n_epochs + 1):
        for ids, labels, mask in _batches(train, hyper.batch_size, pad, rng):
            if should_stop():
                return None
            for group in opt.param_groups:  # linear decay to zero, as OpenAI's jobs report it
                group["lr"] = hyper.learning_rate * (1 - step / total)
            loss = _loss(model, ids.to(device), labels.to(device), mask.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            event = {"step": step, "total_steps": total, "train_loss": loss.item(), "tokens": int(mask.sum())}
            if valid and (step % math.ceil(total / 10) == 0 or step == total):  # about 10 per job
                event["valid_loss"] = _valid_loss(model, valid, hyper, pad, device)
            on_event(event)
        checkpoint = out / f"epoch-{epoch}"
        _save(model, tok, checkpoint)
        on_event({"epoch": epoch, "checkpoint": str(checkpoint)})
    return checkpoint


def _save(model, tok, folder: Path) -> None:
    """Weights in bf16: half the disk, and what the engine serves on CPU anyway."""
    model.save_pretrained(folder, state_dict={k: v.to(torch.bfloat16) for k, v in model.state_dict().items()})
    tok.save_pretrained(folder)
