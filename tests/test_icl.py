"""In-context learning grown from scratch: the data's shape, and that it (not the model size) decides."""

from __future__ import annotations

import numpy as np
import pytest

from labkit.engine.registry import home
from labkit.train.icl import ICLConfig, accuracy_by_shots, control, majority_vote_accuracy, probe, sequences, train_pair

SMALL = ICLConfig(sequences=20_000)


def test_sequences_alternate_symbols_and_labels_with_per_sequence_mappings():
    data = sequences(SMALL, 400, seed=0)
    assert data.shape == (400, 2 * SMALL.pairs)
    symbols, labels = data[:, 0::2], data[:, 1::2] - SMALL.symbols
    assert symbols.max() < SMALL.symbols and labels.min() >= 0 and labels.max() < SMALL.labels
    assert all(len(set(row)) <= SMALL.distinct for row in symbols), "bursty: few symbols per sequence"
    assert (data == sequences(SMALL, 400, seed=0)).all(), "reproducible by seed"
    fixed = sequences(control(SMALL), 400, seed=0)

    def majority_label(rows, symbol):  # the label a symbol most often shows, over all sequences
        shown = rows[:, 1::2][rows[:, 0::2] == symbol] - SMALL.symbols
        return np.bincount(shown, minlength=SMALL.labels).max() / len(shown)

    assert majority_label(fixed, fixed[0, 0]) > 0.7, "the control's mapping is the same everywhere (up to noise)"
    assert majority_label(data, data[0, 0]) < 0.6, "per-sequence mappings disagree across sequences"


@pytest.mark.parametrize("shots", [0, 1, 4, 8])
def test_probe_shows_the_query_exactly_k_times(shots):
    ids, answers = probe(SMALL, shots, 50, seed=3)
    assert ids.shape == (50, 2 * SMALL.pairs - 1) and answers.max() < SMALL.labels
    for row in ids:
        assert (row[0:-1:2] == row[-1]).sum() == shots


def test_majority_vote_sets_the_yardstick():
    ideal = majority_vote_accuracy(SMALL, shots=(0, 1, 8), count=2000)
    assert abs(ideal[0] - 1 / SMALL.labels) < 0.05, "no examples: chance"
    assert abs(ideal[1] - (1 - SMALL.noise)) < 0.05, "one example: right unless its label was flipped"
    assert ideal[8] > 0.95


def test_in_context_learning_emerges_and_the_control_stays_at_chance():
    """Lesson 03's two models (its config, its 1000 steps, its folders): trained here side by side, or reused if
    this code already trained them, and lesson 03 then reuses them instead of training them a second time."""
    cfg = ICLConfig()
    icl, fixed = train_pair(cfg, home() / "runs", steps=1000, progress=False)
    learner = accuracy_by_shots(icl, cfg, shots=(0, 8), count=300)
    memorizer = accuracy_by_shots(fixed, cfg, shots=(0, 8), count=300)
    assert learner[8] > 0.6 and learner[0] < 0.4, learner
    assert memorizer[8] < 0.4, f"the control cannot use a new mapping: {memorizer}"
    assert accuracy_by_shots(fixed, control(cfg), shots=(0,), count=300, mapping="fixed")[0] > 0.6, \
        "but it knows its own mapping by heart, with no examples at all"


def test_a_model_trained_with_this_config_is_reused_and_another_is_not(tmp_path):
    tiny = ICLConfig(sequences=2_000)
    first = train_pair(tiny, tmp_path, steps=20, progress=False)[0]
    trained = (first / "model.safetensors").stat().st_mtime_ns
    assert train_pair(tiny, tmp_path, steps=20, progress=False)[0] == first
    assert (first / "model.safetensors").stat().st_mtime_ns == trained, "the same config and steps: reused"
    train_pair(tiny, tmp_path, steps=25, progress=False)
    assert (first / "model.safetensors").stat().st_mtime_ns != trained, "other steps: trained again"
