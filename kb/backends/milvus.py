"""The Milvus backend: one collection per build behind an alias; channel scores and filters computed inside Milvus.

A collection holds one entity per chunk row of a build (primary key = the chunk row):
chunk/clause/document ids and rows, the document metadata as scalar fields (level,
region, issuer, doc_type, status, year, published, valid_from, valid_until) so filters run
inside Milvus, the clause text, the lexical channels as SPARSE_FLOAT_VECTOR fields whose
weights are our own BM25 contributions (the bm25s score matrix, token id -> score), so the
inner product with the query's token weights is exactly the embedded channel's score, and
the dense vectors (FLOAT_VECTOR; FLAT up to kb.ann.EXACT_MAX_VECTORS rows, HNSW above).

Publish = build a new collection, load it, check its row count, then create/alter the
alias; the collection the alias left stays (readers may still use it) and is dropped by
the next publish, with any collection a crashed build left behind. Readers resolve the
alias to a build name and query that build's collection by name, so rows always match the
index folder build they have loaded (the clause store and vocabulary statistics stay in
the index folder, shared by the serving replicas).

The same pymilvus client calls serve a milvus-lite file (a local path, `*.db`) and a
Milvus server or cluster (`http://host:19530`). Only milvus-lite was run here.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from kb.backends import EVERYWHERE, LEXICAL_CHANNELS, BackendError, Where
from kb.config import MILVUS_MAX_TOPK as MAX_TOPK  # Milvus's limit on one search's result count
from kb.index import BUILDS_DIR, IndexHandle, IndexMissing

ALIAS = "kb_current"
PREFIX = "kb_build_"
POINTER = "kb_pointer"  # engines without aliases (milvus-lite 2.5): one row naming the current collection
INSERT_BATCH = 2000
TEXT_MAX_BYTES = 65535  # VARCHAR max_length is in bytes
SHORT = 64
LONG = 1024
ALIAS_TTL_SECONDS = 1.0
DEFAULT_LITE_FILE = "milvus.db"

_CLIENTS: dict[tuple[str, str], object] = {}
_LOCAL: set[int] = set()  # ids of the clients of milvus-lite files
_CLIENTS_LOCK = threading.Lock()


def _pymilvus():
    try:
        import pymilvus
    except ImportError as exc:
        raise BackendError("the milvus backend needs pymilvus and milvus-lite: pip install -e \".[milvus]\" "
                           "(or pip install pymilvus milvus-lite)") from exc
    return pymilvus


def default_uri(index_dir: Path) -> str:
    """Return the milvus-lite file used when no URI is configured: inside the index folder."""
    return str(Path(index_dir).resolve() / DEFAULT_LITE_FILE)


def client(uri: str, token: str = ""):
    """Return a MilvusClient for the URI (one per process and URI; milvus-lite starts its server once)."""
    key = (uri, token)
    with _CLIENTS_LOCK:
        got = _CLIENTS.get(key)
        if got is None:
            pymilvus = _pymilvus()
            is_lite = not re.match(r"^[a-z]+://", uri)
            if is_lite:
                if not uri.endswith(".db"):
                    raise BackendError(f"a milvus-lite URI must be a file path ending in .db, not {uri!r}")
                Path(uri).parent.mkdir(parents=True, exist_ok=True)
                try:
                    import milvus_lite  # noqa: F401
                except ImportError as exc:
                    raise BackendError("a local milvus file needs milvus-lite: pip install -e \".[milvus]\"") from exc
            quiet = logging.getLogger("milvus_lite")  # it logs a traceback when the file is locked; we say why
            level = quiet.level
            quiet.setLevel(logging.CRITICAL)
            try:
                got = pymilvus.MilvusClient(uri=uri, token=token) if token else pymilvus.MilvusClient(uri=uri)
            except Exception as exc:  # noqa: BLE001 - pymilvus raises several kinds; the message is what helps
                hint = (" (a milvus-lite file is open in one process at a time: stop `kb serve` or build from "
                        "its admin page, or use a Milvus server)" if is_lite else "")
                raise BackendError(f"cannot connect to Milvus at {uri}: {exc}{hint}") from exc
            finally:
                quiet.setLevel(level)
            _CLIENTS[key] = got
            if is_lite:
                _LOCAL.add(id(got))
        return got


def close(uri: str, token: str = "") -> None:
    """Close this process's client for a URI (a milvus-lite file is then free for another process)."""
    with _CLIENTS_LOCK:
        got = _CLIENTS.pop((uri, token), None)
    if got is not None:
        _ALIAS_SUPPORT.pop(id(got), None)
        _LOCAL.discard(id(got))
        got.close()
    if not re.match(r"^[a-z]+://", uri):  # milvus-lite serves the file from a thread of this process: stop it
        try:
            from milvus_lite.server_manager import server_manager_instance
        except ImportError:
            return
        server_manager_instance.release_server(uri)


