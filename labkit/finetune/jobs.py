"""Fine-tuning jobs, their events and checkpoints: rows in SQLite (the labkit.db the files live in) and
model folders under the store's root, returned in OpenAI's shapes.

A worker holds a job's lock file for as long as the job runs. The operating system drops the lock when
the process dies, so a `running` job whose lock anyone can take is dead: it is marked `failed` the next
time it is read, and never stays `running` forever. Jobs still `validating_files` or `queued` when a
server stops are picked up again by the next worker (see labkit.finetune.worker).
"""

from __future__ import annotations

import json
import secrets
import shutil
import sqlite3
import threading
import time
from pathlib import Path

from filelock import FileLock, Timeout

from labkit.errors import InvalidRequestError, NotFoundError

PENDING = ("validating_files", "queued")  # waiting for a worker
TERMINAL = ("succeeded", "failed", "cancelled")
ORGANIZATION = "labkit"  # the org part of a fine-tuned model's name: ft:BASE:labkit:SUFFIX:ID

_JOB_COLUMNS = ("id", "created_at", "model", "training_file", "validation_file", "hyperparameters", "suffix",
                "seed", "status", "error", "fine_tuned_model", "finished_at", "trained_tokens", "result_files",
                "metadata")
_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, created_at INTEGER, model TEXT, training_file TEXT, "
    "validation_file TEXT, hyperparameters TEXT, suffix TEXT, seed INTEGER, status TEXT, error TEXT, "
    "fine_tuned_model TEXT, finished_at INTEGER, trained_tokens INTEGER, result_files TEXT, metadata TEXT)",
    "CREATE TABLE IF NOT EXISTS job_events (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT, job_id TEXT, "
    "created_at INTEGER, level TEXT, message TEXT, type TEXT, data TEXT)",
    "CREATE TABLE IF NOT EXISTS job_checkpoints (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT, job_id TEXT, "
    "created_at INTEGER, name TEXT, step INTEGER, metrics TEXT, folder TEXT)",
]


def _new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


class JobStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "jobs").mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.root / "labkit.db", check_same_thread=False, timeout=30)
        self._lock = threading.Lock()
        with self._lock, self._db:
            for statement in _SCHEMA:
                self._db.execute(statement)

    # ------------------------------------------------------------ jobs

    def create(self, model: str, training_file: str, validation_file: str | None, hyperparameters: dict,
               suffix: str | None, seed: int, metadata: dict | None = None) -> dict:
        job_id = _new_id("ftjob")
        row = {"id": job_id, "created_at": int(time.time()), "model": model, "training_file": training_file,
               "validation_file": validation_file, "hyperparameters": json.dumps(hyperparameters), "suffix": suffix,
               "seed": seed, "status": "validating_files", "error": None, "fine_tuned_model": None,
               "finished_at": None, "trained_tokens": None, "result_files": "[]",
               "metadata": json.dumps(metadata) if metadata is not None else None}
        with self._lock, self._db:
            self._db.execute(f"INSERT INTO jobs ({', '.join(_JOB_COLUMNS)}) VALUES "
                             f"({', '.join('?' * len(_JOB_COLUMNS))})", [row[c] for c in _JOB_COLUMNS])
        self.add_event(job_id, f"Created fine-tuning job: {job_id}")
        return self.get(job_id)

    def get(self, job_id: str) -> dict:
        row = self._row(job_id)
        if row["status"] == "running" and self._reap(row):
            row = self._row(job_id)
        return _job_card(row)

    def list(self, after: str | None, limit: int) -> dict:
        """Newest first; `after` is the last id of the previous page."""
        with self._lock:
            ids = [r[0] for r in self._db.execute("SELECT id FROM jobs ORDER BY created_at DESC, rowid DESC")]
        start = _after(ids, after, "job")
        page = ids[start : start + limit]
        return {"object": "list", "data": [self.get(i) for i in page], "has_more": start + limit < len(ids)}

    def pending(self) -> list[str]:
        """Ids of jobs waiting for a worker, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT id FROM jobs WHERE status IN (?, ?) ORDER BY created_at, rowid",
                                    PENDING).fetchall()
        return [r[0] for r in rows]

    def update(self, job_id: str, expect: tuple[str, ...], **fields) -> bool:
        """Set fields only while the job's status is one of `expect` (a cancel in between wins)."""
        fields = {k: json.dumps(v) if k in ("error", "hyperparameters", "result_files") else v
                  for k, v in fields.items()}
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._lock, self._db:
            cur = self._db.execute(f"UPDATE jobs SET {sets} WHERE id = ? AND status IN "
                                   f"({', '.join('?' * len(expect))})", [*fields.values(), job_id, *expect])
        return cur.rowcount == 1

    def status(self, job_id: str) -> str:
        return self._row(job_id)["status"]

    def suffix(self, job_id: str) -> str | None:
        return self._row(job_id)["suffix"]

    def cancel(self, job_id: str) -> dict:
        status = self.get(job_id)["status"]
        if status in TERMINAL:
            raise InvalidRequestError(f"Job {job_id} has already {'ended' if status != 'cancelled' else 'been'} "
                                      f"{status}; only a job that has not finished can be cancelled.",
                                      param="fine_tuning_job_id", code="invalid_state")
        if self.update(job_id, (*PENDING, "running"), status="cancelled", finished_at=int(time.time())):
            self.add_event(job_id, "Fine-tuning job cancelled")
        return self.get(job_id)

    def fail(self, job_id: str, code: str, message: str, param: str | None = None) -> None:
        if self.update(job_id, (*PENDING, "running"), status="failed", finished_at=int(time.time()),
                       error={"code": code, "message": message, "param": param}):
            self.add_event(job_id, message, level="error")

    def lock(self, job_id: str) -> FileLock | None:
        """The job's run lock, or None when another live worker holds it."""
        lock = FileLock(self.root / "jobs" / f"{job_id}.lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return None
        return lock

    def _reap(self, row: dict) -> bool:
        """Fail a running job whose worker died (its lock is free); True if it did."""
        lock = self.lock(row["id"])
        if lock is None:
            return False
        try:
            steps = self.last_metrics(row["id"])
            where = f" at step {steps['step']} of {steps['total_steps']}" if steps else ""
            self.fail(row["id"], "server_stopped", f"The labkit server running this job stopped{where} before "
                      "it finished. Create the job again to train from the start.")
        finally:
            lock.release()
        return True

    def _row(self, job_id: str) -> dict:
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(_JOB_COLUMNS)} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"No such fine-tuning job: {job_id}", param="fine_tuning_job_id",
                                code="fine_tuning_job_not_found")
        return dict(zip(_JOB_COLUMNS, row))

    # ------------------------------------------------------------ events and checkpoints

    def add_event(self, job_id: str, message: str, level: str = "info", data: dict | None = None,
                  while_status: str | None = None) -> None:
        """Record an event; with while_status, only if the job is still in that status (in one statement,
        so a step that ends just after a cancel leaves no event behind the cancellation)."""
        kind = "metrics" if data and "step" in data else "message"
        with self._lock, self._db:
            self._db.execute("INSERT INTO job_events (id, job_id, created_at, level, message, type, data) "
                             "SELECT ?, ?, ?, ?, ?, ?, ? WHERE ? IS NULL OR (SELECT status FROM jobs WHERE id = ?) = ?",
                             (_new_id("ftevent"), job_id, int(time.time()), level, message, kind,
                              json.dumps(data or {}), while_status, job_id, while_status))

    def events(self, job_id: str, after: str | None, limit: int) -> dict:
        """Newest first, as OpenAI lists them; `after` is the last id of the previous page (older ones follow)."""
        page, has_more = self._page("SELECT id, created_at, level, message, type, data FROM job_events", job_id,
                                    after, limit, "event")
        data = [{"object": "fine_tuning.job.event", "id": i, "created_at": t, "level": lv, "message": m, "type": k,
                 "data": json.loads(d)} for i, t, lv, m, k, d in page]
        return {"object": "list", "data": data, "has_more": has_more}

    def last_metrics(self, job_id: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM job_events WHERE job_id = ? AND type = 'metrics' "
                                   "ORDER BY seq DESC LIMIT 1", (job_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def add_checkpoint(self, job_id: str, name: str, step: int, metrics: dict, folder: Path) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT INTO job_checkpoints (id, job_id, created_at, name, step, metrics, folder) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)", (_new_id("ftckpt"), job_id, int(time.time()), name,
                                                              step, json.dumps(metrics), str(folder)))

    def checkpoints(self, job_id: str, after: str | None, limit: int) -> dict:
        page, has_more = self._page("SELECT id, created_at, name, step, metrics FROM job_checkpoints", job_id,
                                    after, limit, "checkpoint")
        data = [{"object": "fine_tuning.job.checkpoint", "id": i, "created_at": t, "fine_tuned_model_checkpoint": n,
                 "step_number": s, "metrics": json.loads(m), "fine_tuning_job_id": job_id} for i, t, n, s, m in page]
        return {"object": "list", "data": data, "first_id": page[0][0] if page else None,
                "last_id": page[-1][0] if page else None, "has_more": has_more}

    def _page(self, select: str, job_id: str, after: str | None, limit: int, what: str) -> tuple[list, bool]:
        """One page of a job's rows, newest first (the first column is the id `after` names)."""
        self.get(job_id)
        with self._lock:
            rows = self._db.execute(f"{select} WHERE job_id = ? ORDER BY seq DESC", (job_id,)).fetchall()
        start = _after([r[0] for r in rows], after, what)
        return rows[start : start + limit], start + limit < len(rows)

    # ------------------------------------------------------------ the models jobs made

    def job_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id  # ids are ours (ftjob-<hex>)

    def model_folder(self, name: str) -> Path | None:
        """Where a fine-tuned model (or one of its checkpoints) lives; None if no job made it."""
        if not name.startswith("ft:"):
            return None
        with self._lock:
            row = self._db.execute("SELECT folder FROM job_checkpoints c JOIN jobs j ON j.id = c.job_id "
                                   "WHERE c.name = ? OR (j.fine_tuned_model = ? AND j.status = 'succeeded') "
                                   "ORDER BY c.step DESC LIMIT 1", (name, name)).fetchone()
        return Path(row[0]) if row and Path(row[0], "config.json").is_file() else None

    def models(self) -> list[tuple[str, int]]:
        """(name, finished_at) of every fine-tuned model that is ready (made and not deleted)."""
        with self._lock:
            rows = self._db.execute("SELECT fine_tuned_model, finished_at FROM jobs WHERE status = 'succeeded' "
                                    "ORDER BY finished_at").fetchall()
        return [(name, t) for name, t in rows if self.model_folder(name)]

    def delete_model(self, name: str) -> None:
        """Delete a fine-tuned model's weights and its checkpoints' (the job and its events stay, as on OpenAI)."""
        with self._lock:
            row = self._db.execute("SELECT id FROM jobs WHERE fine_tuned_model = ?", (name,)).fetchone()
        if row is None or self.model_folder(name) is None:
            raise NotFoundError(f"The model '{name}' does not exist", param="model", code="model_not_found")
        shutil.rmtree(self.job_dir(row[0]) / "model")


