"""Kill `kb build` with SIGKILL at random moments, many rounds in a row, and check the published index
after every kill: it opens and answers a few queries exactly as the last published build did (contract
JSON compared whole), or, when the killed build got as far as publishing, it is that complete build.

    KB_DENSE=0 python scripts/crash_loop.py --rounds 30
    python scripts/crash_loop.py --rounds 10 --corpus ../shared/corpora/gov-work-reports --seed 3

Each round adds one made-up document (虚构示例) to a temporary copy of the corpus and starts a real
`python -m kb.cli build` subprocess, killed either at a random time or at a random moment within one
stage (the .tmp-* folder appearing, then each file the build writes into it, timed on a first build). After the kill it records the phase reached (from what is on disk: no
temporary folder yet, which files the temporary folder held, renamed but not published, published),
then checks the index. A last, unkilled build must succeed, clear every leftover .tmp-* folder and find
every round's document. Prints a table per round and a summary; exits 1 on any failed check.
Settings come from the environment like `kb` itself (KB_DENSE, KB_MODEL).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from kb.config import load_settings
from kb.index import BUILDS_DIR, CURRENT_FILE, TMP_PREFIX, IndexHandle, read_current
from kb.present import result_to_json
from kb.search import SearchOptions, Searcher
from kb.service import KnowledgeBase

ROOT = Path(__file__).resolve().parent.parent

QUERIES = ("专精特新小巨人企业培育目标", "数字技术赋能工程", "特色金融助力工程", "优质企业梯度培育")
# what the temporary build folder holds, in the order a build writes it
TMP_STAGES = (("manifest.json", "tmp: manifest written (fsync, rename)"), ("store.sqlite", "tmp: writing store"),
              ("vectors.faiss", "tmp: vectors written"), ("bm25-bigrams", "tmp: bm25 bigrams"),
              ("bm25-words", "tmp: bm25 words"))


def round_doc(n: int) -> tuple[str, str, str]:
    """Return (file name, text, query) of round n's made-up document."""
    word = f"虚构示例第{n}轮琥珀灯塔条款"
    text = (f"---\ntitle: 虚构示例第{n}轮崩溃测试通知\nissuer: 虚构示例机关\nlevel: municipal\n"
            f"published: 2024-01-{1 + n % 28:02d}\nstatus: effective\n---\n\n"
            f"一、{word}\n\n本通知为虚构示例，仅用于软件测试（第{n}轮）。{word}要求每轮写入一份新文件。\n")
    return f"crash-round-{n:03d}.md", text, word


class Checker:
    """Opens the published index afresh and returns the contract JSON of the queries."""

    def __init__(self, corpus: Path, index: Path) -> None:
        settings = load_settings().with_overrides(corpus_dirs=(corpus,), index_dir=index)
        self.kb = KnowledgeBase(settings)
        self.index = index

    def answers(self, queries) -> tuple[str, dict]:
        loaded = IndexHandle(self.index, self.kb.encoder_id()).current()  # a fresh open every time
        searcher = Searcher(loaded, self.kb.encoder(), self.kb.segmenter)
        out = {q: result_to_json(searcher.search(q, SearchOptions(k=5)), searcher.validity) for q in queries}
        return loaded.build_dir.name, out

    def manifest_documents(self, build: str) -> dict:
        return json.loads((self.index / BUILDS_DIR / build / "manifest.json").read_text("utf-8"))["documents"]

    def corpus_documents(self) -> dict:
        from kb.corpus import read_corpus

        return {d.doc_id: d.content_hash for d in read_corpus(list(self.kb.settings.corpus_dirs))}


def build_command(corpus: Path, index: Path) -> list[str]:
    return [sys.executable, "-m", "kb.cli", "build", "--corpus", str(corpus), "--index", str(index), "--quiet"]


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def tmp_folders(index: Path, ignore: frozenset[str] = frozenset()) -> list[Path]:
    """Return the .tmp-* build folders, leaving out `ignore` (leftovers of earlier killed builds)."""
    return sorted(p for p in (index / BUILDS_DIR).glob(TMP_PREFIX + "*") if p.name not in ignore)


