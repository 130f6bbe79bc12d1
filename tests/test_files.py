"""/v1/files through the official SDK: OpenAI's shapes, pagination, errors, and storage that survives a restart."""

from __future__ import annotations

import openai
import pytest

from labkit.server import LocalServer, create_app
from tests.conftest import MODEL

DATA = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'


@pytest.fixture()
def files(tmp_path, spec_client):
    """The Files API of a fresh server; every body it answers is checked against OpenAI's schemas (spec_client)."""
    with LocalServer(create_app([MODEL], data_dir=tmp_path)) as srv:
        yield spec_client(srv.base_url).files, tmp_path


def test_upload_retrieve_content_delete(files, spec_client):
    api, _ = files
    raw = api.with_raw_response.create(file=("train.jsonl", DATA), purpose="fine-tune")
    body, f = raw.http_response.json(), raw.parse()
    assert f.id.startswith("file-") and f.bytes == len(DATA) and f.filename == "train.jsonl"
    assert "expires_at" not in body and "status_details" not in body, "no nulls where the spec types a value"
    assert api.retrieve(f.id) == f
    assert api.content(f.id).read() == DATA
    deleted = api.delete(f.id)
    assert deleted.deleted
    with pytest.raises(openai.NotFoundError) as e:
        api.retrieve(f.id)
    assert e.value.body["code"] == "file_not_found"


def test_list_pages_with_after_and_limit(files, spec_client):
    api, _ = files
    ids = [api.create(file=(f"{i}.jsonl", DATA), purpose="fine-tune").id for i in range(5)]
    page = api.list(limit=2, order="asc")
    assert [f.id for f in page.data] == ids[:2] and page.has_more
    assert [f.id for f in api.list(order="asc", limit=2, after=ids[1]).data] == ids[2:4]
    assert [f.id for f in api.list(order="asc")] == ids, "the SDK's auto-pagination walks every page"
    assert [f.id for f in api.list().data] == ids[::-1], "newest first by default"
    assert api.list(purpose="batch").data == []


def test_the_spec_check_refuses_the_nulls_the_spec_does_not_allow(openapi):
    """What the SDK's model_dump() shows (expires_at=None, status_details=None, dpo=None) is not on the wire; if it
    ever were, the spec_client check of every response would fail on it."""
    card = {"id": "file-x", "object": "file", "bytes": 1, "created_at": 0, "filename": "a.jsonl",
            "purpose": "fine-tune", "status": "processed"}
    openapi(card, "OpenAIFile")
    for field in ("expires_at", "status_details"):
        with pytest.raises(AssertionError, match=field):
            openapi({**card, field: None}, "OpenAIFile")
    method = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}}
    openapi(method, "FineTuneMethod")
    with pytest.raises(AssertionError, match="dpo"):
        openapi({**method, "dpo": None}, "FineTuneMethod")

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


def test_files_survive_a_restart(tmp_path, spec_client):
    with LocalServer(create_app([MODEL], data_dir=tmp_path)) as srv:
        f = spec_client(srv.base_url).files.create(file=("a.jsonl", DATA), purpose="fine-tune")
    with LocalServer(create_app([MODEL], data_dir=tmp_path)) as srv:
        again = spec_client(srv.base_url).files
        assert again.retrieve(f.id) == f and again.content(f.id).read() == DATA


def test_unknown_cursor_and_bad_limit_are_400s(files):
    api, _ = files
    with pytest.raises(openai.BadRequestError) as e:
        api.list(after="file-nope")
    assert e.value.body["param"] == "after"
    with pytest.raises(openai.BadRequestError) as e:
        api.list(limit=0)
    assert e.value.body["param"] == "limit"
