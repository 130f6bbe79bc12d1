"""The background worker that runs a server's fine-tuning jobs, one at a time, as OpenAI's service does:
validate the files (labkit.finetune.checks, counted with the base model's own tokenizer), train
(labkit.finetune.sft) with an event per step and a checkpoint per epoch, then publish the model as
ft:BASE:labkit:SUFFIX:ID. The thread exists only while jobs wait, so an idle server costs nothing.
"""

from __future__ import annotations

import logging
import shutil
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


class Worker:
    """base_folder(name) gives the transformers folder of a model the server may fine-tune (or raises)."""

    def __init__(self, jobs: JobStore, files: FileStore, base_folder: Callable[[str], Path]):
        self.jobs, self.files, self.base_folder = jobs, files, base_folder
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
        lock = self.jobs.lock(job_id)
        if lock is None:  # another server's worker has it
            return
        try:
            if self.jobs.status(job_id) in PENDING:
                self._run(job_id)
        except Exception as e:  # the job fails with the reason; the server goes on
            log.exception("fine-tuning job %s failed", job_id)
            self.jobs.fail(job_id, "internal_error", f"labkit failed while running this job: {type(e).__name__}: {e}")
            shutil.rmtree(self.jobs.job_dir(job_id), ignore_errors=True)
        finally:
            lock.release()

    def _run(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        folder = self.jobs.job_dir(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        base = self.base_folder(job["model"])
        from transformers import AutoConfig, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
        limit = int(getattr(AutoConfig.from_pretrained(base, local_files_only=True), "max_position_embeddings", 2048))
        data = {}
        for param in ("training_file", "validation_file"):
            if job[param] is None:
                continue
            self.jobs.add_event(job_id, f"Validating {param.replace('_', ' ')}: {job[param]}")
            path = folder / f"{param}.jsonl"
            path.write_bytes(self.files.content(job[param]))
            report = validate(path, model=job["model"], token_limit=limit, tokenizer=tokenizer)
            if not report.ok:
                self.jobs.fail(job_id, f"invalid_{param}", _invalid(param, job[param], report), param)
                return
            data[param] = (path, report)
        train_path, report = data["training_file"]
        hyper = resolve(job["hyperparameters"], report.examples)
        if not self.jobs.update(job_id, PENDING, status="queued", hyperparameters=hyper):
            return  # cancelled meanwhile
        self.jobs.add_event(job_id, "Files validated, moving job to queued state")
        if not self.jobs.update(job_id, ("queued",), status="running"):
            return
        self.jobs.add_event(job_id, "Fine-tuning job started")
        name = model_name(job["model"], self.jobs.suffix(job_id), job_id)
        metrics, tokens = [], [0]

        def on_event(event: dict) -> None:
            if "step" in event:
                tokens[0] += event.pop("tokens")
                metrics.append(event)
                valid = f", validation loss={event['valid_loss']:.4f}" if "valid_loss" in event else ""
                self.jobs.add_event(job_id, f"Step {event['step']}/{event['total_steps']}: training loss="
                                    f"{event['train_loss']:.4f}{valid}", data=event, while_status="running")
            else:
                step = metrics[-1]["step"]
                self.jobs.add_checkpoint(job_id, f"{name}:ckpt-step-{step}", step, _checkpoint_metrics(metrics),
                                         Path(event["checkpoint"]))
                self.jobs.add_event(job_id, f"Checkpoint created at step {step}", while_status="running")

        out = sft(base, train_path, folder / "model",
                  Hyper(n_epochs=hyper["n_epochs"], batch_size=hyper["batch_size"],
                        learning_rate=BASE_LEARNING_RATE * hyper["learning_rate_multiplier"], seed=job["seed"],
                        max_tokens=limit),
                  valid_file=data.get("validation_file", (None,))[0], on_event=on_event,
                  should_stop=lambda: self.jobs.status(job_id) != "running")
        if out is None:  # cancelled: nothing to serve, nothing to keep
            shutil.rmtree(folder, ignore_errors=True)
            return
        results = self.files.add(_results_csv(metrics), "step_metrics.csv", "fine-tune-results")
        if self.jobs.update(job_id, ("running",), status="succeeded", fine_tuned_model=name,
                            finished_at=int(time.time()), trained_tokens=tokens[0], result_files=[results["id"]]):
            self.jobs.add_event(job_id, f"New fine-tuned model created: {name}")
            self.jobs.add_event(job_id, "The job has successfully completed")


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
