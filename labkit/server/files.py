"""/v1/files: uploads for fine-tuning, in OpenAI's shapes (storage: labkit.finetune.store)."""

from __future__ import annotations

from fastapi import APIRouter, Form, UploadFile
from fastapi.responses import Response

from labkit.finetune.store import FileStore
from labkit.server.errors import APIError

MAX_FILE_BYTES = 512 * 1024 * 1024  # OpenAI's limit for a fine-tuning file
PURPOSES = ("fine-tune",)


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
