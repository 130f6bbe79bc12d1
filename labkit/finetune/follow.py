"""Follow a fine-tuning job through any OpenAI-compatible client (OpenAI itself or a labkit server):
its messages as they come, a progress bar over steps and a live loss curve.

    job, metrics = follow(lab.client, job.id)     # returns when the job has ended
    job, metrics = follow(lab.client, job.id, timeout=1800)   # or raises FollowTimeoutError after 30 minutes
"""

from __future__ import annotations

import time

import pandas as pd

from labkit.errors import FollowTimeoutError
from labkit.finetune.jobs import TERMINAL
from labkit.progress import tqdm  # tqdm.auto whose final line stays in a saved notebook

DEFAULT_TIMEOUT = 3600.0  # seconds; a queued remote job can wait longer than a lesson should


def new_events(client, job_id: str, seen: set[str]) -> list:
    """Events not seen yet, oldest first (the API lists them newest first, a page at a time)."""
    fresh, after = [], None
    while True:
        page = client.fine_tuning.jobs.list_events(job_id, limit=100, **({"after": after} if after else {}))
        for event in page.data:
            if event.id in seen:
                return fresh[::-1]
            fresh.append(event)
        if not page.has_more or not page.data:
            return fresh[::-1]
        after = page.data[-1].id


def follow(client, job_id: str, poll_seconds: float = 2.0, plot: bool = True, progress: bool = True,
           timeout: float | None = DEFAULT_TIMEOUT):
    """Poll until the job ends; return (the job, a DataFrame of its step metrics).

    plot: redraw a plotly loss curve in place as steps arrive (in a notebook).
    timeout: seconds to wait (None: no limit); past it FollowTimeoutError names the job, its status and the
    timeout. The job itself goes on: follow it again, or cancel it."""
    from labkit import viz

    deadline = None if timeout is None else time.monotonic() + timeout
    seen, metrics, handle = set(), [], None
    bar = tqdm(desc=job_id, unit="step", disable=not progress)
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        events = new_events(client, job_id, seen)
        for event in events:
            seen.add(event.id)
            if event.type == "metrics" and event.data:
                metrics.append(dict(event.data))
                bar.total = metrics[-1].get("total_steps")
                bar.n = int(metrics[-1]["step"])
                bar.set_postfix(loss=f"{metrics[-1]['train_loss']:.3f}")
            else:
                tqdm.write(f"{time.strftime('%H:%M:%S', time.localtime(event.created_at))}  {event.message}")
        if plot and metrics and any(e.type == "metrics" for e in events):
            handle = _show(viz.loss_curve(metrics), handle)
        if job.status in TERMINAL:
            bar.close()
            return job, pd.DataFrame(metrics)
        if deadline is not None and time.monotonic() + poll_seconds > deadline:
            bar.close()
            raise FollowTimeoutError(
                f"fine-tuning job {job_id} is still {job.status!r} after follow(timeout={timeout:g}) seconds. "
                f"It goes on running on the server: call follow() again to keep watching, or stop it with "
                f"client.fine_tuning.jobs.cancel({job_id!r}).", job_id, job.status)
        time.sleep(poll_seconds)


def _show(fig, handle):
    """Draw a figure, or redraw it in place. Plotly's own display path ignores display ids, so the
    figure goes out as viz's bundle (plotly JSON and a static PNG; a saved notebook keeps only the last one)."""
    from IPython.display import display

    from labkit import viz

    bundle = viz.mimebundle(fig)
    if handle is None:
        return display(bundle, raw=True, display_id=True)
    handle.update(bundle, raw=True)
    return handle