def phase_on_disk(index: Path, published_before: str | None, builds_before: set[str],
                  stale: frozenset[str]) -> str:
    """Return how far a killed build got, judged from the index folder after the kill."""
    current = read_current(index)
    if current != published_before:
        return "published (CURRENT switched)"
    new = {p.name for p in (index / BUILDS_DIR).iterdir() if not p.name.startswith(TMP_PREFIX)} - builds_before
    if new:
        return "renamed, CURRENT not yet written"
    folders = tmp_folders(index, stale)
    if not folders:
        return "before tmp (start, read, parse)"
    held = {p.name for p in folders[-1].iterdir()}
    for name, label in TMP_STAGES:
        if name in held:
            return label
    return "tmp: empty (segmenting)"


def _reached(index: Path, stale: frozenset[str]) -> set[str]:
    """Return what a running build has written so far: 'tmp' and the names inside its .tmp-* folder."""
    folders = tmp_folders(index, stale)
    if not folders:
        return set()
    try:
        return {"tmp"} | {p.name for p in folders[-1].iterdir()}
    except FileNotFoundError:  # renamed into place under us
        return {"tmp"}


def timed_build(corpus: Path, index: Path) -> tuple[float, dict[str, float]]:
    """Run one complete build; return (seconds to finish, seconds at which each stage first showed on disk)."""
    stale = frozenset(p.name for p in tmp_folders(index))
    start = time.monotonic()
    proc = subprocess.Popen(build_command(corpus, index), env=child_env(), cwd=corpus.parent,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    marks: dict[str, float] = {}
    while proc.poll() is None:
        for name in _reached(index, stale):
            marks.setdefault(name, time.monotonic() - start)
        time.sleep(0.001)
    if proc.returncode != 0:
        raise SystemExit(f"kb build failed:\n{proc.stderr.read().decode('utf-8', 'replace')}")
    return time.monotonic() - start, {k: v for k, v in marks.items() if k == "tmp" or k in dict(TMP_STAGES)}


def kill_build(corpus: Path, index: Path, rng: random.Random, total: float, marks: dict[str, float],
               stale: frozenset[str]) -> dict:
    """Start `kb build` and SIGKILL it at a random moment; return what happened.

    The moment is either a random time, or a random point in the window of one stage (a stage starts
    when its file shows up in the .tmp-* folder and lasts until the next one did in the timed build),
    so the short stages are hit as often as the long ones.
    """
    trigger = rng.choice(["timer"] + sorted(marks))
    if trigger == "timer":
        delay = rng.uniform(0.05, total * 1.05)
    else:
        later = [t for t in marks.values() if t > marks[trigger]] + [total]
        delay = rng.uniform(0, max(min(later) - marks[trigger], 0.005))
    start = time.monotonic()
    proc = subprocess.Popen(build_command(corpus, index), env=child_env(), cwd=corpus.parent,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    fire_at = start + delay if trigger == "timer" else None
    while proc.poll() is None:
        now = time.monotonic()
        if fire_at is None and trigger in _reached(index, stale):
            fire_at = now + delay
        if fire_at is not None and now >= fire_at:
            break
        if now - start > 20 * max(total, 1):
            break
        time.sleep(0.0005)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stderr = proc.stderr.read().decode("utf-8", "replace")
    label = trigger if trigger == "timer" else f"+{trigger}"
    return {"trigger": label, "at": time.monotonic() - start, "killed": proc.returncode == -signal.SIGKILL,
            "code": proc.returncode, "stderr": stderr}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="kills in a row (default 30)")
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus", help="corpus to copy (default ./corpus)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    seed = args.seed if args.seed is not None else random.randrange(10**6)
    rng = random.Random(seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="kb-crash-loop-"))
    corpus, index = work / "corpus", work / "index"
    if corpus.exists() or index.exists():
        parser.error(f"{work} already holds corpus/ or index/; give an empty --work folder")
    shutil.copytree(args.corpus, corpus, ignore=shutil.ignore_patterns(".*"))
    try:
        return run(args.rounds, corpus, index, rng, seed)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