def collection_name(build_name: str) -> str:
    """Return the collection name of an index build (Milvus names allow letters, digits and _)."""
    return PREFIX + re.sub(r"[^0-9A-Za-z_]", "_", build_name)


# -- filters -------------------------------------------------------------------

def _quote(value: str) -> str | None:
    """Return a Milvus string literal, or None when the value has characters we do not escape."""
    if any(ch in value for ch in '"\\%_\n\r'):
        return None
    return '"' + value + '"'


def filter_expression(filters, mask: np.ndarray | None) -> str:
    """Return a Milvus boolean expression for the filters over the scalar fields ("" = no filter).

    Fields with a direct translation run as such (level, status, doc_type, region, issuer,
    year range, doc ids); what needs our own rules (validity as of a date, values with
    characters we do not escape, filters added later) runs as `doc_row in [...]` from the
    document mask, which is the exact answer.
    """
    if mask is None or filters is None:
        return ""
    from kb.retrieval.documents import Filters

    parts: list[str] = []
    handled: dict = {}

    def lst(values) -> str | None:
        quoted = [_quote(str(v)) for v in values]
        return None if any(q is None for q in quoted) else "[" + ", ".join(quoted) + "]"

    if filters.level and (got := lst(filters.level)):
        parts.append(f"level in {got}")
        handled["level"] = filters.level
    if filters.status and (got := lst(filters.status)):
        parts.append(f"status in {got}")
        handled["status"] = filters.status
    if filters.doc_type and (got := _quote(filters.doc_type)):
        parts.append(f"doc_type == {got}")
        handled["doc_type"] = filters.doc_type
    for key in ("region", "issuer"):
        value = getattr(filters, key)
        if value and _quote(value):
            parts.append(f'{key} like "%{value}%"')
            handled[key] = value
    if filters.doc_ids and (got := lst(filters.doc_ids)):
        parts.append(f"doc_id in {got}")
        handled["doc_ids"] = filters.doc_ids
    if filters.year_from is not None:
        parts.append(f"year >= {int(filters.year_from)} and year > 0")
        handled["year_from"] = filters.year_from
    if filters.year_to is not None:
        parts.append(f"year <= {int(filters.year_to)} and year > 0")
        handled["year_to"] = filters.year_to
    try:
        rest = Filters(**handled) != filters
    except TypeError:
        rest = True
    if rest:  # the rest by the mask (validity, later filters): exact, as a list of document rows
        rows = np.flatnonzero(mask)
        parts.append("doc_row in [" + ", ".join(str(int(r)) for r in rows) + "]")
    return " and ".join(f"({p})" for p in parts)


# -- publish -------------------------------------------------------------------

@dataclass(frozen=True)
class PublishReport:
    """What a publish did."""

    collection: str
    rows: int
    seconds: float
    previous: str | None
    dropped: tuple[str, ...]
    up_to_date: bool = False


