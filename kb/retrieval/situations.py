"""Everyday situations: a field of short descriptions, in a small firm's own words, of the situations in
which someone needs an article (`kb/data/situations.tsv`), matched against the question.

An owner describes what happened to the firm; the article states a rule about it in other words and
shares few words with the question, while a situation written for it shares many. Each situation
belongs to one clause; a question scores a clause by its best situation, in two ways:

- lexically: BM25 over the situations' jieba words (one row per situation);
- semantically: the cosine between the question's vector and the situation's, read as a question
  (question against question is what the encoder was trained for), above a floor.

The texts are matching data, never cited: a hit cites the clause's own text, and names the situation
that brought it only marked as not policy text. They were written by readers shown only the documents
(see the file's header), never from evaluation questions; a document without situations is searched
as before.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from kb.retrieval.lexical import LexicalChannel, save_bm25
from kb.types import Clause, Document
from kb.versions import Versions, compare_versions

SITUATIONS_PATH = Path(__file__).resolve().parent.parent / "data" / "situations.tsv"
FOLDER = "situations"  # inside a build: rows.npy, texts.json, vectors.npy, bm25/


@dataclass(frozen=True)
class Situation:
    """One line of the table: a document, where in it (an article label, or the opening words of a
    paragraph), and the situation's text."""

    doc_id: str
    anchor: str
    text: str


@dataclass(frozen=True)
class SituationTable:
    """The table as read, with a version that changes whenever its content does."""

    rows: tuple[Situation, ...]
    version: str

    def __bool__(self) -> bool:
        return bool(self.rows)


def read_situations(path: Path) -> SituationTable:
    """Return the situations of a TSV file (doc_id, anchor, text; `#` comments); a missing file is empty.

    Lines without three non-empty columns are skipped: the table is data a reader wrote, and a bad
    line must not stop a build."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return SituationTable((), "none")
    rows = []
    for line in raw.decode("utf-8-sig", errors="replace").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.split("\t")]
        if len(parts) >= 3 and all(parts[:3]):
            rows.append(Situation(*parts[:3]))
    return SituationTable(tuple(rows), hashlib.blake2b(raw, digest_size=8).hexdigest())


@lru_cache(maxsize=1)
def situations() -> SituationTable:
    """Return the bundled table (read once)."""
    return read_situations(SITUATIONS_PATH)


def locate(table: SituationTable, clauses: Sequence[tuple[str, Clause]]) -> tuple[np.ndarray, list[str]]:
    """Return (clause row of each situation that has a home, its text), given the corpus's clauses in
    row order as (doc_id, clause).

    A situation's home is the clause of its document whose text starts with the anchor (an article
    label: 第十二条), else the last (innermost) clause that contains it; situations of documents
    not in the corpus, or whose anchor is nowhere in their document (a new version rewrote it), are
    left out."""
    by_doc: dict[str, list[tuple[int, Clause]]] = {}
    for row, (doc_id, clause) in enumerate(clauses):
        by_doc.setdefault(doc_id, []).append((row, clause))
    rows, texts = [], []
    for s in table.rows:
        candidates = by_doc.get(s.doc_id)
        if not candidates:
            continue
        home = next((row for row, c in candidates if c.text.startswith(s.anchor)), None)
        if home is None:
            inside = [row for row, c in candidates if s.anchor in c.text]
            home = inside[-1] if inside else None
        if home is not None:
            rows.append(home)
            texts.append(s.text)
    return np.array(rows, dtype=np.int32), texts


def follow_versions(clause_rows: np.ndarray, texts: list[str], clauses: Sequence[tuple[str, Clause]],
                    documents: Mapping[str, Document], versions: Versions) -> tuple[np.ndarray, list[str]]:
    """Return the placements with each situation also on the same article of every later version of its
    document that has no situations of its own (articles matched as the changes page matches them:
    same text, then same number, then most similar text; kb.versions.compare_versions). A law revised
    after its situations were written keeps them, on the version in force."""
    row_of = {(doc_id, c.clause_id): row for row, (doc_id, c) in enumerate(clauses)}
    own = {clauses[int(r)][0] for r in clause_rows}
    by_doc: dict[str, list[int]] = {}
    for i, r in enumerate(clause_rows):
        by_doc.setdefault(clauses[int(r)][0], []).append(i)
    rows, out = list(clause_rows.tolist()), list(texts)
    for doc_id, mine in by_doc.items():
        facts, seen = versions.get(doc_id), set()
        while facts is not None and facts.superseded_by and facts.superseded_by not in seen:
            later = facts.superseded_by
            seen.add(later)
            if later not in own and later in documents and doc_id in documents:
                moved = {ch.old.clause_id: ch.new.clause_id for ch in compare_versions(documents[doc_id], documents[later])
                         if ch.old is not None and ch.new is not None}
                for i in mine:
                    target = moved.get(clauses[int(clause_rows[i])][1].clause_id)
                    if target is not None and (later, target) in row_of:
                        rows.append(row_of[(later, target)])
                        out.append(texts[i])
            facts = versions.get(later)
    return np.array(rows, dtype=np.int32), out


def save_field(folder: Path, clause_rows: np.ndarray, texts: list[str], tokens: list[list[str]],
               vectors: np.ndarray | None) -> None:
    """Write a build's situation field: each situation's clause row and text, its words' BM25 index and its vector."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "rows.npy", np.asarray(clause_rows, dtype=np.int32))
    (folder / "texts.json").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    save_bm25(tokens, folder / "bm25")
    if vectors is not None:
        np.save(folder / "vectors.npy", np.ascontiguousarray(vectors, dtype=np.float32))


