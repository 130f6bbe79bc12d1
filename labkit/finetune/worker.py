"""The background worker that runs a server's fine-tuning jobs, one at a time, as OpenAI's service does:
validate the files (labkit.finetune.checks, counted with the base model's own tokenizer), train
(labkit.finetune.sft) with an event per step and a checkpoint per epoch, then publish the model as
ft:BASE:labkit:SUFFIX:ID.

Each job trains in a process of its own (`python -m labkit.finetune.worker`) with a budget of torch threads,
so the server's engine loops keep the rest of the cores and a job that crashes ends that job, not the server.
The process holds the job's lock and writes its events and checkpoints to the same SQLite store; it stops
when the job is cancelled, and at once if its server dies. The thread that starts those processes exists
only while jobs wait, so an idle server costs nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from labkit.finetune.checks import Report, default_epochs, validate
from labkit.finetune.jobs import PENDING, JobStore, model_name
from labkit.finetune.sft import BASE_LEARNING_RATE, Hyper, sft
from labkit.finetune.store import FileStore

log = logging.getLogger(__name__)

AUTO_BATCH_SIZE = 4  # small batches: more steps from a few dozen examples, and little memory on a laptop


def default_threads() -> int:
    """Half the cores for training, the rest for serving."""
    return max(1, (os.cpu_count() or 2) // 2)


class Worker:
    """base_folder(name) gives the transformers folder of a model the server may fine-tune (or raises);
    threads: torch threads for each job's process."""

    def __init__(self, jobs: JobStore, files: FileStore, base_folder: Callable[[str], Path],
                 threads: int | None = None):
        self.jobs, self.files, self.base_folder = jobs, files, base_folder
        self.threads = threads or default_threads()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self._woken = False

    def wake(self) -> None:
        """Run waiting jobs in a background thread (started unless one is running already)."""
        with self._guard:
            self._woken = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="labkit-fine-tuning", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._guard:
                if not self._woken:
                    self._thread = None
                    return
                self._woken = False
            for job_id in self.jobs.pending():
                self.run(job_id)

    def run(self, job_id: str) -> None:
        """Train job_id in a process of its own and wait for it; a process that dies fails the job."""
        if self.jobs.status(job_id) not in PENDING:
            return
        try:
            base = self.base_folder(self.jobs.get(job_id)["model"])
        except Exception as e:
            self.jobs.fail(job_id, "internal_error", f"labkit cannot fine-tune this job's model: {e}")
            return
        cmd = [sys.executable, "-m", "labkit.finetune.worker", str(self.jobs.root), job_id, str(base),
               "--threads", str(self.threads), "--server", str(os.getpid())]
        code = subprocess.run(cmd).returncode
        if code != 0:
            log.error("the training process of fine-tuning job %s exited with code %s", job_id, code)
            self.jobs.fail(job_id, "internal_error", f"labkit's training process for this job stopped unexpectedly "
                           f"(exit code {code}); the server goes on")
            shutil.rmtree(self.jobs.job_dir(job_id), ignore_errors=True)


def train_job(root: Path, job_id: str, base: Path, threads: int, server: int) -> None:
    """In the job's own process: hold its lock, then validate, train and publish it."""
    import torch

    torch.set_num_threads(threads)
    jobs, files = JobStore(root), FileStore(root)
    lock = jobs.lock(job_id)
    if lock is None:  # another server's worker has it
        return
    try:
        if jobs.status(job_id) in PENDING:
            _run(jobs, files, job_id, base, server)
    except Exception as e:  # the job fails with the reason
        log.exception("fine-tuning job %s failed", job_id)
        jobs.fail(job_id, "internal_error", f"labkit failed while running this job: {type(e).__name__}: {e}")
        shutil.rmtree(jobs.job_dir(job_id), ignore_errors=True)
    finally:
        lock.release()


def _server_gone(server: int) -> bool:
    """The server that started this process has died (this process was handed to another parent)."""
    return os.getppid() != server


