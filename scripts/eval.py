"""Retrieval evaluation: hit@1, hit@5, MRR@10 and refusals per gold set and voice, the ablation, nonsense refusals.

    python scripts/eval.py --index /tmp/kb-eval-index \
        --corpus corpus --corpus ../shared/corpora/gov-work-reports \
        --corpus ../shared/corpora/cpc-congress-reports --laws ../shared/raw/national-laws \
        [--gold EXTRA.jsonl]... [--ablation] [--show]

Gold sets reported side by side: ../shared/eval/dev.jsonl (its last 6 questions are the
enterprise voice), ../shared/eval/dev-laws.jsonl (split by DEV_LAWS_LITERAL below), our own
tuning sets tests/data/dev_voice_laws.jsonl and dev_voice_seed.jsonl (by voice) and every --gold file (split by its "voice" field where it has one). A question is answered at rank r
when the r-th cited clause contains one of its gold strings after NFKC normalisation and,
where the gold names a "title", the document title contains it. A question is refused when
it gets no result at all. tests/data/nonsense.jsonl (off-topic questions, sports scores,
recipes, other languages, random characters) gives the share refused, which should be high.
The scoring itself (load_gold, rank_of, evaluate, refusal_rate) lives in kb/evaluation.py.

--laws DIR converts the national laws (the LawRefBook Markdown of ../shared/raw/national-laws)
into temporary corpus folders with `kb add` (text unchanged; two folders, because four laws
come in two versions with the same title) until they ship as corpus documents.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

from kb.embed import DEFAULT_MODEL, load_encoder
from kb.evaluation import evaluate, load_gold, pooled, refusal_rate
from kb.index import IndexHandle, build_index
from kb.search import SearchOptions, Searcher, with_tuning
from kb.segment import Segmenter

ROOT = Path(__file__).resolve().parent.parent

SHARED = Path(os.environ.get("KB_SHARED", ROOT.parent / "shared"))  # ../shared next to the checkout
NONSENSE = ROOT / "tests" / "data" / "nonsense.jsonl"
TUNING = ROOT / "tests" / "data" / "dev_voice_laws.jsonl"  # a dev set of our own (tuned on; tests/data/README.md)
TUNING_SEED = ROOT / "tests" / "data" / "dev_voice_seed.jsonl"  # the same over the seed (session 5)
# dev-laws.jsonl has no voice field. Rule: a question is literal when it is a run of the law's
# own terms (a noun phrase: no question word, no first person, no everyday frame); every other
# question is enterprise voice. By that rule these 0-based lines are literal:
DEV_LAWS_LITERAL = (0, 2, 5)
DEV_TAIL = 6  # dev.jsonl: the last six questions are asked in an enterprise's own words


def gold_parts(args) -> list[tuple[str, list[dict]]]:
    """Return (name, questions) for every reported part: each gold set whole and split by voice."""
    parts: list[tuple[str, list[dict]]] = []
    dev_path = SHARED / "eval" / "dev.jsonl"
    if dev_path.is_file():
        dev = load_gold(dev_path)
        parts += [("dev all", dev), ("dev literal", dev[:-DEV_TAIL]), ("dev voice", dev[-DEV_TAIL:])]
    laws_path = SHARED / "eval" / "dev-laws.jsonl"
    if laws_path.is_file():
        laws = load_gold(laws_path)
        parts += [("laws all", laws),
                  ("laws literal", [q for i, q in enumerate(laws) if i in DEV_LAWS_LITERAL]),
                  ("laws voice", [q for i, q in enumerate(laws) if i not in DEV_LAWS_LITERAL])]
    labelled = [(path, name) for path, name in ((TUNING, "dev-voice-laws"), (TUNING_SEED, "dev-voice-seed"))
                if path.is_file()] + [(p, p.stem) for p in args.gold or []]
    for path, name in labelled:
        questions = load_gold(path)
        parts.append((f"{name} all", questions))
        for voice in sorted({q["voice"] for q in questions if q.get("voice")}):
            parts.append((f"{name} {voice}", [q for q in questions if q.get("voice") == voice]))
    return parts


def convert_laws(raw: Path, work: Path) -> list[Path]:
    """Convert the raw national laws into corpus folders with `kb add`; return the folders (reused when done)."""
    folders = [work / "laws-a", work / "laws-b"]
    stamp = work / "laws.done"
    if stamp.is_file():
        return folders
    shutil.rmtree(work, ignore_errors=True)
    (work / "txt").mkdir(parents=True)
    for folder in folders:
        folder.mkdir()
    for src in sorted(raw.glob("*.md")):
        if src.name == "README.md":
            continue
        txt = work / "txt" / (src.stem + ".txt")
        shutil.copyfile(src, txt)
        m = re.search(r"\((\d{4}-\d{2}-\d{2})\)$", src.stem)
        flags = ["--level", "national"] + (["--published", m.group(1)] if m else [])
        for folder in folders:  # a second version of a title goes to the second folder
            done = subprocess.run([sys.executable, "-m", "kb.cli", "add", str(txt), "--corpus", str(folder), *flags],
                                  cwd=ROOT, capture_output=True, text=True)
            if done.returncode == 0:
                break
        else:
            raise SystemExit(f"kb add failed for {src.name}: {done.stderr.strip()}")
    stamp.write_text("ok\n")
    return folders


def table(rows: list[tuple[str, dict]]) -> None:
    """Print one row per part."""
    print("| part | n | hit@1 | hit@5 | MRR@10 | refused | low confidence |")
    print("|---|---|---|---|---|---|---|")
    for name, m in rows:
        print(f"| {name} | {m['n']} | {m['hit@1']:.2f} | {m['hit@5']:.2f} | {m['mrr@10']:.2f} | {m['refused']} | {m['low']} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", action="append", type=Path, help="corpus folder (repeatable)")
    parser.add_argument("--laws", type=Path, default=None,
                        help="raw national-laws folder to convert and index too (e.g. ../shared/raw/national-laws)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/kb-eval-laws"), help="where converted laws go")
    parser.add_argument("--index", type=Path, default=Path("/tmp/kb-eval-index"))
    parser.add_argument("--gold", type=Path, action="append", help="an extra gold file (repeatable)")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--no-dense", action="store_true", help="lexical only (no encoder)")
    parser.add_argument("--show", action="store_true", help="print each question's rank")
    parser.add_argument("--sweep", action="store_true", help="grid-search fusion weights on the dev sets")
    parser.add_argument("--ablation", action="store_true", help="switch each component off in turn and print a table")
    args = parser.parse_args(argv)
    corpora = args.corpus or [ROOT / "corpus", SHARED / "corpora/gov-work-reports",
                              SHARED / "corpora/cpc-congress-reports"]
    if args.laws:
        corpora = list(corpora) + convert_laws(args.laws, args.work)
    encoder = None if args.no_dense else load_encoder(args.model)
    segmenter = Segmenter()
    t0 = time.perf_counter()
    build_kwargs = {}
    try:  # the clause roles, as kb build computes them (eligibility questions use them)
        from kb import roles

        build_kwargs = {"annotate": roles.annotate_clause, "annotator_version": roles.ROLES_VERSION}
    except ImportError:
        pass
    report = build_index(corpora, args.index, encoder, segmenter, **build_kwargs,
                         progress=lambda s, d, t: print(f"\r{s} {d}/{t}   ", end="", file=sys.stderr))
    print(f"\nindex: {report.documents} documents, {report.chunks} chunks, {report.clauses} clauses "
          f"({'up to date' if report.up_to_date else f'built in {time.perf_counter() - t0:.1f}s'})", file=sys.stderr)
    index = IndexHandle(args.index, encoder.model_id if encoder else None).current()
    searcher = Searcher(index, encoder, segmenter)
    parts = gold_parts(args)
    nonsense = load_gold(NONSENSE) if NONSENSE.is_file() else []

    if args.sweep:
        return sweep(searcher, parts)
    if args.ablation:
        return ablation(searcher, parts, nonsense)

    base = SearchOptions(mode="hybrid")
    rows = [(name, evaluate(searcher, qs, base)) for name, qs in parts]
    print()
    table(rows + held_out_pool(rows))
    if nonsense:
        print(f"\nnonsense/off-topic ({len(nonsense)} questions): refused {refusal_rate(searcher, nonsense, base):.2f}")
    for mode in ("lexical", "dense"):
        if mode == "dense" and encoder is None:
            continue
        print(f"\n{mode} only:")
        table([(name, evaluate(searcher, qs, SearchOptions(mode=mode))) for name, qs in parts if name.endswith("all")])
    if args.show:
        for (name, qs), (_, m) in zip(parts, rows):
            if name.endswith("all"):
                print(f"\n{name}")
                for q, r in zip(qs, m["ranks"]):
                    print(f"  {r}  {q['query']}")
        if nonsense:
            print("\nnonsense answered:")
            for q in nonsense:
                result = searcher.search(q["query"], replace(base, k=1))
                if result.hits:
                    print(f"  {q['query']}  -> {result.hits[0].clause.text[:40]}")
    timings(searcher, [q for _, qs in parts for q in qs])
    return 0


def held_out_pool(rows: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """Return one row pooling the enterprise-voice questions of every held-out file given with --gold
    (a file with no voice field counts whole), or nothing when there is none."""
    chosen = []
    for name, m in rows:
        stem, _, part = name.rpartition(" ")
        if not stem.startswith("heldout"):
            continue
        has_voices = any(other.startswith(stem + " ") and not other.endswith(" all") for other, _ in rows)
        if part == "enterprise" or (part == "all" and not has_voices):
            chosen.append(m)
    return [(f"held-out enterprise pooled ({len(chosen)} parts)", pooled(chosen))] if chosen else []


def timings(searcher: Searcher, questions: list[dict]) -> None:
    """Print question-analysis and whole-search latency percentiles over the gold questions."""
    analyse = getattr(searcher, "analyse", None) or searcher.understand
    for name, fn in (("question analysis", analyse), ("search (k=10)", lambda q: searcher.search(q, SearchOptions(k=10)))):
        ms = []
        for q in questions * 3:
            t0 = time.perf_counter()
            fn(q["query"])
            ms.append((time.perf_counter() - t0) * 1000)
        ms.sort()
        print(f"{name}: p50 {ms[len(ms) // 2]:.2f} ms, p95 {ms[int(len(ms) * .95)]:.2f} ms over {len(ms)} calls")


# (name, SearchOptions changes, Tuning changes); a row naming a knob this version lacks is skipped
ABLATIONS = [
    ("shipped hybrid", {}, {}),
    ("- everyday situations (words and vectors)", {}, {"situation_weight": 0.0, "situation_dense_weight": 0.0}),
    ("- situations' words", {}, {"situation_weight": 0.0}),
    ("- situations' vectors", {}, {"situation_dense_weight": 0.0}),
    ("- bridge query expansion", {}, {"bridge_weight": 0.0}),
    ("- longer everyday forms weigh more", {}, {"bridge_long_form_boost": 0.0}),
    ("- index-side expansion", {}, {"index_bridge_weight": 0.0}),
    ("- document channel (titles)", {}, {"doc_channel_weight": 0.0}),
    ("+ document coverage prior (0.5)", {}, {"doc_coverage_weight": 0.5}),
    ("- frame words", {}, {"use_frames": False}),
    ("- old thesaurus", {}, {"expansion_weight": 0.0}),
    ("- all expansions (--no-expand)", {"expand": False}, {}),
    ("- bigram channel", {}, {"bigram_weight": 0.0, "word_weight": 1.0}),
    ("- jieba word channel", {}, {"word_weight": 0.0, "bigram_weight": 1.0}),
    ("- document priors (year, type, level)", {}, {"year_boost": 0.0, "named_boost": 0.0, "level_boost": 0.0}),
    ("- dense channel", {}, {"dense_weight": 0.0}),
    ("+ dense on every question (no lexically-sure skip)", {}, {"sure_coverage": 1.01}),
    ("- answer types of question words", {}, {"answer_type_weight": 0.0}),
    ("- answer slots (time / quantity stated)", {}, {"slot_weight": 0.0}),
    ("+ encoder reads the bridge's terms too", {}, {"dense_expansions": True}),
    ("- coverage in the score", {}, {"coverage_weight": 0.0}),
    ("- off-topic floor (never refuse)", {}, {"offtopic_coverage": 0.0}),
]


def ablation(searcher: Searcher, parts: list[tuple[str, list[dict]]], nonsense: list[dict]) -> int:
    """Print hit@5/MRR@10 per part with each component switched off, and the refusal rates."""
    base = SearchOptions(mode="hybrid")
    known_tuning = {f.name for f in fields(base.tuning)}
    known_options = {f.name for f in fields(base)}
    names = [name for name, _ in parts]
    print("\n| configuration | " + " | ".join(f"{n} hit@5 / MRR" for n in names) + " | real refused | nonsense refused |")
    print("|---|" + "---|" * len(names) + "---|---|")
    for label, opt_changes, tuning_changes in ABLATIONS:
        if not set(tuning_changes) <= known_tuning or not set(opt_changes) <= known_options:
            continue
        opts = with_tuning(replace(base, **opt_changes), **tuning_changes)
        cells, refused = [], 0
        for name, qs in parts:
            m = evaluate(searcher, qs, opts)
            cells.append(f"{m['hit@5']:.2f} / {m['mrr@10']:.2f}")
            if name.endswith("all"):
                refused += m["refused"]
        rate = refusal_rate(searcher, nonsense, opts) if nonsense else float("nan")
        print(f"| {label} | " + " | ".join(cells) + f" | {refused} | {rate:.2f} |")
    return 0


def sweep(searcher: Searcher, parts: list[tuple[str, list[dict]]]) -> int:
    """Grid-search a few fusion weights on the dev parts; prints the top configurations."""
    grid = {
        "word_weight": [0.5, 0.6, 0.7],
        "dense_weight": [0.1, 0.2, 0.35],
        "bridge_weight": [0.3, 0.5, 0.7],
        "doc_channel_weight": [0.0, 0.3, 0.6],
        "doc_coverage_weight": [0.0, 0.5, 1.0],
    }
    known = {f.name for f in fields(SearchOptions().tuning)}
    grid = {k: v for k, v in grid.items() if k in known}
    wanted = [p for p in parts if p[0] in ("dev all", "laws voice", "laws literal", "dev voice", "dev-voice-laws all")]
    results = []
    for values in itertools.product(*grid.values()):
        changes = dict(zip(grid, values))
        changes["bigram_weight"] = round(1 - changes["word_weight"], 2)
        opts = with_tuning(SearchOptions(mode="hybrid"), **changes)
        ms = {name: evaluate(searcher, qs, opts) for name, qs in wanted}
        score = sum(m["hit@5"] + m["mrr@10"] for m in ms.values())
        results.append((score, {n: (round(m["hit@5"], 2), round(m["mrr@10"], 2)) for n, m in ms.items()}, changes))
    results.sort(key=lambda r: r[0], reverse=True)
    for score, ms, changes in results[:15]:
        print(f"{score:.3f} {ms} {changes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
