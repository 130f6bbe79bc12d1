"""/v1/embeddings through the official SDK (whose default is base64), its errors, and the notebook-side
helpers in labkit.embeddings."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import numpy as np
import openai
import pytest

from labkit import embeddings
from labkit.engine.embeddings import load_embedder
from tests.conftest import MODEL

MINILM, POOLED = "all-minilm-l6-v2", f"{MODEL}-mean"
TEXTS = ["The cat sat on the mat.", "A kitten was sitting on the rug.", "Interest rates rose again this quarter.",
         "hi", "A much longer sentence, with commas and several clauses, about nothing in particular at all."]


def floats(client, model, texts, **kw) -> np.ndarray:
    r = client.embeddings.create(model=model, input=texts, encoding_format="float", **kw)
    return np.array([d.embedding for d in r.data])


@pytest.mark.parametrize("model", [MINILM, POOLED])
def test_shape_usage_and_unit_vectors(client, raw, openapi, model):
    status, body = raw("/embeddings", {"model": model, "input": TEXTS, "encoding_format": "float"})
    assert status == 200
    openapi(body, "CreateEmbeddingResponse")
    assert body["model"] == model and [d["index"] for d in body["data"]] == list(range(len(TEXTS)))
    vectors = np.array([d["embedding"] for d in body["data"]])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    tok = load_embedder(model, {MODEL: MODEL}).tokenizer
    tokens = sum(len(tok(t, add_special_tokens=False).input_ids) for t in TEXTS)
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


@pytest.mark.parametrize("model", [MINILM, POOLED])
def test_base64_decodes_to_the_same_floats(client, raw, model):
    as_floats = floats(client, model, TEXTS)
    sdk = client.embeddings.create(model=model, input=TEXTS)  # the SDK asks for base64 and decodes it
    assert np.abs(np.array([d.embedding for d in sdk.data]) - as_floats).max() < 1e-7
    _, body = raw("/embeddings", {"model": model, "input": TEXTS, "encoding_format": "base64"})
    decoded = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in body["data"]])
    assert decoded.shape == as_floats.shape and np.abs(decoded - as_floats).max() < 1e-7


@pytest.mark.parametrize("model", [MINILM, POOLED])
def test_token_ids_embed_like_their_text(client, model):
    tok = load_embedder(model, {MODEL: MODEL}).tokenizer
    ids = [tok(t, add_special_tokens=False).input_ids for t in TEXTS[:2]]
    by_text = floats(client, model, TEXTS[:2])
    assert np.abs(floats(client, model, ids) - by_text).max() < 1e-5, "a list of token id lists"
    assert np.abs(floats(client, model, ids[0])[0] - by_text[0]).max() < 1e-5, "one list of token ids"


@pytest.mark.parametrize("model", [MINILM, POOLED])
def test_batching_and_padding_change_nothing(client, model):
    together = floats(client, model, TEXTS)
    alone = np.stack([floats(client, model, [t])[0] for t in TEXTS])
    # the same vectors up to the rounding of other matrix shapes (bf16 activations for the pooled LM on CPU)
    assert (together * alone).sum(axis=1).min() > 0.9995, "padding is masked out of the mean"
    assert (together @ together.T)[0, 1] > (together @ together.T)[0, 2] or model == POOLED


def test_minilm_ranks_a_paraphrase_above_an_unrelated_sentence(client):
    v = floats(client, MINILM, TEXTS[:3])
    assert v[0] @ v[1] > 0.5 > v[0] @ v[2]


def test_dimensions_truncate_and_renormalize(client, openapi, raw):
    full = floats(client, MINILM, TEXTS)
    status, body = raw("/embeddings", {"model": MINILM, "input": TEXTS, "dimensions": 64,
                                          "encoding_format": "float"})
    openapi(body, "CreateEmbeddingResponse")
    short = np.array([d["embedding"] for d in body["data"]])
    assert short.shape == (len(TEXTS), 64)
    assert np.allclose(short, full[:, :64] / np.linalg.norm(full[:, :64], axis=1, keepdims=True), atol=1e-5)


@pytest.mark.parametrize("body, param, code", [
    ({"input": ""}, "input", "invalid_value"),
    ({"input": []}, "input", "invalid_value"),
    ({"input": ["fine", ""]}, "input", "invalid_value"),
    ({"input": [[]]}, "input", None),
    ({"input": 5}, "input", None),
    ({"input": [1.5]}, "input", None),
    ({"input": [["a"]]}, "input", None),
    ({"input": [10**9]}, "input", "invalid_value"),
    ({"input": "word " * 300}, "input", "context_length_exceeded"),
    ({"input": ["x"] * 2049}, "input", None),
    ({"input": "x", "encoding_format": "int8"}, "encoding_format", None),
    ({"input": "x", "dimensions": 0}, "dimensions", None),
    ({"input": "x", "dimensions": 385}, "dimensions", "invalid_value"),
    ({"input": "x", "model": POOLED, "dimensions": 64}, "dimensions", "unsupported_parameter"),
    ({"input": "x", "extra": 1}, "extra", None),
])
def test_bad_inputs_are_400_naming_the_param(raw, openapi, body, param, code):
    status, err = raw("/embeddings", {"model": MINILM, **body})
    assert status == 400, err
    openapi(err, "ErrorResponse")
    assert err["error"]["param"] == param and (code is None or err["error"]["code"] == code), err


def test_tiktoken_ids_get_a_400_that_says_what_to_send_instead(raw, openapi):
    """LangChain's OpenAIEmbeddings sends cl100k token ids by default; the error tells its user what to do."""
    from labkit import tokens

    ids = tokens.encoding("cl100k_base").encode("LangChain splits documents into chunks before embedding them.")
    assert max(ids) >= 30522, "an id past the 30,522 tokens of MiniLM's vocabulary"
    status, err = raw("/embeddings", {"model": MINILM, "input": [ids]})
    assert status == 400 and err["error"]["param"] == "input", err
    openapi(err, "ErrorResponse")
    message = err["error"]["message"]
    assert "own tokenizer" in message and "send the text" in message, message
    assert "check_embedding_ctx_length=False" in message, message

