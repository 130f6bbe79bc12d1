"""Uploaded files, kept in SQLite and files under LABKIT_HOME.

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

from labkit.errors import InvalidRequestError, NotFoundError

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
            raise NotFoundError(f"No such File object: {file_id}", param="id", code="file_not_found")
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
                raise InvalidRequestError(f"after: no file {after!r} in this list", param="after")
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
