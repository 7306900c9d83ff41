"""Retrieval evaluation: hit@1, hit@5 and MRR@10 for lexical-only, dense-only and the shipped hybrid.

    python scripts/eval.py --corpus corpus --corpus ../shared/corpora/gov-work-reports \
        --corpus ../shared/corpora/cpc-congress-reports --index /tmp/kb-eval-index \
        --gold ../shared/eval/dev.jsonl

A question is answered at rank r when the r-th cited clause contains one of its gold
strings after NFKC normalisation (../shared/eval/README.md).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kb.embed import load_encoder  # noqa: E402
from kb.index import IndexHandle, build_index  # noqa: E402
from kb.search import SearchOptions, Searcher, nfkc, with_tuning  # noqa: E402
from kb.segment import Segmenter  # noqa: E402


def load_gold(path: Path) -> list[dict]:
    """Return the gold questions of a JSONL file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def rank_of(result, gold: list[str], title: str = "") -> int | None:
    """Return the 1-based rank of the first hit containing a gold string (from a document whose
    title contains `title`, when given), or None."""
    golds = [nfkc(g) for g in gold]
    for hit in result.hits:
        text = nfkc(hit.clause.text)
        if any(g in text for g in golds) and nfkc(title) in nfkc(hit.doc.title):
            return hit.rank
    return None


