"""Train several small models at once, each in a process of its own with its share of the CPU's threads.

    run_all(fn, jobs, workers=2, done=lambda job, result: ...)

The models labkit trains on a laptop are so small that one run cannot keep two cores busy: most of a step is
the overhead of launching many tiny operations, which one thread does as fast as two. On 2 cores a lesson-06
rung takes 8.7 ms a step on both threads and 10.3 ms on one, so two runs side by side, one thread each,
finish about 1.7 times as many steps a second. Every run computes the same numbers on one thread as on two.

This process trains too; the others are helpers (`python -m labkit.train.parallel THREADS`) that call the
functions sent to them, pickled by reference, so nothing here needs an `if __name__ == "__main__":` guard.
Helpers are started once and kept for later calls (their imports take seconds); one whose parent is gone
reads the end of its input and exits.
"""

from __future__ import annotations

import atexit
import os
import pickle
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence

import torch

__all__ = ["Helper", "run_all", "started", "workers_for"]


def workers_for(jobs: int) -> int:
    """One process per core, but no more than there are jobs."""
    return max(1, min(os.cpu_count() or 1, jobs))


class Helper:
    """A Python process with `threads` torch threads that runs fn(*args) for call(fn, *args), one call at a time."""

    def __init__(self, threads: int):
        self.threads = threads
        self.proc = subprocess.Popen([sys.executable, "-m", "labkit.train.parallel", str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.lock = threading.Lock()

    def call(self, fn: Callable, *args, **kwargs):
        with self.lock:
            pickle.dump((fn, args, kwargs), self.proc.stdin)
            self.proc.stdin.flush()
            try:
                ok, value = pickle.load(self.proc.stdout)
            except EOFError:
                raise RuntimeError(f"a helper process stopped (exit code {self.proc.wait()})") from None
        if not ok:
            raise value
        return value

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.alive:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


_helpers: list[Helper] = []
_helpers_lock = threading.Lock()


def helpers(count: int, threads: int) -> list[Helper]:
    """count helpers with `threads` threads each, reusing those started before."""
    with _helpers_lock:
        for h in [h for h in _helpers if not h.alive or h.threads != threads]:
            h.close()
            _helpers.remove(h)
        while len(_helpers) < count:
            _helpers.append(Helper(threads))
        return _helpers[:count]


def started() -> bool:
    """Whether helpers are running already (a parallel run then costs no start-up)."""
    return any(h.alive for h in _helpers)


@atexit.register
def _close_helpers() -> None:
    for h in _helpers:
        h.close()


def run_all(fn: Callable, jobs: Sequence[tuple], workers: int, done: Callable[[tuple, object], None]) -> None:
    """fn(*job) for every job, in this process and workers - 1 helpers, each taking the next job when it is free
    (give jobs longest first, so the last to finish is a short one). done(job, result) is called in turn as
    each job finishes. On an error no new job starts; the helpers finish (and report) the ones they have."""
    left = list(jobs)
    workers = max(1, min(workers, len(left)))
    threads = max(1, torch.get_num_threads() // workers)
    lock, stop, errors = threading.Lock(), threading.Event(), []

    def take():
        with lock:
            return None if stop.is_set() or not left else left.pop(0)

    def report(job, result) -> None:
        with lock:
            done(job, result)

    def feed(helper: Helper) -> None:
        try:
            while (job := take()) is not None:
                report(job, helper.call(fn, *job))
        except BaseException as e:  # noqa: BLE001 - raised again in the caller's thread
            errors.append(e)
            stop.set()

    feeders = [threading.Thread(target=feed, args=(h,), daemon=True) for h in helpers(workers - 1, threads)]
    for t in feeders:
        t.start()
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        while (job := take()) is not None:
            report(job, fn(*job))
    except BaseException:
        stop.set()
        raise
    finally:
        torch.set_num_threads(saved)
    for t in feeders:
        t.join()
    if errors:
        raise errors[0]


def _serve(threads: int) -> None:
    """The helper's side: read (fn, args, kwargs), answer (ok, result or error), until the input ends.
    Ctrl-C (or a notebook's interrupt, sent to the kernel's whole process group) is its parent's to handle: a
    helper finishes the call it has, and its parent records it or not."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever the functions print goes to stderr, not into the answers
    sys.stdout = sys.stderr
    requests = sys.stdin.buffer
    while True:
        try:
            fn, args, kwargs = pickle.load(requests)
        except EOFError:
            return
        try:
            answer = (True, fn(*args, **kwargs))
        except Exception as e:  # noqa: BLE001 - sent to the caller
            answer = (False, e)
        try:
            data = pickle.dumps(answer)
        except Exception as e:  # noqa: BLE001 - an error or result that cannot be pickled
            data = pickle.dumps((False, RuntimeError(f"{type(e).__name__}: {e}")))
        answers.write(data)
        answers.flush()


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
