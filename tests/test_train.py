"""labkit.train: corpus split, FIM transform, tokenizer, and the training loop's CI profile
(the same code the default profile runs), including resuming after an interruption."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest
import torch

from labkit.train import PROFILES, corpus, fim, train
from labkit.train.trainer import lr_at, prepare_data


def test_split_holds_out_whole_files_and_is_stable():
    assert corpus.split_of("json/decoder.py") == corpus.split_of("json/decoder.py")
    names = [f"pkg{i}/mod{i}.py" for i in range(2000)]
    shares = {s: sum(corpus.split_of(n) == s for n in names) / len(names) for s in corpus.SPLITS}
    assert 0.85 < shares["train"] < 0.95 and shares["valid"] > 0.02 and shares["eval"] > 0.02
    train_names = {d.name for d in corpus.stdlib_documents("train", max_bytes=200_000)}
    eval_names = {d.name for d in corpus.stdlib_documents("eval")}
    assert eval_names and not train_names & eval_names
    assert not any("/test/" in f"/{n}" for n in eval_names)


def test_chunks_cut_at_line_ends():
    text = "".join(f"line {i}\n" for i in range(100))
    pieces = corpus.chunks(text, 50)
    assert "".join(pieces) == text and all(p.endswith("\n") for p in pieces) and max(map(len, pieces)) <= 50


@pytest.mark.parametrize("seed", range(20))
def test_fim_transform_rearranges_without_losing_text(seed):
    text = "def add(a, b):\n    return a + b\n"
    out = fim.transform(text, random.Random(seed), fim_rate=1.0, spm_rate=0.5)
    assert out.startswith(fim.PRE) and out.endswith(fim.EOT)
    body = out[len(fim.PRE):-len(fim.EOT)]
    if body.startswith(fim.SUF):  # SPM: suffix, then prefix + middle
        suffix, rest = body[len(fim.SUF):].split(fim.MID)
        assert rest + suffix == text
    else:  # PSM: prefix, suffix, then middle
        prefix, rest = body.split(fim.SUF)
        suffix, middle = rest.split(fim.MID)
        assert prefix + middle + suffix == text


def test_fim_rate_zero_leaves_documents_plain():
    assert fim.transform("x = 1\n", random.Random(0), fim_rate=0.0) == "x = 1\n" + fim.EOT
    rng = random.Random(1)
    rate = sum(fim.transform("abc", rng, 0.7).startswith(fim.PRE) for _ in range(2000)) / 2000
    assert 0.65 < rate < 0.75


def test_cosine_schedule_warms_up_then_decays():
    cfg = PROFILES["default"]
    assert lr_at(0, cfg) < lr_at(cfg.warmup_steps - 1, cfg) == pytest.approx(cfg.lr)
    assert lr_at(cfg.max_steps - 1, cfg) == pytest.approx(cfg.min_lr, rel=1e-3)


def test_tokenizer_keeps_sentinels_whole():
    tok, train_ids, valid_ids = prepare_data(PROFILES["ci"])
    ids = tok(fim.insertion_prompt("def f(x):\n", "    return y\n"), add_special_tokens=False).input_ids
    assert ids[0] == tok.convert_tokens_to_ids(fim.PRE) and ids[-1] == tok.convert_tokens_to_ids(fim.MID)
    assert (train_ids == tok.convert_tokens_to_ids(fim.PRE)).sum() > 0, "FIM documents are in the training data"
    assert (valid_ids == tok.convert_tokens_to_ids(fim.PRE)).sum() == 0, "validation text is plain"


def test_ci_profile_trains_and_saves_a_transformers_model(ci_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log = json.loads((ci_model / "train_log.json").read_text())
    losses = [h["valid_loss"] for h in log["history"]]
    assert losses[-1] < losses[0], "validation loss falls"
    assert AutoTokenizer.from_pretrained(ci_model).convert_tokens_to_ids(fim.MID) == 2
    assert AutoModelForCausalLM.from_pretrained(ci_model).num_parameters() == log["parameters"]


def test_resume_continues_exactly(tmp_path):
    cfg = dataclasses.replace(PROFILES["ci"], max_steps=8, eval_every=4, warmup_steps=2)
    whole = train(cfg, tmp_path / "whole", progress=False)
    assert train(cfg, tmp_path / "split", progress=False, stop_after=5) is None  # interrupted after step 5
    resumed = train(cfg, tmp_path / "split", progress=False)
    from transformers import AutoModelForCausalLM

    a = AutoModelForCausalLM.from_pretrained(whole).state_dict()
    b = AutoModelForCausalLM.from_pretrained(resumed).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights equal an uninterrupted run's"


def test_infill_tasks_are_held_out_lines_in_place():
    from labkit.train.infill import exact, single_line_tasks

    tasks = single_line_tasks(12, seed=4)
    assert tasks == single_line_tasks(12, seed=4), "reproducible by seed"
    sources = {d.name: d.text for d in corpus.stdlib_documents("eval")}
    for t in tasks:
        assert t.source in sources and corpus.split_of(t.source) == "eval"
        assert t.prefix + t.middle + t.suffix in sources[t.source], "the three parts join back into the file"
        assert t.middle.startswith("\n") and t.middle.count("\n") == 1 and t.middle.strip()
        assert not t.prefix.endswith("\n") and t.suffix.startswith("\n"), "cut before newlines, not after"
        assert exact(t.middle, t) and exact(t.middle + "  ", t) and not exact(t.middle.strip(), t)


def test_parses_accepts_the_true_line_and_rejects_broken_ones():
    from labkit.train.infill import parses, single_line_tasks

    tasks = single_line_tasks(12, seed=4)
    assert all(parses(t.middle, t) for t in tasks)
    indent = [t.middle[: len(t.middle) - len(t.middle.lstrip())] for t in tasks]  # "\n" + spaces
    assert not any(parses(i + "x = (", t) for i, t in zip(indent, tasks)), "an unclosed bracket breaks the module"
    assert not any(parses(a, t) for t in tasks for a in ("", "\n   ", "\nx = 1\ny = 2", t.middle[1:])), \
        "blank, two lines, or no leading newline"
    assert sum(parses(i + "pass", t) for i, t in zip(indent, tasks)) >= 6, "parsing is not correctness"


def test_train_command_runs_the_ci_profile(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "cli-run"
    done = subprocess.run([sys.executable, "-m", "labkit", "train", "fim-code", "--profile", "ci", "--steps", "4",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "profile 'ci'" in done.stdout and (out / "model.safetensors").is_file()
    assert json.loads((out / "train_log.json").read_text())["history"][-1]["step"] == 4


def test_middle_loss_scores_the_true_line(ci_model):
    import math

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from labkit.train.infill import InfillTask, middle_loss, single_line_tasks

    model, tok = AutoModelForCausalLM.from_pretrained(ci_model).eval(), AutoTokenizer.from_pretrained(ci_model)
    tasks = single_line_tasks(5, context_chars=200)
    with_suffix, prefix_only = middle_loss(model, tok, tasks, True), middle_loss(model, tok, tasks, False)
    assert 0 < with_suffix < 20 and 0 < prefix_only < 20 and not math.isclose(with_suffix, prefix_only)
    garbled = [InfillTask(t.source, t.prefix, "\n" + "}{)(" * 5, t.suffix) for t in tasks]
    assert middle_loss(model, tok, garbled, True) > with_suffix, "a line that is not code costs more"
