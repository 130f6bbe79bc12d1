"""labkit installed as a package, not run from its clone: `pip install .` (not editable) into a clean virtual
environment carries what the server and the lessons need (the lessons' data, the FIM model it ships), says
plainly what is missing before `labkit setup`, and serves a chat answer through labkit.Lab() after it.

It installs through constraints.txt, as `make setup` does, so the wheels come from pip's cache when the
project's own venv was set up on this machine (about a minute and a half here). `make test-install` runs it, and
.ci/run after `make test`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import labkit, sys
from labkit.engine import INSERTION_MODEL
from labkit.engine.registry import resolve

assert labkit.__file__.startswith(sys.prefix), f"imported from {labkit.__file__}, not the install"
for name in ("fewshot/sentiment.jsonl", "finetune/json_train.jsonl", "embeddings/documents.jsonl"):
    assert (labkit.DATA / name).is_file(), f"labkit.DATA lacks {name}"
assert str(resolve(INSERTION_MODEL)[1]).startswith(sys.prefix), "the shipped FIM model is installed"
lab = labkit.Lab(backend="local")
r = lab.client.chat.completions.create(model=lab.models.chat, messages=[{"role": "user", "content": "Say hi"}],
                                       max_tokens=8, seed=0)
answer = r.choices[0].message.content
assert answer.strip() and r.usage.completion_tokens > 0, r
print("ANSWER", repr(answer))
"""


def run(args: list, cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}, **(env or {})}
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.install
def test_pip_install_dot_in_a_clean_venv_serves_a_chat_answer(tmp_path):
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    done = run([sys.executable, "-m", "venv", venv], tmp_path)
    assert done.returncode == 0, done.stderr
    source = tmp_path / "clone"  # pip builds in the tree it is given: a copy keeps build/ out of the clone
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "runs", "__pycache__"))
    done = run([python, "-m", "pip", "install", "-q", "-c", ROOT / "constraints.txt", "torch==2.13.0", source],
               tmp_path, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not list(venv.glob("lib/python*/site-packages/__editable__*")), "a real install, not an editable one"

    # before `labkit setup` (and with no converted weights in LABKIT_HOME) the missing piece is named
    before = run([python, "-c", "import labkit; labkit.Lab(backend='local')"], tmp_path,
                 env={"LABKIT_HOME": str(tmp_path / "empty-home")})
    assert before.returncode != 0, before.stdout
    assert "ModelNotAvailableError" in before.stderr and "run `labkit setup`" in before.stderr, before.stderr[-2000:]

    done = run([venv / "bin" / "labkit", "setup"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    done = run([python, "-c", CHECK], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ANSWER" in done.stdout, done.stdout
