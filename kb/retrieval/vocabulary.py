"""The vocabulary bridge as retrieval uses it: everyday forms -> corpus terms, and question frame words.

The data and its loader belong to kb/bridge.py (built by a method from the corpus and
general lexical resources, never from evaluation questions); this module matches it
against a question (longest forms first, no overlaps) and inverts it for the index-side
channel (a clause's terms -> the everyday forms people use for them).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

from kb.segment import normalize


@dataclass(frozen=True)
class BridgeTerm:
    """One bridge pair: the everyday `form` a question uses, the corpus `term`, its weight and provenance."""

    form: str
    term: str
    weight: float
    provenance: str


class Vocabulary:
    """Bridge pairs and frame words, indexed for matching."""

    def __init__(self, pairs: list[BridgeTerm], frames: list[str]) -> None:
        self.pairs = tuple(pairs)
        self.frames = tuple(sorted({normalize(f) for f in frames if f.strip()}, key=len, reverse=True))
        by_form: dict[str, list[BridgeTerm]] = {}
        by_term: dict[str, dict[str, float]] = {}
        for p in pairs:
            form, term = normalize(p.form), normalize(p.term)
            if not form or not term or form == term:
                continue
            by_form.setdefault(form, []).append(p)
            forms = by_term.setdefault(term, {})
            forms[form] = max(forms.get(form, 0.0), p.weight)
        self._by_form = by_form
        self._forms = tuple(sorted(by_form, key=len, reverse=True))
        self._by_term = {t: tuple(sorted(f.items())) for t, f in by_term.items()}
        digest = hashlib.sha1()
        for p in self.pairs:
            digest.update(f"{p.form}\t{p.term}\t{p.weight}\n".encode("utf-8"))
        digest.update("\n".join(self.frames).encode("utf-8"))
        self.version = digest.hexdigest()[:10]

    def __bool__(self) -> bool:
        return bool(self.pairs or self.frames)

    def frame_spans(self, norm: str) -> list[tuple[int, int, str]]:
        """Return (start, end, frame) for the frame words in normalised text, longest first, no overlaps."""
        return _spans(norm, self.frames)

    def expansions(self, norm: str, skip: list[tuple[int, int]] = ()) -> list[BridgeTerm]:
        """Return the bridge pairs whose everyday form occurs in normalised text (outside `skip` spans)."""
        taken = [False] * len(norm)
        for a, b in skip:
            for i in range(a, b):
                taken[i] = True
        out: list[BridgeTerm] = []
        for start, end, form in _spans(norm, self._forms, taken):
            out.extend(p for p in self._by_form[form] if normalize(p.term) not in norm)
        return out

    def everyday_forms(self, term: str) -> tuple[tuple[str, float], ...]:
        """Return (form, weight) for the everyday forms of a corpus term."""
        return self._by_term.get(term, ())


def _spans(norm: str, words: tuple[str, ...], taken: list[bool] | None = None) -> list[tuple[int, int, str]]:
    taken = taken if taken is not None else [False] * len(norm)
    found = []
    for word in words:
        start = norm.find(word)
        while start >= 0:
            end = start + len(word)
            if not any(taken[start:end]):
                for i in range(start, end):
                    taken[i] = True
                found.append((start, end, word))
            start = norm.find(word, end)
    return sorted(found)


@lru_cache(maxsize=1)
def vocabulary() -> Vocabulary:
    """Return the bundled bridge (kb/bridge.py); empty when it is not installed."""
    try:
        from kb import bridge
    except ImportError:
        return Vocabulary([], [])
    return from_bridge(bridge)


def from_bridge(bridge) -> Vocabulary:
    """Adapt kb/bridge.py's loader to a Vocabulary."""
    pairs = [BridgeTerm(e.form, e.term, float(e.weight), str(e.provenance)) for e in bridge.load_bridge()]
    return Vocabulary(pairs, list(bridge.frame_words()))
