"""The engine loop: one thread per model decodes every request's sequences together. Through the official SDK:
many requests at once answer exactly what each answers alone, a client that leaves frees its rows at once,
a full queue is a 429, and a fine-tuning job does not stop the chats."""

from __future__ import annotations

import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import openai
import pytest

from labkit.engine import Generation, SamplingParams
from labkit.engine.loop import BLOCK, engine_loop
from labkit.server import LocalServer, create_app
from tests.conftest import MODEL

pytestmark = pytest.mark.slow

MESSAGES = [[{"role": "user", "content": text}] for text in
            ("Name three fruits.", "Write a haiku about the sea.", "What is the capital of Italy?",
             "Give me a tip for learning Python, in one sentence.")]


def ask(client: openai.OpenAI, kind: str, i: int):
    """One request of each kind the server has, seeded: returns what a student would compare."""
    if kind == "chat":
        r = client.chat.completions.create(model=MODEL, messages=MESSAGES[i % 4], max_tokens=24, seed=i,
                                           temperature=0.9, logprobs=True, top_logprobs=2)
        return [(c.message.content, [round(t.logprob, 4) for t in c.logprobs.content]) for c in r.choices]
    if kind == "chat-n":
        r = client.chat.completions.create(model=MODEL, messages=MESSAGES[i % 4], max_tokens=16, seed=i, n=3)
        return [c.message.content for c in r.choices]
    if kind == "stream":
        chunks = client.chat.completions.create(model=MODEL, messages=MESSAGES[i % 4], max_tokens=20, seed=i,
                                                stream=True, stream_options={"include_usage": True})
        parts = [(c.choices[0].delta.content or "") if c.choices else f"|{c.usage.completion_tokens}" for c in chunks]
        return "".join(parts)
    if kind == "completion":
        r = client.completions.create(model=MODEL, prompt=f"Recipe number {i}: first,", max_tokens=16, seed=i,
                                      n=2, best_of=3, logprobs=1, echo=True, frequency_penalty=0.4)
        return [(c.text, [round(x, 4) for x in c.logprobs.token_logprobs if x is not None]) for c in r.choices]
    if kind == "suffix":
        r = client.completions.create(model=MODEL, prompt="The cat sat on the", suffix=" and purred all day.",
                                      max_tokens=8, seed=i, best_of=2)
        return r.choices[0].text
    if kind == "embedding":
        r = client.embeddings.create(model=MODEL + "-mean", input=[f"sentence {i}", "a cat"])
        return [round(x, 5) for x in r.data[0].embedding[:8]]
    raise ValueError(kind)


KINDS = ["chat", "chat-n", "stream", "completion", "suffix", "embedding"]


def test_sixteen_requests_at_once_answer_as_each_does_alone(client, lm):
    work = [(KINDS[i % len(KINDS)], i) for i in range(18)]
    alone = [ask(client, kind, i) for kind, i in work]
    loop = engine_loop(lm)
    loop.peak_rows = 0
    with ThreadPoolExecutor(len(work)) as pool:
        together = list(pool.map(lambda w: ask(client, *w), work))
    assert loop.peak_rows >= 8, f"the requests were decoded together (at most {loop.peak_rows} rows at once)"
    for (kind, i), a, b in zip(work, alone, together):
        assert a == b, f"{kind} #{i} answered differently under load:\n{a}\n{b}"


def test_the_loop_and_a_generation_alone_give_the_same_tokens(lm):
    """The loop decodes rows of many lengths in one left-padded batch; each row attends to its own tokens only,
    so its samples are those it draws decoding alone."""
    prompts = ["The capital of France is", "Once upon a time, in a small village by the sea, there lived an old",
               "def fib(n):", "Q: What is 2+2?\nA:"]
    params = [SamplingParams(max_tokens=20, temperature=0), SamplingParams(max_tokens=24, seed=7, n=3),
              SamplingParams(max_tokens=16, temperature=0.8, seed=3, top_p=0.9, logprobs=2),
              SamplingParams(max_tokens=12, seed=11, n=2, presence_penalty=1.0)]
    ids = [lm.tokenizer(p).input_ids for p in prompts]
    alone = [[(s.text, s.token_ids) for s in Generation(lm, x, p).run()] for x, p in zip(ids, params)]
    loop = engine_loop(lm)
    got = [None] * len(prompts)

    def run(k):
        time.sleep(0.03 * k)  # join the batch at different steps
        got[k] = [(s.text, s.token_ids) for s in loop.run(Generation(lm, ids[k], params[k]))]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == alone


def test_a_long_prompt_is_cut_in_the_same_chunks_alone_and_under_load(lm):
    """A prompt longer than a prefill chunk runs in chunks; whatever shares its turn, its chunks start at the
    same tokens, so its samples do not depend on the load."""
    loop = engine_loop(lm)
    long = lm.tokenizer(" ".join(f"Item {i} is a red apple." for i in range(60))).input_ids
    assert len(long) > 1.5 * loop.prefill_chunk
    params = SamplingParams(max_tokens=12, seed=5)
    alone = loop.run(Generation(lm, long, params))[0].token_ids
    short = [lm.tokenizer(f"Tell me about number {i}.").input_ids for i in range(6)]
    others = [threading.Thread(target=loop.run, args=(Generation(lm, x, SamplingParams(max_tokens=6)),))
              for x in short]
    for t in others:
        t.start()
    loaded = loop.run(Generation(lm, long, params))[0].token_ids
    for t in others:
        t.join()
    assert loaded == alone

