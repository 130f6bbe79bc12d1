"""The remote path as OpenAI stands today (issue 16): roles discovered from GET /v1/models by the catalog's
preference, LABKIT_MODEL_<ROLE> overrides, capabilities, the local fallback's one printed line, money (a
fine-tuning job confirmed before it spends, training tokens counted, follow's timeout), cleanup, and a catalog
that knows every model a lesson or Lab can name. The remote is tests/fake_openai.py over labkit's own app."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from types import SimpleNamespace

import nbformat
import openai
import pytest

import labkit
from labkit import catalog
from labkit.errors import ConfirmationRequiredError, FineTuningUnavailableError, FollowTimeoutError
from tests.conftest import MODEL
from tests.fake_openai import LISTED

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
TRAIN = labkit.DATA / "finetune" / "json_train.jsonl"
ROLE_ENV = [f"LABKIT_MODEL_{r.upper()}" for r in catalog.ROLES]


@pytest.fixture
def remote(fake_openai, monkeypatch):
    """Lab(...) on the fake OpenAI, with no role variables from the environment; restores the fake's list."""
    for name in ROLE_ENV:
        monkeypatch.delenv(name, raising=False)
    listed = dict(fake_openai.fake.listed)
    yield lambda **kw: labkit.Lab(backend="openai", base_url=fake_openai.base_url, api_key="sk-student", **kw)
    fake_openai.fake.listed = listed


def lines(capsys) -> list[str]:
    return [x for x in capsys.readouterr().out.splitlines() if x.strip()]


def test_roles_follow_the_catalog_preference_among_listed_models(remote, fake_openai):
    lab = remote()
    assert lab.models.chat == "gpt-4o-mini" == catalog.preference("chat")[0]
    assert lab.models.embedding == "text-embedding-3-small"
    assert (lab.models.completion, lab.models.insertion, lab.models.fine_tune) == (None, None, None)
    r = lab.client.chat.completions.create(model=lab.models.chat, max_tokens=3,
                                           messages=[{"role": "user", "content": "Hi"}])
    assert r.model == "gpt-4o-mini" and lab.usage.by_model["gpt-4o-mini"].cost_usd > 0, "priced as OpenAI's"
    # without gpt-4o-mini listed, the next preference present plays chat
    fake_openai.fake.listed = {k: v for k, v in LISTED.items() if not k.startswith("gpt-4o-mini")}
    assert remote().models.chat == "gpt-4.1-mini"


def test_models_past_their_shutdown_are_never_picked(remote, monkeypatch, capsys):
    """On 2027-01-14 gpt-4o-mini and gpt-4.1-mini shut down: chat falls to gpt-6-luna, a reasoning model the
    catalog does not know to return logprobs, so a cell that needs logprobs runs locally and says why."""
    monkeypatch.setattr(catalog, "today", lambda: dt.date(2027, 1, 14))
    lab = remote()
    assert lab.models.chat == "gpt-6-luna"
    assert not lab.capabilities.logprobs and "gpt-6-luna" in lab.capabilities.why_not("logprobs")
    capsys.readouterr()
    served = lab.for_role("chat", needs=("logprobs",))
    assert served.local and served.model == MODEL
    assert lines(capsys) == [f"{served.why}; this cell runs on the local model ({MODEL})."]
    assert "fine-tuning" in lab.capabilities.why_not("fine_tuning")  # 2027-01-06 has passed too


def test_role_variables_and_models_argument_override(remote, monkeypatch, capsys):
    monkeypatch.setenv("LABKIT_MODEL_CHAT", "gpt-6-luna")
    monkeypatch.setenv("LABKIT_MODEL_EMBEDDING", "local")
    lab = remote()
    assert lab.models.chat == "gpt-6-luna" and lab.models.embedding is None
    assert "LABKIT_MODEL_EMBEDDING=local" in lab.capabilities.why_not("embeddings")
    served = lab.for_role("embedding")
    assert served.local and served.model == "all-minilm-l6-v2"
    assert len(lines(capsys)) == 1
    assert remote(models={"chat": "gpt-4.1-mini"}).models.chat == "gpt-4.1-mini", "models= beats the variable"


