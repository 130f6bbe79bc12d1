"""Train a small GPT from scratch: data, model, loop. Read it top to bottom.

    model_dir = train(PROFILES["default"], "runs/fim-code")   # or `labkit train fim-code`

The model is a transformers Llama built from a small config, so everything that loads
Hugging Face models (labkit's engine included) loads it. Checkpoints are Hugging Face
folders plus the optimizer and sampler state, so an interrupted run resumes exactly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.utils import logging as hf_logging

from labkit.engine.registry import home
from labkit.progress import tqdm  # tqdm.auto whose final line stays in a saved notebook
from labkit.train import corpus, fim
from labkit.train.tokenizer import train_tokenizer


@dataclass(frozen=True)
class TrainConfig:
    # data: the standard library's source, cut into pieces about one context long
    corpus_bytes: int | None = None  # None: the whole train split (~11 MB)
    chunk_chars: int = 300  # short pieces: more FIM examples per token, and more of them end inside the window
    fim_rate: float = 0.9  # the paper's range is 0.5-0.9; 0 trains left-to-right only
    spm_rate: float = 0.5
    vocab_size: int = 4096
    # model
    n_layer: int = 6
    n_head: int = 4
    n_embd: int = 256
    n_inner: int = 768
    block_size: int = 256  # 512 halves tokens/s on 2 CPU cores (attention)
    # optimisation: AdamW, linear warmup then cosine decay to min_lr
    batch_size: int = 16
    max_steps: int = 1500
    lr: float = 2e-3
    min_lr: float = 2e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 250
    eval_batches: int = 16
    seed: int = 1337
    bf16: bool = True  # autocast where the hardware has bf16 (1.7-3.5x on CPUs with AVX512-BF16)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.block_size


PROFILES = {
    # same code path, about a minute on 2 CPU cores
    "ci": TrainConfig(corpus_bytes=400_000, vocab_size=1024, n_layer=2, n_head=2, n_embd=128, n_inner=384,
                      batch_size=8, max_steps=60, warmup_steps=10, eval_every=30, eval_batches=4),
    # the lesson-sized run: 6.1M tokens, 17 minutes measured on this 2-core CPU with bf16 autocast
    "default": TrainConfig(),
    # chosen automatically with CUDA: a bigger model on more tokens
    "gpu": TrainConfig(chunk_chars=1800, n_layer=12, n_head=8, n_embd=512, n_inner=1536, block_size=512, batch_size=32,
                       max_steps=6000, lr=1e-3, min_lr=1e-4, eval_every=500),
}


def pick_profile(name: str | None = None) -> str:
    """LABKIT_PROFILE (`make test` sets `ci`), else `gpu` with CUDA, `default` otherwise."""
    name = name or os.environ.get("LABKIT_PROFILE")
    if name is None:
        name = "gpu" if torch.cuda.is_available() else "default"
    if name not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {name!r} (check LABKIT_PROFILE)")
    return name


# ---------------------------------------------------------------- data


def _data_dir(cfg: TrainConfig) -> Path:
    """Tokenized data is cached by the fields that shape it (and the Python whose stdlib is the corpus)."""
    key = {k: getattr(cfg, k) for k in ("corpus_bytes", "chunk_chars", "fim_rate", "spm_rate", "vocab_size", "seed")}
    key["python"] = sys.version.split()[0]
    return home() / "train-data" / hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def prepare_data(cfg: TrainConfig):
    """Tokenizer plus token arrays: train (FIM-transformed at fim_rate) and valid (plain text)."""
    from transformers import AutoTokenizer

    folder = _data_dir(cfg)
    if (folder / "valid.npy").is_file():
        tok = AutoTokenizer.from_pretrained(folder / "tokenizer")
        return tok, np.load(folder / "train.npy"), np.load(folder / "valid.npy")
    train_docs = corpus.stdlib_documents("train", max_bytes=cfg.corpus_bytes)
    valid_bytes = None if cfg.corpus_bytes is None else cfg.corpus_bytes // 10
    valid_docs = corpus.stdlib_documents("valid", max_bytes=valid_bytes)
    tok = train_tokenizer((d.text for d in train_docs), cfg.vocab_size)
    rng = random.Random(cfg.seed)
    pieces = [fim.transform(c, rng, cfg.fim_rate, cfg.spm_rate)
              for d in train_docs for c in corpus.chunks(d.text, cfg.chunk_chars)]
    train_ids = _encode(tok, pieces)
    valid_ids = _encode(tok, [c + fim.EOT for d in valid_docs for c in corpus.chunks(d.text, cfg.chunk_chars)])
    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(tmp / "tokenizer")
    np.save(tmp / "train.npy", train_ids)
    np.save(tmp / "valid.npy", valid_ids)
    try:
        tmp.rename(folder)
    except OSError:  # another process finished first: theirs is the same data
        shutil.rmtree(tmp, ignore_errors=True)
    return tok, train_ids, valid_ids


def _encode(tok, texts: list[str]) -> np.ndarray:
    ids = tok(texts, add_special_tokens=False).input_ids
    return np.fromiter((t for seq in ids for t in seq), dtype=np.uint16)


def batch(data: np.ndarray, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """batch_size random windows of block_size tokens; from a 2-D array (one sequence per row,
    e.g. labkit.train.icl's episodes), batch_size random rows."""
    if data.ndim == 2:
        rows = torch.randint(0, len(data), (cfg.batch_size,), generator=gen)
        return torch.from_numpy(data[rows.numpy()].astype(np.int64))
    starts = torch.randint(0, len(data) - cfg.block_size, (cfg.batch_size,), generator=gen)
    return torch.stack([torch.from_numpy(data[s : s + cfg.block_size].astype(np.int64)) for s in starts.tolist()])


# ---------------------------------------------------------------- model


def build_model(cfg: TrainConfig, vocab_size: int, eos_id: int) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=cfg.n_embd, intermediate_size=cfg.n_inner,
        num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head, num_key_value_heads=cfg.n_head,
        max_position_embeddings=cfg.block_size, tie_word_embeddings=True, rope_theta=10_000.0,
        bos_token_id=None, eos_token_id=eos_id, pad_token_id=eos_id)
    torch.manual_seed(cfg.seed)
    return LlamaForCausalLM(config)


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def evaluate(model, data: np.ndarray, cfg: TrainConfig, device, autocast) -> float:
    """Mean next-token loss on fixed windows of held-out text (the same windows every time)."""
    model.eval()
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(cfg.eval_batches):
        x = batch(data, cfg, gen).to(device)
        with autocast:
            losses.append(model(input_ids=x, labels=x).loss.item())
    model.train()
    return sum(losses) / len(losses)


