"""The engine against references: 4-bit layers against the Q4_1 arithmetic, the served model
against the fp32 model transformers loads, and the sampler's determinism."""

from __future__ import annotations

import pytest
import torch

from labkit.engine import Generation, SamplingParams
from labkit.engine.quant import GROUP, Int4Linear, int4_kernel_available
from labkit.engine.registry import resolve
from tests.conftest import MODEL

needs_int4 = pytest.mark.skipif(not int4_kernel_available(), reason="torch has no int4 CPU kernel here")


def q4_1_weight(out_features: int, in_features: int, seed: int = 0) -> torch.Tensor:
    """A weight laid out as GGUF's Q4_1 stores it: per group of 32, w = d*q + m with q in 0..15."""
    g = torch.Generator().manual_seed(seed)
    n_groups = in_features // GROUP
    q = torch.randint(0, 16, (out_features, n_groups, GROUP), generator=g)
    q[..., 0], q[..., 1] = 0, 15  # llama.cpp's min/max rule puts both ends in every group
    d = torch.rand(out_features, n_groups, 1, generator=g).half().float() / 50
    m = -torch.rand(out_features, n_groups, 1, generator=g).half().float() / 5
    return (d * q + m).view(out_features, in_features)


@needs_int4
def test_int4_linear_reproduces_q4_1_weights():
    w = q4_1_weight(64, 128)
    layer = Int4Linear(_linear(w))
    # exact integers; scale and offset pass through bf16, so allow bf16's relative rounding of each
    assert torch.allclose(layer.dequantized(), w, atol=w.abs().max().item() * 2**-7)
    x = torch.randn(3, 128)
    assert torch.allclose(layer(x), x @ w.T, atol=0.05, rtol=0.02)


def _linear(w: torch.Tensor) -> torch.nn.Linear:
    layer = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
    with torch.no_grad():
        layer.weight.copy_(w)
    return layer


@needs_int4
def test_served_model_agrees_with_the_fp32_reference(lm):
    """Next-token predictions of the served model (int4/bf16, fp32 logits) against the fp32 model
    transformers makes of the same GGUF."""
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(resolve(MODEL)[1], dtype=torch.float32,
                                                     local_files_only=True).eval()
    text = ("Jupiter is the fifth planet from the Sun and the largest in the Solar System. def fibonacci(num):\n"
            "    if num <= 1:\n        return num\n    return fibonacci(num - 1) + fibonacci(num - 2)\n")
    ids = torch.tensor([lm.tokenizer(text).input_ids])
    with torch.inference_mode():
        ref = torch.log_softmax(reference(ids).logits[0].float(), -1)
        got = torch.log_softmax(lm.model(ids.to(lm.device)).logits[0].float().cpu(), -1)
    agree = (ref.argmax(-1) == got.argmax(-1)).float().mean().item()
    kl = (ref.exp() * (ref - got)).sum(-1).mean().item()
    assert agree >= 0.9, f"top-1 agreement with the fp32 model only {agree:.2f}"
    assert kl < 0.05, f"mean KL(fp32 || served) = {kl:.4f} nats"


def test_same_seed_same_text_and_n_rows_are_independent(lm):
    ids = lm.tokenizer("Once upon a time").input_ids
    params = SamplingParams(max_tokens=12, temperature=1.0, n=3, seed=5)
    first = [s.text for s in Generation(lm, ids, params).run()]
    again = [s.text for s in Generation(lm, ids, params).run()]
    assert first == again and len(set(first)) > 1


def test_greedy_n_rows_match_a_single_row(lm):
    ids = lm.tokenizer("The capital of France is").input_ids
    one = Generation(lm, ids, SamplingParams(max_tokens=8, temperature=0)).run()[0].text
    many = [s.text for s in Generation(lm, ids, SamplingParams(max_tokens=8, temperature=0, n=4)).run()]
    assert many == [one] * 4


def test_penalties_follow_openais_formula():
    from labkit.engine.sampling import adjust_logits

    logits = torch.zeros(1, 4)
    counts = torch.tensor([[0.0, 1.0, 3.0, 0.0]])
    bias = torch.tensor([0.0, 0.0, 0.0, 5.0])
    out = adjust_logits(logits, counts, bias, presence_penalty=0.5, frequency_penalty=0.25)
    assert out.tolist() == [[0.0, -0.75, -1.25, 5.0]]