def _clip_bytes(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", errors="ignore")


def _sparse_rows(model):
    """Return a bm25s model's token-major score matrix as chunk-row-major CSR {token id: BM25 contribution}.

    Rows go to pymilvus as 1-row CSR slices: it packs those directly, while a dict per row is
    checked pair by pair (three quarters of a publish's time when measured with pymilvus 3.0).
    """
    from scipy.sparse import csc_matrix

    n_rows = int(model.scores["num_docs"])
    n_tokens = len(model.scores["indptr"]) - 1
    m = csc_matrix((np.asarray(model.scores["data"], dtype=np.float32), model.scores["indices"],
                    model.scores["indptr"]), shape=(n_rows, n_tokens)).tocsr()
    m.data[m.data < 0] = 0.0  # BM25 contributions are positive; an entry of 0 is no entry
    m.eliminate_zeros()
    m.sort_indices()
    return m


def _index_vectors(index) -> np.ndarray | None:
    """Return the build's dense vectors in chunk-row order (from its FAISS index), or None.

    The inner index holds them in the order they were added; its id map names each one's chunk id.
    """
    if index.faiss is None:
        return None
    import faiss

    inner = faiss.downcast_index(index.faiss.index)
    if isinstance(inner, faiss.IndexIVF):
        inner.make_direct_map()
    stored = inner.reconstruct_n(0, inner.ntotal).astype(np.float32)
    rows = index.rows_for_chunk_ids(faiss.vector_to_array(index.faiss.id_map).astype(np.int64))
    if stored.shape[0] != len(index.chunk_ids) or np.any(rows < 0):
        raise BackendError(f"the vectors of {index.build_dir} do not match its chunks; rebuild it with 'kb build --force'")
    out = np.empty_like(stored)
    out[rows] = stored
    return out


def _year(doc) -> int:
    from kb.retrieval.documents import doc_year

    return doc_year(doc) or 0


def dense_index_params(n: int, local: bool = False) -> tuple[str, dict]:
    """Return the Milvus index type and build params for n vectors, as kb/ann.py chooses for FAISS.

    Exact (FLAT) up to kb.ann.EXACT_MAX_VECTORS; above, the same kind as the embedded index:
    IVF_FLAT with kb.ann's list count, or HNSW. A milvus-lite file (`local`) gets FLAT at every
    size: milvus-lite 2.5 builds no HNSW, and its IVF_FLAT returned far worse neighbours than
    exact search even with nprobe = nlist (best cosine 0.27 instead of 0.43 on a 122k-row index).
    """
    from kb import ann

    kind = ann.FLAT if local else ann.choose_index_kind(n)
    if kind == ann.FLAT:
        return "FLAT", {}
    if kind == ann.IVF:
        return "IVF_FLAT", {"nlist": ann.ivf_lists(n)}
    return "HNSW", {"M": ann.HNSW_M, "efConstruction": ann.HNSW_EF_CONSTRUCTION}


def dense_search_params(n: int, candidates: int, local: bool = False) -> dict:
    """Return the search params of the dense index dense_index_params(n, local) chose, for `candidates` results."""
    from kb import ann

    kind, params = dense_index_params(n, local)
    if kind == "IVF_FLAT":
        return {"nprobe": ann.ivf_probe(params["nlist"])}
    if kind == "HNSW":
        return {"ef": max(candidates, ann.HNSW_EF_SEARCH_MIN)}
    return {}


def _schema(pymilvus, dim: int, channels: list[str]):
    DataType = pymilvus.DataType
    schema = pymilvus.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                                 description="kb policy knowledge base build")
    schema.add_field("row", DataType.INT64, is_primary=True)
    schema.add_field("chunk_id", DataType.INT64)
    schema.add_field("clause_row", DataType.INT64)
    schema.add_field("doc_row", DataType.INT64)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=LONG)
    schema.add_field("clause_id", DataType.VARCHAR, max_length=LONG)
    for key in ("level", "status", "doc_type", "published", "valid_from", "valid_until"):
        schema.add_field(key, DataType.VARCHAR, max_length=SHORT * 4)
    for key in ("region", "issuer"):
        schema.add_field(key, DataType.VARCHAR, max_length=LONG)
    schema.add_field("year", DataType.INT64)
    schema.add_field("text", DataType.VARCHAR, max_length=TEXT_MAX_BYTES)
    for channel in channels:
        schema.add_field(channel, DataType.SPARSE_FLOAT_VECTOR)
    if dim:
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
    return schema