@torch.no_grad()
def window_losses(model, data: np.ndarray, block_size: int, batch_size: int = 16) -> list[float]:
    """Next-token loss of every non-overlapping window of held-out data: the whole split, not a sample,
    so two models can be compared window by window."""
    model.eval()
    starts = list(range(0, len(data) - block_size, block_size))
    losses = []
    for i in range(0, len(starts), batch_size):
        rows = [torch.from_numpy(data[s : s + block_size].astype(np.int64)) for s in starts[i : i + batch_size]]
        x = torch.stack(rows).to(model.device)
        logits = model(input_ids=x).logits[:, :-1].float()
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none")
        losses += loss.mean(dim=1).tolist()
    return losses


# ---------------------------------------------------------------- loop


def train(cfg: TrainConfig, out_dir: str | Path, resume: bool = True, progress: bool = True,
          stop_after: int | None = None, data: tuple | None = None) -> Path | None:
    """Train (or resume) and save the final model and tokenizer in out_dir; return out_dir.

    data: (tokenizer, train ids, valid ids) to train on instead of the standard library's source.
    stop_after ends the run early at that step, leaving only the checkpoint (and returning None),
    as an interruption would."""
    out = Path(out_dir)
    ckpt = out / "checkpoint"
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    use_bf16 = cfg.bf16 and (device.type == "cuda" or torch.ops.mkldnn._is_mkldnn_bf16_supported())
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)

    hf_logging.disable_progress_bar()  # checkpoints would each print a "writing shards" bar
    tok, train_ids, valid_ids = data or prepare_data(cfg)
    model = build_model(cfg, len(tok), tok.eos_token_id).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(cfg.seed)
    state = {"step": 0, "history": [], "seconds": 0.0}
    if resume and (ckpt / "state.pt").is_file():
        saved = torch.load(ckpt / "state.pt", weights_only=False)
        model.load_state_dict(LlamaForCausalLM.from_pretrained(ckpt).state_dict())
        opt.load_state_dict(saved["optimizer"])
        gen.set_state(saved["generator"])
        state = saved["state"]

    n_params = sum(p.numel() for p in model.parameters())
    what = f"{train_ids.size:,} tokens of data" + ("" if data else f", fim_rate {cfg.fim_rate}")
    if progress:
        print(f"training {n_params / 1e6:.2f}M parameters on {device.type}{' with bf16 autocast' if use_bf16 else ''}: "
              f"{cfg.max_steps} steps x {cfg.tokens_per_step:,} tokens ({what})"
              + (f"; resuming at step {state['step']}" if state["step"] else ""), flush=True)

    model.train()
    bar = tqdm(range(state["step"], cfg.max_steps), initial=state["step"], total=cfg.max_steps,
               disable=not progress, desc="training", unit="step")
    t0 = started = time.perf_counter()
    first = state["step"]
    for step in bar:
        if stop_after is not None and step >= stop_after:
            _checkpoint(model, tok, opt, gen, {**state, "step": step}, ckpt)
            return None
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        x = batch(train_ids, cfg, gen).to(device)
        with autocast:
            loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        done = step + 1
        record = {"step": done, "train_loss": loss.item(), "lr": lr_at(step, cfg)}
        if done % cfg.eval_every == 0 or done == cfg.max_steps:
            record["valid_loss"] = evaluate(model, valid_ids, cfg, device, autocast)
            state.update(step=done, seconds=state["seconds"] + time.perf_counter() - t0)
            t0 = time.perf_counter()
            state["history"].append(record)
            _checkpoint(model, tok, opt, gen, state, ckpt)
        rate = cfg.tokens_per_step * (done - first) / (time.perf_counter() - started)
        bar.set_postfix(loss=f"{record['train_loss']:.3f}", tokens_per_s=f"{rate:,.0f}")
    state.update(step=cfg.max_steps, seconds=state["seconds"] + time.perf_counter() - t0)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    log = {"config": dataclasses.asdict(cfg), "parameters": n_params, "device": device.type, "bf16": use_bf16,
           "train_seconds": round(state["seconds"], 1), "history": state["history"]}
    (out / "train_log.json").write_text(json.dumps(log, indent=1))
    return out


def _checkpoint(model, tok, opt, gen, state: dict, ckpt: Path) -> None:
    """Write a resumable checkpoint atomically (a run killed mid-write keeps the previous one)."""
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    torch.save({"optimizer": opt.state_dict(), "generator": gen.get_state(), "state": state}, tmp / "state.pt")
    old = ckpt.with_name(ckpt.name + ".old")
    if ckpt.exists():
        ckpt.rename(old)
    tmp.rename(ckpt)
    if old.exists():
        shutil.rmtree(old)
