"""Fine-tuning data checks: each fires on a crafted line, with its line number, and stays quiet on clean data."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from labkit import catalog
from labkit.finetune import default_epochs, validate


def example(i: int = 0, **extra) -> dict:
    return {"messages": [{"role": "system", "content": "Marv is a factual chatbot that is also sarcastic."},
                         {"role": "user", "content": f"What is {i} plus {i}?"},
                         {"role": "assistant", "content": f"{2 * i}, obviously.", **extra}]}


def write(tmp_path, lines: list, clean: int = 60):
    """clean good examples, then the given lines (dicts are dumped; strings written as they are)."""
    path = tmp_path / "data.jsonl"
    rows = [json.dumps(example(i)) for i in range(clean)] + [x if isinstance(x, str) else json.dumps(x) for x in lines]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_legacy_prompt_completion_lines_name_every_problem(tmp_path):
    report = validate(write(tmp_path, [{"prompt": "hi", "completion": "there"}]))
    assert report.counts == {"unrecognized_key": 2, "missing_messages": 1}


def test_clean_data_has_no_problems(tmp_path):
    report = validate(write(tmp_path, []))
    assert report.ok and report.problems == [] and report.examples == 60
    assert report.stats["duplicate examples"] == 0 and report.stats["examples without a system message"] == 0
    assert report.stats["messages per example"]["median"] == 3


BAD = [
    ("not_json", '{"messages": [}'),
    ("not_object", "[1, 2]"),
    ("missing_messages", {"tools": []}),
    ("empty_messages", {"messages": []}),
    ("message_not_object", {"messages": ["hello", {"role": "assistant", "content": "x"}]}),
    ("missing_role", {"messages": [{"content": "hi"}, {"role": "assistant", "content": "x"}]}),
    ("missing_content", {"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]}),
    ("unrecognized_key", {"messages": [{"role": "user", "content": "hi", "mood": "x"},
                                       {"role": "assistant", "content": "x"}]}),
    ("unrecognized_role", {"messages": [{"role": "narrator", "content": "hi"}, {"role": "assistant", "content": "x"}]}),
    ("bad_content", {"messages": [{"role": "user", "content": 42}, {"role": "assistant", "content": "x"}]}),
    ("bad_content", {"messages": [{"role": "user", "content": [{"type": "image_url"}]},
                                  {"role": "assistant", "content": "x"}]}),
    ("no_assistant_message", {"messages": [{"role": "user", "content": "hi"}]}),
    ("bad_weight", example(weight=0.5)),
    ("bad_weight", example(weight=True)),
    ("weight_on_non_assistant", {"messages": [{"role": "user", "content": "hi", "weight": 1},
                                              {"role": "assistant", "content": "x"}]}),
]


@pytest.mark.parametrize("kind, line", BAD, ids=[f"{k}-{i}" for i, (k, _) in enumerate(BAD)])
def test_each_check_fires_with_its_line_number(tmp_path, kind, line):
    report = validate(write(tmp_path, [line]))
    assert not report.ok
    assert [(p.kind, p.line) for p in report.problems] == [(kind, 61)], report.problems
    assert report.counts == {kind: 1}


def test_content_parts_weights_and_tool_calls_are_accepted(tmp_path):
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]},
                          {"role": "assistant", "content": "x", "weight": 0},
                          {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}]}
    assert validate(write(tmp_path, [parts])).ok


def test_token_limit_and_example_counts(tmp_path):
    long = example(content="word " * 5000)
    report = validate(write(tmp_path, [long]), model="gpt-3.5-turbo-0613")
    assert report.counts == {"too_many_tokens": 1} and report.problems[0].line == 61 and report.token_limit == 4096
    assert validate(write(tmp_path, [long]), model="gpt-3.5-turbo-0125").ok, "16,385 tokens fit it"
    assert validate(write(tmp_path, [], clean=9)).counts == {"too_few_examples": 1}
    few = validate(write(tmp_path, [], clean=20))
    assert few.ok and few.counts == {"few_examples": 1} and few.problems[0].severity == "warning"


def test_statistics_duplicates_and_missing_roles(tmp_path):
    no_system = {"messages": example(1)["messages"][1:]}
    report = validate(write(tmp_path, [example(0), no_system]))
    assert report.stats["duplicate examples"] == 1
    assert report.stats["examples without a system message"] == 1
    assert set(report.stats["total tokens per example"]) == {"min", "p5", "median", "mean", "p95", "max"}


@pytest.mark.parametrize("examples, epochs", [(10, 10), (30, 4), (34, 3), (50, 3), (8_333, 3), (8_334, 2),
                                              (30_000, 1), (3, 25)])
def test_default_epochs_follow_openais_rule(examples, epochs):
    assert default_epochs(examples) == epochs


def test_the_seeds_cost_example(tmp_path):
    report = validate(write(tmp_path, []), n_epochs=3)
    assert report.cost_usd == pytest.approx(report.billed_tokens * 3 / 1000 * 0.008)
    assert catalog.FINE_TUNING_2023.training_cost(100_000, 3) == pytest.approx(2.40)
    assert validate(write(tmp_path, []), model="gpt-4o-mini-2024-07-18").cost_usd is None, "no seed price for it"


def test_validate_never_crashes_on_fuzzed_files(tmp_path):
    rng = random.Random(0)
    good = json.dumps(example(1, weight=1))
    junk = ["null", "1e999", '"x"', "{}", '{"messages": null}', '{"messages": [null]}', '{"messages": [{"role": []}]}',
            '{"messages": [{"role": "user", "content": {"a": 1}}]}', "[" * 5000, "\x00\xff", '{"messages": "abc"}']
    for trial in range(200):
        lines = []
        for _ in range(rng.randint(0, 12)):
            chars = list(good)
            for _ in range(rng.randint(0, 6)):
                chars[rng.randrange(len(chars))] = rng.choice('{}[]",:0aZ \\\n')
            lines.append(rng.choice(["".join(chars), rng.choice(junk), good[: rng.randrange(len(good))]]))
        path = tmp_path / f"fuzz{trial}.jsonl"
        path.write_bytes("\n".join(lines).encode("utf-8", errors="surrogateescape") + bytes(rng.randrange(256)
                                                                                             for _ in range(3)))
        report = validate(path)
        json.dumps(report.to_dict())  # the machine-readable report is always JSON
        assert report.summary()


def test_cli_prints_a_summary_and_exits_1_on_errors(tmp_path):
    bad = write(tmp_path, ["not json"])
    done = subprocess.run([sys.executable, "-m", "labkit", "validate", str(bad)], capture_output=True, text=True)
    assert done.returncode == 1 and "not_json" in done.stdout and "line 61" in done.stdout
    done = subprocess.run([sys.executable, "-m", "labkit", "validate", str(write(tmp_path, [])), "--json"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and json.loads(done.stdout)["ok"] is True



def test_the_default_output_names_every_line_of_each_kind(tmp_path):
    """A user who fixes the first bad line must not learn of the next only on the next run."""
    no_reply = json.dumps({"messages": [{"role": "user", "content": "hi"}]})
    rows = [json.dumps(example(i)) for i in range(24)]
    for line in (13, 16, 21, 22, 23):  # 1-based: two lines apart, then a run of three
        rows[line - 1] = no_reply
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(rows) + "\n")
    report = validate(path)
    assert sorted(p.line for p in report.problems if p.kind == "no_assistant_message") == [13, 16, 21, 22, 23]
    row = next(x for x in report.summary().splitlines() if "no_assistant_message" in x)
    assert "lines 13, 16, 21-23;" in row, row
    done = subprocess.run([sys.executable, "-m", "labkit", "validate", str(path)], capture_output=True, text=True)
    assert "lines 13, 16, 21-23;" in done.stdout


def test_a_problem_of_the_whole_file_says_so(tmp_path):
    report = validate(write(tmp_path, [], clean=3))
    assert any(p.line is None for p in report.problems)
    assert "the file as a whole" in report.summary()

# ---------------------------------------------------------------- the trainer's data


def test_encode_trains_only_assistant_tokens_and_honours_weight():
    from transformers import AutoTokenizer

    from labkit.engine.registry import convert_smollm2
    from labkit.finetune.sft import IGNORE, encode

    tok = AutoTokenizer.from_pretrained(convert_smollm2(progress=False))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"},
                {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And Italy?"},
                {"role": "assistant", "content": "Rome.", "weight": 0}]
    ids, labels = encode(tok, messages, 1024)
    trained = tok.decode([t for t, label in zip(ids, labels) if label != IGNORE])
    assert trained.startswith("Paris.<|im_end|>") and "Rome" not in trained and "France" not in trained
    assert all(label in (IGNORE, t) for t, label in zip(ids, labels)), "a trained label is its own token"
    assert tok.decode(ids).count("<|im_start|>assistant") == 2
    short_ids, short_labels = encode(tok, messages, 10)
    assert len(short_ids) == len(short_labels) == 10


@pytest.mark.parametrize("name, kind, line", [
    ("broken_not_json", "not_json", 5), ("broken_missing_assistant", "no_assistant_message", 7),
    ("broken_bad_role", "unrecognized_role", 3), ("broken_bad_weight", "bad_weight", 9),
    ("broken_too_few", "too_few_examples", None),
])
def test_the_shipped_broken_files_fail_where_their_readme_says(name, kind, line):
    from labkit import DATA

    report = validate(DATA / "finetune" / f"{name}.jsonl")
    errors = [(p.kind, p.line) for p in report.problems if p.severity == "error"]
    assert errors == [(kind, line)]


@pytest.mark.parametrize("name", ["json_train", "misspell_train"])
def test_the_shipped_training_files_are_clean(name):
    from labkit import DATA

    report = validate(DATA / "finetune" / f"{name}.jsonl")
    assert report.ok and report.problems == [] and report.examples == 60