def _channels_of(index) -> dict[str, object]:
    models = {"words": index.bm25_words, "bigrams": index.bm25_bigrams}
    if getattr(index, "bm25_bridge", None) is not None:
        models["everyday"] = index.bm25_bridge
    return models


def _unimplemented(exc: Exception) -> bool:
    """True when an error says the engine lacks the call (milvus-lite 2.5 answers aliases with gRPC UNIMPLEMENTED)."""
    code = getattr(exc, "code", None)
    code = code() if callable(code) else code
    return "UNIMPLEMENTED" in str(getattr(code, "name", code)).upper() or "not implemented" in str(exc).lower()


_ALIAS_SUPPORT: dict[int, bool] = {}


def supports_aliases(mc) -> bool:
    """True when the engine has collection aliases (servers, milvus-lite 3); asked once per client."""
    got = _ALIAS_SUPPORT.get(id(mc))
    if got is None:
        quiet = logging.getLogger("pymilvus")  # pymilvus logs every failed call as an error; this one is a probe
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)
        try:
            mc.list_aliases()
            got = True
        except Exception as exc:  # noqa: BLE001 - grpc or pymilvus errors, told apart by their code
            if not _unimplemented(exc):
                raise
            got = False
        finally:
            quiet.setLevel(level)
        _ALIAS_SUPPORT[id(mc)] = got
    return got


def _pointer_schema(pymilvus):
    DataType = pymilvus.DataType
    schema = pymilvus.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                                 description="kb: which build is current (engines without aliases)")
    schema.add_field("seq", DataType.INT64, is_primary=True)  # newest row wins
    schema.add_field("collection", DataType.VARCHAR, max_length=LONG)
    schema.add_field("build", DataType.VARCHAR, max_length=LONG)
    schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)  # a collection needs a vector field
    return schema


def _pointer(mc) -> dict | None:
    """Return the newest pointer row {collection, build} of an engine without aliases, or None."""
    if not mc.has_collection(POINTER):
        return None
    ensure_loaded(mc, POINTER)
    got = mc.query(POINTER, filter="seq >= 0", output_fields=["seq", "collection", "build"], limit=1000)
    return dict(max(got, key=lambda r: int(r["seq"]))) if got else None


def _set_pointer(mc, collection: str, build: str) -> None:
    """Point at a collection on an engine without aliases: insert a newer row, then delete the older ones.

    Readers take the newest row, so at every moment some row names a whole build (an upsert
    was seen to leave no row for a moment on milvus-lite 2.5).
    """
    if not mc.has_collection(POINTER):
        params = mc.prepare_index_params()
        params.add_index("unused", index_type="FLAT", metric_type="L2")
        mc.create_collection(POINTER, schema=_pointer_schema(_pymilvus()), index_params=params,
                             consistency_level="Strong")
    ensure_loaded(mc, POINTER)
    prev = _pointer(mc)
    seq = max(time.time_ns(), int(prev["seq"]) + 1) if prev else time.time_ns()
    mc.insert(POINTER, [{"seq": seq, "collection": collection, "build": build, "unused": [0.0, 0.0]}])
    mc.delete(POINTER, filter=f"seq < {seq}")


MIN_SERVER = (2, 4)  # SPARSE_FLOAT_VECTOR, which the lexical channels are stored as, came in Milvus 2.4