def run(rounds: int, corpus: Path, index: Path, rng: random.Random, seed: int) -> int:
    checker = Checker(corpus, index)
    total, marks = timed_build(corpus, index)
    queries = list(QUERIES)
    published, last = checker.answers(queries)
    print(f"crash loop: {rounds} rounds, seed {seed}, corpus {corpus} ({len(list(corpus.glob('*.md')))} docs), "
          f"dense={'on' if checker.kb.settings.dense else 'off'}; a full build takes {total:.2f}s; on disk at "
          + ", ".join(f"{k} {v:.2f}s" for k, v in sorted(marks.items(), key=lambda kv: kv[1])))
    header = f"{'round':>5}  {'trigger':15}  {'killed at':>9}  {'phase reached':38}  {'published':9}  {'check':5}"
    print(header)
    print("-" * len(header))
    failures: list[str] = []
    phases: Counter = Counter()
    markers: dict[str, str] = {}  # query -> doc_id of the round document it must find once published
    for n in range(1, rounds + 1):
        name, text, word = round_doc(n)
        (corpus / name).write_text(text, encoding="utf-8")
        markers[word] = Path(name).stem
        builds_before = {p.name for p in (index / BUILDS_DIR).iterdir() if not p.name.startswith(TMP_PREFIX)}
        published_before = published
        stale = frozenset(p.name for p in tmp_folders(index))
        outcome = kill_build(corpus, index, rng, total, marks, stale)
        phase = phase_on_disk(index, published, builds_before, stale) if outcome["killed"] else (
            "finished before the kill" if outcome["code"] == 0 else f"exited {outcome['code']}")
        phases[phase] += 1
        problem = ""
        if not outcome["killed"] and outcome["code"] != 0:
            problem = f"build failed: {outcome['stderr'].strip()[-300:]}"
        try:
            now_published, answers = checker.answers(queries)
        except Exception as exc:  # any failure to open or search is what this loop looks for
            now_published, answers = None, {}
            problem = problem or f"published index unusable: {type(exc).__name__}: {exc}"
        if not problem and now_published == published:
            if answers != last:
                problem = "answers differ from the last published build"
        elif not problem:
            in_manifest = checker.manifest_documents(now_published)
            if in_manifest != checker.corpus_documents():
                problem = f"new build {now_published} is not the complete corpus"
            else:  # the killed build had published: it is the new reference, with this round's document
                queries = list(QUERIES) + list(markers)
                published, last = checker.answers(queries)
                missing = [q for q, doc in markers.items() if doc not in {h["doc_id"] for h in last[q]["results"]}]
                if missing:
                    problem = f"published build does not find {missing[:2]}"
        if problem:
            failures.append(f"round {n}: {problem}")
        switched = "yes" if now_published and now_published != published_before else "no"
        print(f"{n:>5}  {outcome['trigger']:15}  {outcome['at']:>8.2f}s  {phase:38}  {switched:9}  "
              f"{'FAIL' if problem else 'ok':5}", flush=True)
    # a last build, not killed: it must succeed, clear the leftovers and find every round's document
    leftovers = len(tmp_folders(index))
    timed_build(corpus, index)
    final_name, final = checker.answers(list(markers))
    if tmp_folders(index):
        failures.append(f"final build left {len(tmp_folders(index))} .tmp-* folder(s)")
    lost = [q for q, doc in markers.items() if doc not in {h["doc_id"] for h in final[q]["results"]}]
    if lost:
        failures.append(f"final build does not find {len(lost)} round document(s), e.g. {lost[0]}")
    if not (index / CURRENT_FILE).is_file():
        failures.append("no CURRENT after the final build")
    print()
    print(f"{'phase reached when killed':40} {'rounds':>6}")
    for phase, count in sorted(phases.items(), key=lambda kv: -kv[1]):
        print(f"{phase:40} {count:>6}")
    print(f"\nkilled {sum(c for p, c in phases.items() if not p.startswith(('finished', 'exited')))} of {rounds} "
          f"builds; {len(phases)} different phases; {leftovers} leftover .tmp-* folder(s) before the final build, "
          f"{len(tmp_folders(index))} after; final build {final_name} finds "
          f"{len(markers) - len(lost)}/{len(markers)} round documents")
    if failures:
        print(f"\nFAILED ({len(failures)}):")
        for line in failures:
            print("  " + line)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