@dataclass(frozen=True)
class SituationMatch:
    """A question against the situations: the fused score per clause row, and per situation (which one
    matched a clause best, to show it)."""

    clauses: np.ndarray
    rows: np.ndarray


class SituationField:
    """A build's situations: per-clause scores for a question's words and vector."""

    def __init__(self, clause_rows: np.ndarray, words: LexicalChannel, vectors: np.ndarray | None,
                 n_clauses: int, texts: Sequence[str] = ()) -> None:
        self.clause_rows = np.asarray(clause_rows, dtype=np.int64)
        self.words = words
        self.vectors = vectors
        self.n_clauses = n_clauses
        self.texts = tuple(texts)
        if len(self.clause_rows) and int(self.clause_rows.max()) >= n_clauses:
            raise ValueError(f"situations point at clause row {int(self.clause_rows.max())} of {n_clauses}")
        for name, part in (("texts", self.texts), ("vectors", vectors)):
            if part is not None and len(part) and len(part) != len(self.clause_rows):
                raise ValueError(f"situations have {len(part)} {name} for {len(self.clause_rows)} rows")
        self._order = np.argsort(self.clause_rows, kind="stable")  # situations grouped by clause, for `best_text`
        self._starts = np.searchsorted(self.clause_rows[self._order], np.arange(n_clauses + 1))

    @classmethod
    def load(cls, folder: Path, n_clauses: int, mmap: bool = False) -> SituationField | None:
        """Return the field of a build folder, or None when the build has none (built before situations)."""
        if not (folder / "rows.npy").is_file():
            return None
        import bm25s

        vectors = np.load(folder / "vectors.npy") if (folder / "vectors.npy").is_file() else None
        words = LexicalChannel(bm25s.BM25.load(str(folder / "bm25"), mmap=mmap))
        texts_file = folder / "texts.json"  # without it, results cannot say which situation matched
        texts = json.loads(texts_file.read_text(encoding="utf-8")) if texts_file.is_file() else ()
        return cls(np.load(folder / "rows.npy"), words, vectors, n_clauses, texts)

    def __len__(self) -> int:
        return len(self.clause_rows)

    def best_per_clause(self, values: np.ndarray) -> np.ndarray:
        """Return each clause's best value over its situations (0 for a clause without any)."""
        out = np.zeros(self.n_clauses, dtype=np.float32)
        np.maximum.at(out, self.clause_rows, values.astype(np.float32, copy=False))
        return out

    def word_scores(self, weights: Mapping[str, float]) -> np.ndarray:
        """Return each situation's BM25 score for the weighted words."""
        return self.words.scores(weights)

    def cosines(self, vector: np.ndarray) -> np.ndarray | None:
        """Return each situation's cosine with the question's vector; None when the build has no vectors."""
        if self.vectors is None:
            return None
        # einsum, not `@`: numpy's BLAS would wake its thread pool, whose threads then spin beside the next
        # question's encoder on the same cores (measured: +5 ms over HTTP; einsum's 0.3 ms stays on this thread)
        return np.einsum("ij,j->i", self.vectors, np.asarray(vector, dtype=np.float32).reshape(-1))

    def best_text(self, clause_row: int, row_scores: np.ndarray) -> tuple[str, float]:
        """Return the text and score of the clause's best-scoring situation ("", 0 when it has none)."""
        mine = self._order[self._starts[clause_row]:self._starts[clause_row + 1]]
        if not len(mine) or not self.texts:
            return "", 0.0
        best = int(mine[np.argmax(row_scores[mine])])
        return self.texts[best], float(row_scores[best])
