"""Stored Responses (`store: true`, OpenAI's default), in SQLite under the server's data folder.

Each row keeps the Response object as it was answered and its input items: the items the model read, which
for a response made with `previous_response_id` start with the earlier responses' inputs and outputs (that is
how a chain is followed: the next response reads this one's input items, then its output).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from labkit.errors import InvalidRequestError, NotFoundError


class ResponseStore:
    """FOLDER/responses.sqlite3 (FOLDER: the server's data folder, LABKIT_HOME/server unless --data-dir)."""

    def __init__(self, folder: Path | str):
        path = Path(folder) / "responses.sqlite3"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.execute("CREATE TABLE IF NOT EXISTS responses (id TEXT PRIMARY KEY, created_at INTEGER, "
                             "response TEXT NOT NULL, input_items TEXT NOT NULL)")

    def put(self, response: dict, input_items: list[dict]) -> None:
        row = (response["id"], response["created_at"], json.dumps(response), json.dumps(input_items))
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)", row)

    def _row(self, response_id: str) -> tuple[str, str] | None:
        with self._lock:
            return self._db.execute("SELECT response, input_items FROM responses WHERE id = ?",
                                    (response_id,)).fetchone()

    def get(self, response_id: str) -> dict:
        row = self._row(response_id)
        if row is None:
            raise NotFoundError(f"Response with id '{response_id}' not found.", param="response_id")
        return json.loads(row[0])

    def conversation(self, response_id: str) -> list[dict] | None:
        """The items a response continuing this one starts from (its input items, then its output), or None
        if no such response is stored."""
        row = self._row(response_id)
        if row is None:
            return None
        return json.loads(row[1]) + json.loads(row[0])["output"]

    def delete(self, response_id: str) -> None:
        with self._lock, self._db:
            gone = self._db.execute("DELETE FROM responses WHERE id = ?", (response_id,)).rowcount
        if not gone:
            raise NotFoundError(f"Response with id '{response_id}' not found.", param="response_id")

    def input_items(self, response_id: str, limit: int = 20, order: str = "desc", after: str | None = None) -> dict:
        """OpenAI's list of a response's input items: newest first unless order is 'asc'; `after` an item id."""
        row = self._row(response_id)
        if row is None:
            raise NotFoundError(f"Response with id '{response_id}' not found.", param="response_id")
        items = json.loads(row[1])
        if order == "desc":
            items.reverse()
        if after is not None:
            ids = [item["id"] for item in items]
            if after not in ids:
                raise InvalidRequestError(f"after: no input item {after!r} in response {response_id}", "after")
            items = items[ids.index(after) + 1 :]
        page = items[:limit]
        return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None, "has_more": len(items) > limit}