def check_engine(mc) -> None:
    """Raise BackendError when the engine says it is a Milvus older than 2.4 (no sparse vectors).

    Engines that do not answer the version call (milvus-lite 2.5) pass; the build then fails on its own.
    """
    quiet = logging.getLogger("pymilvus")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        version = str(mc.get_server_version())
    except Exception:  # noqa: BLE001 - an engine without the call
        return
    finally:
        quiet.setLevel(level)
    got = re.search(r"(\d+)\.(\d+)", version)
    if got and "lite" not in version.split("-")[0] and (int(got[1]), int(got[2])) < MIN_SERVER:
        raise BackendError(f"Milvus {version} has no sparse vectors, which the milvus backend stores BM25 in; "
                           f"use Milvus {MIN_SERVER[0]}.{MIN_SERVER[1]} or later")


def alias_target(mc) -> str | None:
    """Return the collection the alias (or, without aliases, the pointer row) names, or None when there is none yet."""
    if not supports_aliases(mc):
        got = _pointer(mc)
        return got["collection"] if got else None
    if ALIAS not in _aliases(mc):
        return None
    return mc.describe_alias(ALIAS).get("collection_name")


def _aliases(mc) -> list[str]:
    got = mc.list_aliases()
    return list(got.get("aliases", []) if isinstance(got, dict) else got)


def publish(mc, index, *, on_batch: Callable[[int, int], None] | None = None, replicas: int = 1) -> PublishReport:
    """Build a collection for a loaded index build, then point the alias at it; drop what the alias left before.

    `on_batch(done, total)` is called after each inserted batch (progress; tests crash here); `replicas` is the
    load_collection replica_number (in-memory copies across query nodes).
    Raises when anything fails before the alias switch; the alias then still names the old build.
    """
    pymilvus = _pymilvus()
    t0 = time.perf_counter()
    check_engine(mc)
    name = collection_name(index.build_dir.name)
    current = alias_target(mc)
    if current == name:
        return PublishReport(name, len(index.chunk_ids), 0.0, current, (), up_to_date=True)
    if mc.has_collection(name):  # a build that died before its switch: start it again
        mc.drop_collection(name)
    models = _channels_of(index)
    vectors = _index_vectors(index)
    dim = int(vectors.shape[1]) if vectors is not None else 0
    n = len(index.chunk_ids)
    index_params = mc.prepare_index_params()
    for channel in models:
        index_params.add_index(channel, index_type="SPARSE_INVERTED_INDEX", metric_type="IP",
                               params={"inverted_index_algo": "DAAT_MAXSCORE"})
    if dim:
        kind, params = dense_index_params(n, id(mc) in _LOCAL)
        index_params.add_index("dense", index_type=kind, metric_type="IP", params=params)
    mc.create_collection(name, schema=_schema(pymilvus, dim, list(models)), index_params=index_params,
                         consistency_level="Strong",
                         properties={"kb.build": index.build_dir.name})
    sparse = {channel: _sparse_rows(model) for channel, model in models.items()}
    docs = index.documents
    meta = [{"doc_id": d.doc_id,
             **{k: _clip_bytes(d.get(k), SHORT * 4) for k in ("level", "status", "doc_type", "published",
                                                               "valid_from", "valid_until")},
             **{k: _clip_bytes(d.get(k), LONG) for k in ("region", "issuer")},
             "year": _year(d)} for d in docs]
    clause_cache: dict[int, tuple[str, str]] = {}
    for start in range(0, n, INSERT_BATCH):
        batch = []
        for row in range(start, min(n, start + INSERT_BATCH)):
            clause_row = int(index.chunk_clause[row])
            got = clause_cache.get(clause_row)
            if got is None:
                clause = index.clause_at(clause_row)
                got = (clause.clause_id, _clip_bytes(clause.text, TEXT_MAX_BYTES))
                clause_cache = {clause_row: got}  # chunks of a clause are adjacent
            doc_row = int(index.chunk_doc[row])
            entity = {"row": row, "chunk_id": int(index.chunk_ids[row]), "clause_row": clause_row,
                      "doc_row": doc_row, "clause_id": _clip_bytes(got[0], LONG), "text": got[1], **meta[doc_row]}
            for channel in models:
                entity[channel] = sparse[channel][row]  # a 1-row CSR
            if dim:
                entity["dense"] = vectors[row]
            batch.append(entity)
        mc.insert(name, batch)
        if on_batch is not None:
            on_batch(min(n, start + INSERT_BATCH), n)
    mc.flush(name)
    load(mc, name, replicas)
    got = mc.query(name, filter="row >= 0", output_fields=["count(*)"])
    count = int(got[0]["count(*)"]) if got else -1
    if count != n:
        raise BackendError(f"Milvus collection {name} has {count} rows after the build, expected {n}; "
                           "the alias was not switched")
    if not supports_aliases(mc):
        _set_pointer(mc, name, index.build_dir.name)
    elif current is None:
        mc.create_alias(name, ALIAS)
    else:
        mc.alter_alias(name, ALIAS)
    dropped = []
    for other in mc.list_collections():
        if other.startswith(PREFIX) and other not in (name, current):
            mc.drop_collection(other)
            dropped.append(other)
    return PublishReport(name, n, time.perf_counter() - t0, current, tuple(dropped))


