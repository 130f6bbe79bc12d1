"""/v1/files through the official SDK: OpenAI's shapes, pagination, errors, and storage that survives a restart."""

from __future__ import annotations

import openai
import pytest

from labkit.server import LocalServer, create_app
from tests.conftest import MODEL

DATA = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'


@pytest.fixture()
def files(tmp_path):
    with LocalServer(create_app([MODEL], data_dir=tmp_path)) as srv:
        yield openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0).files, tmp_path


def test_upload_retrieve_content_delete(files, openapi):
    api, _ = files
    f = api.create(file=("train.jsonl", DATA), purpose="fine-tune")
    openapi(f.model_dump(exclude_unset=True), "OpenAIFile")
    assert f.id.startswith("file-") and f.bytes == len(DATA) and f.filename == "train.jsonl"
    assert api.retrieve(f.id) == f
    assert api.content(f.id).read() == DATA
    deleted = api.delete(f.id)
    openapi(deleted.model_dump(exclude_unset=True), "DeleteFileResponse")
    assert deleted.deleted
    with pytest.raises(openai.NotFoundError) as e:
        api.retrieve(f.id)
    assert e.value.body["code"] == "file_not_found"


def test_list_pages_with_after_and_limit(files, openapi):
    api, _ = files
    ids = [api.create(file=(f"{i}.jsonl", DATA), purpose="fine-tune").id for i in range(5)]
    raw = api.with_raw_response.list(limit=2, order="asc")
    openapi(raw.http_response.json(), "ListFilesResponse")
    page = raw.parse()
    assert [f.id for f in page.data] == ids[:2] and page.has_more
    assert [f.id for f in api.list(order="asc", limit=2, after=ids[1]).data] == ids[2:4]
    assert [f.id for f in api.list(order="asc")] == ids, "the SDK's auto-pagination walks every page"
    assert [f.id for f in api.list().data] == ids[::-1], "newest first by default"
    assert api.list(purpose="batch").data == []


@pytest.mark.parametrize("kwargs, param, status", [
    ({"file": ("x.jsonl", DATA), "purpose": "assistants"}, "purpose", 400),
    ({"file": ("x.jsonl", b""), "purpose": "fine-tune"}, "file", 400),
])
def test_bad_uploads_name_the_param(files, kwargs, param, status):
    api, _ = files
    with pytest.raises(openai.APIStatusError) as e:
        api.create(**kwargs)
    assert e.value.status_code == status and e.value.body["param"] == param


def test_a_filename_is_never_a_path(files):
    api, root = files
    f = api.create(file=("../../escape.jsonl", DATA), purpose="fine-tune")
    assert f.filename == "../../escape.jsonl"
    assert not (root.parent / "escape.jsonl").exists() and (root / "files" / f.id).read_bytes() == DATA
    assert not list(root.rglob("*.tmp")), "no temporary file is left behind"


def test_files_survive_a_restart(tmp_path):
    with LocalServer(create_app([MODEL], data_dir=tmp_path)) as srv:
        f = openai.OpenAI(base_url=srv.base_url, api_key="x").files.create(file=("a.jsonl", DATA), purpose="fine-tune")
    with LocalServer(create_app([MODEL], data_dir=tmp_path)) as srv:
        again = openai.OpenAI(base_url=srv.base_url, api_key="x").files
        assert again.retrieve(f.id) == f and again.content(f.id).read() == DATA


def test_unknown_cursor_and_bad_limit_are_400s(files):
    api, _ = files
    with pytest.raises(openai.BadRequestError) as e:
        api.list(after="file-nope")
    assert e.value.body["param"] == "after"
    with pytest.raises(openai.BadRequestError) as e:
        api.list(limit=0)
    assert e.value.body["param"] == "limit"
