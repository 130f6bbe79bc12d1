"""/v1/fine_tuning/jobs through the official SDK: the lifecycle in OpenAI's shapes, cancel, files that fail
validation, a server killed mid-job or a training process killed, and jobs that wait across a restart. What a
real job does to SmolLM2 is tested with lesson 04 (tests/test_remote_notebooks.py)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import openai
import pytest

from labkit import DATA
from labkit.finetune.jobs import JobStore
from labkit.finetune.store import FileStore
from labkit.server import LocalServer, create_app
from tests.conftest import labkit_serve

FT = DATA / "finetune"
TINY = "tiny-chat"


@pytest.fixture()
def api(tmp_path, tiny_chat, spec_client):
    """A server of tiny-chat; every files, jobs and models body it answers is checked against OpenAI's schemas."""
    with LocalServer(create_app([str(tiny_chat)], data_dir=tmp_path)) as srv:
        yield spec_client(srv.base_url)


def upload(client, name: str) -> str:
    return client.files.create(file=(name, (FT / name).read_bytes()), purpose="fine-tune").id


def wait(client, job_id: str, statuses: tuple[str, ...], timeout: float = 180, until=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses and (until is None or until(job)):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} is still {job.status} after {timeout} s")


def first_step_seen(client):
    return lambda job: any(e.type == "metrics" for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data)


def test_a_job_validates_trains_and_serves_its_model(api, tiny_chat, spec_client):
    train, valid = upload(api, "json_train.jsonl"), upload(api, "json_valid.jsonl")
    raw = api.fine_tuning.jobs.with_raw_response.create(model=TINY, training_file=train, validation_file=valid,
                                                        hyperparameters={"n_epochs": 2}, suffix="json", seed=3)
    job = raw.parse()
    assert raw.http_response.json()["method"] == {"type": "supervised", "supervised": {"hyperparameters": {
        "n_epochs": 2, "batch_size": "auto", "learning_rate_multiplier": "auto"}}}, "only the method in use"
    assert job.status == "validating_files" and job.fine_tuned_model is None and job.seed == 3
    job = wait(api, job.id, ("succeeded", "failed"))
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model == f"ft:{TINY}:labkit:json:{job.id.removeprefix('ftjob-')[:8]}"
    assert (job.hyperparameters.n_epochs, job.hyperparameters.batch_size) == (2, 4), "auto resolved when it ran"
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_chat)
    lines = [json.loads(x)["messages"] for x in (FT / "json_train.jsonl").read_text().splitlines()]
    assert job.trained_tokens == 2 * sum(len(tok.apply_chat_template(m, tokenize=True, return_dict=True)
                                             ["input_ids"]) for m in lines)

    events = list(api.fine_tuning.jobs.list_events(job.id, limit=7))  # the SDK pages through with `after`
    messages = [e.message for e in reversed(events)]
    expected = ["Created fine-tuning job", "Validating training file", "Validating validation file",
                "Files validated", "Fine-tuning job started", "Step 1/30", "Checkpoint created at step 15",
                "Step 30/30", "Checkpoint created at step 30", "New fine-tuned model created",
                "The job has successfully completed"]
    positions = [next(i for i, m in enumerate(messages) if m.startswith(x)) for x in expected]
    assert positions == sorted(positions), messages
    metrics = [e.data for e in reversed(events) if e.type == "metrics"]
    assert [m["step"] for m in metrics] == list(range(1, 31))
    assert sum("valid_loss" in m for m in metrics) >= 10 and metrics[-1]["total_steps"] == 30

    checkpoints = api.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in checkpoints] == [30, 15], "newest first"
    assert checkpoints[1].fine_tuned_model_checkpoint == f"{job.fine_tuned_model}:ckpt-step-15"
    assert checkpoints[0].metrics.valid_loss is not None

    assert job.fine_tuned_model in [m.id for m in api.models.list()]
    assert api.models.retrieve(job.fine_tuned_model).owned_by == "labkit"
    for name in (job.fine_tuned_model, checkpoints[1].fine_tuned_model_checkpoint):
        reply = api.chat.completions.create(model=name, messages=[{"role": "user", "content": "Hi"}], max_tokens=3)
        assert reply.model == name and reply.usage.completion_tokens <= 3
    csv = api.files.content(job.result_files[0]).text.splitlines()
    assert csv[0] == "step,train_loss,valid_loss" and len(csv) == 31

    assert api.models.delete(job.fine_tuned_model).deleted
    assert job.fine_tuned_model not in [m.id for m in api.models.list()]
    with pytest.raises(openai.NotFoundError):
        api.chat.completions.create(model=job.fine_tuned_model, messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(openai.NotFoundError):
        api.models.delete(job.fine_tuned_model)
    with pytest.raises(openai.PermissionDeniedError):
        api.models.delete(TINY)
    for route in ("POST /v1/files", "POST /v1/fine_tuning/jobs", "/events", "/checkpoints", "DELETE /v1/models/"):
        assert any(route in c for c in spec_client.checked), f"{route} was validated against the spec"


def test_jobs_list_newest_first_in_pages(api):
    broken = upload(api, "broken_bad_role.jsonl")
    ids = [api.fine_tuning.jobs.create(model=TINY, training_file=broken).id for _ in range(3)]
    page = api.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in page.data] == ids[::-1][:2] and page.has_more
    assert [j.id for j in api.fine_tuning.jobs.list(limit=2, after=ids[1]).data] == ids[:1]
    assert [j.id for j in api.fine_tuning.jobs.list(limit=1)] == ids[::-1], "the SDK walks every page"


