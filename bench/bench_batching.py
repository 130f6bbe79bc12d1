"""Continuous batching on this machine: labkit's engine loop beside transformers' own continuous batching
(`model.generate_batch`, paged attention) on the same loaded model, the same prompts and greedy decoding.

    python bench/bench_batching.py [--prompts 30] [--tokens 32]

Prints generated tokens/s for each, one sequence at a time as the baseline, and how many answers agree.
Figures only, no assertions.
"""

from __future__ import annotations

import argparse
import threading
import time

from transformers import GenerationConfig

from labkit.engine import DEFAULT_MODEL, Generation, SamplingParams, load
from labkit.engine.loop import EngineLoop

TOPICS = ["photosynthesis", "the Roman empire", "prime numbers", "volcanoes", "the water cycle", "gravity", "bees",
          "the internet", "rainbows", "chess"]


def prompts(lm, count: int) -> list[list[int]]:
    return [lm.tokenizer.apply_chat_template([{"role": "user", "content": f"Explain {TOPICS[i % 10]} (#{i})."}],
                                             add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
            for i in range(count)]


def greedy(tokens: int) -> SamplingParams:
    return SamplingParams(max_tokens=tokens, temperature=0)


def one_at_a_time(lm, ids: list[list[int]], tokens: int) -> tuple[float, list[list[int]]]:
    t = time.perf_counter()
    out = [Generation(lm, x, greedy(tokens)).run()[0].token_ids for x in ids]
    return time.perf_counter() - t, out


def labkit_loop(lm, ids: list[list[int]], tokens: int) -> tuple[float, list[list[int]]]:
    loop = EngineLoop(lm, max_running=len(ids))
    out: list = [None] * len(ids)

    def run(k: int) -> None:
        out[k] = loop.run(Generation(lm, ids[k], greedy(tokens)))[0].token_ids

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(ids))]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t
    loop.stop()
    return elapsed, out


def transformers_batch(lm, ids: list[list[int]], tokens: int) -> tuple[float, list[list[int]]]:
    config = GenerationConfig(max_new_tokens=tokens, do_sample=False, eos_token_id=sorted(lm.eos_token_ids),
                              pad_token_id=lm.tokenizer.pad_token_id or 0)
    lm.model.set_attn_implementation("sdpa")
    t = time.perf_counter()
    results = lm.model.generate_batch(ids, generation_config=config, warmup=False)
    elapsed = time.perf_counter() - t
    by_id = sorted(results.items(), key=lambda kv: int(kv[0].rsplit("_", 1)[-1]))
    return elapsed, [list(r.generated_tokens) for _, r in by_id]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=30)
    ap.add_argument("--tokens", type=int, default=32)
    args = ap.parse_args()
    lm = load(DEFAULT_MODEL)
    ids = prompts(lm, args.prompts)
    Generation(lm, ids[0], greedy(4)).run()  # warm-up
    rows = []
    base_time, base = one_at_a_time(lm, ids[:5], args.tokens)
    rows.append(("one sequence at a time (5 prompts)", sum(map(len, base)) / base_time, "reference"))
    loop_time, looped = labkit_loop(lm, ids, args.tokens)
    same = sum(a == b for a, b in zip(base, looped[:5]))
    rows.append((f"labkit engine loop ({args.prompts} at once)", sum(map(len, looped)) / loop_time,
                 f"{same}/5 equal to one at a time"))
    try:
        hf_time, hf = transformers_batch(lm, ids, args.tokens)
        same = sum(a == b[: len(a)] or b == a[: len(b)] for a, b in zip(base, hf[:5]))
        rows.append((f"transformers generate_batch ({args.prompts})", sum(map(len, hf)) / hf_time,
                     f"{same}/5 equal to one at a time"))
    except Exception as e:  # a finding, printed: it may not run on this CPU or this int4 model
        rows.append(("transformers generate_batch", float("nan"), f"failed: {type(e).__name__}: {str(e)[:120]}"))
    print(f"{DEFAULT_MODEL}, {lm.description}; greedy, {args.tokens} new tokens per prompt\n")
    print(f"{'':44s} {'tokens/s':>9s}  answers")
    for name, rate, note in rows:
        print(f"{name:44s} {rate:9.1f}  {note}")


if __name__ == "__main__":
    main()