def build_of_alias(mc) -> str | None:
    """Return the index build name the alias points at, or None."""
    if not supports_aliases(mc):
        got = _pointer(mc)
        return got["build"] if got else None
    target = alias_target(mc)
    if target is None:
        return None
    props = mc.describe_collection(target).get("properties", {}) or {}
    return props.get("kb.build") or target[len(PREFIX):]


def load(mc, name: str, replicas: int = 1) -> None:
    """Load a collection into query-node memory with `replicas` in-memory replicas (1: the engine's default call)."""
    if replicas > 1:
        mc.load_collection(name, replica_number=replicas)
    else:
        mc.load_collection(name)


def ensure_loaded(mc, name: str, replicas: int = 1) -> None:
    """Load a collection into memory unless it is (milvus-lite releases collections when its process ends)."""
    state = mc.get_load_state(name).get("state")
    if getattr(state, "name", str(state)) != "Loaded":
        load(mc, name, replicas)


class AliasFollower:
    """Which build the alias names, asked at most once per `ttl` seconds (replicas follow it without restart)."""

    def __init__(self, mc, ttl: float = ALIAS_TTL_SECONDS) -> None:
        self.mc = mc
        self.ttl = ttl
        self._seen: tuple[float, str | None] | None = None
        self._lock = threading.Lock()

    def build(self) -> str | None:
        """Return the build name the alias names now (cached for `ttl` seconds)."""
        seen = self._seen
        now = time.monotonic()
        if seen is not None and now - seen[0] < self.ttl:
            return seen[1]
        with self._lock:
            name = build_of_alias(self.mc)
            self._seen = (time.monotonic(), name)
            return name


# -- search --------------------------------------------------------------------

