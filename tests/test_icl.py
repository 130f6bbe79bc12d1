"""In-context learning grown from scratch: the data's shape, and that it (not the model size) decides."""

from __future__ import annotations

import numpy as np
import pytest

from labkit.train.icl import ICLConfig, accuracy_by_shots, control, majority_vote_accuracy, probe, sequences, train_icl

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


def test_in_context_learning_emerges_and_the_control_stays_at_chance(tmp_path):
    icl = train_icl(SMALL, tmp_path / "icl", steps=600, progress=False)
    fixed = train_icl(control(SMALL), tmp_path / "control", steps=600, progress=False)
    learner = accuracy_by_shots(icl, SMALL, shots=(0, 8), count=300)
    memorizer = accuracy_by_shots(fixed, SMALL, shots=(0, 8), count=300)
    assert learner[8] > 0.6 and learner[0] < 0.4, learner
    assert memorizer[8] < 0.4, f"the control cannot use a new mapping: {memorizer}"
    assert accuracy_by_shots(fixed, control(SMALL), shots=(0,), count=300, mapping="fixed")[0] > 0.6, \
        "but it knows its own mapping by heart, with no examples at all"