def evaluate(searcher: Searcher, questions: list[dict], options: SearchOptions) -> dict:
    """Return hit@1, hit@5, MRR@10 and per-question ranks for one configuration."""
    ranks = []
    for q in questions:
        result = searcher.search(q["query"], replace(options, k=10))
        ranks.append(rank_of(result, q["gold"], q.get("title", "")))
    n = len(ranks) or 1
    return {
        "hit@1": sum(1 for r in ranks if r == 1) / n,
        "hit@5": sum(1 for r in ranks if r and r <= 5) / n,
        "mrr@10": sum(1 / r for r in ranks if r and r <= 10) / n,
        "ranks": ranks,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", action="append", type=Path, help="corpus folder (repeatable)")
    parser.add_argument("--index", type=Path, default=Path("/tmp/kb-eval-index"))
    parser.add_argument("--gold", type=Path, default=ROOT.parent / "shared" / "eval" / "dev.jsonl")
    parser.add_argument("--model", default="use-multilingual-v3")
    parser.add_argument("--no-dense", action="store_true", help="lexical only (no encoder)")
    parser.add_argument("--tail", type=int, default=6, help="the last N questions form the enterprise-voice part")
    parser.add_argument("--show", action="store_true", help="print each question's rank per mode")
    parser.add_argument("--sweep", action="store_true", help="grid-search the fusion weights and print the best")
    parser.add_argument("--ablation", action="store_true", help="switch each component off in turn and print a table")
    args = parser.parse_args(argv)
    corpora = args.corpus or [ROOT / "corpus", ROOT.parent / "shared/corpora/gov-work-reports",
                              ROOT.parent / "shared/corpora/cpc-congress-reports"]
    encoder = None if args.no_dense else load_encoder(args.model)
    segmenter = Segmenter()
    t0 = time.perf_counter()
    report = build_index(corpora, args.index, encoder, segmenter,
                         progress=lambda s, d, t: print(f"\r{s} {d}/{t}   ", end="", file=sys.stderr))
    print(f"\nindex: {report.chunks} chunks, {report.clauses} clauses "
          f"({'up to date' if report.up_to_date else f'built in {time.perf_counter() - t0:.1f}s'})", file=sys.stderr)
    index = IndexHandle(args.index, encoder.model_id if encoder else None).current()
    searcher = Searcher(index, encoder, segmenter)
    questions = load_gold(args.gold)
    tail = questions[-args.tail:] if args.tail else []

    if args.sweep:
        return sweep(searcher, questions, tail)
    if args.ablation:
        return ablation(searcher, questions, tail)

    modes = ["lexical"] + ([] if encoder is None else ["dense", "hybrid"])
    rows = []
    per_mode = {}
    for mode in modes:
        whole = evaluate(searcher, questions, SearchOptions(mode=mode))
        part = evaluate(searcher, tail, SearchOptions(mode=mode)) if tail else None
        per_mode[mode] = whole["ranks"]
        rows.append((mode, whole, part))
    print(f"\n{len(questions)} questions ({args.gold}); last {len(tail)} = enterprise voice\n")
    print("| mode | hit@1 | hit@5 | MRR@10 | voice hit@5 | voice MRR@10 |")
    print("|---|---|---|---|---|---|")
    for mode, whole, part in rows:
        print(f"| {mode} | {whole['hit@1']:.2f} | {whole['hit@5']:.2f} | {whole['mrr@10']:.2f} | "
              f"{part['hit@5']:.2f} | {part['mrr@10']:.2f} |" if part else
              f"| {mode} | {whole['hit@1']:.2f} | {whole['hit@5']:.2f} | {whole['mrr@10']:.2f} | - | - |")
    if args.show:
        print()
        for i, q in enumerate(questions):
            print(f"{i:2d} " + " ".join(f"{m}={per_mode[m][i]}" for m in modes) + f"  {q['query']}")
    return 0


ABLATIONS = [
    ("shipped hybrid", {}, {}),
    ("- thesaurus expansion", {"expand": False}, {}),
    ("- bigram channel", {}, {"bigram_weight": 0.0, "word_weight": 1.0}),
    ("- jieba word channel", {}, {"word_weight": 0.0, "bigram_weight": 1.0}),
    ("- document priors (year, type, level)", {}, {"year_boost": 0.0, "named_boost": 0.0, "level_boost": 0.0}),
    ("- dense channel", {}, {"dense_weight": 0.0}),
    ("+ pseudo-relevance feedback (10 terms)", {}, {"prf_terms": 10}),
    ("+ dense as an equal vote (weight 1, no floor)", {}, {"dense_weight": 1.0, "dense_floor": 0.0}),
    ("- score floor", {}, {"min_coverage": 0.0}),
]


def ablation(searcher: Searcher, questions: list[dict], tail: list[dict]) -> int:
    """Print hit@1/hit@5/MRR@10 with each component switched off (or an alternative on)."""
    print("\n| configuration | hit@1 | hit@5 | MRR@10 | voice hit@1 | voice hit@5 | voice MRR@10 |")
    print("|---|---|---|---|---|---|---|")
    base = SearchOptions(mode="hybrid")
    for name, opt_changes, tuning_changes in ABLATIONS:
        opts = with_tuning(replace(base, **opt_changes), **tuning_changes)
        whole = evaluate(searcher, questions, opts)
        part = evaluate(searcher, tail, opts)
        print(f"| {name} | {whole['hit@1']:.2f} | {whole['hit@5']:.2f} | {whole['mrr@10']:.2f} | "
              f"{part['hit@1']:.2f} | {part['hit@5']:.2f} | {part['mrr@10']:.2f} |")
    lexical = evaluate(searcher, questions, SearchOptions(mode="lexical"))["ranks"]
    hybrid = evaluate(searcher, questions, base)["ranks"]
    rescued = sum(1 for a, b in zip(lexical, hybrid) if (a is None or a > 5) and b and b <= 5)
    hurt = sum(1 for a, b in zip(lexical, hybrid) if a and a <= 5 and (b is None or b > 5))
    moved = sum(1 for a, b in zip(lexical, hybrid) if a != b)
    print(f"\ndense vs lexical-only: rescued {rescued} lexical misses, hurt {hurt} lexical hits, "
          f"changed the rank of {moved} of {len(questions)} questions")
    timings = []
    for q in questions * 5:
        t0 = time.perf_counter()
        searcher.understand(q["query"])
        timings.append((time.perf_counter() - t0) * 1000)
    timings.sort()
    print(f"query understanding: p50 {timings[len(timings) // 2]:.2f} ms, p95 {timings[int(len(timings) * .95)]:.2f} ms "
          f"over {len(timings)} calls")
    return 0


def sweep(searcher: Searcher, questions: list[dict], tail: list[dict]) -> int:
    """Grid-search fusion weights on the gold set; prints the top configurations."""
    grid = {
        "word_weight": [0.4, 0.5, 0.6, 0.7, 0.8],
        "year_boost": [0.0, 0.2, 0.35, 0.5, 0.8],
        "dense_weight": [0.0, 0.4, 0.8, 1.2],
        "dense_floor": [0.3, 0.35, 0.4, 0.45],
    }
    results = []
    keys = list(grid)
    for values in itertools.product(*grid.values()):
        changes = dict(zip(keys, values))
        changes["bigram_weight"] = round(1 - changes["word_weight"], 2)
        opts = with_tuning(SearchOptions(mode="hybrid"), **changes)
        whole = evaluate(searcher, questions, opts)
        results.append((whole["hit@5"], whole["mrr@10"], whole["hit@1"], changes))
    results.sort(key=lambda r: (r[0], r[1]), reverse=True)
    for hit5, mrr, hit1, changes in results[:15]:
        print(f"hit@1 {hit1:.3f} hit@5 {hit5:.3f} mrr {mrr:.3f}  {changes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
