"""labkit's own code paths raise no FutureWarning or DeprecationWarning from transformers or the openai SDK: what
they warn about is removed in a later release, and a fresh install after it would break every lesson.

The paths run in a fresh Python, so no warning is hidden because an earlier test already triggered it once
(transformers' `warning_once`, Python's once-per-location registry). Warnings that third-party code raises on
its own (at import, inside torch) are not labkit's and do not count."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent('''
    import json, logging, os, sys, traceback, warnings

    import openai, transformers
    import labkit

    HOMES = {name: os.path.dirname(m.__file__) + os.sep for name, m in
             (("labkit", labkit), ("transformers", transformers), ("openai", openai))}
    warnings.simplefilter("always")
    caught = []

    def show(message, category, filename, lineno, file=None, line=None):
        stack = [f.filename for f in traceback.extract_stack()[:-1]]  # who called warnings.warn, and who called them
        packages = {name for name, home in HOMES.items() for f in stack if f.startswith(home)}
        caught.append({"category": category.__name__, "file": filename, "line": lineno, "message": str(message),
                       "packages": sorted(packages)})

    warnings.showwarning = show
    logged = []

    class Keep(logging.Handler):
        def emit(self, record):
            logged.append({"logger": record.name, "message": record.getMessage()})

    for name in ("transformers", "openai"):
        logging.getLogger(name).addHandler(Keep(logging.WARNING))

    from labkit import evals
    from labkit.finetune.sft import Hyper, sft

    lab = labkit.Lab(backend="local")
    c, chat = lab.client, lab.models.chat
    msgs = [{"role": "user", "content": "Name a colour."}]
    c.chat.completions.create(model=chat, messages=msgs, max_tokens=4, seed=1, logprobs=True, top_logprobs=2)
    list(c.chat.completions.create(model=chat, messages=msgs, max_tokens=4, stream=True,
                                   stream_options={"include_usage": True}))
    c.completions.create(model=lab.models.completion, prompt="The sky is", max_tokens=3, n=2, best_of=3,
                         echo=True, logprobs=2, frequency_penalty=0.5, logit_bias={"13": -5}, seed=2)
    c.completions.create(model=lab.models.completion, prompt="def add(a, b):\\n", suffix="\\n\\nprint(add(1, 2))",
                         max_tokens=6, seed=3)
    c.embeddings.create(model=lab.models.embedding, input=["a cat", "a dog"])
    c.embeddings.create(model=chat + "-mean", input="a cat")
    items = [{"input": "I loved it", "ideal": "positive"}, {"input": "I hated it", "ideal": "negative"}]
    evals.run(lab, items, evals.Choice(["positive", "negative"]), prompt=lambda x: [{"role": "user",
              "content": x["input"] + " Positive or negative?"}], progress=False)
    sft(sys.argv[1], sys.argv[2], sys.argv[3], Hyper(n_epochs=1, batch_size=4), valid_file=sys.argv[2])
    print(json.dumps({"warnings": caught, "logged": logged}))
''')

WATCHED = ("FutureWarning", "DeprecationWarning", "PendingDeprecationWarning")


def labkits_deprecations(report: dict) -> list[str]:
    """Deprecations raised inside transformers or openai while labkit's code was on the stack (wherever
    their stacklevel points: nn.Module's __call__ hides the caller), and transformers' or openai's logged
    'deprecated ... will be removed' lines."""
    found = [f"{w['category']} ({', '.join(w['packages'])}) at {w['file']}:{w['line']}: {w['message']}"
             for w in report["warnings"] if w["category"] in WATCHED and "labkit" in w["packages"]
             and {"transformers", "openai"} & set(w["packages"])]
    found += [f"{r['logger']} logged: {r['message']}" for r in report["logged"]
              if "deprecat" in r["message"].lower() or "will be removed" in r["message"].lower()]
    return found


@pytest.mark.slow
def test_labkit_code_paths_raise_no_deprecation_from_transformers_or_openai(tmp_path, tiny_chat):
    from labkit import DATA

    train = tmp_path / "train.jsonl"
    train.write_text("".join((DATA / "finetune" / "json_train.jsonl").read_text().splitlines(True)[:8]))
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_chat), str(train), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert not labkits_deprecations(report), "\n".join(labkits_deprecations(report))


def test_the_filter_catches_a_deprecated_transformers_argument():
    """The check above can fail: what transformers 5.24 raised for past_key_values= counts, third-party noise not."""
    report = {"warnings": [
        {"category": "FutureWarning", "file": "/x/torch/nn/modules/module.py", "line": 1789,
         "packages": ["labkit", "transformers"],
         "message": "`past_key_values` is deprecated and will be removed in version 5.40.0 for "
                    "`LlamaForCausalLM.forward`. Use `cache` instead."},
        {"category": "DeprecationWarning", "file": "/x/torch/_tensor.py", "line": 1, "packages": ["labkit"],
         "message": "torch's own, under labkit"},
        {"category": "FutureWarning", "file": "/x/transformers/x.py", "line": 1, "packages": ["transformers"],
         "message": "transformers' own, at import"},
        {"category": "UserWarning", "file": "/x/transformers/x.py", "line": 1, "packages": ["labkit", "transformers"],
         "message": "not a deprecation"}],
        "logged": [{"logger": "transformers.modeling_utils", "message": "`torch_dtype` is deprecated! Use `dtype`!"}]}
    found = labkits_deprecations(report)
    assert len(found) == 2 and "past_key_values" in found[0] and "torch_dtype" in found[1], found