def _run(jobs: JobStore, files: FileStore, job_id: str, base: Path, server: int) -> None:
    job = jobs.get(job_id)
    folder = jobs.job_dir(job_id)
    folder.mkdir(parents=True, exist_ok=True)
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    limit = int(getattr(AutoConfig.from_pretrained(base, local_files_only=True), "max_position_embeddings", 2048))
    data = {}
    for param in ("training_file", "validation_file"):
        if job[param] is None:
            continue
        jobs.add_event(job_id, f"Validating {param.replace('_', ' ')}: {job[param]}")
        path = folder / f"{param}.jsonl"
        path.write_bytes(files.content(job[param]))
        report = validate(path, model=job["model"], token_limit=limit, tokenizer=tokenizer)
        if not report.ok:
            jobs.fail(job_id, f"invalid_{param}", _invalid(param, job[param], report), param)
            return
        data[param] = (path, report)
    train_path, report = data["training_file"]
    hyper = resolve(job["hyperparameters"], report.examples)
    if not jobs.update(job_id, PENDING, status="queued", hyperparameters=hyper):
        return  # cancelled meanwhile
    jobs.add_event(job_id, "Files validated, moving job to queued state")
    if not jobs.update(job_id, ("queued",), status="running"):
        return
    jobs.add_event(job_id, "Fine-tuning job started")
    name = model_name(job["model"], jobs.suffix(job_id), job_id)
    metrics, tokens = [], [0]

    def on_event(event: dict) -> None:
        if "step" in event:
            tokens[0] += event.pop("tokens")
            metrics.append(event)
            valid = f", validation loss={event['valid_loss']:.4f}" if "valid_loss" in event else ""
            jobs.add_event(job_id, f"Step {event['step']}/{event['total_steps']}: training loss="
                           f"{event['train_loss']:.4f}{valid}", data=event, while_status="running")
        else:
            step = metrics[-1]["step"]
            jobs.add_checkpoint(job_id, f"{name}:ckpt-step-{step}", step, _checkpoint_metrics(metrics),
                                Path(event["checkpoint"]))
            jobs.add_event(job_id, f"Checkpoint created at step {step}", while_status="running")

    def should_stop() -> bool:
        if _server_gone(server):  # as if killed with it: the next server reads the job as failed
            os._exit(3)
        return jobs.status(job_id) != "running"

    out = sft(base, train_path, folder / "model",
              Hyper(n_epochs=hyper["n_epochs"], batch_size=hyper["batch_size"],
                    learning_rate=BASE_LEARNING_RATE * hyper["learning_rate_multiplier"], seed=job["seed"],
                    max_tokens=limit),
              valid_file=data.get("validation_file", (None,))[0], on_event=on_event, should_stop=should_stop)
    if out is None:  # cancelled: nothing to serve, nothing to keep
        shutil.rmtree(folder, ignore_errors=True)
        return
    results = files.add(_results_csv(metrics), "step_metrics.csv", "fine-tune-results")
    if jobs.update(job_id, ("running",), status="succeeded", fine_tuned_model=name,
                   finished_at=int(time.time()), trained_tokens=tokens[0], result_files=[results["id"]]):
        jobs.add_event(job_id, f"New fine-tuned model created: {name}")
        jobs.add_event(job_id, "The job has successfully completed")


def resolve(given: dict, examples: int) -> dict:
    """The hyperparameters a job runs with, "auto" replaced as this server chooses."""
    auto = {"n_epochs": default_epochs(examples), "batch_size": AUTO_BATCH_SIZE, "learning_rate_multiplier": 1.0}
    return {k: given.get(k, "auto") if given.get(k, "auto") != "auto" else v for k, v in auto.items()}


def _invalid(param: str, file_id: str, report: Report) -> str:
    errors = [p for p in report.problems if p.severity == "error"]
    shown = "; ".join(f"{'line ' + str(p.line) if p.line else 'file'}: {p.message}" for p in errors[:3])
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return (f"The job failed due to an invalid {param.replace('_', ' ')} {file_id}: {shown}{more}. "
            "Check it with `labkit validate FILE.jsonl`.")


def _checkpoint_metrics(metrics: list[dict]) -> dict:
    last = metrics[-1]
    out = {"step": last["step"], "train_loss": last["train_loss"]}
    valid = [m["valid_loss"] for m in metrics if "valid_loss" in m]
    if valid:
        out["valid_loss"] = valid[-1]
    return out


def _results_csv(metrics: list[dict]) -> bytes:
    """What OpenAI's result file holds: one row per step."""
    rows = ["step,train_loss,valid_loss"]
    rows += [f"{m['step']},{m['train_loss']:.6f},{m.get('valid_loss', '')}" for m in metrics]
    return ("\n".join(rows) + "\n").encode()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m labkit.finetune.worker",
                                 description="train one fine-tuning job (started by a labkit server)")
    ap.add_argument("root", type=Path, help="the server's data folder")
    ap.add_argument("job_id")
    ap.add_argument("base", type=Path, help="the base model's folder")
    ap.add_argument("--threads", type=int, default=default_threads())
    ap.add_argument("--server", type=int, default=os.getppid(), help="the server's pid: stop if it dies")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="fine-tuning %(levelname)s %(message)s")
    train_job(args.root, args.job_id, args.base, args.threads, args.server)


if __name__ == "__main__":
    main()