class MilvusBackend:
    """Channel scores for one loaded build, from that build's collection."""

    name = "milvus"

    def __init__(self, mc, index, encoder, *, lexical_candidates: int = MAX_TOPK, replicas: int = 1) -> None:
        self.mc = mc
        self.index = index
        self.encoder = encoder
        self.collection = collection_name(index.build_dir.name)
        self.n = len(index.chunk_ids)
        self.lexical_candidates = lexical_candidates
        self._vocab = {channel: model.vocab_dict for channel, model in _channels_of(index).items()}
        self._has_dense = index.has_vectors
        ensure_loaded(mc, self.collection, replicas)

    def has_channel(self, channel: str) -> bool:
        """True when the build has this lexical channel."""
        return channel in self._vocab

    def _search(self, field: str, data, limit: int, where: Where) -> np.ndarray:
        out = np.zeros(self.n, dtype=np.float32)
        if self.n == 0 or limit <= 0:
            return out
        expr = filter_expression(where.filters, where.mask)
        params = {"metric_type": "IP", "params": {"drop_ratio_search": 0.0} if field in LEXICAL_CHANNELS
                  else dense_search_params(self.n, limit, id(self.mc) in _LOCAL)}
        got = self.mc.search(self.collection, data=[data], anns_field=field, limit=min(limit, self.n, MAX_TOPK),
                             filter=expr, search_params=params, output_fields=[])
        hits = got[0] if got else []
        if hits:
            key = "row" if "row" in hits[0] else "id"  # pymilvus 3 names the primary key, 2.5/2.6 say "id"
            ids = np.fromiter((h[key] for h in hits), dtype=np.int64, count=len(hits))
            scores = np.fromiter((h["distance"] for h in hits), dtype=np.float32, count=len(hits))
            out[ids] = scores
        return out

    def lexical(self, channel: str, weights: Mapping[str, float], where: Where = EVERYWHERE) -> np.ndarray:
        """Return the channel's weighted BM25 score per chunk row: a sparse inner product inside Milvus."""
        vocab = self._vocab[channel]
        query: dict[int, float] = {}
        for token, weight in weights.items():
            tid = vocab.get(token)
            if tid is not None and weight > 0:
                query[int(tid)] = query.get(int(tid), 0.0) + float(weight)
        if not query:
            return np.zeros(self.n, dtype=np.float32)
        return self._search(channel, query, self.lexical_candidates, where)

    def dense_available(self) -> bool:
        """True when the build has vectors and an encoder is loaded."""
        return self._has_dense and self.encoder is not None and self.n > 0

    def dense(self, text: str, candidates: int, where: Where = EVERYWHERE, vector: np.ndarray | None = None) -> np.ndarray:
        """Return cosine per chunk row for the `candidates` nearest chunks inside the filters (`vector`: the
        text's vector when already computed)."""
        if not self.dense_available():
            return np.zeros(self.n, dtype=np.float32)
        vec = (vector if vector is not None else self.encoder.encode_queries([text])).reshape(-1).astype(np.float32)
        return self._search("dense", vec.tolist(), max(candidates, 1), where)

    def clause_row(self, doc_id: str, clause_id: str) -> int | None:
        """Return the clause row of a clause id, asked of Milvus."""
        a, b = _quote(doc_id), _quote(clause_id)
        if a is None or b is None:
            return self.index.clause_row(doc_id, clause_id)
        got = self.mc.query(self.collection, filter=f"doc_id == {a} and clause_id == {b}",
                            output_fields=["clause_row"], limit=1)
        return int(got[0]["clause_row"]) if got else None

    def describe(self) -> dict:
        """Return what the collection holds (for bench and docs)."""
        return json.loads(json.dumps(self.mc.describe_collection(self.collection), default=str))


# -- wiring --------------------------------------------------------------------

class MilvusIndexHandle(IndexHandle):
    """The index build the Milvus alias names, loaded lean from the index folder; follows the alias per request."""

    lean = True  # no FAISS file, BM25 matrices memory-mapped: channel scores and vectors are in Milvus

    def __init__(self, index_dir: Path, expected_encoder: str | None, mc) -> None:
        super().__init__(index_dir, expected_encoder)
        self.follower = AliasFollower(mc)

    def published_name(self) -> str:
        """Return the build the alias names; raise IndexMissing when nothing is published to Milvus."""
        name = self.follower.build()
        if name is None:
            raise IndexMissing("no build is published to Milvus yet; run 'kb build' with KB_BACKEND=milvus")
        return name

    def missing_build_message(self, name: str) -> str:
        """Return what to say when this replica lacks the build folder the alias names."""
        return (f"Milvus names build {name}, which is not in {self.index_dir}/{BUILDS_DIR}; "
                "the serving replicas need the index folder the admin node builds")


def publish_build(mc, index_dir: Path, build_name: str, expected_encoder: str | None,
                  on_batch: Callable[[int, int], None] | None = None, replicas: int = 1) -> PublishReport:
    """Load a finished index build from the folder and publish it to Milvus."""
    from kb.index import BUILDS_DIR, KnowledgeIndex

    index = KnowledgeIndex(Path(index_dir) / BUILDS_DIR / build_name, expected_encoder)
    return publish(mc, index, on_batch=on_batch, replicas=replicas)
