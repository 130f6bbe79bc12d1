"""Lab: backend choice, both backends through the official SDK, usage and the budget cap."""

from __future__ import annotations

import openai
import pytest

import labkit
from labkit.lab import choose_backend
from tests.conftest import MODEL


@pytest.mark.parametrize("env, expected", [
    ({}, "local"),
    ({"OPENAI_API_KEY": "sk-x"}, "openai"),
    ({"OPENAI_API_KEY": "sk-x", "LABKIT_BACKEND": "local"}, "local"),
    ({"LABKIT_BACKEND": "openai"}, "openai"),
])
def test_backend_choice(monkeypatch, env, expected):
    for k in ("OPENAI_API_KEY", "LABKIT_BACKEND"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert choose_backend() == expected


def test_backend_name_is_checked(monkeypatch):
    monkeypatch.setenv("LABKIT_BACKEND", "gpu")
    with pytest.raises(ValueError, match="LABKIT_BACKEND"):
        choose_backend()


def test_local_lab_runs_the_sdk_against_its_own_server(lm):
    lab = labkit.Lab(backend="local")
    assert isinstance(lab.client, openai.OpenAI)
    assert lab.models.chat == lab.models.completion == MODEL
    assert lab.base_url.startswith("http://127.0.0.1:")
    r = lab.client.chat.completions.create(model=lab.models.chat, max_tokens=5, temperature=0,
                                           messages=[{"role": "user", "content": "Hi"}])
    u = lab.usage.by_model[MODEL]
    assert (u.requests, u.prompt_tokens, u.completion_tokens) == (1, r.usage.prompt_tokens, r.usage.completion_tokens)
    assert lab.usage.cost_usd == 0.0
    assert labkit.Lab(backend="local").server is lab.server, "Labs in one kernel share one server"


def test_openai_backend_against_a_labkit_server(server):
    """The notebooks' remote code path, pointed at a labkit server through base_url."""
    lab = labkit.Lab(backend="openai", base_url=server.base_url, api_key="unused")
    assert lab.backend == "openai" and lab.models.chat == MODEL, "roles come from the labkit server"
    r = lab.client.completions.create(model=lab.models.completion, prompt="Once upon", max_tokens=4,
                                      temperature=0)
    assert r.choices[0].text
    chunks = list(lab.client.chat.completions.create(
        model=lab.models.chat, messages=[{"role": "user", "content": "Hi"}], max_tokens=4, stream=True,
        stream_options={"include_usage": True}))
    streamed = chunks[-1].usage
    u = lab.usage.by_model[MODEL]
    assert u.requests == 2
    assert u.completion_tokens == r.usage.completion_tokens + streamed.completion_tokens


def test_stream_without_usage_is_estimated(server):
    lab = labkit.Lab(backend="openai", base_url=server.base_url, api_key="unused")
    pieces = [c.choices[0].delta.content for c in lab.client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=6, stream=True)
        if c.choices and c.choices[0].delta.content]
    u = lab.usage.by_model[MODEL]
    assert (u.requests, u.estimated, u.completion_tokens) == (1, 1, len(pieces))
    assert u.prompt_tokens == 0, "a local model's prompt cannot be counted with tiktoken: left at 0"
    assert "estimated" in repr(lab.usage)


def test_openai_backend_that_cannot_be_asked_follows_the_catalog(monkeypatch, capsys):
    """No network here: the model list cannot be fetched, so roles follow the catalog's preference unchecked,
    and a line says so."""
    for role in ("CHAT", "COMPLETION", "INSERTION", "EMBEDDING", "FINE_TUNE"):
        monkeypatch.delenv(f"LABKIT_MODEL_{role}", raising=False)
    lab = labkit.Lab(backend="openai", api_key="sk-test", base_url="https://api.openai.com/v1")
    assert "could not list the models" in capsys.readouterr().out
    assert lab.models.chat == "gpt-4o-mini" and lab.models.embedding == "text-embedding-3-small"
    assert lab.models.completion is None and not lab.capabilities.completions
    assert labkit.Lab(backend="openai", api_key="k", base_url="https://api.openai.com/v1",
                      models={"chat": "gpt-4o"}).models.chat == "gpt-4o"


def test_budget_refuses_before_sending(server):
    lab = labkit.Lab(backend="openai", base_url=server.base_url, api_key="unused", budget_usd=0.01)
    with pytest.raises(labkit.BudgetExceededError, match="budget"):
        # gpt-4: $60 per 1M output tokens, so 1,000 tokens could cost $0.06 > $0.01
        lab.client.chat.completions.create(model="gpt-4", max_tokens=1000,
                                           messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(labkit.BudgetExceededError):  # no max_tokens: gpt-4 may fill its 8k window
        lab.client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "Hi"}])
    assert lab.usage.by_model == {}, "nothing was sent, nothing was spent"
    # a local model is free, so the cap never blocks it
    lab.client.chat.completions.create(model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "Hi"}])
    assert lab.usage.by_model[MODEL].requests == 1


def test_usage_prices_from_catalog():
    from labkit.usage import Usage

    u = Usage()
    u.record("gpt-4o-mini", 1_000_000, 1_000_000)
    u.record("gpt-4o-mini", 10, 0)
    assert u.by_model["gpt-4o-mini"].requests == 2
    assert u.cost_usd == pytest.approx(0.15 + 0.6 + 10 * 0.15 / 1e6)
    assert "gpt-4o-mini" in repr(u)


def test_count_tokens_local_and_openai(lm):
    lab = labkit.Lab(backend="local")
    messages = [{"role": "user", "content": "Hello there"}]
    assert lab.count_tokens("Hello there") == len(lm.tokenizer("Hello there").input_ids)
    assert lab.count_tokens(messages) == len(lab.local_tokens(messages))
    assert "<|im_start|>user\nHello there<|im_end|>" in lab.render_chat(messages)
    assert lab.count_tokens("Hello there", model="gpt-4o") == 2


def test_two_servers_never_collide(lm, tmp_path):
    """Each kernel's server takes a port the OS hands out, bound before uvicorn starts."""
    from labkit.server import LocalServer, create_app

    with (LocalServer(create_app([MODEL], data_dir=tmp_path)) as a,
          LocalServer(create_app([MODEL], data_dir=tmp_path)) as b):
        assert a.port != b.port
        for srv in (a, b):
            c = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0)
            assert c.models.list().data[0].id == MODEL
    assert not a.thread.is_alive() and not b.thread.is_alive(), "stopped cleanly"
