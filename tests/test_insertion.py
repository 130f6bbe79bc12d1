"""`suffix` on /v1/completions through the official SDK, on a FIM model trained with the CI profile."""

from __future__ import annotations

import openai
import pytest

from labkit.server import LocalServer, create_app
from tests.conftest import MODEL

PREFIX, SUFFIX = "def add(a, b):\n", "\n\nprint(add(1, 2))\n"


@pytest.fixture(scope="module")
def fim(ci_model):
    with LocalServer(create_app([MODEL, str(ci_model)])) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0, timeout=120)
        yield client, ci_model.name


def insert(fim, **kw):
    client, name = fim
    return client.completions.create(model=name, prompt=PREFIX, suffix=SUFFIX, **kw)


def test_insertion_stops_on_end_of_text_or_length(fim):
    r = insert(fim, max_tokens=40, n=3, seed=1, temperature=1.0)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert all(c.finish_reason in ("stop", "length") for c in r.choices)
    assert all("<|fim" not in c.text for c in r.choices), "sentinels never leak into text"


def test_small_max_tokens_ends_with_length(fim):
    r = insert(fim, max_tokens=2, temperature=0, logit_bias={"0": -100})  # 0 is <|endoftext|>
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 2


def test_stop_and_best_of_combine_with_suffix(fim):
    r = insert(fim, max_tokens=30, temperature=1.0, seed=2, stop=["\n"], logit_bias={"0": -100})
    assert "\n" not in r.choices[0].text and r.choices[0].finish_reason == "stop"
    best = insert(fim, max_tokens=10, n=1, best_of=3, seed=3, logprobs=0)
    assert len(best.choices) == 1 and best.usage.completion_tokens > len(best.choices[0].logprobs.tokens)


def test_echo_returns_the_prompt_and_the_insertion(fim):
    r = insert(fim, max_tokens=5, temperature=0, echo=True)
    plain = insert(fim, max_tokens=5, temperature=0)
    assert r.choices[0].text == PREFIX + plain.choices[0].text


def test_usage_counts_the_fim_prompt(fim, ci_model):
    from transformers import AutoTokenizer

    from labkit.train.fim import insertion_prompt

    tok = AutoTokenizer.from_pretrained(ci_model)
    r = insert(fim, max_tokens=3, temperature=0)
    assert r.usage.prompt_tokens == len(tok(insertion_prompt(PREFIX, SUFFIX), add_special_tokens=False).input_ids)


@pytest.mark.parametrize("kwargs, param", [
    ({"model": MODEL}, "suffix"),  # SmolLM2 was never trained to insert
    ({"prompt": [1, 2, 3]}, "prompt"),
    ({"echo": True, "logprobs": 1}, "echo"),
])
def test_insertion_refusals_name_the_param(fim, kwargs, param):
    client, name = fim
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(**{"model": name, "prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 4, **kwargs})
    assert e.value.body["param"] == param
    if param == "suffix":
        assert name in e.value.body["message"], "the error names the models that can insert"
