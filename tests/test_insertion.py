"""`suffix` on /v1/completions through the official SDK, on a FIM model trained with the CI profile."""

from __future__ import annotations

import openai
import pytest

from labkit.engine import load
from labkit.engine.ranking import CANDIDATES, cut_points, suffix_logprobs
from labkit.server import LocalServer, create_app
from tests.conftest import MODEL

PREFIX, SUFFIX = "def add(a, b):\n", "\n\nprint(add(1, 2))\n"


@pytest.fixture(scope="module")
def fim(ci_model, tmp_path_factory):
    with LocalServer(create_app([MODEL, str(ci_model)], data_dir=tmp_path_factory.mktemp("store"))) as srv:
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
    ({"model": MODEL, "stream": True}, "stream"),  # SmolLM2 ranks whole candidates: nothing to stream
    ({"prompt": [1, 2, 3]}, "prompt"),
    ({"echo": True, "logprobs": 1}, "echo"),
])
def test_insertion_refusals_name_the_param(fim, kwargs, param):
    client, name = fim
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(**{"model": name, "prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 4, **kwargs})
    assert e.value.body["param"] == param


# ---------------------------------------------------------------- SmolLM2: sample, then rank by the suffix


def test_cut_points_are_sentence_and_line_ends():
    assert cut_points("Hi. I moved.\nself.x = 1") == [3, 12, 23]
    assert cut_points("\n    x = 1\n    y = 2\n") == [10, 20, 21], "before each newline (not the leading one)"
    assert cut_points("no end") == [6]


def test_the_suffix_prefers_the_middle_that_leads_to_it():
    lm = load(MODEL)
    tok = lm.tokenizer
    prefix = tok("The capital of France is").input_ids
    middles = [tok(m, add_special_tokens=False).input_ids for m in (" Paris.", " a small fish.")]
    suffix = tok(" The Eiffel Tower stands in this city.", add_special_tokens=False).input_ids
    paris, fish = suffix_logprobs(lm, prefix, middles, suffix)
    assert paris > fish
    alone = suffix_logprobs(lm, prefix, middles[:1], suffix, batch_size=1)[0]
    assert alone == pytest.approx(paris, abs=0.05), "padding in a batch does not change a row's score"


def test_smollm2_inserts_by_ranking_candidates(fim):
    client, _ = fim
    kw = {"model": MODEL, "prompt": "I went to college at Boston University. After getting my degree,",
          "suffix": " I've gotten many compliments on my new hair!", "max_tokens": 24, "temperature": 1.0, "seed": 4}
    r = client.completions.create(n=2, best_of=4, logprobs=0, **kw)
    assert len(r.choices) == 2 and all(c.finish_reason in ("stop", "length") for c in r.choices)
    assert r.usage.completion_tokens >= sum(len(c.logprobs.tokens) for c in r.choices), "every candidate is billed"
    for c in r.choices:
        if c.text.isascii():
            assert "".join(c.logprobs.tokens) == c.text, "a cut candidate keeps the logprobs of what it kept"
        if c.finish_reason == "stop" and c.text:  # the model ended it, or it was cut at a sentence end
            assert c.text[-1] in ".!?" or len(c.logprobs.tokens) < 24
    no_end = {str(t): -100 for t in load(MODEL).eos_token_ids}
    default = client.completions.create(**{**kw, "max_tokens": 3, "logit_bias": no_end})
    assert default.usage.completion_tokens == 3 * CANDIDATES, "without best_of, several candidates are drawn"


def test_ranking_works_from_a_one_token_prompt(fim):
    client, _ = fim
    r = client.completions.create(model=MODEL, prompt="Hello", suffix=" world.", max_tokens=4, best_of=2, seed=0)
    assert len(r.choices) == 1 and r.usage.prompt_tokens == 1


# ---------------------------------------------------------------- lesson 02's short gaps (labkit.insertion)


def test_a_good_middle_holds_the_answer_and_ends_where_the_suffix_begins():
    from labkit.insertion import GAPS, good

    gaps = {g.name: g for g in GAPS}
    assert good(" Wednesday", gaps["weekdays"])
    assert not good(" Wednesday\n4. Thursday", gaps["weekdays"]), "runs on into the suffix's line"
    assert not good(" Sunday", gaps["weekdays"])
    assert good(" raining.", gaps["umbrella"])
    assert not good(" raining, and then", gaps["umbrella"]), "the suffix starts a sentence: the middle ends one"
    assert not good(" raining. Then she left.", gaps["umbrella"]), "one sentence, not two"
    assert good(" are playful animals.", gaps["animals"]) and not good(" are playful.", gaps["animals"])
    assert not good("", gaps["area"]) and good(" width * height", gaps["area"])


def test_every_gap_s_suffix_starts_where_the_server_cuts_a_middle():
    from labkit.insertion import FEWER_CLUES, GAPS

    for g in GAPS + FEWER_CLUES:
        assert g.suffix.startswith("\n") or (g.suffix.startswith(" ") and g.suffix[1:2].strip()), g.name
    assert {g.name for g in FEWER_CLUES} <= {g.name for g in GAPS}


def test_sweep_cuts_prefix_only_continuations_and_counts_by_finish_reason():
    import types

    from labkit.insertion import GAPS, by_finish, rate, sweep

    sent = []

    def create(**kw):
        sent.append(kw)
        text = " Wednesday\n4. Thursday" if "suffix" not in kw else (" Wednesday" if kw["seed"] else " Sunday")
        return types.SimpleNamespace(choices=[types.SimpleNamespace(text=text, finish_reason="stop" if kw["seed"]
                                                                    else "length")])

    served = types.SimpleNamespace(model="m", client=types.SimpleNamespace(
        completions=types.SimpleNamespace(create=create)))
    plain = sweep(served, GAPS[:1], seeds=range(2), suffix=False, max_tokens=4)
    assert [r["text"] for r in plain] == [" Wednesday"] * 2 and rate(plain) == 1.0
    assert all("suffix" not in kw and kw["max_tokens"] == 4 for kw in sent)
    ranked = sweep(served, GAPS[:1], seeds=range(2), best_of=3)
    assert sent[-1]["suffix"] == GAPS[0].suffix and sent[-1]["best_of"] == 3
    assert by_finish(ranked) == {"length": (0, 1), "stop": (1, 1)} and rate(ranked) == 0.5
