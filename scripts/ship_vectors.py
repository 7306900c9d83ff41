"""Store the passage vectors of a corpus folder beside it, so a fresh clone builds without embedding.

    python scripts/ship_vectors.py                 # corpus/ with the default encoder (KB_MODEL)
    python scripts/ship_vectors.py --check         # exit 1 when corpus/ has passages the file lacks

Writes <corpus>/.vectors/<model id>.npz: the vector of every passage a build of that folder
embeds, keyed by the hash of its text (kb/embed.py), and of every everyday situation it places
(kb/data/situations.tsv, read as questions, keyed apart). Vectors already in --index's embedding
cache are reused; the rest are embedded now. Run it after `kb add` changes corpus/, and commit
the file; a build works without it (or with a stale one), only slower.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kb.embed import (DEFAULT_MODEL, EmbeddingCache, load_encoder, load_shipped, question_key, shipped_path,  # noqa: E402
                      text_key, write_shipped)
from kb.index import passage_texts, placed_situations  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    parser.add_argument("--index", type=Path, default=ROOT / "index", help="index folder whose embedding cache to reuse")
    parser.add_argument("--model", default=os.environ.get("KB_MODEL", DEFAULT_MODEL))
    parser.add_argument("--check", action="store_true", help="only report passages missing from the shipped file")
    args = parser.parse_args(argv)

    encoder = load_encoder(args.model)
    texts = list(dict.fromkeys(passage_texts([args.corpus])))
    questions = list(dict.fromkeys(placed_situations([args.corpus])))
    path = shipped_path(args.corpus, encoder.model_id)
    if args.check:
        have = load_shipped([args.corpus], encoder)
        missing = sum(1 for t in texts if text_key(t) not in have)
        missing_q = sum(1 for t in questions if question_key(t) not in have)
        print(f"{path}: {len(texts) - missing} of {len(texts)} passages and {len(questions) - missing_q} of "
              f"{len(questions)} situations shipped, {missing + missing_q} missing")
        return 1 if missing or missing_q else 0
    start = time.perf_counter()
    cache = EmbeddingCache(args.index / "cache" / "embeddings.sqlite")
    try:
        def on_missing(n: int) -> None:
            print(f"{len(texts) - n} passages cached or shipped, embedding {n} …", file=sys.stderr)

        shipped = load_shipped([args.corpus], encoder)
        vectors = cache.embed(encoder, texts, on_missing=on_missing, shipped=shipped)
        situation_vectors = cache.embed(encoder, questions, shipped=shipped, questions=True)
    finally:
        cache.close()
    write_shipped(path, encoder.model_id, [text_key(t) for t in texts] + [question_key(t) for t in questions],
                  np.concatenate([vectors, situation_vectors]))
    print(f"wrote {path}: {len(texts)} passages and {len(questions)} situations, {path.stat().st_size / 2**20:.1f} MiB, "
          f"{time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
