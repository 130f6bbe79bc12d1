"""labkit.engine.replay: a seeded generation asked again is replayed from disk, exactly, without the model;
anything that is not deterministic, or differs in any parameter, runs the model."""

from __future__ import annotations

import types

import pytest
import torch

from labkit.engine import Generation, SamplingParams, replay
from labkit.engine.loop import engine_loop

pytestmark = pytest.mark.slow


@pytest.fixture()
def cache_on(monkeypatch, tmp_path):
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path))
    monkeypatch.setenv(replay.ENV, "1")
    return tmp_path / "generations"


def generate(lm, prompt: str, **params) -> tuple[Generation, list, int]:
    """(the generation, its deltas, decode steps the loop ran for it)."""
    loop = engine_loop(lm)
    before = loop.steps_run
    gen = Generation(lm, lm.tokenizer.encode(prompt), SamplingParams(**params))
    deltas = list(loop.steps(gen))
    return gen, deltas, loop.steps_run - before


def seqs(gen: Generation):
    return [(s.text, s.token_ids, s.finish_reason, [(t.token_id, t.logprob, t.top) for t in s.logprobs])
            for s in gen.sequences]


def test_a_seeded_generation_is_replayed_exactly_without_the_model(lm, cache_on):
    params = dict(max_tokens=12, temperature=0.9, seed=7, n=2, logprobs=2, prompt_logprobs=True)
    first, deltas, steps = generate(lm, "Once upon a time", **params)
    assert steps > 0 and len(list(cache_on.rglob("*.pkl"))) == 1
    again, replayed, steps_again = generate(lm, "Once upon a time", **params)
    assert steps_again == 0, "the model did not run"
    assert seqs(again) == seqs(first) and again.completion_tokens == first.completion_tokens
    assert [[(d.index, d.text, d.finish_reason) for d in step] for step in replayed] == \
           [[(d.index, d.text, d.finish_reason) for d in step] for step in deltas], "a stream replays its deltas"
    assert [t and (t.token_id, t.logprob) for t in again.prompt_logprobs] == \
           [t and (t.token_id, t.logprob) for t in first.prompt_logprobs]


def test_greedy_is_kept_and_any_changed_parameter_runs_the_model(lm, cache_on):
    _, _, steps = generate(lm, "The capital of France is", max_tokens=6, temperature=0)
    assert steps > 0
    _, _, steps = generate(lm, "The capital of France is", max_tokens=6, temperature=0)
    assert steps == 0, "greedy decoding is deterministic: replayed"
    for changed in (dict(max_tokens=7, temperature=0), dict(max_tokens=6, temperature=0, stop=["."]),
                    dict(max_tokens=6, temperature=0, logit_bias={42: 5.0}),
                    dict(max_tokens=6, temperature=0.5, seed=1)):
        _, _, steps = generate(lm, "The capital of France is", **changed)
        assert steps > 0, f"{changed} is another request"
    _, _, steps = generate(lm, "The capital of Spain is", max_tokens=6, temperature=0)
    assert steps > 0, "another prompt"


def test_unseeded_sampling_and_a_cache_that_is_off_always_run_the_model(lm, cache_on, monkeypatch):
    for _ in range(2):
        _, _, steps = generate(lm, "Tell me a story", max_tokens=4, temperature=1.0)
        assert steps > 0, "no seed, temperature 1: a new draw each time"
    monkeypatch.setenv(replay.ENV, "0")
    for _ in range(2):
        _, _, steps = generate(lm, "Tell me a story", max_tokens=4, seed=3)
        assert steps > 0
    assert not list(cache_on.rglob("*.pkl")), "nothing stored"


def test_the_key_holds_the_weights():
    """A model trained anew under the same name (a fine-tuned folder, a retrained FIM model) is another key."""
    model = torch.nn.Linear(4, 4)
    lm = types.SimpleNamespace(name="tiny", model=model)
    before = replay.weights_digest(lm)
    assert replay.weights_digest(lm) == before
    other = types.SimpleNamespace(name="tiny", model=torch.nn.Linear(4, 4))
    with torch.no_grad():
        other.model.weight.copy_(model.weight)
        other.model.bias.copy_(model.bias)
        other.model.bias[0] += 1e-3
    assert replay.weights_digest(other) != before


def test_a_fine_tuning_run_is_replayed_with_its_events_and_checkpoints(tiny_chat, cache_on, tmp_path, monkeypatch):
    from labkit import DATA
    from labkit.finetune.sft import Hyper, sft

    train = tmp_path / "train.jsonl"
    train.write_text("".join(DATA.joinpath("finetune", "json_train.jsonl").read_text().splitlines(True)[:8]))
    from labkit.finetune import sft as module

    first_events, again_events = [], []
    first = sft(tiny_chat, train, tmp_path / "a", Hyper(n_epochs=2, batch_size=4), on_event=first_events.append)
    steps_run = []
    original = module._train
    monkeypatch.setattr(module, "_train", lambda *a, **k: steps_run.append(1) or original(*a, **k))
    again = sft(tiny_chat, train, tmp_path / "b", Hyper(n_epochs=2, batch_size=4), on_event=again_events.append)
    assert not steps_run, "replayed: no training"
    assert again == tmp_path / "b" / "epoch-2" and (again / "model.safetensors").is_file()
    strip = [{k: v for k, v in e.items() if k != "checkpoint"} for e in first_events]
    assert [{k: v for k, v in e.items() if k != "checkpoint"} for e in again_events] == strip
    assert [e["checkpoint"] for e in again_events if "checkpoint" in e] == \
           [str(tmp_path / "b" / f"epoch-{i}") for i in (1, 2)]
    assert first.name == again.name
    sft(tiny_chat, train, tmp_path / "c", Hyper(n_epochs=1, batch_size=4))
    assert steps_run, "another hyperparameter trains"