@pytest.mark.parametrize("name, line, what", [
    ("broken_missing_assistant.jsonl", 7, "no assistant message"),
    ("broken_bad_weight.jsonl", 9, "weight must be 0 or 1"),
    ("broken_too_few.jsonl", None, "at least 10"),
])
def test_a_file_that_fails_validation_fails_the_job_as_openai_does(api, name, line, what):
    job = api.fine_tuning.jobs.create(model=TINY, training_file=upload(api, name))
    job = wait(api, job.id, ("failed", "succeeded"))
    assert job.status == "failed" and job.fine_tuned_model is None
    assert (job.error.code, job.error.param) == ("invalid_training_file", "training_file")
    assert what in job.error.message and (line is None or f"line {line}:" in job.error.message)
    last = api.fine_tuning.jobs.list_events(job.id, limit=1).data[0]
    assert last.level == "error" and last.message == job.error.message


def test_cancel_stops_a_running_job_and_keeps_nothing(api, tmp_path):
    job = api.fine_tuning.jobs.create(model=TINY, training_file=upload(api, "json_train.jsonl"),
                                      hyperparameters={"n_epochs": 50})
    wait(api, job.id, ("running",), until=first_step_seen(api))
    cancelled = api.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    deadline = time.monotonic() + 60
    while (tmp_path / "jobs" / job.id).exists() and time.monotonic() < deadline:  # the worker stops and cleans up
        time.sleep(0.2)
    assert not (tmp_path / "jobs" / job.id).exists()
    job = api.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "cancelled" and job.fine_tuned_model is None
    steps = [e.data["step"] for e in api.fine_tuning.jobs.list_events(job.id, limit=100).data if e.type == "metrics"]
    assert max(steps) < 750, "stopped long before its 750 steps"
    assert api.fine_tuning.jobs.list_events(job.id, limit=100).data[0].message == "Fine-tuning job cancelled"
    with pytest.raises(openai.BadRequestError) as e:
        api.fine_tuning.jobs.cancel(job.id)
    assert e.value.body["code"] == "invalid_state"
    assert not any(m.id.startswith("ft:") for m in api.models.list())


