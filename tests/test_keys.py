"""Per-student keys with quotas (`labkit serve --keys FILE`): the file, 401/403/429 through the official SDK,
usage charged for whole and streamed answers, and secrets kept out of messages and logs."""

from __future__ import annotations

import logging
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest

from labkit.server import LocalServer, create_app
from labkit.server.keys import Key, read_keys
from tests.conftest import MODEL

CLASS = """\
# the class of week 3
key,name,tokens_per_minute,total_tokens,role
sk-ada-4f1c9e,ada,,,
sk-bob-77d2a0,bob,,1,student
sk-cy-0b93e5,cy,1,,
sk-teach-e1a8,teacher,,,Teacher
"""
ADA, BOB, CY, TEACHER = "sk-ada-4f1c9e", "sk-bob-77d2a0", "sk-cy-0b93e5", "sk-teach-e1a8"
LEGACY = "legacy-class-key"  # as --api-key gives it
HELLO = [{"role": "user", "content": "Say hello."}]


def keys_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keys.csv"
    path.write_text(text)
    return path


@pytest.fixture()
def classroom(lm, tmp_path):
    """A fresh server (and ledger) per test, with the class's keys and one plain --api-key."""
    keys = read_keys(keys_file(tmp_path, CLASS))
    with LocalServer(create_app([MODEL], api_keys=[LEGACY], keys=keys, data_dir=tmp_path / "store")) as srv:
        yield srv


def sdk(srv: LocalServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key=key, max_retries=0, timeout=120)


def chat(client: openai.OpenAI, **kw):
    return client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=4, temperature=0, seed=1, **kw)