def test_a_prompt_that_starts_with_cached_blocks_answers_as_when_it_runs_whole(lm):
    """Few-shot evals send the same shots before every item: the loop keeps the keys and values of whole prompt
    blocks and runs only the rest, with the very numbers running the whole prompt gives."""
    loop = engine_loop(lm)
    shots = " ".join(f"Review {i}: the soup was {'warm' if i % 2 else 'cold'}. Sentiment: "
                     f"{'positive' if i % 2 else 'negative'}." for i in range(24))
    prompts = [lm.tokenizer(f"{shots} Review {q}. Sentiment:").input_ids
               for q in ("lovely staff", "a long wait for cold food", "fine")]
    assert len(prompts[0]) > 2 * BLOCK
    params = SamplingParams(max_tokens=6, seed=3, temperature=0.8, logprobs=2)

    def answer(ids):
        s = loop.run(Generation(lm, ids, params))[0]
        return s.token_ids, [(lp.logprob, lp.top) for lp in s.logprobs]

    whole = []
    for ids in prompts:
        loop.prefixes.clear()
        whole.append(answer(ids))
    loop.prefixes.clear()
    hits = loop.prefixes.hits
    cached = [answer(ids) for ids in prompts]
    assert loop.prefixes.hits - hits >= 2 * (len(prompts) - 1), "the shared blocks were taken from the cache"
    assert cached == whole


def stream_then_leave(base_url: str, key: str | None, tokens: int = 400) -> None:
    """Start a long streamed chat over raw HTTP, read a few events, then close the connection."""
    url = urlparse(base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    body = {"model": MODEL, "messages": MESSAGES[1], "max_tokens": tokens, "stream": True, "seed": 1,
            "logit_bias": {str(t): -100 for t in (1, 2)}}  # no end-of-text: it would run all 400 tokens
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    conn.request("POST", url.path + "/chat/completions", json.dumps(body), headers)
    response = conn.getresponse()
    assert response.status == 200
    for _ in range(5):
        response.fp.readline()
    conn.sock.shutdown(2)
    conn.close()


@pytest.mark.parametrize("key", [None, "class-key"])
def test_a_client_that_leaves_a_stream_frees_its_rows(lm, tmp_path, key):
    loop = engine_loop(lm)
    with LocalServer(create_app([MODEL], api_keys=[key] if key else None, data_dir=tmp_path)) as srv:
        stream_then_leave(srv.base_url, key)
        left_at = loop.steps_run
        deadline = time.monotonic() + 10
        while loop.running and time.monotonic() < deadline:
            time.sleep(0.01)
    assert loop.running == 0, "the rows of a client that left are still decoding"
    assert loop.steps_run - left_at < 100, f"decoded {loop.steps_run - left_at} steps for nobody"


def test_a_full_queue_is_a_429_with_retry_after(lm, tmp_path):
    loop = engine_loop(lm)
    release = threading.Event()
    saved = loop.max_waiting
    blocker = threading.Thread(target=loop.call, args=(release.wait,))  # holds the loop between two steps
    try:
        blocker.start()
        time.sleep(0.2)
        loop.max_waiting = 2
        with LocalServer(create_app([MODEL], data_dir=tmp_path)) as srv:
            client = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0, timeout=60)
            chat = lambda: client.chat.completions.create(model=MODEL, messages=MESSAGES[0], max_tokens=4, seed=0)  # noqa: E731
            with ThreadPoolExecutor(2) as pool:
                waiting = [pool.submit(chat) for _ in range(2)]
                deadline = time.monotonic() + 10
                while len(loop._waiting) < 2 and time.monotonic() < deadline:
                    time.sleep(0.01)
                with pytest.raises(openai.RateLimitError) as e:
                    chat()
                assert e.value.body["code"] == "rate_limit_exceeded" and "busy" in e.value.body["message"]
                assert int(e.value.response.headers["retry-after"]) >= 1
                release.set()
                assert all(w.result().choices[0].message.content for w in waiting), "the queued ones still answer"
    finally:
        release.set()
        loop.max_waiting = saved
        blocker.join()


def test_chats_answer_while_a_fine_tuning_job_trains(tmp_path, tiny_chat, lm):
    from labkit import DATA

    with LocalServer(create_app([MODEL, str(tiny_chat)], data_dir=tmp_path)) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0, timeout=120)
        data = (DATA / "finetune" / "json_train.jsonl").read_bytes()
        train = client.files.create(file=("train.jsonl", data), purpose="fine-tune").id
        job = client.fine_tuning.jobs.create(model="tiny-chat", training_file=train, hyperparameters={"n_epochs": 30})
        deadline = time.monotonic() + 60
        while client.fine_tuning.jobs.retrieve(job.id).status != "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: client.chat.completions.create(
                model=MODEL, messages=MESSAGES[i % 4], max_tokens=8, seed=i).choices[0].message.content, range(8)))
        assert client.fine_tuning.jobs.retrieve(job.id).status == "running", "the job trained meanwhile"
        client.fine_tuning.jobs.cancel(job.id)
    assert all(answers), answers
