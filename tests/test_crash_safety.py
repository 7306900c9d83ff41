"""`kb build` killed with SIGKILL at many points of a real build (a real subprocess over copies of real
regulations from corpus/): the published index still opens and answers exactly as before, and the
next build succeeds, publishes, and clears the leftover `.tmp-*` folders.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from kb.config import Settings
from kb.index import BUILDS_DIR, TMP_PREFIX, IndexHandle, read_current
from kb.search import SearchOptions, Searcher
from kb.present import result_to_json
from kb.service import KnowledgeBase, shared_segmenter

from conftest import CORPUS, ROOT

QUERIES = ("个体工商户 登记", "中小企业 款项支付", "增值税 税率", "标准 制定")
BASE_DOCS = ("cujin-geti-gongshanghu-fazhan-tiaoli-2022.md", "zengzhishui-zanxingtiaoli-2017.md")
# one new (uncached) real regulation per round, so every killed build has real work to do
NEW_DOCS = ("biaozhunhua-fa-2017.md", "jiuye-cujinfa-2015.md", "zhongxiaoqiye-cujinfa-2017.md",
            "shuju-anquanfa-2021.md", "chanpinzhiliangfa-2018.md", "duiwaimaoyifa-2022.md")


def _env(dense: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env["KB_DENSE"] = "1" if dense else "0"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _build_cmd(corpus: Path, index: Path) -> list[str]:
    return [sys.executable, "-m", "kb.cli", "build", "--corpus", str(corpus), "--index", str(index)]


def _build(corpus: Path, index: Path, dense: bool) -> str:
    """Run `kb build` to the end as a subprocess; return its stdout."""
    done = subprocess.run(_build_cmd(corpus, index), env=_env(dense), cwd=corpus.parent, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _build_here(corpus: Path, index: Path, dense: bool) -> None:
    """Build in this process (a starting point or a reference; the builds under test are subprocesses)."""
    KnowledgeBase(Settings(corpus_dirs=(corpus,), index_dir=index, dense=dense)).build()


def _answers(index: Path, encoder=None, modes=("hybrid",)) -> tuple[str, dict]:
    """Open the published index afresh and return (build name, contract JSON of each query)."""
    loaded = IndexHandle(index, encoder.model_id if encoder else None).current()
    searcher = Searcher(loaded, encoder, shared_segmenter())
    out = {f"{mode}:{q}": result_to_json(searcher.search(q, SearchOptions(k=5, mode=mode)))
           for q in QUERIES for mode in modes}
    assert any(r["results"] for r in out.values())
    return loaded.build_dir.name, out


def _tmp_folders(index: Path) -> list[Path]:
    return sorted((index / BUILDS_DIR).glob(TMP_PREFIX + "*"))


def _in_tmp(index: Path, name: str):
    """A trigger: the build's temporary folder exists (and holds `name`, when given)."""
    return lambda: any(not name or (tmp / name).exists() for tmp in _tmp_folders(index))


def _after(seconds: float):
    start = time.monotonic()
    return lambda: time.monotonic() - start >= seconds


def _held(trigger, seconds: float):
    """A trigger: `trigger` has been true for `seconds`."""
    since: list[float] = []

    def check() -> bool:
        if not since and trigger():
            since.append(time.monotonic())
        return bool(since) and time.monotonic() - since[0] >= seconds

    return check