def test_a_role_the_remote_cannot_fill_runs_locally_with_one_line(remote, capsys, lm):
    lab = remote()
    capsys.readouterr()
    chat = lab.for_role("chat")
    assert not chat.local and chat.client is lab.client and lines(capsys) == [], "served remotely: silent"

    writer = lab.for_role("completion", needs=("echo",))
    (line,) = lines(capsys)
    assert line == ("OpenAI shut down its last completions models (gpt-3.5-turbo-instruct, davinci-002, "
                    f"babbage-002) on 2026-09-28; this cell runs on the local model ({MODEL}).")
    client, model = writer
    assert writer.local and client is not lab.client and model == MODEL
    r = client.completions.create(model=model, prompt="Once upon a time", max_tokens=3, echo=True, temperature=0)
    assert r.choices[0].text.startswith("Once upon a time")
    assert lab.usage.by_model[MODEL].requests == 1, "the fallback counts into the same usage"

    assert lab.for_role("insertion").model == lab.local_lab().models.insertion
    assert "`suffix`" in lines(capsys)[0]
    assert lab.for_role("completion", fallback="skip") is None
    assert lines(capsys)[0].endswith("; this cell is skipped.")
    # and the cells that call OpenAI's retired names directly get OpenAI's own 404
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        lab.client.completions.create(model="gpt-3.5-turbo-instruct", prompt="x", max_tokens=2)
    with pytest.raises(openai.NotFoundError, match="chat model"):
        lab.client.completions.create(model="gpt-4o-mini", prompt="x", max_tokens=2)


def test_a_labkit_server_without_an_insertion_model_says_so_and_inserts_locally(server, capsys, lm):
    """The session's server holds the chat model only: it has `suffix` (by ranking) but no model for the
    insertion role, so the cell runs on the local FIM model with one line naming that, never a crash."""
    from labkit.engine.registry import INSERTION_MODEL, served_by_default

    teacher = labkit.Lab(backend="openai", base_url=server.base_url, api_key="class-key")
    assert teacher.models.insertion is None and teacher.capabilities.suffix
    capsys.readouterr()
    coder = teacher.for_role("insertion")
    said = lines(capsys)
    assert len(said) == 1 and "serves no `suffix` (insertion) model" in said[0], said
    assert said[0].endswith(f"this cell runs on the local model ({INSERTION_MODEL}).") and coder.local
    assert served_by_default() == [MODEL, INSERTION_MODEL], "`labkit serve` alone serves every lesson's roles"


def test_capabilities_of_each_kind_of_backend(remote, server, lm):
    local = labkit.Lab(backend="local")
    teacher = labkit.Lab(backend="openai", base_url=server.base_url, api_key="class-key")
    openai_like = remote()
    for lab in (local, teacher):
        c = lab.capabilities
        assert c.completions and c.suffix and c.echo and c.fine_tuning and c.embeddings and c.logprobs
        assert c.pooled_embeddings
        assert not c.billed
        for name in ("responses", "structured_outputs"):  # as the installed labkit server serves them
            assert getattr(c, name) or "labkit" in c.why_not(name)
    assert local.capabilities.responses == teacher.capabilities.responses
    assert local.capabilities.local_weights and not teacher.capabilities.local_weights
    c = openai_like.capabilities
    assert c.chat and c.embeddings and c.logprobs and c.responses and c.structured_outputs and c.billed
    assert not (c.completions or c.suffix or c.echo or c.fine_tuning or c.local_weights or c.pooled_embeddings)
    assert "2026-09-28" in c.why_not("completions") and "2027-01-06" in c.why_not("fine_tuning")
    assert c.why_not("chat") is None
    with pytest.raises(ValueError, match="known"):
        c.why_not("telepathy")
    assert "no: completions" in repr(c)


