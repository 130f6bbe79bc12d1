"""The engine loop: one thread per loaded model owns it, its tokenizer's use and every KV cache, and decodes
all running sequences of all requests together, one token per step (continuous batching).

    loop = EngineLoop(lm)
    for deltas in loop.steps(Generation(lm, prompt_ids, params)):   # from any thread
        ...
    loop.call(fn)          # run other work on the model (suffix ranking, pooled embeddings) between steps

Each turn of the loop:
1. admits waiting generations while fewer than `max_running` sequences decode (a request's n rows count n);
2. runs up to `prefill_chunk` prompt tokens, oldest admitted prompt first (several short prompts, or one
   chunk of a long one), so a long prompt does not stall the running streams for its whole prefill; when a
   prompt's last chunk has run, its first tokens are sampled and its rows join the batch. Prompts run in
   blocks of BLOCK tokens at fixed offsets, and a prompt that starts with blocks another prompt ran recently
   takes their keys and values from the prefix cache instead of running them (few-shot evals send the same
   shots before every item);
3. runs one decode step for every row in the batch at once: rows of different lengths sit left-padded in one
   cache, with an attention mask and their own positions;
4. hands each generation its deltas (a queue per generation), drops finished and cancelled rows, and runs
   any `call`s that wait.

Handlers never touch the model: they submit and read their queue. Cancel is a flag the loop reads every
turn; the rows leave the batch at the next step. `steps()` refuses with `Busy` when `max_waiting`
generations already wait, which the server answers with a 429.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import AttentionInterface, AttentionMaskInterface, DynamicCache
from transformers.cache_utils import DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

from labkit.engine import replay
from labkit.engine.registry import LocalModel
from labkit.engine.sampling import Delta, Generation

log = logging.getLogger(__name__)

_END = object()  # a generation's queue item after its last deltas


ROWS_ATTENTION = "labkit_rows"


def rows_attention(module, query, key, value, attention_mask, row_starts: list[int] | None = None, **kwargs):
    """transformers' SDPA attention, except in the loop's decode steps (row_starts given): there each row attends
    to its own columns only, unpadded, exactly as when it decodes alone (rows that start at the same column go
    together: unmasked SDPA gives each row of a batch what it gives the row alone). A padded, masked batch takes
    another kernel path whose logits differ by up to ~0.4, enough to change seeded samples; the weights, the
    costly part of a step, are still read once for the whole batch."""
    if row_starts is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    parts, first = [], 0
    for r in range(1, len(row_starts) + 1):  # neighbouring rows that start at one column attend as one batch
        if r == len(row_starts) or row_starts[r] != row_starts[first]:
            s = row_starts[first]
            parts.append(sdpa_attention_forward(module, query[first:r], key[first:r, :, s:], value[first:r, :, s:],
                                                None, **kwargs)[0])
            first = r
    return torch.cat(parts), None


AttentionInterface.register(ROWS_ATTENTION, rows_attention)
AttentionMaskInterface.register(ROWS_ATTENTION, sdpa_mask)


BLOCK = 128  # prompts run in blocks starting at multiples of this, whatever shares the turn, cached or not


class PrefixCache:
    """The keys and values of prompt blocks run recently, each found by a digest of every token up to its end, least
    recently used dropped first past `limit` bytes. A block's keys and values depend only on the tokens up to its
    end, and every prompt runs in the same blocks, so a prompt that starts with cached blocks gets, from the rest
    it runs, the very numbers it would get running them all. (Blocks of 128 give the logits 256-token chunks gave,
    to the last bit, on every prompt measured: lesson 03's 300 and 19 others of 150 to 700 tokens.)"""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self._blocks: OrderedDict[bytes, tuple[list[torch.Tensor], list[torch.Tensor], int]] = OrderedDict()
        self.hits = 0  # blocks taken from the cache instead of run (tests and benchmarks read it)

    @staticmethod
    def digests(ids: list[int], blocks: int) -> list[bytes]:
        """The key of each of the first `blocks` whole blocks: a digest of all tokens up to its end."""
        keys, h = [], hashlib.blake2b(digest_size=16)
        for b in range(blocks):
            h.update(b"".join(t.to_bytes(4, "little") for t in ids[b * BLOCK:(b + 1) * BLOCK]))
            keys.append(h.copy().digest())
        return keys

    def restore(self, ids: list[int], cache: DynamicCache) -> int:
        """Fill an empty cache with the longest run of cached blocks that ids start with, always leaving the last
        token to run (its logits are sampled); returns how many tokens that covers."""
        found = []
        for key in self.digests(ids, (len(ids) - 1) // BLOCK):
            entry = self._blocks.get(key)
            if entry is None:
                break
            self._blocks.move_to_end(key)
            found.append(entry)
        if found:
            for i in range(len(found[0][0])):
                cache.update(torch.cat([keys[i] for keys, _, _ in found], dim=-2),
                             torch.cat([values[i] for _, values, _ in found], dim=-2), i)
            self.hits += len(found)
        return len(found) * BLOCK

    def store(self, key: bytes, cache: DynamicCache, start: int) -> None:
        """Keep the block of the cache's keys and values that starts at token `start`."""
        if key in self._blocks:
            self._blocks.move_to_end(key)
            return
        keys = [layer.keys[..., start:start + BLOCK, :].clone() for layer in cache.layers]
        values = [layer.values[..., start:start + BLOCK, :].clone() for layer in cache.layers]
        size = sum(t.numel() * t.element_size() for t in keys + values)
        if size > self.limit:
            return
        self._blocks[key] = (keys, values, size)
        self.used += size
        while self.used > self.limit:
            self.used -= self._blocks.popitem(last=False)[1][2]

    def clear(self) -> None:
        self._blocks.clear()
        self.used = 0


class Busy(Exception):
    """The loop already has `max_waiting` generations waiting to start."""

    def __init__(self, waiting: int, retry_after: float):
        super().__init__(f"{waiting} requests are already waiting for this model")
        self.waiting, self.retry_after = waiting, retry_after


@dataclass(eq=False)  # compared and hashed by identity: a batch lists each job once per row
class _Job:
    """A generation the loop has accepted: its queue, and its prompt's progress."""

    gen: Generation
    out: queue.Queue = field(default_factory=queue.Queue)
    cache: DynamicCache | None = None
    done_tokens: int = 0  # prompt tokens already run
    digests: list[bytes] | None = None  # the prefix cache's key of each of the prompt's whole blocks
    prompt_logits: list[torch.Tensor] = field(default_factory=list)


class EngineLoop:
    def __init__(self, lm: LocalModel, max_running: int = 32, max_waiting: int = 64, prefill_chunk: int = 256,
                 prefix_cache_bytes: int = 128 << 20):
        self.lm = lm
        self.max_running, self.max_waiting, self.prefill_chunk = max_running, max_waiting, prefill_chunk
        plain = all(type(layer) is DynamicLayer for layer in DynamicCache(config=lm.model.config).layers)
        self.prefixes = PrefixCache(prefix_cache_bytes if plain else 0)  # sliding-window caches are not cut in blocks
        self._waiting: deque[_Job] = deque()  # submitted, not yet admitted
        self._prefilling: deque[_Job] = deque()  # admitted, prompt still running
        self._calls: deque[tuple[Callable, Future]] = deque()
        self._wake = threading.Condition()
        # the batch: one row per running sequence, left-padded to one length
        self._batch: list[_Job] = []  # the job of each row, rows of one job contiguous
        self._cache: DynamicCache | None = None
        self._mask: torch.Tensor | None = None  # [rows, cache length]: 1 where a row has a token
        self._positions: torch.Tensor | None = None  # [rows]: the position of each row's next token
        self.steps_run = 0  # decode steps so far (tests and benchmarks read it)
        self.peak_rows = 0  # the most sequences one decode step has carried
        self._stopped = False
        lm.model.set_attn_implementation(ROWS_ATTENTION)  # SDPA wherever row_starts is not given
        self._thread = threading.Thread(target=self._run, name=f"labkit-engine-{lm.name}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ what other threads call

    def steps(self, gen: Generation, timeout: float = 1.0) -> Iterator[list[Delta]]:
        """Deltas of `gen` as the loop produces them, like gen.steps(). Closing the iterator early cancels it.
        A seeded generation already stored by labkit.engine.replay (when that cache is on) is replayed instead."""
        stored, recording = replay.lookup(self.lm, gen)
        if stored is not None:
            yield from stored
            return
        job = self._submit(gen)
        try:
            while True:
                try:
                    item = job.out.get(timeout=timeout)
                except queue.Empty:
                    if not self._thread.is_alive():
                        raise RuntimeError(f"the engine loop of {self.lm.name} stopped") from None
                    continue
                if item is _END:
                    if recording is not None:
                        recording.save(gen)
                    return
                if isinstance(item, BaseException):
                    raise item
                if recording is not None:
                    recording.steps.append(item)
                yield item
        finally:
            gen.cancelled = True  # a consumer that stops listening (a client that left) frees its rows
            self._notify()

    def run(self, gen: Generation) -> list:
        for _ in self.steps(gen):
            pass
        return gen.sequences

    def call(self, fn: Callable[[], object]) -> object:
        """Run fn on the loop's thread, between two steps, and return its result (or raise its error)."""
        if threading.current_thread() is self._thread:
            return fn()
        future: Future = Future()
        with self._wake:
            self._calls.append((fn, future))
            self._wake.notify()
        return future.result()

    def check_capacity(self) -> None:
        """Raise Busy if a new generation would be refused now (checked before a stream's first byte)."""
        with self._wake:
            if len(self._waiting) >= self.max_waiting:
                raise Busy(len(self._waiting), self._retry_after())

    @property
    def running(self) -> int:
        """Sequences decoding now."""
        return len(self._batch)

    def stop(self) -> None:
        self._stopped = True
        self._notify()
        self._thread.join(timeout=10)

    # ------------------------------------------------------------ the loop's own thread

    def _submit(self, gen: Generation) -> _Job:
        job = _Job(gen)
        with self._wake:
            if len(self._waiting) >= self.max_waiting:
                raise Busy(len(self._waiting), self._retry_after())
            self._waiting.append(job)
            self._wake.notify()
        return job

    def _retry_after(self) -> float:
        return max(1.0, len(self._waiting) * 0.5)

    def _notify(self) -> None:
        with self._wake:
            self._wake.notify()

    def _run(self) -> None:
        while not self._stopped:
            with self._wake:
                while not (self._waiting or self._prefilling or self._batch or self._calls or self._stopped):
                    self._wake.wait()
                self._admit()
                calls = list(self._calls)
                self._calls.clear()
            for fn, future in calls:
                self._do_call(fn, future)
            try:
                with torch.inference_mode():
                    self._drop_cancelled()
                    self._prefill_step()
                    self._decode_step()
            except Exception as e:  # a fault in one step fails the requests in it, never the loop
                log.exception("engine step failed")
                self._fail_all(e)

    def _admit(self) -> None:
        admitted = sum(j.gen.p.n for j in self._prefilling) + len(self._batch)
        # a request wider than max_running still runs, alone
        while self._waiting and (admitted == 0 or admitted + self._waiting[0].gen.p.n <= self.max_running):
            job = self._waiting.popleft()
            if job.gen.cancelled:
                job.out.put(_END)
                continue
            self._prefilling.append(job)
            admitted += job.gen.p.n

    @staticmethod
    def _do_call(fn: Callable, future: Future) -> None:
        try:
            with torch.inference_mode():
                future.set_result(fn())
        except BaseException as e:  # handed to the caller
            future.set_exception(e)

    def _drop_cancelled(self) -> None:
        for job in [j for j in self._prefilling if j.gen.cancelled]:
            self._prefilling.remove(job)
            job.out.put(_END)
        gone = [j for j in dict.fromkeys(self._batch) if j.gen.cancelled]
        if gone:
            self._keep_rows([r for r, j in enumerate(self._batch) if not j.gen.cancelled])
            for job in gone:
                job.out.put(_END)

    def _prefill_step(self) -> None:
        """Run prompt chunks, oldest prompt first, until `prefill_chunk` tokens have run this turn: several short
        prompts, or a chunk of a long one. A prompt whose last chunk has run samples its first tokens and joins
        the batch."""
        spent = 0
        while self._prefilling and spent < self.prefill_chunk:
            job = self._prefilling[0]
            gen, model = job.gen, self.lm.model
            keep_all = gen.p.prompt_logprobs
            if job.cache is None:
                job.cache = DynamicCache(config=model.config)
                if self.prefixes.limit:
                    job.digests = self.prefixes.digests(gen.prompt_ids, len(gen.prompt_ids) // BLOCK)
                    if not keep_all:  # the prompt's own logits are wanted: run it all
                        job.done_tokens = self.prefixes.restore(gen.prompt_ids, job.cache)
            # blocks start at multiples of BLOCK whatever else runs: the same numbers alone and under load
            start = job.done_tokens
            ids = gen.prompt_ids[start: start + BLOCK]
            out = model(torch.tensor([ids], device=self.lm.device), cache=job.cache, use_cache=True,
                        logits_to_keep=0 if keep_all else 1)
            if job.digests is not None and len(ids) == BLOCK:
                self.prefixes.store(job.digests[start // BLOCK], job.cache, start)
            job.done_tokens += len(ids)
            spent += len(ids)
            if keep_all:
                job.prompt_logits.append(out.logits[0])
            if job.done_tokens < len(gen.prompt_ids):
                continue  # a long prompt: its next chunk, if the turn's budget allows
            self._prefilling.popleft()
            self._start(job, torch.cat(job.prompt_logits) if keep_all else out.logits[0])

    def _start(self, job: _Job, logits: torch.Tensor) -> None:
        """Sample a prefilled job's first tokens; its rows that go on join the batch."""
        gen = job.gen
        deltas = gen.begin(logits)
        if deltas:
            job.out.put(deltas)
        if gen.done:
            job.out.put(_END)
            return
        job.cache.batch_repeat_interleave(gen.p.n)
        job.cache.batch_select_indices(torch.tensor(gen.keep, device=self.lm.device))
        self._join(job, len(gen.prompt_ids))
        job.cache = None

    def _join(self, job: _Job, length: int) -> None:
        """Add a prefilled job's rows (its cache, `length` tokens each) to the batch, left-padding whichever
        is shorter so every row's tokens end at the same column."""
        rows, dev = len(job.gen.keep), self.lm.device
        mask = torch.ones(rows, length, dtype=torch.long, device=dev)
        positions = torch.full((rows,), length, dtype=torch.long, device=dev)
        if self._cache is None:
            self._cache, self._mask, self._positions = job.cache, mask, positions
        else:
            width = max(self._mask.shape[1], length)
            self._pad_batch(width)
            _pad_cache(job.cache, width - length)
            mask = F.pad(mask, (width - length, 0))
            for mine, theirs in zip(self._cache.layers, job.cache.layers):
                mine.keys = torch.cat([mine.keys, theirs.keys])
                mine.values = torch.cat([mine.values, theirs.values])
            self._mask = torch.cat([self._mask, mask])
            self._positions = torch.cat([self._positions, positions])
        self._batch += [job] * rows

    def _pad_batch(self, width: int) -> None:
        extra = width - self._mask.shape[1]
        if extra > 0:
            _pad_cache(self._cache, extra)
            self._mask = F.pad(self._mask, (extra, 0))

    def _decode_step(self) -> None:
        if not self._batch:
            return
        jobs = list(dict.fromkeys(self._batch))  # in row order, each once
        tokens = torch.cat([j.gen.next_tokens for j in jobs])[:, None]
        self._mask = F.pad(self._mask, (0, 1), value=1)
        # the mask hides each row's left padding; positions are each row's own, for the rotary embedding
        starts = (self._mask == 0).sum(1).tolist()  # left padding: each row's first column
        out = self.lm.model(tokens, cache=self._cache, use_cache=True, attention_mask=self._mask,
                            position_ids=self._positions[:, None], row_starts=starts)
        logits = out.logits[:, -1].float()
        self._positions += 1
        self.steps_run += 1
        self.peak_rows = max(self.peak_rows, len(self._batch))
        keep, start = [], 0
        for job in jobs:
            rows = len(job.gen.keep)
            deltas = job.gen.advance(logits[start:start + rows])
            if deltas:
                job.out.put(deltas)
            if job.gen.done:
                job.out.put(_END)
            else:
                keep += [start + r for r in job.gen.keep]
            start += rows
        if len(keep) < len(self._batch):
            self._keep_rows(keep)

    def _keep_rows(self, rows: list[int]) -> None:
        """Only these batch rows go on; columns no remaining row uses are cut from the left."""
        if not rows:
            self._batch, self._cache, self._mask, self._positions = [], None, None, None
            return
        index = torch.tensor(rows, device=self.lm.device)
        self._batch = [self._batch[r] for r in rows]
        self._cache.batch_select_indices(index)
        self._mask, self._positions = self._mask[index], self._positions[index]
        unused = int((self._mask.sum(0) == 0).long().cumprod(0).sum())  # leading all-padding columns
        if unused:
            self._mask = self._mask[:, unused:]
            for layer in self._cache.layers:
                layer.keys, layer.values = layer.keys[..., unused:, :], layer.values[..., unused:, :]

    def _fail_all(self, error: Exception) -> None:
        for job in [*self._prefilling, *dict.fromkeys(self._batch)]:
            job.out.put(error)
        self._prefilling.clear()
        self._batch, self._cache, self._mask, self._positions = [], None, None, None


def _pad_cache(cache: DynamicCache, extra: int) -> None:
    """Left-pad every layer's keys and values with `extra` empty columns."""
    if extra <= 0:
        return
    for layer in cache.layers:
        layer.keys = F.pad(layer.keys, (0, 0, extra, 0))
        layer.values = F.pad(layer.values, (0, 0, extra, 0))


_loops: dict[int, tuple[LocalModel, EngineLoop]] = {}
_loops_lock = threading.Lock()


def engine_loop(lm: LocalModel, max_running: int | None = None, max_waiting: int | None = None) -> EngineLoop:
    """The one loop of this loaded model, started on first use: every server in the process shares it.
    Limits given here apply to it from now on (the last server to set them wins)."""
    with _loops_lock:
        entry = _loops.get(id(lm))
        if entry is None or entry[0] is not lm:
            entry = _loops[id(lm)] = (lm, EngineLoop(lm))
        loop = entry[1]
    loop.max_running = max_running or loop.max_running
    loop.max_waiting = max_waiting or loop.max_waiting
    return loop


def stop_loop(lm: LocalModel) -> None:
    """Stop and forget the loop of a model that is no longer served (a deleted fine-tuned model)."""
    with _loops_lock:
        entry = _loops.pop(id(lm), None)
    if entry is not None:
        entry[1].stop()
