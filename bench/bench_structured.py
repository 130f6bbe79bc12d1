"""What enforcing a JSON schema costs: the engine's decode speed with and without a grammar, side by side in
one run (free and constrained generations alternate, so both see the same machine), and the mask's own time.

    python bench/bench_structured.py [--rounds 5] [--tokens 48] [--n 1,8]

Each round runs the same chat prompt free and constrained (lesson 07's schema: answer + confidence), with the
same seed; tokens/s counts the tokens each generated. The constrained text ends where the schema does, so its
runs are shorter; the figure to read is tokens/s and the ratio. Prints one table; no assertions.
"""

from __future__ import annotations

import argparse
import statistics
import time

from labkit.engine import DEFAULT_MODEL, Generation, SamplingParams, load
from labkit.engine.constraint import Constraint, json_schema_grammar

SCHEMA = {"type": "object", "additionalProperties": False, "required": ["answer", "confidence"],
          "properties": {"answer": {"type": "string", "maxLength": 40}, "confidence": {"type": "number"}}}
MESSAGES = [{"role": "system", "content": 'Reply only with a JSON object with the keys "answer" (a short string) '
                                          'and "confidence" (a number from 0 to 1).'},
            {"role": "user", "content": "Describe the city of Lyon in one long paragraph."}]


def run(lm, prompt: list[int], tokens: int, n: int, grammar: str | None, seed: int) -> tuple[int, float]:
    gen = Generation(lm, prompt, SamplingParams(max_tokens=tokens, n=n, seed=seed, grammar=grammar))
    start = time.perf_counter()
    gen.run()
    return gen.completion_tokens, time.perf_counter() - start


def mask_microseconds(lm, grammar: str, prompt_len: int) -> float:
    """Mean time of Constraint.mask for one row along a valid reply, outside any model step."""
    import torch

    constraint = Constraint(lm, grammar, 1)
    reply = lm.tokenizer('{"answer": "Lyon is a city in France", "confidence": 0.9}',
                         add_special_tokens=False).input_ids
    logits = torch.zeros(1, lm.model.config.vocab_size)
    start = time.perf_counter()
    for token in reply:
        constraint.mask(logits, [0])
        constraint.advance(0, token)
    return (time.perf_counter() - start) / len(reply) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--n", default="1,8", help="sequences per request, comma-separated")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    args = ap.parse_args()
    lm = load(args.model)
    prompt = lm.tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=True)
    prompt = list(prompt["input_ids"] if hasattr(prompt, "keys") else prompt)
    grammar = json_schema_grammar(SCHEMA)
    run(lm, prompt, 8, 1, grammar, 0)  # warm-up: llguidance's tokenizer, torch's kernels
    print(f"{args.model}, prompt {len(prompt)} tokens, up to {args.tokens} tokens per sequence, "
          f"{args.rounds} rounds alternating free and constrained")
    print(f"{'n':>3} {'free tok/s':>11} {'constrained tok/s':>18} {'ratio':>6} {'tokens free/constr.':>20}")
    for n in [int(x) for x in args.n.split(",")]:
        free, constrained, counts = [], [], ([], [])
        for r in range(args.rounds):
            for grammar_or_none, speeds, count in ((None, free, counts[0]), (grammar, constrained, counts[1])):
                done, seconds = run(lm, prompt, args.tokens, n, grammar_or_none, seed=r)
                speeds.append(done / seconds)
                count.append(done)
        f, c = statistics.median(free), statistics.median(constrained)
        print(f"{n:>3} {f:>11.1f} {c:>18.1f} {c / f:>6.2f} {sum(counts[0]):>10}/{sum(counts[1])}")
    print(f"mask + advance for one row, outside the model: {mask_microseconds(lm, grammar, len(prompt)):.0f} us "
          "per token")


if __name__ == "__main__":
    main()