def test_a_remote_fine_tuning_job_needs_confirmation_before_it_spends(remote, fake_openai, monkeypatch, capsys):
    """Where an organisation can still fine-tune (LABKIT_MODEL_FINE_TUNE names the base), lab.fine_tune refuses
    to upload or start anything without confirm_cost_usd covering its estimate, and a raw jobs.create through
    lab.client is refused before it is sent. Confirmed, the job meets OpenAI's refusal (a 403 here), said
    plainly; cleanup() deletes what was uploaded."""
    monkeypatch.setenv("LABKIT_MODEL_FINE_TUNE", "gpt-4o-mini-2024-07-18")
    lab = remote()
    assert lab.capabilities.fine_tuning and lab.capabilities.billed
    before = {f.id for f in lab.client.files.list()}
    refused = fake_openai.fake.refused_jobs
    est = lab.estimate_fine_tune(TRAIN)
    assert est["usd_per_1m"] == 3.0 and est["epochs"] == 3 and est["usd"] == pytest.approx(
        est["tokens"] * 3 * 3.0 / 1e6)
    with pytest.raises(ConfirmationRequiredError, match=r"confirm_cost_usd=[\d.]+") as e:
        lab.fine_tune(TRAIN)
    assert e.value.estimate_usd == pytest.approx(est["usd"])
    with pytest.raises(ConfirmationRequiredError, match="less"):
        lab.fine_tune(TRAIN, confirm_cost_usd=est["usd"] / 2)
    with pytest.raises(ConfirmationRequiredError, match="Nothing was sent"):
        lab.client.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file="file-abc")
    assert {f.id for f in lab.client.files.list()} == before and fake_openai.fake.refused_jobs == refused

    with pytest.raises(FineTuningUnavailableError, match="403.*LABKIT_MODEL_FINE_TUNE=local"):
        lab.fine_tune(TRAIN, confirm_cost_usd=1.0)
    assert fake_openai.fake.refused_jobs == refused + 1
    uploaded = {f.id for f in lab.client.files.list()} - before
    assert len(uploaded) == 1
    assert set(lab.cleanup()) == uploaded
    assert {f.id for f in lab.client.files.list()} == before


def test_cleanup_deletes_the_files_a_lab_uploaded(server):
    lab = labkit.Lab(backend="openai", base_url=server.base_url, api_key="x")
    with labkit.Lab(backend="openai", base_url=server.base_url, api_key="x") as other:
        kept = other.client.files.create(file=TRAIN.open("rb"), purpose="fine-tune")
        other._files.clear()  # as if uploaded by someone else
    made = [lab.client.files.create(file=TRAIN.open("rb"), purpose="fine-tune").id for _ in range(2)]
    assert lab.cleanup() == made and lab.cleanup() == []
    for file_id in made:
        with pytest.raises(openai.NotFoundError):
            lab.client.files.retrieve(file_id)
    assert lab.client.files.retrieve(kept.id).id == kept.id, "only this Lab's uploads are deleted"
    lab.client.files.delete(kept.id)


def test_follow_gives_up_after_its_timeout():
    from labkit.finetune.follow import follow

    polls = []
    jobs = SimpleNamespace(
        retrieve=lambda job_id: polls.append(job_id) or SimpleNamespace(status="queued"),
        list_events=lambda job_id, **kw: SimpleNamespace(data=[], has_more=False))
    client = SimpleNamespace(fine_tuning=SimpleNamespace(jobs=jobs))
    with pytest.raises(FollowTimeoutError, match=r"ftjob-1 is still 'queued' after follow\(timeout=0.05\)") as e:
        follow(client, "ftjob-1", poll_seconds=0.01, plot=False, progress=False, timeout=0.05)
    assert (e.value.job_id, e.value.status) == ("ftjob-1", "queued") and 1 < len(polls) < 50
    assert isinstance(e.value, TimeoutError)


def _response(method: str, path: str, body: dict):
    data = json.dumps(body).encode()
    request = SimpleNamespace(method=method, url=SimpleNamespace(path=path), content=b"")
    return SimpleNamespace(request=request, status_code=200, headers={"content-type": "application/json"},
                           read=lambda: data, content=data)


