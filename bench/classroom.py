"""A class on one machine: `labkit serve` in a subprocess, N simulated students at once, each sending in turn a
seeded 32-token chat, a streamed 32-token chat, a completion with n=2 and logprobs, and an embedding.

    python bench/classroom.py [--students 30] [--rounds 3] [--max-running 32]

Prints, beside a single-stream baseline measured first in the same run: errors, seeded answers that changed
under load, p50/p95 latency per kind, and aggregate completion tokens/s. Figures only, no assertions.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import openai

MODEL = "smollm2-135m-instruct"
TOPICS = ["photosynthesis", "the Roman empire", "prime numbers", "volcanoes", "the water cycle", "gravity",
          "bees", "the internet", "rainbows", "chess"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "labkit", "serve", "--port", str(port), "--max-running", str(args.max_running),
           "--max-waiting", str(args.max_waiting), "--data-dir", tempfile.mkdtemp(prefix="labkit-classroom-")]
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"labkit serve did not start:\n{log.read_text()}") from None
            time.sleep(0.5)


def chat(client, student: int, n_round: int) -> tuple[str, int]:
    r = client.chat.completions.create(model=MODEL, max_tokens=32, seed=1000 * n_round + student, messages=[
        {"role": "user", "content": f"Explain {TOPICS[student % len(TOPICS)]} to a child."}])
    return r.choices[0].message.content, r.usage.completion_tokens


def stream(client, student: int, n_round: int) -> tuple[str, int]:
    chunks = client.chat.completions.create(
        model=MODEL, max_tokens=32, seed=student, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": f"Write two sentences about {TOPICS[(student + 3) % len(TOPICS)]}."}])
    text, tokens = "", 0
    for c in chunks:
        if c.choices:
            text += c.choices[0].delta.content or ""
        elif c.usage:
            tokens = c.usage.completion_tokens
    return text, tokens


def completion(client, student: int, n_round: int) -> tuple[str, int]:
    r = client.completions.create(model=MODEL, prompt=f"Student {student}'s notes on {TOPICS[student % 10]}:",
                                  max_tokens=16, n=2, logprobs=2, seed=student)
    return "|".join(c.text for c in r.choices), r.usage.completion_tokens


def embedding(client, student: int, n_round: int) -> tuple[str, int]:
    r = client.embeddings.create(model="all-minilm-l6-v2", input=[f"notes on {TOPICS[student % 10]}"] * 4)
    return f"{r.data[0].embedding[0]:.6f}", 0


KINDS = {"32-token chat": chat, "streamed chat": stream, "completion n=2": completion, "embedding": embedding}


def student(client, number: int, rounds: int, results: dict, answers: dict, errors: list) -> None:
    for n_round in range(rounds):
        for kind, ask in KINDS.items():
            t = time.perf_counter()
            try:
                text, tokens = ask(client, number, n_round)
            except Exception as e:  # counted and printed, never hidden
                errors.append(f"{kind} (student {number}): {type(e).__name__}: {e}")
                continue
            results[kind].append((time.perf_counter() - t, tokens))
            answers[(kind, number, n_round)] = text


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--students", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-running", type=int, default=32)
    ap.add_argument("--max-waiting", type=int, default=64)
    args = ap.parse_args()
    log = Path(tempfile.mkdtemp()) / "serve.log"
    proc, base_url = start_server(args, log)
    try:
        client = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=600)
        for ask in KINDS.values():  # warm-up: every model loaded and every path run once
            ask(client, 0, 0)
        t = time.perf_counter()  # the baseline: one stream alone
        _, tokens = stream(client, 0, 0)
        single = tokens / (time.perf_counter() - t)
        alone_chat = []
        for s in range(3):
            t = time.perf_counter()
            chat(client, s, 0)
            alone_chat.append(time.perf_counter() - t)
        reference = {("32-token chat", s, r): chat(client, s, r)[0] for s in range(min(args.students, 10))
                     for r in range(args.rounds)}  # seeded answers alone, to compare under load

        results, answers, errors = defaultdict(list), {}, []
        threads = [threading.Thread(target=student, args=(client, s, args.rounds, results, answers, errors))
                   for s in range(args.students)]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    changed = sum(answers.get(k) != v for k, v in reference.items() if k in answers)
    total_tokens = sum(tokens for rows in results.values() for _, tokens in rows)
    print(f"labkit serve, {MODEL}, --max-running {args.max_running}; {args.students} students x {args.rounds} "
          f"rounds x {len(KINDS)} requests, {wall:.0f} s\n")
    print(f"{'':28s} {'alone':>10s} {'p50':>8s} {'p95':>8s}")
    chats = [x for x, _ in results["32-token chat"]]
    print(f"{'32-token chat':28s} {statistics.median(alone_chat):9.2f}s {pct(chats, 50):7.2f}s {pct(chats, 95):7.2f}s")
    for kind in list(KINDS)[1:]:
        lat = [x for x, _ in results[kind]]
        if lat:
            print(f"{kind:28s} {'':>10s} {pct(lat, 50):7.2f}s {pct(lat, 95):7.2f}s")
    aggregate = total_tokens / wall
    print(f"\naggregate completion tokens/s: {aggregate:.1f} under load vs {single:.1f} for one stream alone "
          f"({aggregate / single:.1f}x)")
    print(f"errors: {len(errors)}; seeded chats answered differently under load: {changed} of {len(reference)}")
    for e in errors[:10]:
        print("  ", e)


if __name__ == "__main__":
    main()