def training_process(job_id: str) -> int:
    """The pid of the process training job_id (python -m labkit.finetune.worker ROOT JOB_ID ...)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if b"labkit.finetune.worker" in args and job_id.encode() in args:
            return int(cmdline.parent.name)
    raise AssertionError(f"no training process for {job_id}")


def test_a_training_process_that_dies_fails_its_job_and_the_server_goes_on(api):
    """Jobs train in a process of their own: killing it ends the job, never the server."""
    job = api.fine_tuning.jobs.create(model=TINY, training_file=upload(api, "json_train.jsonl"),
                                      hyperparameters={"n_epochs": 50})
    wait(api, job.id, ("running",), until=first_step_seen(api))
    pid = training_process(job.id)
    assert pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    job = wait(api, job.id, ("failed",))
    assert job.error.code == "internal_error" and "exit code -9" in job.error.message, job.error
    reply = api.chat.completions.create(model=TINY, messages=[{"role": "user", "content": "Hi"}], max_tokens=3)
    assert reply.choices[0].message.content is not None, "the server still answers"

@pytest.mark.parametrize("kwargs, param", [
    ({"model": "gpt-4o-mini-2024-07-18"}, "model"),
    ({"training_file": "file-nope"}, "training_file"),
    ({"validation_file": "file-nope"}, "validation_file"),
    ({"hyperparameters": {"n_epochs": 0}}, "hyperparameters.n_epochs"),
    ({"hyperparameters": {"n_epochs": "3"}}, "hyperparameters.n_epochs"),
    ({"hyperparameters": {"learning_rate_multiplier": -1}}, "hyperparameters.learning_rate_multiplier"),
    ({"hyperparameters": {"epochs": 3}}, "hyperparameters.epochs"),
    ({"method": {"type": "dpo"}}, "method.type"),
    ({"method": {"type": "supervised"}, "hyperparameters": {"n_epochs": 1}}, "hyperparameters"),
    ({"suffix": "a:b"}, "suffix"),
    ({"suffix": "x" * 65}, "suffix"),
    ({"seed": -1}, "seed"),
    ({"extra_body": {"integrations": [{"type": "wandb", "wandb": {"project": "p"}}]}}, "integrations"),
])
def test_bad_job_requests_name_the_param(api, kwargs, param):
    base = {"model": TINY, "training_file": upload(api, "json_train.jsonl")}
    with pytest.raises(openai.BadRequestError) as e:
        api.fine_tuning.jobs.create(**{**base, **kwargs})
    assert e.value.body["param"] == param, e.value.body
    assert api.fine_tuning.jobs.list().data == [], "a refused request creates no job"


def test_a_model_without_chat_template_cannot_be_fine_tuned(tmp_path, tiny_chat, spec_client):
    plain = tmp_path / "plain"
    for f in tiny_chat.iterdir():
        (plain / f.name).parent.mkdir(exist_ok=True)
        (plain / f.name).write_bytes(f.read_bytes())
    config = json.loads((plain / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (plain / "tokenizer_config.json").write_text(json.dumps(config))
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    with LocalServer(create_app([str(plain)], data_dir=tmp_path / "store")) as srv:
        client = spec_client(srv.base_url)
        with pytest.raises(openai.BadRequestError) as e:
            client.fine_tuning.jobs.create(model="plain", training_file=upload(client, "json_train.jsonl"))
    assert e.value.body["param"] == "model" and "chat template" in e.value.body["message"]


def test_unknown_jobs_are_404(api):
    for call in (api.fine_tuning.jobs.retrieve, api.fine_tuning.jobs.cancel, api.fine_tuning.jobs.list_events,
                 api.fine_tuning.jobs.checkpoints.list):
        with pytest.raises(openai.NotFoundError) as e:
            call("ftjob-nope")
        assert e.value.body["code"] == "fine_tuning_job_not_found"


def test_a_job_left_waiting_runs_when_the_next_server_starts(tmp_path, tiny_chat, spec_client):
    files, jobs = FileStore(tmp_path), JobStore(tmp_path)
    train = files.add((FT / "json_train.jsonl").read_bytes(), "train.jsonl", "fine-tune")
    waiting = jobs.create(TINY, train["id"], None, {"n_epochs": 1}, None, 0)
    with LocalServer(create_app([str(tiny_chat)], data_dir=tmp_path)) as srv:
        client = spec_client(srv.base_url)
        assert wait(client, waiting["id"], ("succeeded", "failed")).status == "succeeded"


def test_a_job_whose_server_was_killed_ends_failed_not_running(tmp_path, tiny_chat, spec_client):
    serve = ["--model", str(tiny_chat), "--data-dir", str(tmp_path / "store")]
    with labkit_serve(serve, tmp_path / "serve.log") as (server, base_url):
        client = spec_client(base_url)
        job = client.fine_tuning.jobs.create(model=TINY, training_file=upload(client, "json_train.jsonl"),
                                             hyperparameters={"n_epochs": 50})
        wait(client, job.id, ("running",), until=first_step_seen(client))
        server.send_signal(signal.SIGKILL)
        server.wait()
    with labkit_serve(serve, tmp_path / "serve.log") as (_, base_url):
        client = spec_client(base_url)
        job = client.fine_tuning.jobs.retrieve(job.id)
        assert job.status == "failed" and job.error.code == "server_stopped", job
        assert "at step" in job.error.message
        assert client.fine_tuning.jobs.list().data[0].status == "failed"
