"""4-bit weights for CPU decoding, in the layout the default model already has.

SmolLM2's GGUF stores every Linear weight as Q4_1: groups of 32 weights, each group a
4-bit integer per weight plus a scale d and an offset m (w = d*q + m). llama.cpp picks
m = min and d = (max - min) / 15 per group, so re-quantizing the dequantized weights with
the same rule finds the very same integers. torch's int4 CPU kernel computes
w = (q - 8) * scale + zero, so scale = d and zero = m + 8d carry Q4_1 over unchanged
(up to the bf16 rounding of d and m that the kernel needs).

Decoding reads every weight once per token, so 4.5 bits per weight instead of 16 makes
each step several times cheaper on a memory-bound CPU (bench/bench_decode.py).
"""

from __future__ import annotations

import torch
from torch import nn

GROUP = 32


def int4_kernel_available() -> bool:
    return hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu")


class Int4Linear(nn.Module):
    """A bias-free Linear whose weight is held as 4-bit groups of 32 (CPU only, bf16 activations)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        w = linear.weight.detach().float()
        self.out_features, self.in_features = w.shape
        groups = w.view(self.out_features, self.in_features // GROUP, GROUP)
        low, high = groups.amin(-1), groups.amax(-1)
        scale = ((high - low) / 15).clamp(min=torch.finfo(torch.float32).tiny)
        q = ((groups - low[..., None]) / scale[..., None]).round().clamp(0, 15).to(torch.int32)
        self.register_buffer("packed", torch.ops.aten._convert_weight_to_int4pack_for_cpu(
            q.view(self.out_features, self.in_features), 1))
        # [in/32, out, 2]: per group, the kernel's scale and zero point
        sz = torch.stack([scale, low + 8 * scale], dim=-1).transpose(0, 1).contiguous()
        self.register_buffer("scales_and_zeros", sz.to(torch.bfloat16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).to(torch.bfloat16)
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(flat, self.packed, GROUP, self.scales_and_zeros)
        return y.view(*x.shape[:-1], self.out_features).to(x.dtype)

    def dequantized(self) -> torch.Tensor:
        """The weight this layer multiplies by, as a float matrix (for tests)."""
        eye = torch.eye(self.in_features, dtype=torch.bfloat16)
        return self(eye).float().T

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bits=4, group={GROUP}"


def quantize_linears(model: nn.Module, skip: tuple[nn.Module, ...] = ()) -> int:
    """Swap every bias-free Linear whose input size divides into groups for an Int4Linear; return how many."""
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if (isinstance(child, nn.Linear) and child not in skip and child.bias is None
                    and child.in_features % GROUP == 0):
                setattr(parent, name, Int4Linear(child))
                swapped += 1
    return swapped


class RefinedHead(nn.Module):
    """The output layer: every logit in the fast dtype, the top `k` recomputed in fp32.

    bf16 logits keep 8 bits of mantissa: near 20 they step by 0.125, so greedy decoding meets
    ties and logprobs come out quantized. A full fp32 output layer costs 4x the time at n=8 on
    this CPU; the tokens anyone reads or samples at sensible temperatures are near the top,
    so only those are redone exactly (the rest keep bf16 precision, a few hundredths).
    """

    def __init__(self, head: nn.Linear, k: int = 64):
        super().__init__()
        self.k = k
        self.fast = head  # shares (ties) the embedding's weight in the model's own dtype
        self.register_buffer("exact_weight", head.weight.detach().float().clone(), persistent=False)
        self.exact_bias = None if head.bias is None else head.bias.detach().float()

    @property
    def weight(self) -> torch.Tensor:  # for code that reads lm_head.weight
        return self.fast.weight

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        logits = self.fast(h).float()
        top = logits.topk(min(self.k, logits.shape[-1]), dim=-1).indices
        exact = torch.einsum("...d,...kd->...k", h.float(), self.exact_weight[top])
        if self.exact_bias is not None:
            exact = exact + self.exact_bias[top]
        return logits.scatter(-1, top, exact)
