"""The lessons' remote code path: a notebook run with the openai backend pointed, through OPENAI_BASE_URL, at
`labkit serve` in another process, as a class using its teacher's server runs it. The same cells a key sends
to OpenAI; only the base URL differs."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import openai
import pytest
from nbclient import NotebookClient

from labkit.engine import replay
from tests.conftest import REPLAY, labkit_serve, lesson_replay

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture(autouse=True)
def shared_runs(monkeypatch):
    """Like nbmake's kernels, these runs share seeded generations and fine-tuning runs with the suite's other
    runs of the same lessons (labkit.engine.replay); set before a `labkit serve` starts, so it shares them too."""
    lesson_replay(monkeypatch)


@pytest.fixture(scope="module")
def class_server(tmp_path_factory):
    """One `labkit serve` for the lessons a class runs against its teacher's server."""
    folder = tmp_path_factory.mktemp("class-server")
    env = {**os.environ}
    if REPLAY is not None:
        env[replay.ENV] = REPLAY
    with labkit_serve(["--data-dir", str(folder / "store")], folder / "serve.log", env=env) as (_, base_url):
        yield base_url


def run_remote(notebook: str, base_url: str, monkeypatch) -> nbformat.NotebookNode:
    for name, value in {"LABKIT_BACKEND": "openai", "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "sk-class",
                        "LABKIT_PROFILE": "ci"}.items():
        monkeypatch.setenv(name, value)  # the kernel inherits them
    nb = nbformat.read(NOTEBOOKS / notebook, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return nb


def test_lesson_04_fine_tunes_on_a_labkit_server_through_the_openai_backend(tmp_path, monkeypatch, lm):
    """The whole lesson over HTTP, and what its CI-sized job (60 examples, 1 epoch) does to SmolLM2: valid JSON
    on held-out prompts from at most 50% to at least 90%. The job may take every core (--fine-tune-threads): while it
    trains, the lesson only polls, and on 2 cores two threads train a step in 2.2 s where one takes 3.7."""
    serve = ["--data-dir", str(tmp_path / "store"), "--fine-tune-threads", str(os.cpu_count() or 1)]
    with labkit_serve(serve, tmp_path / "serve.log") as (_, base_url):
        nb = run_remote("04_fine_tuning.ipynb", base_url, monkeypatch)
        client = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0)
        jobs = client.fine_tuning.jobs.list().data
        models = [m.id for m in client.models.list()]
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert printed.startswith("fine-tuning smollm2-135m-instruct"), "the server's own model, no local fallback"
    assert "this cell runs on the local model" not in printed
    assert [j.status for j in jobs] == ["succeeded"], "the lesson's job ran on the server"
    assert f"succeeded {jobs[0].fine_tuned_model}" in printed
    assert jobs[0].fine_tuned_model not in models, "and the lesson deleted the model it made"
    # the behaviour the job changed: valid JSON on the 12 held-out prompts, base model then fine-tuned (1 epoch)
    rates = [float(x) for x in re.findall(r"accuracy ([\d.]+)% \(95% CI", printed)]
    base, tuned = rates[-2], rates[-1]
    assert base <= 50 and tuned >= 90, f"valid JSON {base}% -> {tuned}%"


def test_lesson_05_embeds_through_a_labkit_server_as_the_openai_backend(tmp_path, monkeypatch, lm):
    with labkit_serve(["--data-dir", str(tmp_path / "store")], tmp_path / "serve.log") as (_, base_url):
        monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "kernel"))  # an empty embedding cache: all over HTTP
        nb = run_remote("05_embeddings.ipynb", base_url, monkeypatch)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert printed.startswith("{'trained for similarity': 'all-minilm-l6-v2', "
                              "'LM hidden states': 'smollm2-135m-instruct-mean'}")
    assert "this cell runs on the local model" not in printed, "a teacher's server serves every role"
    assert (tmp_path / "kernel" / "embeddings.sqlite").is_file(), "the lesson's vectors came over HTTP, then the cache"


# ---------------------------------------------------------------- against OpenAI as it answers today


def printed_lines(nb) -> list[str]:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs).splitlines()


def test_lesson_01_on_openai_today_runs_its_completion_cells_locally_and_says_why(fake_openai, monkeypatch):
    nb = run_remote("01_completion_vs_chat.ipynb", fake_openai.base_url, monkeypatch)
    lines = printed_lines(nb)
    fallback = [x for x in lines if "this cell runs on the local model" in x]
    assert len(fallback) == 1 and "2026-09-28" in fallback[0], "one line, once, says why completions run locally"
    assert "chat model:       gpt-4o-mini" in lines, "chat stays on the remote"
    assert "OpenAI does not publish its chat template; run this lesson locally to see one." in lines


def test_lesson_05_on_openai_today_embeds_remotely_and_pools_locally(fake_openai, monkeypatch, tmp_path):
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "kernel"))
    nb = run_remote("05_embeddings.ipynb", fake_openai.base_url, monkeypatch)
    lines = printed_lines(nb)
    assert any(x.startswith("{'trained for similarity': 'text-embedding-3-small', 'LM hidden states': "
                            "'smollm2-135m-instruct-mean'}") for x in lines), lines[:5]
    assert sum("this cell runs on the local model" in x for x in lines) == 1, "pooled hidden states are labkit's"


def test_lesson_07_on_openai_today_runs_every_cell_on_the_remote(fake_openai, monkeypatch):
    nb = run_remote("07_structured_outputs_and_tools.ipynb", fake_openai.base_url, monkeypatch)
    lines = printed_lines(nb)
    assert "chat model: gpt-4o-mini" in lines
    assert not any("this cell runs on the local model" in x for x in lines), "OpenAI serves all of lesson 07"


@pytest.mark.parametrize(("notebook", "why"), [("02_insertion_with_suffix.ipynb", "2026-09-28"),
                                               ("03_few_shot_learning.ipynb", "2026-09-28"),
                                               ("04_fine_tuning.ipynb", "fine-tuning"),
                                               ("06_scaling_law_prediction.ipynb", None)])
def test_a_lesson_on_openai_today_runs_to_the_end_and_says_why_where_it_runs_locally(notebook, why, fake_openai,
                                                                                     monkeypatch):
    """What a student with a key meets today: no completions model (02's insertion, 03's completion prompts), no
    fine-tuning jobs (04): those cells run on the local model with a line that says why; 06 trains on this
    machine whatever the backend, so it has no such line."""
    lines = printed_lines(run_remote(notebook, fake_openai.base_url, monkeypatch))
    fallback = [x for x in lines if "this cell runs on the local model" in x]
    if why is None:
        assert not fallback, fallback
    else:
        assert fallback and all(why in x for x in fallback), fallback


@pytest.mark.parametrize("notebook", ["01_completion_vs_chat.ipynb", "02_insertion_with_suffix.ipynb",
                                      "03_few_shot_learning.ipynb", "06_scaling_law_prediction.ipynb",
                                      "07_structured_outputs_and_tools.ipynb"])
def test_a_lesson_runs_on_a_teachers_labkit_serve_with_every_cell_on_the_server(notebook, class_server,
                                                                               monkeypatch):
    lines = printed_lines(run_remote(notebook, class_server, monkeypatch))
    assert not any("this cell runs on the local model" in x for x in lines), "a teacher's server serves every role"
