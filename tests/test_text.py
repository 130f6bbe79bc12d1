"""TextStream: stop strings across token boundaries, held-back text, partial UTF-8."""

from __future__ import annotations

from labkit.engine.text import TextStream, token_bytes, token_str


def feed(lm, text: str, stop: list[str]):
    ts = TextStream(lm.tokenizer, stop)
    out = ""
    for t in lm.tokenizer(text).input_ids:
        out += ts.push(t)
        if ts.stopped:
            return out, ts
    return out + ts.flush(), ts


def test_stop_string_spanning_tokens_is_cut_and_never_streamed(lm):
    out, ts = feed(lm, "alpha beta END gamma", ["END gam"])
    assert ts.stopped and out == "alpha beta "


def test_no_stop_gives_the_whole_text(lm):
    out, ts = feed(lm, "alpha beta gamma", ["zzz"])
    assert not ts.stopped and out == "alpha beta gamma"


def test_partial_stop_prefix_is_held_back_until_decided(lm):
    ts = TextStream(lm.tokenizer, ["beta gamma"])
    shown = "".join(ts.push(t) for t in lm.tokenizer("alpha beta").input_ids)
    assert shown == "alpha ", "'beta' could start the stop string, so it waits"
    assert ts.flush() == "beta"


def test_multibyte_characters_are_whole(lm):
    out, _ = feed(lm, "café 🌳 naïve", [])
    assert out == "café 🌳 naïve"
    tree = lm.tokenizer("🌳").input_ids
    assert b"".join(token_bytes(lm.tokenizer, t) for t in tree) == "🌳".encode()
    if len(tree) > 1:  # a token holding part of a character shows its bytes, as OpenAI does
        assert token_str(lm.tokenizer, tree[0]).startswith("bytes:\\x")


def test_logprob_tokens_before_a_stop_after_multibyte_text_are_kept(lm):
    """Tokens of '😀' decode to half characters one at a time; they are still visible text."""
    ts = TextStream(lm.tokenizer, ["\n"])
    ids = lm.tokenizer("Hi 😀\nmore").input_ids
    for t in ids:
        ts.push(t)
        if ts.stopped:
            break
    assert ts.text == "Hi 😀"
    emoji_tokens = len(lm.tokenizer("Hi 😀").input_ids)
    assert ts.n_visible_tokens() == emoji_tokens