def _start_and_kill(corpus: Path, index: Path, dense: bool, trigger, timeout: float = 60) -> bool:
    """Start `kb build`, SIGKILL it when `trigger()` is true; return True if it was killed mid-run."""
    proc = subprocess.Popen(_build_cmd(corpus, index), env=_env(dense), cwd=corpus.parent,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and not trigger() and time.monotonic() < deadline:
            time.sleep(0.001)
        os.kill(proc.pid, signal.SIGKILL)  # a zombie, if it just ended: harmless
    finally:
        proc.wait(timeout=30)
    return proc.returncode == -signal.SIGKILL


def _corpus(tmp_path: Path, names) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in names:
        shutil.copy(CORPUS / name, corpus / name)
    return corpus


def test_sigkill_at_many_points_keeps_the_published_index(tmp_path):
    corpus, index = _corpus(tmp_path, BASE_DOCS), tmp_path / "index"
    _build_here(corpus, index, dense=False)
    rng = random.Random(20240415)
    longest = [1.0]  # the longest build seen so far: the range of the random kill
    points = [
        ("temporary folder created", lambda: _in_tmp(index, "")),
        ("while segmenting", lambda: _held(_in_tmp(index, ""), 0.3)),
        ("BM25 written", lambda: _in_tmp(index, "bm25-words")),
        ("store written", lambda: _in_tmp(index, "store.sqlite")),
        ("manifest written, not yet published", lambda: _in_tmp(index, "manifest.json")),
        ("random delay", lambda: _after(rng.uniform(0.1, longest[0]))),
    ]
    killed_before_publish = 0
    leftovers_seen = 0
    for (label, make_trigger), new_doc in zip(points, NEW_DOCS, strict=True):
        published, expected = _answers(index)
        shutil.copy(CORPUS / new_doc, corpus / new_doc)
        killed = _start_and_kill(corpus, index, dense=False, trigger=make_trigger())
        now_published, answers = _answers(index)  # it still opens, in a fresh reader
        if now_published == published:
            assert answers == expected, label  # the same results, to the score
            killed_before_publish += killed
        else:  # killed after CURRENT moved (while pruning): the new build is whole
            assert (index / BUILDS_DIR / now_published / "manifest.json").is_file(), label
        leftovers_seen += bool(_tmp_folders(index))

        t0 = time.monotonic()
        out = _build(corpus, index, dense=False)  # the next build succeeds and clears what the kill left
        longest[0] = max(longest[0], time.monotonic() - t0)
        assert ("built" in out or "up to date" in out) and not _tmp_folders(index), label
        assert read_current(index) != published
        assert new_doc[:-3] in IndexHandle(index, None).current().doc_row, label
    assert killed_before_publish >= 5
    assert leftovers_seen >= 3  # kills inside the build left .tmp-* folders that the next build removed

    # the caches the killed builds wrote into are sound: a from-scratch build answers identically
    reference = tmp_path / "reference-index"
    _build_here(corpus, reference, dense=False)
    assert _answers(reference)[1] == _answers(index)[1]


def test_sigkill_during_embedding_with_the_real_encoder(tmp_path):
    # three short real documents keep the first (in-process) embedding quick
    corpus = _corpus(tmp_path, ("lianyungang-zjtx-plan-interpretation.md", "cujin-geti-gongshanghu-fazhan-tiaoli-2022.md",
                                "baozhang-zhongxiaoqiye-kuanxiang-zhifu-tiaoli-2020.md"))
    index = tmp_path / "index"
    kb = KnowledgeBase(Settings(corpus_dirs=(corpus,), index_dir=index, dense=True))
    kb.build()
    encoder = kb.encoder()
    modes = ("hybrid", "dense")
    published, expected = _answers(index, encoder, modes)
    assert expected["dense:中小企业 款项支付"]["results"]

    shutil.copy(CORPUS / "zengzhishui-zanxingtiaoli-2017.md", corpus / "zengzhishui-zanxingtiaoli-2017.md")
    # BM25 is written before the passages are embedded: kill a second into embedding
    assert _start_and_kill(corpus, index, dense=True, trigger=_held(_in_tmp(index, "bm25-bigrams"), 1.0))
    assert _tmp_folders(index)
    assert _answers(index, encoder, modes) == (published, expected)

    out = _build(corpus, index, dense=True)
    assert "built" in out and not _tmp_folders(index)
    now_published, answers = _answers(index, encoder, modes)
    assert now_published != published and answers != expected
    assert "zengzhishui-zanxingtiaoli-2017" in IndexHandle(index, encoder.model_id).current().doc_row
