"""Decode speed of the local engine beside transformers' generate, and the memory-bandwidth bound; with
--llama-cpp, beside llama.cpp on the same GGUF and the same number of threads, measured in the same run.

    python bench/bench_decode.py [--tokens 64] [--model smollm2-135m-instruct] [--llama-cpp PYTHON]

PYTHON is an interpreter with llama-cpp-python installed (outside labkit's dependencies); on CPUs with AMX,
build it with AMX off (CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=ON ...").

Decoding one token reads every weight once, so tokens/s at batch 1 is bounded by
memory bandwidth / bytes of weights. Prints one table; no assertions.
"""

from __future__ import annotations

import argparse
import json
import subprocess
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


LLAMA_CPP = """
import json, sys, time
import numpy as np
from llama_cpp import Llama
path, threads, tokens, prompt_tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
llm = Llama(model_path=path, n_threads=threads, n_threads_batch=threads, n_ctx=2048, n_batch=512, verbose=False)
ids = llm.tokenize(sys.argv[5].encode(), add_bos=False)
llm.eval(ids)
llm.eval([int(np.argmax(llm.scores[llm.n_tokens - 1]))])  # warm-up
llm.reset()
llm.eval(ids)
t = time.perf_counter()
for _ in range(tokens):  # greedy, one token per step, as the engine's batch 1
    llm.eval([int(np.argmax(llm.scores[llm.n_tokens - 1]))])
decode = tokens / (time.perf_counter() - t)
long = (llm.tokenize(sys.argv[6].encode(), add_bos=False) * prompt_tokens)[:prompt_tokens]
llm.reset()
t = time.perf_counter()
llm.eval(long)
print(json.dumps({"decode": decode, "prefill": prompt_tokens / (time.perf_counter() - t)}))
"""
LONG_TEXT = "The quick brown fox jumps over the lazy dog while the students take notes. "


def llama_cpp(python: str, tokens: int, prompt_tokens: int) -> dict:
    from labkit.engine.registry import smollm2_gguf

    done = subprocess.run([python, "-c", LLAMA_CPP, str(smollm2_gguf()), str(torch.get_num_threads()), str(tokens),
                           str(prompt_tokens), PROMPT, LONG_TEXT], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@torch.inference_mode()
def prefill(lm, prompt_tokens: int) -> float:
    ids = (lm.tokenizer(LONG_TEXT).input_ids * prompt_tokens)[:prompt_tokens]
    x = torch.tensor([ids], device=lm.device)
    lm.model(x[:, :16], logits_to_keep=1)  # warm-up
    t = time.perf_counter()
    lm.model(x, logits_to_keep=1)
    return prompt_tokens / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompt-tokens", type=int, default=500, help="prompt length for the prefill figures")
    ap.add_argument("--llama-cpp", metavar="PYTHON", help="an interpreter with llama-cpp-python, to compare")
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
    fill = prefill(lm, args.prompt_tokens)
    rows.append((f"labkit prefill, {args.prompt_tokens}-token prompt", fill, ""))
    if args.llama_cpp:
        theirs = llama_cpp(args.llama_cpp, args.tokens, args.prompt_tokens)
        rows.append(("llama.cpp (same GGUF, same threads), batch 1", theirs["decode"],
                     f"labkit batch 1 is {one / theirs['decode']:.2f}x this"))
        rows.append((f"llama.cpp prefill, {args.prompt_tokens}-token prompt", theirs["prefill"],
                     f"labkit prefill is {fill / theirs['prefill']:.2f}x this"))

    if bw == bw:
        print(f"memory read bandwidth: {bw:.1f} GB/s (sum over a 1 GiB tensor)")
    print(f"{'':46s} {'tokens/s':>9s}  note ('bound' = bandwidth / weight bytes)")
    for name, tps, note in rows:
        print(f"{name:46s} {tps:9.1f}  {note}")
    base = rows[0][1]
    print(f"engine batch 1 vs transformers generate fp32: {one / base:.2f}x")


if __name__ == "__main__":
    main()
