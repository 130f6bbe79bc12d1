"""Catalog facts and offline token counting."""

from __future__ import annotations

import socket

import pytest

from labkit import catalog, tokens
from labkit.errors import EncodingUnavailableError, RetiredModelError, UnknownModelError


@pytest.mark.parametrize("old, new", [
    ("davinci", "davinci-002"), ("ada", "babbage-002"), ("text-davinci-003", "gpt-3.5-turbo-instruct"),
    ("curie-instruct-beta", "gpt-3.5-turbo-instruct"), ("text-search-davinci-doc-001", "text-embedding-ada-002"),
    ("code-davinci-edit-001", "gpt-3.5-turbo"),
])
def test_retired_models_name_their_replacement(old, new):
    with pytest.raises(RetiredModelError, match=new) as e:
        catalog.info(old)
    assert e.value.replacement == new


def test_seed_prices_and_windows():
    assert catalog.info("gpt-4").context_window == 8_192
    assert catalog.cost("gpt-3.5-turbo-0125", 1_000_000, 1_000_000) == pytest.approx(2.0)
    assert catalog.cost("gpt-4-32k", 1000, 1000) == pytest.approx(0.18)
    assert catalog.info("gpt-4o-2024-11-20").name == "gpt-4o"  # a dated snapshot not listed shares its family's facts
    assert catalog.cost("gpt-4o-2024-05-13", 1_000_000) == pytest.approx(5.0), "a listed snapshot has its own price"
    assert catalog.cost("gpt-4o-2024-08-06", 1_000_000) == pytest.approx(2.5)
    assert catalog.info("ft:gpt-3.5-turbo-0125:labkit:x:1").context_window == 16_385
    # a fine-tuned model is billed at its own rates, not its base's
    assert catalog.cost("ft:gpt-4o-mini-2024-07-18:org::abc", 1_000_000, 1_000_000) == pytest.approx(0.30 + 1.20)
    assert catalog.cost("ft:gpt-3.5-turbo-0125:org::abc", 1_000_000) == pytest.approx(3.0)
    assert catalog.training_cost("gpt-4o-mini-2024-07-18", 1_000_000) == pytest.approx(3.0)
    # the seed's fine-tuning example: 100,000 tokens x 3 epochs at $0.008/1K
    assert catalog.FINE_TUNING_2023.training_cost(100_000, 3) == pytest.approx(2.40)
    with pytest.raises(UnknownModelError):
        catalog.info("no-such-model")


def test_every_model_says_where_its_figures_come_from():
    assert all(m.source for m in catalog.MODELS.values())


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """An empty tiktoken cache and no sockets: the encodings must come from installed packages."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    tokens.encoding.cache_clear()

    def refuse(*a, **k):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    yield
    tokens.encoding.cache_clear()


def test_cl100k_offline(no_network):
    enc = tokens.encoding("cl100k_base")
    assert enc.encode("hello world") == [15339, 1917]
    assert tokens.count("tiktoken is great!", "gpt-3.5-turbo") == 6


def test_o200k_offline(no_network):
    enc = tokens.encoding("o200k_base")
    assert enc.encode("hello world") == [24912, 2375]
    assert tokens.count("hello world, this is gpt-4o", "gpt-4o-mini") == 10


def test_unavailable_encoding_says_so(no_network):
    with pytest.raises(EncodingUnavailableError, match="offline"):
        tokens.encoding("p50k_base")
    with pytest.raises(EncodingUnavailableError, match="local model"):
        tokens.encoding_for_model("smollm2-135m-instruct")


def test_chat_message_overhead(no_network):
    messages = [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "Hi", "name": "ann"}]
    enc = tokens.encoding("o200k_base")
    body = sum(len(enc.encode(v)) for m in messages for v in m.values())
    assert tokens.count_messages(messages, "gpt-4o") == body + 3 * len(messages) + 3 + 1  # +1 for the name


def test_shutdowns_count_from_today(monkeypatch):
    """A model is retired once its shutdown date has passed: the same name is served the day before."""
    import datetime as dt

    from labkit.errors import RetiredModelError

    monkeypatch.setattr(catalog, "today", lambda: dt.date(2026, 9, 27))
    catalog.check_not_retired("gpt-3.5-turbo-instruct")
    monkeypatch.setattr(catalog, "today", lambda: dt.date(2026, 9, 28))
    with pytest.raises(RetiredModelError, match="2026-09-28") as e:
        catalog.check_not_retired("gpt-3.5-turbo-instruct")
    assert e.value.replacement
    catalog.check_not_retired("gpt-4o-mini")
    assert catalog.info("gpt-4").context_window == 8_192, "a shut-down model's facts stay (lessons price history)"
    with pytest.raises(RetiredModelError, match="base model 'gpt-4o-mini-2024-07-18'"):
        catalog.check_not_retired("ft:gpt-4o-mini-2024-07-18:org::x", today=dt.date(2027, 1, 14))
    assert "gpt-4o-mini" in catalog.retired(dt.date(2027, 1, 14)) and "gpt-4o-mini" not in catalog.retired(
        dt.date(2027, 1, 13))
    assert catalog.fine_tuning_status(dt.date(2026, 5, 6)) is None
    assert "2027-01-06" in catalog.fine_tuning_status(dt.date(2026, 11, 30))


def test_every_figure_names_its_source():
    """Each model's price, window, training price, fine-tuned price, features and shutdown name a source; a
    null figure is allowed only where its source says none was found."""
    raw = catalog._data()
    for d in raw["models"]:
        for figure, key in d["sources"].items():
            assert key in raw["sources"], f"{d['name']}: {figure} names an unknown source {key!r}"
        assert d["shutdown"] is None or "shutdown" in d["sources"], d["name"]
        if d.get("training_per_1m", 0) is None:
            assert d["sources"]["training"] == "no-training-price", d["name"]
        for role_models in raw["roles"].values():
            assert all(name in catalog.MODELS for name in role_models)


def test_replacements_lead_to_a_served_model():
    import datetime as dt

    on = dt.date(2026, 11, 30)
    assert catalog.replacements("text-davinci-003", on) == ["gpt-3.5-turbo-instruct", "gpt-5.6-terra"]
    assert catalog.replacements("text-davinci-003", dt.date(2026, 9, 27)) == ["gpt-3.5-turbo-instruct"]
    assert catalog.replacements("gpt-4o-mini", on) == []
    for old in catalog.retired(on):
        chain = catalog.replacements(old, on)
        assert chain and not catalog.info(chain[-1]).is_shut_down(on), f"{old} -> {chain}"
