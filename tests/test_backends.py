"""The backend settings and the Milvus filter translation, without pymilvus installed (pure functions)."""

from __future__ import annotations

import numpy as np
import pytest

from kb.backends.milvus import collection_name, dense_index_params, dense_search_params, filter_expression
from kb.config import ConfigError, load_settings
from kb.search import Filters


def test_backend_settings(tmp_path):
    s = load_settings({"KB_BACKEND": "milvus", "KB_MILVUS_URI": "http://m:19530", "KB_MILVUS_TOKEN": "u:p"}, tmp_path)
    assert (s.backend, s.milvus_uri, s.milvus_token) == ("milvus", "http://m:19530", "u:p")
    assert load_settings({}, tmp_path).backend == "embedded"
    (tmp_path / "kb.toml").write_text('backend = "milvus"\nmilvus_uri = "/x/m.db"\n', encoding="utf-8")
    s = load_settings({}, tmp_path)
    assert (s.backend, s.milvus_uri) == ("milvus", "/x/m.db")
    with pytest.raises(ConfigError, match="KB_BACKEND must be one of embedded, milvus"):
        load_settings({"KB_BACKEND": "elastic"}, tmp_path)


def test_filter_expression():
    mask = np.array([True, False, True])
    assert filter_expression(Filters(), None) == ""
    expr = filter_expression(Filters(level=("national", "provincial"), year_from=2020, region="江苏"), mask)
    assert expr == ('(level in ["national", "provincial"]) and (region like "%江苏%") '
                    'and (year >= 2020 and year > 0)')
    # what needs our own rules goes as the document rows of the mask
    assert filter_expression(Filters(active_only=True), mask) == "(doc_row in [0, 2])"
    # a value with a character we do not escape is not put in the expression: the mask's rows are
    assert filter_expression(Filters(issuer='a"b'), mask) == "(doc_row in [0, 2])"


def test_names_and_index_choice():
    assert collection_name("20261128-234320-1c48cf") == "kb_build_20261128_234320_1c48cf"
    from kb import ann

    assert dense_index_params(100)[0] == "FLAT"
    kind, params = dense_index_params(5_000_000)  # the kind kb/ann.py builds for FAISS, with its list count
    assert kind == {ann.IVF: "IVF_FLAT", ann.HNSW: "HNSW"}[ann.ANN_KIND]
    if kind == "IVF_FLAT":
        assert params == {"nlist": ann.ivf_lists(5_000_000)}
        assert dense_search_params(5_000_000, 200) == {"nprobe": ann.ivf_probe(ann.ivf_lists(5_000_000))}
    assert dense_search_params(100, 200) == {}
    assert dense_index_params(5_000_000, local=True) == ("FLAT", {})  # milvus-lite: exact at every size


def test_milvus_tuning_settings(tmp_path):
    s = load_settings({"KB_MILVUS_LEXICAL_CANDIDATES": "200", "KB_MILVUS_REPLICAS": "2"}, tmp_path)
    assert (s.milvus_lexical_candidates, s.milvus_replicas) == (200, 2)
    s = load_settings({}, tmp_path)
    assert (s.milvus_lexical_candidates, s.milvus_replicas) == (16384, 1)
    (tmp_path / "kb.toml").write_text("milvus_lexical_candidates = 500\nmilvus_replicas = 3\n", encoding="utf-8")
    s = load_settings({}, tmp_path)
    assert (s.milvus_lexical_candidates, s.milvus_replicas) == (500, 3)
    with pytest.raises(ConfigError, match="KB_MILVUS_LEXICAL_CANDIDATES must be a whole number of rows from 1 to 16384"):
        load_settings({"KB_MILVUS_LEXICAL_CANDIDATES": "20000"}, tmp_path)
    with pytest.raises(ConfigError, match="KB_MILVUS_REPLICAS must be a whole number of replicas from 1 to 64"):
        load_settings({"KB_MILVUS_REPLICAS": "0"}, tmp_path)


class _Unimplemented(Exception):
    def code(self):
        return type("Code", (), {"name": "UNIMPLEMENTED"})()


class _NoAliases:
    """A client whose engine answers alias calls as milvus-lite 2.5 does (gRPC UNIMPLEMENTED)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def list_aliases(self):
        raise self.error


def test_engines_without_aliases_are_told_apart():
    from kb.backends.milvus import supports_aliases

    assert supports_aliases(_NoAliases(_Unimplemented())) is False
    with pytest.raises(ConnectionError):  # any other failure is not taken for a missing feature
        supports_aliases(_NoAliases(ConnectionError("refused")))


class _Server:
    def __init__(self, version: str) -> None:
        self.version = version

    def get_server_version(self) -> str:
        return self.version


def test_servers_without_sparse_vectors_are_refused():
    from kb.backends import BackendError
    from kb.backends.milvus import check_engine

    with pytest.raises(BackendError, match="Milvus v2.3.5-lite has no sparse vectors"):
        check_engine(_Server("v2.3.5-lite"))  # what the `milvus` PyPI package (Milvus 2.3.5) answers
    for version in ("v2.4.0", "v2.6.16", "milvus_lite-3.2.2"):
        check_engine(_Server(version))


def test_vectors_go_to_milvus_in_chunk_row_order():
    """The FAISS index may hold vectors in another order than the chunk rows (scale.py adds them so); its id map says."""
    from types import SimpleNamespace

    from kb.ann import FLAT, build_ann
    from kb.backends.milvus import _index_vectors

    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(6, 4)).astype(np.float32)
    chunk_ids = np.array([50, 10, 40, 20, 60, 30])  # chunk id of each row
    order = np.array([3, 0, 5, 1, 4, 2])  # the order they are added in
    faiss_index = build_ann(vectors[order], chunk_ids[order], 4, kind=FLAT)
    sorted_ids = np.sort(chunk_ids)
    fake = SimpleNamespace(faiss=faiss_index, chunk_ids=chunk_ids, build_dir="fake",
                           rows_for_chunk_ids=lambda ids: np.argsort(chunk_ids)[np.searchsorted(sorted_ids, ids)])
    np.testing.assert_array_equal(_index_vectors(fake), vectors)
