"""Passage vectors shipped beside corpus/ (corpus/.vectors/, scripts/ship_vectors.py): complete, exact, and
ignored with a warning when unreadable or made by another model."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from kb.embed import (DEFAULT_MODEL, EmbeddingCache, load_encoder, load_shipped, question_key, shipped_path, text_key,
                      write_shipped)
from kb.index import passage_texts, placed_situations

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"


class CountingEncoder:
    """A stand-in encoder (made up for the test): a text's vector is derived from its hash; counts what it embeds."""

    model_id = "counting-test-encoder"
    dim = 4

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def encode_queries(self, texts):
        return self.encode_documents(texts)

    def encode_documents(self, texts, progress=None):
        self.embedded.extend(texts)
        rows = [np.frombuffer(text_key(t)[:4], dtype=np.uint8).astype(np.float32) + 1 for t in texts]
        vecs = np.array(rows, dtype=np.float32).reshape(len(texts), self.dim)
        return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(DEFAULT_MODEL)


def test_every_passage_of_the_bundled_corpus_is_shipped(encoder) -> None:
    texts = passage_texts([CORPUS])
    have = load_shipped([CORPUS], encoder)
    missing = [t for t in texts if text_key(t) not in have]
    assert not missing, (f"{len(missing)} passages of corpus/ have no shipped vector: "
                         "run python scripts/ship_vectors.py and commit corpus/.vectors/")


def test_every_everyday_situation_of_the_bundled_corpus_is_shipped_read_as_a_question(encoder) -> None:
    texts = placed_situations([CORPUS])
    have = load_shipped([CORPUS], encoder)
    assert len(texts) > 1000
    missing = [t for t in texts if question_key(t) not in have]
    assert not missing, (f"{len(missing)} situations have no shipped vector: "
                         "run python scripts/ship_vectors.py and commit corpus/.vectors/")
    sample = random.Random(12).sample(texts, 4)
    np.testing.assert_allclose(np.stack([have[question_key(t)] for t in sample]), encoder.encode_queries(sample),
                               atol=1e-4)


def test_shipped_vectors_are_what_the_encoder_gives(encoder) -> None:
    texts = random.Random(11).sample(list(dict.fromkeys(passage_texts([CORPUS]))), 6)
    have = load_shipped([CORPUS], encoder)
    np.testing.assert_allclose(np.stack([have[text_key(t)] for t in texts]), encoder.encode_documents(texts),
                               atol=1e-5)


def test_a_build_embeds_only_what_is_not_shipped(tmp_path) -> None:
    enc = CountingEncoder()
    texts = ["第一条 为了促进中小企业健康发展，制定本法。", "第二条 本法所称中小企业。", "第三条 国家扶持中小企业。"]
    shipped = enc.encode_documents(texts[:2])
    enc.embedded.clear()
    write_shipped(shipped_path(tmp_path, enc.model_id), enc.model_id, [text_key(t) for t in texts[:2]], shipped)
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    try:
        vecs = cache.embed(enc, texts, shipped=load_shipped([tmp_path], enc))
    finally:
        cache.close()
    assert enc.embedded == texts[2:]
    np.testing.assert_array_equal(vecs[:2], shipped)


@pytest.mark.parametrize("content", [b"not a zip file", b""])
def test_an_unreadable_file_is_skipped_with_a_warning(tmp_path, content) -> None:
    enc = CountingEncoder()
    path = shipped_path(tmp_path, enc.model_id)
    path.parent.mkdir()
    path.write_bytes(content)
    warnings: list[str] = []
    assert load_shipped([tmp_path], enc, warn=warnings.append) == {}
    assert len(warnings) == 1 and "embedding those passages instead" in warnings[0]


def test_vectors_of_another_model_or_width_are_not_used(tmp_path) -> None:
    enc = CountingEncoder()
    key = [text_key("第一条")]
    write_shipped(shipped_path(tmp_path, enc.model_id), "another-model", key, np.ones((1, 4), np.float32))
    warnings: list[str] = []
    assert load_shipped([tmp_path], enc, warn=warnings.append) == {}
    write_shipped(shipped_path(tmp_path, enc.model_id), enc.model_id, key, np.ones((1, 8), np.float32))
    assert load_shipped([tmp_path], enc, warn=warnings.append) == {}
    assert len(warnings) == 2


def test_the_file_is_never_read_as_a_document(tmp_path) -> None:
    from kb.corpus import list_corpus_files

    write_shipped(shipped_path(tmp_path, "m"), "m", [text_key("x")], np.ones((1, 2), np.float32))
    (tmp_path / ".vectors" / "notes.md").write_text("# not a policy\n", encoding="utf-8")
    assert list_corpus_files([tmp_path]) == []


def test_kb_build_takes_the_shipped_vectors(tmp_path, encoder) -> None:
    import shutil

    from kb.index import build_index
    from kb.segment import Segmenter

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(CORPUS / "lianyungang-zjtx-plan-interpretation.md", corpus)
    shutil.copytree(CORPUS / ".vectors", corpus / ".vectors")
    report = build_index([corpus], tmp_path / "index", encoder, Segmenter())
    assert report.chunks >= 20 and report.embedded == 0
    shutil.rmtree(corpus / ".vectors")
    again = build_index([corpus], tmp_path / "index2", encoder, Segmenter())
    assert again.embedded == again.chunks  # without the file, every passage is embedded