def test_usage_counts_training_tokens_once_per_job():
    from labkit.usage import Usage, UsageHooks

    usage = Usage()
    hooks = UsageHooks(usage)
    job = {"object": "fine_tuning.job", "id": "ftjob-1", "model": "gpt-4o-mini-2024-07-18", "status": "running",
           "trained_tokens": None}
    hooks.on_response(_response("GET", "/v1/fine_tuning/jobs/ftjob-1", job))
    assert usage.by_model == {}, "counted when it has succeeded"
    done = {**job, "status": "succeeded", "trained_tokens": 100_000}
    hooks.on_response(_response("GET", "/v1/fine_tuning/jobs/ftjob-1", done))
    hooks.on_response(_response("GET", "/v1/fine_tuning/jobs", {"object": "list", "data": [done], "has_more": False}))
    u = usage.by_model["gpt-4o-mini-2024-07-18"]
    assert (u.jobs, u.training_tokens) == (1, 100_000) and usage.training_tokens == 100_000
    assert u.training_cost_usd == pytest.approx(0.30) == usage.cost_usd  # $3.00 per 1M trained tokens
    assert "100,000 trained tokens" in repr(usage)
    hooks.on_response(_response("GET", "/v1/fine_tuning/jobs/ftjob-2", {**done, "id": "ftjob-2", "model": MODEL}))
    assert usage.by_model[MODEL].training_tokens == 100_000 and usage.cost_usd == pytest.approx(0.30), "local: $0"


# --- the catalog against what the lessons and Lab can name -------------------------------------------------

OPENAI_NAME = re.compile(r"""["'](ft:[\w.:-]+|gpt-[\w.-]+|chatgpt-[\w.-]+|o\d(?:-[\w-]+)?|text-embedding-[\w-]+|"""
                         r"""(?:text-|code-)?(?:davinci|curie|babbage|ada)(?:-[\w-]+)?|"""
                         r"""text-(?:search|similarity)-[\w-]+|code-search-[\w-]+)["']""")


def code_cells() -> list[tuple[str, int, str]]:
    out = []
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        out += [(path.name, i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    return out


def named_models() -> dict[str, list[str]]:
    """OpenAI model names written as string literals in the lessons' code cells -> where."""
    found: dict[str, list[str]] = {}
    for name, i, source in code_cells():
        for model in OPENAI_NAME.findall(source):
            found.setdefault(model, []).append(f"{name} cell {i}")
    return found


def test_the_catalog_knows_every_model_a_lesson_or_lab_can_pick():
    roles_used = {m for _, _, src in code_cells() for m in re.findall(r"lab\.models\.(\w+)", src)}
    assert roles_used <= set(catalog.ROLES), f"lessons use roles Lab does not have: {roles_used - set(catalog.ROLES)}"
    candidates = {n for r in catalog.ROLES for n in catalog.preference(r)} | set(LISTED) | set(named_models())
    unknown = []
    for name in sorted(candidates):
        try:
            catalog.info(name)
        except labkit.RetiredModelError:
            assert name in catalog.RETIRED_2024
        except labkit.UnknownModelError:
            unknown.append(name)
    assert not unknown, f"models a lesson or Lab can name that the catalog does not know: {unknown}"


def test_no_lesson_cell_names_an_openai_model():
    found = named_models()
    assert not found, "code cells naming OpenAI models literally (use roles or labkit.catalog):\n" + "\n".join(
        f"  {model}: {', '.join(where)}" for model, where in sorted(found.items()))


def test_evals_run_falls_back_where_the_role_is_gone(remote, capsys, lm):
    """Lesson 03's completion-prompt eval on today's OpenAI: the local model answers, and one line says why."""
    from labkit import evals

    lab = remote()
    capsys.readouterr()
    items = [{"input": "I loved it", "ideal": "positive"}, {"input": "I hated it", "ideal": "negative"}]
    result = evals.run(lab, items, evals.Choice(["positive", "negative"]),
                       lambda x: f"Review: {x['input']}\nSentiment:", progress=False)
    assert result.model == MODEL and len(result.df) == 2
    (line,) = lines(capsys)
    assert "2026-09-28" in line and line.endswith(f"this cell runs on the local model ({MODEL}).")
    chat = evals.run(lab, items, evals.Choice(["positive", "negative"]),
                     lambda x: [{"role": "user", "content": x["input"]}], progress=False)
    assert chat.model == "gpt-4o-mini" and lines(capsys) == [], "chat with logprobs stays on the remote"
    with pytest.raises(ValueError, match="for_role"):  # a role the backend lacks is never swapped silently
        evals.run(lab, items, evals.ExactMatch(), lambda x: [{"role": "user", "content": x["input"]}],
                  model=lab.models.fine_tune, progress=False)
