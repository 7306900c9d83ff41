"""Retrieval evaluation as the scripts share it: gold files, the rank of a gold answer, hit@k / MRR@10.

Used by scripts/eval.py, scripts/bench.py and scripts/finetune_encoder.py. A question is answered at
rank r when the r-th cited clause contains one of its gold strings after NFKC normalisation and,
where the gold names a "title", the document title contains it. A question is refused when it gets
no result at all.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from kb.search import SearchOptions, Searcher
from kb.text import nfkc

__all__ = ["evaluate", "load_gold", "nfkc", "rank_of", "refusal_rate"]


def load_gold(path: Path) -> list[dict]:
    """Return the gold questions of a JSONL file."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def rank_of(result, gold: list[str], title: str = "") -> int | None:
    """Return the 1-based rank of the first hit containing a gold string (in a document titled `title`), or None."""
    golds = [nfkc(g) for g in gold]
    want_title = nfkc(title)
    for hit in result.hits:
        if want_title and want_title not in nfkc(hit.doc.title):
            continue
        text = nfkc(hit.clause.text)
        if any(g in text for g in golds):
            return hit.rank
    return None


def evaluate(searcher: Searcher, questions: list[dict], options: SearchOptions) -> dict:
    """Return hit@1, hit@5, MRR@10, refusals, low-confidence answers and per-question ranks for one configuration."""
    ranks, refused, low = [], 0, 0
    for q in questions:
        result = searcher.search(q["query"], replace(options, k=10))
        ranks.append(rank_of(result, q["gold"], q.get("title", "")))
        refused += not result.hits
        low += bool(result.hits) and getattr(result, "confidence", "high") == "low"
    return _figures(ranks, refused, low)


def pooled(results: list[dict]) -> dict:
    """Return the figures of several evaluate() results taken as one set of questions (ranks pooled)."""
    return _figures([r for m in results for r in m["ranks"]], sum(m["refused"] for m in results),
                    sum(m["low"] for m in results))


def _figures(ranks: list[int | None], refused: int, low: int) -> dict:
    n = len(ranks) or 1
    return {
        "n": len(ranks),
        "hit@1": sum(1 for r in ranks if r == 1) / n,
        "hit@5": sum(1 for r in ranks if r and r <= 5) / n,
        "mrr@10": sum(1 / r for r in ranks if r and r <= 10) / n,
        "refused": refused,
        "low": low,
        "ranks": ranks,
    }


def refusal_rate(searcher: Searcher, questions: list[dict], options: SearchOptions) -> float:
    """Return the share of questions that get no result at all."""
    if not questions:
        return 0.0
    return sum(1 for q in questions if not searcher.search(q["query"], replace(options, k=10)).hits) / len(questions)