@pytest.mark.parametrize("model", ["text-embedding-3-small", MODEL])
def test_a_model_that_does_not_embed_is_404(client, model):
    with pytest.raises(openai.NotFoundError) as e:
        client.embeddings.create(model=model, input="x")
    assert MINILM in e.value.body["message"], "the error names the models that do embed"


def test_embedding_models_are_listed_and_the_local_role(client):
    import labkit

    assert {MINILM, POOLED} <= {m.id for m in client.models.list()}
    assert labkit.Lab(backend="local").models.embedding == MINILM


# ---------------------------------------------------------------- helpers in labkit.embeddings


class CountingEmbeddings:
    """Stands in for client.embeddings: counts the texts it is asked to embed."""

    def __init__(self, client):
        self.client, self.asked = client, []

    def create(self, **kw):
        self.asked += kw["input"]
        return self.client.embeddings.create(**kw)


def test_embed_caches_on_disk_and_asks_once_per_text(client, tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path))
    counting = CountingEmbeddings(client)
    lab = SimpleNamespace(client=SimpleNamespace(embeddings=counting), models=SimpleNamespace(embedding=MINILM))
    texts = TEXTS + TEXTS[:2]
    first = embeddings.embed(lab, texts, batch_size=2)
    assert counting.asked == TEXTS, "duplicates are asked once, batches in order"
    again = embeddings.embed(lab, texts)
    assert counting.asked == TEXTS, "the second run comes from the cache"
    assert np.array_equal(first, again) and first.shape == (7, 384) and np.array_equal(first[0], first[5])
    embeddings.embed(lab, TEXTS[:1], dimensions=32)
    assert counting.asked == TEXTS + TEXTS[:1], "other dimensions are another cache entry"
    assert (tmp_path / "embeddings.sqlite").is_file()
    with pytest.raises(ValueError):
        embeddings.embed(lab, [])


def test_cosine_rank_and_top_k():
    m = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    q = np.array([[3.0, 0.1]])
    assert np.allclose(embeddings.cosine(m, m).diagonal(), 1)
    assert embeddings.rank(q, m).tolist() == [[0, 2, 1]]
    idx, scores = embeddings.top_k(q, m, k=2)
    assert idx.tolist() == [[0, 2]] and scores[0, 0] > scores[0, 1]


def test_retrieval_scores_by_hand():
    rankings = [[3, 1, 2, 0], [0, 1, 2, 3]]
    relevant = [{1}, {2, 3}]
    s = embeddings.retrieval_scores(rankings, relevant, ks=(1, 2, 4))
    assert s == {"recall@1": 0.0, "recall@2": 0.5, "recall@4": 1.0, "MRR": pytest.approx((1 / 2 + 1 / 3) / 2)}
    with pytest.raises(ValueError):
        embeddings.retrieval_scores(rankings, relevant[:1])


def test_bag_of_words_and_projection():
    bow = embeddings.bag_of_words(["red apples", "green apples", "fast cars"])
    v = bow(["apples", "cars"])
    assert np.allclose(np.linalg.norm(v, axis=1), 1) and v[0] @ v[1] == 0
    points = np.random.default_rng(0).normal(size=(20, 8))
    assert embeddings.project(points).shape == (20, 2) and embeddings.project(points, "tsne").shape == (20, 2)
    with pytest.raises(ValueError):
        embeddings.project(points, "umap")