def model_name(base: str, suffix: str | None, job_id: str) -> str:
    return f"ft:{base}:{ORGANIZATION}:{suffix or ''}:{job_id.removeprefix('ftjob-')[:8]}"


def _after(ids: list[str], after: str | None, what: str) -> int:
    if after is None:
        return 0
    if after not in ids:
        raise InvalidRequestError(f"after: no {what} {after!r} in this list", param="after")
    return ids.index(after) + 1


def _job_card(row: dict) -> dict:
    return {"object": "fine_tuning.job", "id": row["id"], "created_at": row["created_at"], "model": row["model"],
            "organization_id": ORGANIZATION, "training_file": row["training_file"],
            "validation_file": row["validation_file"], "hyperparameters": json.loads(row["hyperparameters"]),
            "seed": row["seed"], "status": row["status"],
            "error": json.loads(row["error"]) if row["error"] else None, "fine_tuned_model": row["fine_tuned_model"],
            "finished_at": row["finished_at"], "trained_tokens": row["trained_tokens"],
            "result_files": json.loads(row["result_files"]), "estimated_finish": None, "integrations": None,
            "method": {"type": "supervised",
                       "supervised": {"hyperparameters": json.loads(row["hyperparameters"])}},
            "metadata": json.loads(row["metadata"]) if row["metadata"] else None}
