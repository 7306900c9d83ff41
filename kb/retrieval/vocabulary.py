"""The vocabulary bridge as retrieval uses it: everyday forms -> corpus terms, and question frame words.

The data and its loader belong to kb/bridge.py (built by a method from the corpus and
general lexical resources, never from evaluation questions). This module matches it against
a question's words: frames and everyday forms are found on word boundaries (a run of up to
four jieba words, so "能不能" split as 能/不能 is still one frame, and 要 inside 主要 is not),
longer everyday forms also inside words; and it inverts the bridge for the index-side channel
(a clause's terms -> the everyday forms people use for them).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from kb.segment import normalize, user_dictionary_words

MAX_RUN = 4  # jieba words a frame or an everyday form may span
INSIDE_MIN = 3  # everyday forms this long are also found inside a word
GAPPED_MIN = 4  # everyday forms this long are also found with single extra characters inside (at most MAX_GAPS)
MAX_GAPS = 2
INDEX_FORM_MIN_WEIGHT = 0.45  # index side and topicality: forms this sure (rules, hand-written); Cilin neighbours are query-side only


@dataclass(frozen=True)
class BridgeTerm:
    """One bridge pair: the everyday `form` a question uses, the corpus `term`, its weight and provenance."""

    form: str
    term: str
    weight: float
    provenance: str


@dataclass(frozen=True)
class Match:
    """A frame or everyday form found in a question: word positions [start, end) and the text."""

    start: int
    end: int
    text: str


class Vocabulary:
    """Bridge pairs and frame words, indexed for matching."""

    def __init__(self, pairs: list[BridgeTerm], frames: dict[str, str], terms: frozenset[str] = frozenset(),
                 answers: dict[str, tuple[str, ...]] | None = None) -> None:
        self.pairs = tuple(pairs)
        self.frames = {normalize(w): c for w, c in frames.items() if w.strip()}
        self.answers = {normalize(w): tuple(s) for w, s in (answers or {}).items() if w.strip() and s}
        by_form: dict[str, list[BridgeTerm]] = {}
        by_term: dict[str, dict[str, float]] = {}
        for p in pairs:
            form, term = normalize(p.form), normalize(p.term)
            if not form or not term or form == term:
                continue
            by_form.setdefault(form, []).append(p)
            forms = by_term.setdefault(term, {})
            forms[form] = max(forms.get(form, 0.0), p.weight)
        self.by_form = {f: tuple(sorted(ps, key=lambda p: -p.weight)) for f, ps in by_form.items()}
        self._long_forms = tuple(sorted((f for f in by_form if len(f) >= INSIDE_MIN), key=len, reverse=True))
        self._longest = max((len(f) for f in self._long_forms), default=0)
        self._long_rank = {f: i for i, f in enumerate(self._long_forms)}
        # gapped forms by their first two characters (the second may follow one inserted character), longest first
        self._by_first2: dict[str, list[str]] = {}
        for f in self._long_forms:
            if len(f) >= GAPPED_MIN:
                self._by_first2.setdefault(f[:2], []).append(f)
        self._by_term = {t: tuple(sorted(f.items())) for t, f in by_term.items()}
        # the words this knowledge base is about: the term inventory (given by the caller), the
        # bridge's terms and their abbreviations (民企, 高企); not colloquial forms (医院 -> 事业单位)
        # or Cilin neighbours, which are everyday words by design
        self.policy_words = frozenset(normalize(t) for t in terms) | frozenset(by_term) | frozenset(
            normalize(p.form) for p in pairs if p.provenance.startswith("abbrev"))
        # everyday forms written for policy terms by hand or by rule (退, 拖着不给钱, 民企): a question using
        # one is about the policies even when it has no corpus term (Cilin neighbours are left out)
        self.policy_forms = frozenset(f for f, ps in by_form.items() if any(p.weight >= INDEX_FORM_MIN_WEIGHT for p in ps))
        digest = hashlib.sha1()
        for p in self.pairs:
            digest.update(f"{p.form}\t{p.term}\t{p.weight}\n".encode("utf-8"))
        digest.update("\n".join(sorted(f"{w}\t{c}" for w, c in self.frames.items())).encode("utf-8"))
        self.version = digest.hexdigest()[:10]  # what index builds depend on (answer types are query-side only)

    def __bool__(self) -> bool:
        return bool(self.pairs or self.frames or self.answers)

    def find_frames(self, tokens: list[str]) -> list[Match]:
        """Return the frame words among jieba tokens (runs of up to MAX_RUN tokens, longest first)."""
        return _runs(tokens, self.frames)

    def find_forms(self, tokens: list[str], norm: str, skip: set[int] = frozenset()) -> list[BridgeTerm]:
        """Return the bridge pairs whose everyday form the question uses (tokens in `skip` are frames).

        Forms are matched on word runs, and forms of INSIDE_MIN or more characters inside words
        too; a pair whose term the question already says is left out.
        """
        found = [m.text for m in _runs(tokens, self.by_form, skip)]
        kept = "".join(" " if i in skip else t for i, t in enumerate(tokens))
        inside = {kept[i:i + n] for n in range(INSIDE_MIN, self._longest + 1) for i in range(len(kept) - n + 1)}
        for form in sorted((f for f in inside if f in self._long_rank), key=self._long_rank.__getitem__):
            if form not in found:  # longest first
                found.append(form)
        for form in self._gapped(kept):
            if form not in found:
                found.append(form)
        out: list[BridgeTerm] = []
        for form in found:
            out.extend(p for p in self.by_form[form] if normalize(p.term) not in norm)
        return out

    def find_answer_types(self, tokens: list[str]) -> list[tuple[str, tuple[str, ...]]]:
        """Return (interrogative, slot words) for the question words that say what kind of answer is wanted."""
        return [(m.text, self.answers[m.text]) for m in _runs(tokens, self.answers)]

    def _gapped(self, text: str) -> list[str]:
        """Return the forms of GAPPED_MIN or more characters found with one extra character between
        some of theirs (请客吃饭 in 请客户吃饭, 不用交税 in 不用交个税): everyday speech inserts words."""
        out = []
        for i, ch in enumerate(text):
            pairs = {ch + text[i + 1:i + 2], ch + text[i + 2:i + 3]}  # the second character, next or one further
            for form in sorted((f for pair in pairs for f in self._by_first2.get(pair, ())), key=self._long_rank.__getitem__):
                if form not in text and _gapped_at(form, text, i):
                    out.append(form)
        return out

    def everyday_forms(self, term: str) -> tuple[tuple[str, float], ...]:
        """Return (form, weight) for the everyday forms of a corpus term."""
        return self._by_term.get(term, ())


def _gapped_at(form: str, text: str, start: int) -> bool:
    """True when `form` occurs in `text` from `start`, with at most MAX_GAPS single extra characters between its own."""
    j, gaps = start, 0
    for k, ch in enumerate(form):
        if j < len(text) and text[j] == ch:
            j += 1
        elif k > 0 and gaps < MAX_GAPS and j + 1 < len(text) and text[j + 1] == ch and text[j] != " ":
            gaps += 1
            j += 2
        else:
            return False
    return True


def _runs(tokens: list[str], table, skip: set[int] = frozenset()) -> list[Match]:
    out: list[Match] = []
    i = 0
    while i < len(tokens):
        for j in range(min(len(tokens), i + MAX_RUN), i, -1):
            if any(x in skip for x in range(i, j)):
                continue
            text = "".join(tokens[i:j])
            if text in table:
                out.append(Match(i, j, text))
                i = j
                break
        else:
            i += 1
    return out


def bundled_terms() -> frozenset[str]:
    """Return the policy words shipped with kb: the corpus term inventory (kb/data/terms.tsv), the
    thesaurus's words and terms, and the segmenter's policy dictionary."""
    from kb.query import thesaurus

    words: set[str] = set(user_dictionary_words())
    for entry in thesaurus():
        words.add(entry.source)
        words.update(entry.targets)
    inventory = resources.files("kb") / "data" / "terms.tsv"
    if inventory.is_file():
        for line in inventory.read_text(encoding="utf-8").splitlines():
            if line and not line.startswith("#") and not line.startswith("term\t"):
                words.add(line.split("\t", 1)[0])
    return frozenset(w for w in words if len(w) >= 2)


@lru_cache(maxsize=1)
def vocabulary() -> Vocabulary:
    """Return the bundled bridge (kb/bridge.py) and policy words; no pairs or frames when the bridge is absent."""
    try:
        from kb import bridge
    except ImportError:
        return Vocabulary([], {}, bundled_terms())
    return from_bridge(bridge)


def from_bridge(bridge) -> Vocabulary:
    """Adapt kb/bridge.py's loader to a Vocabulary."""
    pairs = [BridgeTerm(e.everyday_form, e.term, float(e.weight), f"{e.kind}:{e.provenance}")
             for e in bridge.load_bridge().entries]
    return Vocabulary(pairs, dict(bridge.frame_words()), bundled_terms(), bridge.answer_types())


def everyday_tokens(vocab: Vocabulary, words: list[str]) -> list[str]:
    """Return the everyday forms of a chunk's words (its index-side field), one per occurrence of a term."""
    out: list[str] = []
    for w in words:
        for form, weight in vocab.everyday_forms(w):
            if weight >= INDEX_FORM_MIN_WEIGHT:
                out.append(form)
    return out
