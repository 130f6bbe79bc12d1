"""/v1/files: uploads for fine-tuning, in OpenAI's shapes, kept in SQLite and files under LABKIT_HOME.

The uploaded name is metadata only: content is stored under the file's id, written to a temporary
file and renamed into place, so a crash mid-upload leaves no partial file behind.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path

from fastapi import APIRouter, Form, UploadFile
from fastapi.responses import Response

from labkit.server.errors import APIError

MAX_FILE_BYTES = 512 * 1024 * 1024  # OpenAI's limit for a fine-tuning file
PURPOSES = ("fine-tune",)
_COLUMNS = "id, bytes, created_at, filename, purpose"


class FileStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "files").mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.root / "labkit.db", check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.execute("CREATE TABLE IF NOT EXISTS files (id TEXT PRIMARY KEY, bytes INTEGER, "
                             "created_at INTEGER, filename TEXT, purpose TEXT)")

    def add(self, data: bytes, filename: str, purpose: str) -> dict:
        file_id = f"file-{uuid.uuid4().hex[:24]}"
        path = self.path(file_id)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        row = (file_id, len(data), int(time.time()), filename, purpose)
        with self._lock, self._db:
            self._db.execute(f"INSERT INTO files ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)", row)
        return _card(row)

    def get(self, file_id: str) -> dict:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM files WHERE id = ?", (file_id,)).fetchone()
        if row is None:
            raise APIError(404, f"No such File object: {file_id}", param="id", code="file_not_found")
        return _card(row)

    def content(self, file_id: str) -> bytes:
        self.get(file_id)
        return self.path(file_id).read_bytes()

    def delete(self, file_id: str) -> None:
        self.get(file_id)
        with self._lock, self._db:
            self._db.execute("DELETE FROM files WHERE id = ?", (file_id,))
        self.path(file_id).unlink(missing_ok=True)

    def list(self, purpose: str | None, limit: int, order: str, after: str | None) -> dict:
        query, args = f"SELECT {_COLUMNS} FROM files", []
        if purpose:
            query, args = query + " WHERE purpose = ?", [purpose]
        direction = "ASC" if order == "asc" else "DESC"
        with self._lock:
            rows = self._db.execute(f"{query} ORDER BY created_at {direction}, rowid {direction}", args).fetchall()
        ids = [r[0] for r in rows]
        if after is not None:
            if after not in ids:
                raise APIError(400, f"after: no file {after!r} in this list", param="after")
            rows = rows[ids.index(after) + 1 :]
        page = rows[:limit]
        return {"object": "list", "data": [_card(r) for r in page], "first_id": page[0][0] if page else None,
                "last_id": page[-1][0] if page else None, "has_more": len(rows) > limit}

    def path(self, file_id: str) -> Path:
        return self.root / "files" / file_id  # ids are ours (file-<hex>), never a client's name


def _card(row) -> dict:
    file_id, size, created, filename, purpose = row
    return {"id": file_id, "object": "file", "bytes": size, "created_at": created, "filename": filename,
            "purpose": purpose, "status": "processed"}


def router(store: FileStore) -> APIRouter:
    r = APIRouter()

    @r.post("/v1/files")
    async def upload(file: UploadFile | None = None, purpose: str | None = Form(None)):
        if file is None:
            raise APIError(400, "file is required (multipart/form-data)", param="file",
                           code="missing_required_parameter")
        if purpose not in PURPOSES:
            raise APIError(400, f"purpose must be one of {list(PURPOSES)} on labkit's server, got {purpose!r}",
                           param="purpose", code="invalid_value")
        data = await file.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise APIError(413, f"file is larger than {MAX_FILE_BYTES // 2**20} MB", param="file")
        if not data:
            raise APIError(400, "file is empty", param="file")
        return store.add(data, (file.filename or "upload.jsonl")[:255], purpose)  # a name, never a path

    @r.get("/v1/files")
    def list_files(purpose: str | None = None, limit: int = 10_000, order: str = "desc", after: str | None = None):
        if not 1 <= limit <= 10_000:
            raise APIError(400, f"limit must be between 1 and 10000, got {limit}", param="limit")
        if order not in ("asc", "desc"):
            raise APIError(400, f"order must be 'asc' or 'desc', got {order!r}", param="order")
        return store.list(purpose, limit, order, after)

    @r.get("/v1/files/{file_id}")
    def retrieve(file_id: str):
        return store.get(file_id)

    @r.delete("/v1/files/{file_id}")
    def delete(file_id: str):
        store.delete(file_id)
        return {"id": file_id, "object": "file", "deleted": True}

    @r.get("/v1/files/{file_id}/content")
    def content(file_id: str):
        return Response(store.content(file_id), media_type="application/octet-stream")

    return r
