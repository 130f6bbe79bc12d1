"""Decode speed of the local engine beside transformers' generate, and the memory-bandwidth bound.

    python bench/bench_decode.py [--tokens 64] [--model smollm2-135m-instruct]

Decoding one token reads every weight once, so tokens/s at batch 1 is bounded by
memory bandwidth / bytes of weights. Prints one table; no assertions.
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import AutoModelForCausalLM

from labkit.engine import Generation, SamplingParams, load
from labkit.engine.registry import resolve

PROMPT = "def fibonacci(num):"


def read_bandwidth_gbs(megabytes: int = 1024, repeats: int = 5) -> float:
    x = torch.ones(megabytes * 2**20 // 4)
    x.sum()
    t = time.perf_counter()
    for _ in range(repeats):
        x.sum()
    return repeats * x.numel() * 4 / (time.perf_counter() - t) / 1e9


def bytes_per_token(model) -> int:
    """Bytes of weights one decode step reads: every matrix a token passes through (an embedding
    lookup reads one row, so embeddings count only where they double as the output layer)."""
    from labkit.engine.quant import Int4Linear, RefinedHead

    total = 0
    for m in model.modules():
        if isinstance(m, Int4Linear):
            total += m.packed.numel() * m.packed.element_size() + m.scales_and_zeros.numel() * 2
        elif isinstance(m, torch.nn.Linear):
            total += m.weight.numel() * m.weight.element_size()
        elif isinstance(m, RefinedHead):
            total += 0  # its fast Linear is counted above; the fp32 copy is read for 64 rows only
    return total


def hf_generate(model, ids, tokens: int) -> float:
    t = time.perf_counter()
    model.generate(ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
    return tokens / (time.perf_counter() - t)


def engine(lm, ids, tokens: int, n: int) -> float:
    never_stop = {t: -100.0 for t in lm.eos_token_ids}  # every row runs the full length
    params = SamplingParams(max_tokens=tokens, temperature=0 if n == 1 else 1.0, n=n, seed=0,
                            logit_bias=never_stop)
    t = time.perf_counter()
    g = Generation(lm, ids, params)
    g.run()
    return g.completion_tokens / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    args = ap.parse_args()

    lm = load(args.model)
    ids = lm.tokenizer(PROMPT).input_ids
    rows: list[tuple[str, float, str]] = []
    bw = read_bandwidth_gbs() if lm.device.type == "cpu" else float("nan")
    if lm.device.type == "cuda":
        free, total = torch.cuda.mem_get_info()
        bw = float("nan")
    print(f"device {lm.device} ({torch.cuda.get_device_name() if lm.device.type == 'cuda' else 'cpu'}), "
          f"threads {torch.get_num_threads()}, model {lm.name}: {lm.description}")

    _, source = resolve(args.model)
    for dtype in (torch.float32, lm.dtype) if lm.dtype != torch.float32 else (torch.float32,):
        hf = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, local_files_only=True).to(lm.device).eval()
        x = torch.tensor([ids], device=lm.device)
        hf_generate(hf, x, 4)  # warm-up
        rows.append((f"transformers generate, {str(dtype)[6:]}, batch 1", hf_generate(hf, x, args.tokens),
                     f"bound {bw / (bytes_per_token(hf) / 1e9):.0f}" if bw == bw else ""))
        del hf
    engine(lm, ids, 4, 1)  # warm-up
    one = engine(lm, ids, args.tokens, 1)
    rows.append(("labkit engine, batch 1", one,
                 f"bound {bw / (bytes_per_token(lm.model) / 1e9):.0f}" if bw == bw else ""))
    eight = engine(lm, ids, args.tokens, 8)
    rows.append(("labkit engine, n=8 (aggregate)", eight, f"{eight / one:.1f}x batch 1"))

    if bw == bw:
        print(f"memory read bandwidth: {bw:.1f} GB/s (sum over a 1 GiB tensor)")
    print(f"{'':46s} {'tokens/s':>9s}  note ('bound' = bandwidth / weight bytes)")
    for name, tps, note in rows:
        print(f"{name:46s} {tps:9.1f}  {note}")
    base = rows[0][1]
    print(f"engine batch 1 vs generate fp32: {one / base:.2f}x; vs generate {str(lm.dtype)[6:]}: "
          f"{one / rows[-3][1]:.2f}x" if len(rows) == 4 else f"engine batch 1 vs generate: {one / base:.2f}x")


if __name__ == "__main__":
    main()