def usage_page(srv: LocalServer, key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(srv.base_url.removesuffix("/v1") + "/labkit/usage", headers=headers, timeout=30)


def rows(srv: LocalServer) -> dict[str, dict]:
    page = usage_page(srv, TEACHER)
    assert page.status_code == 200, page.text
    return {row["name"]: row for row in page.json()["data"]}


# ---------------------------------------------------------------- the file


def test_read_keys_parses_a_good_file(tmp_path):
    text = "\ufeffkey,tokens_per_minute,role,name\n# a comment\n\n k1 ,500,,\nk2,,teacher,ms-lee\n"  # Excel's BOM
    assert read_keys(keys_file(tmp_path, text)) == [
        Key("k1", "student-1", 500, None, False), Key("k2", "ms-lee", None, None, True)]
    assert read_keys(keys_file(tmp_path, "key\nonly\n")) == [Key("only", "student-1", None, None, False)]
    assert "k1" not in repr(read_keys(keys_file(tmp_path, text))[0]), "a logged Key shows no secret"


@pytest.mark.parametrize(("text", "where"), [
    ("# roster\nkey,nmae\nk1,ada\n", "line 2, column 'nmae': unknown column"),
    ("name\nada\n", "line 1, column 'key': the header has no key column"),
    ("key,name\nk1,ada\n,bob\n", "line 3, column 'key': empty key"),
    ("key,name\nsecret-1,ada\n# bob\nsecret-1,bob\n", "line 4, column 'key': duplicate key (first on line 2)"),
    ("key,name\nk1,ada\nk2,ada\n", "line 3, column 'name': duplicate name (first on line 2)"),
    ("key,tokens_per_minute\nk1,ten\n", "line 2, column 'tokens_per_minute': 'ten' is not a whole number"),
    ("key,total_tokens\nk1,1.5\n", "line 2, column 'total_tokens': '1.5' is not a whole number"),
    ("key,total_tokens\nk1,0\n", "line 2, column 'total_tokens': 0 is not a positive number"),
    ("key,tokens_per_minute\nk1,-5\n", "line 2, column 'tokens_per_minute': -5 is not a positive number"),
    ("key,role\nk1,admin\n", "line 2, column 'role': unknown role 'admin'"),
    ("key,name\nk1,ada,extra\n", "line 2: 3 values for 2 columns"),
    ("# nothing yet\nkey,name\n", "no keys"),
    ("", "no header row"),
])
def test_read_keys_names_the_file_line_and_column(tmp_path, text, where):
    path = keys_file(tmp_path, text)
    with pytest.raises(ValueError) as caught:
        read_keys(path)
    assert str(caught.value).startswith(str(path)) and where in str(caught.value)
    assert "secret-1" not in str(caught.value), "a duplicate key is not echoed"


def test_serve_with_a_broken_keys_file_exits_before_loading_a_model(tmp_path):
    path = keys_file(tmp_path, "key,name,total_tokens\nk1,ada,100\nk2,bob,lots\n")
    done = subprocess.run([sys.executable, "-m", "labkit", "serve", "--keys", str(path), "--port", "0"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "line 3, column 'total_tokens'" in done.stderr and "Traceback" not in done.stderr
    assert "loaded" not in done.stdout, "it fails before any model loads"


# ---------------------------------------------------------------- the server


def test_a_wrong_or_missing_key_is_refused(classroom, openapi):
    with pytest.raises(openai.AuthenticationError) as caught:
        chat(sdk(classroom, "sk-ada-wrong"))
    missing = httpx.post(classroom.base_url + "/chat/completions", json={"model": MODEL, "messages": HELLO})
    assert missing.status_code == 401
    for body in (caught.value.response.json(), missing.json()):
        openapi(body, "ErrorResponse")
        assert body["error"]["code"] == "invalid_api_key" and "sk-ada" not in body["error"]["message"]


def test_a_student_key_gets_a_chat_completion(classroom):
    reply = chat(sdk(classroom, ADA))
    assert reply.choices[0].message.content and reply.usage.completion_tokens > 0


def test_a_spent_total_quota_is_a_429_naming_the_limit(classroom, openapi):
    bob = sdk(classroom, BOB)
    first = chat(bob)  # admitted on what was used before it (0 of 1), so it may end over the quota
    with pytest.raises(openai.RateLimitError) as caught:
        chat(bob)
    body = caught.value.response.json()
    openapi(body, "ErrorResponse")
    assert body["error"]["code"] == body["error"]["type"] == "insufficient_quota"
    assert f"used {first.usage.total_tokens:,} of its 1 total tokens" in body["error"]["message"]
    with pytest.raises(openai.RateLimitError):  # every metered endpoint is refused, not only chat
        bob.embeddings.create(model=MODEL + "-mean", input="hello")
    assert rows(classroom)["bob"]["requests"] == 1, "a refused request is not charged"


def test_tokens_per_minute_is_a_429_with_retry_after(classroom, openapi):
    cy = sdk(classroom, CY)
    chat(cy)
    with pytest.raises(openai.RateLimitError) as caught:
        chat(cy)
    response = caught.value.response
    body = response.json()
    openapi(body, "ErrorResponse")
    assert body["error"]["code"] == "rate_limit_exceeded" and body["error"]["type"] == "tokens"
    assert "(TPM): Limit 1," in body["error"]["message"] and "try again in" in body["error"]["message"]
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert chat(sdk(classroom, ADA)).choices, "one student's limit does not hold up another"


def test_usage_counts_what_the_answers_reported(classroom):
    """Whole answers, a stream with include_usage, one without (one token per streamed delta), and embeddings."""
    ada = sdk(classroom, ADA)
    whole = chat(ada).usage
    text = ada.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5, temperature=0, seed=1).usage
    embedded = ada.embeddings.create(model=MODEL + "-mean", input=["hello", "world"]).usage
    with_usage = [c for c in chat(ada, stream=True, stream_options={"include_usage": True})][-1].usage
    deltas = sum(1 for c in chat(ada, stream=True) for choice in c.choices if choice.delta.role is None)
    assert deltas == with_usage.completion_tokens, "the same seeded request streams one token per delta"
    ada_row = rows(classroom)["ada"]
    assert ada_row["requests"] == 5
    assert ada_row["prompt_tokens"] == (whole.prompt_tokens + text.prompt_tokens + embedded.prompt_tokens
                                        + with_usage.prompt_tokens)  # a stream without usage counts no prompt
    assert ada_row["completion_tokens"] == (whole.completion_tokens + text.completion_tokens
                                            + with_usage.completion_tokens + deltas)
    assert ada_row["total_tokens"] == ada_row["prompt_tokens"] + ada_row["completion_tokens"]
    assert ada_row["limits"] == {"tokens_per_minute": None, "total_tokens": None}


def test_usage_is_for_the_teacher_only(classroom, openapi):
    chat(sdk(classroom, CY))
    page = usage_page(classroom, TEACHER)
    assert page.status_code == 200 and page.json()["object"] == "list"
    by_name = {row["name"]: row for row in page.json()["data"]}
    assert list(by_name) == ["ada", "bob", "cy", "teacher", "api-key-1"]
    assert by_name["cy"]["requests"] == 1 and by_name["cy"]["limits"]["tokens_per_minute"] == 1
    assert by_name["teacher"]["role"] == "teacher" and by_name["bob"]["limits"]["total_tokens"] == 1
    assert not any(secret in page.text for secret in (ADA, BOB, CY, TEACHER, LEGACY))
    for key, status in ((ADA, 403), (None, 401), ("sk-nobody", 401)):
        page = usage_page(classroom, key)
        assert page.status_code == status
        openapi(page.json(), "ErrorResponse")


def test_usage_without_a_keys_file_is_not_found(lm, tmp_path, openapi):
    with LocalServer(create_app([MODEL], api_keys=[LEGACY], data_dir=tmp_path)) as srv:
        assert usage_page(srv, None).status_code == 401, "--api-key still guards every route"
        page = usage_page(srv, LEGACY)
    assert page.status_code == 404
    openapi(page.json(), "ErrorResponse")
    assert page.json()["error"]["code"] == "not_found" and "no keys file" in page.json()["error"]["message"]


def test_an_api_key_works_beside_the_keys_file(classroom):
    reply = chat(sdk(classroom, LEGACY))
    legacy = rows(classroom)["api-key-1"]
    assert legacy["role"] == "student" and legacy["limits"] == {"tokens_per_minute": None, "total_tokens": None}
    assert legacy["total_tokens"] == reply.usage.total_tokens


@contextmanager
def captured(caplog, names: tuple[str, ...]):
    """caplog's handler on loggers that may not propagate to the root (uvicorn's access log does not)."""
    loggers = [logging.getLogger(n) for n in names]
    before = [(lg.level, lg.handlers[:]) for lg in loggers]
    caplog.handler.setLevel(logging.DEBUG)
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.addHandler(caplog.handler)
    try:
        yield
    finally:
        for lg, (level, handlers) in zip(loggers, before):
            lg.setLevel(level)
            lg.handlers[:] = handlers


def test_keys_never_reach_the_logs(classroom, caplog):
    with captured(caplog, ("uvicorn", "uvicorn.access", "uvicorn.error", "labkit")):
        with pytest.raises(openai.AuthenticationError):
            chat(sdk(classroom, "sk-ada-4f1c9X"))
        chat(sdk(classroom, ADA), stream=True).close()
        chat(sdk(classroom, BOB))
        with pytest.raises(openai.RateLimitError):
            chat(sdk(classroom, BOB))
        usage_page(classroom, TEACHER)
    assert "/v1/chat/completions" in caplog.text, "the requests were logged, so the check below means something"
    for secret in (ADA, BOB, TEACHER, "sk-ada-4f1c9X"):
        assert secret not in caplog.text
