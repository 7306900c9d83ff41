"""Benchmark: an administrator adds one law to the full index and rebuilds.

    python scripts/bench_addone.py --index /tmp/kb-eval [--doc zhuanlifa-2020.md]

Copies corpus/ (without its shipped vectors: an added document has none) and --index's caches to
a work folder, takes --doc out of the corpus and its passages out of the embedding cache, builds
the index without it, puts it back and times `kb build` (a fresh process, start-up included),
then a no-change rebuild. The other corpora are ../shared/corpora's two folders, as scripts/eval.py
indexes them. Prints one table.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kb.embed import DEFAULT_MODEL, SHIPPED_DIR, load_encoder, text_key  # noqa: E402
from kb.index import passage_texts  # noqa: E402

SHARED = ROOT.parent / "shared" / "corpora"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True, help="a built index of corpus/ + the shared corpora")
    parser.add_argument("--doc", default="zhuanlifa-2020.md", help="the corpus/ file to add")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    args = parser.parse_args(argv)
    if not (args.index / "cache").is_dir():
        parser.error(f"{args.index} has no cache folder: build it first (python scripts/eval.py --index {args.index})")
    work = Path(tempfile.mkdtemp(prefix="kb-addone-"))
    try:
        corpus = work / "corpus"
        shutil.copytree(ROOT / "corpus", corpus, ignore=shutil.ignore_patterns(SHIPPED_DIR))
        held = work / args.doc
        shutil.move(corpus / args.doc, held)
        index = work / "index"
        index.mkdir()
        shutil.copytree(args.index / "cache", index / "cache")
        single = work / "single"
        single.mkdir()
        shutil.copy(held, single / args.doc)
        passages = passage_texts([single])
        encoder = load_encoder(args.model)
        db = sqlite3.connect(index / "cache" / "embeddings.sqlite")
        with db:
            removed = sum(db.execute("DELETE FROM emb WHERE model=? AND key=?", (encoder.model_id, text_key(t))).rowcount
                          for t in passages)
        db.close()
        command = [sys.executable, "-m", "kb.cli", "build", "--index", str(index), "--corpus", str(corpus),
                   "--corpus", str(SHARED / "gov-work-reports"), "--corpus", str(SHARED / "cpc-congress-reports"),
                   "--quiet"]

        def timed() -> float:
            start = time.perf_counter()
            subprocess.run(command, check=True, cwd=ROOT)
            return time.perf_counter() - start

        without = timed()
        shutil.move(held, corpus / args.doc)
        added = timed()
        unchanged = timed()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.doc}: {len(passages)} passages, {removed} removed from the embedding cache first\n")
    print("| step | wall |")
    print("|---|---|")
    print(f"| build without it (fills the caches for the rest) | {without:.1f} s |")
    print(f"| **add it + rebuild** | **{added:.1f} s** |")
    print(f"| no-change rebuild | {unchanged:.1f} s |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
