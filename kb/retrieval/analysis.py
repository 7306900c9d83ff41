"""Question analysis, done once per search: one frozen AnalysedQuestion that every later stage reads.

It merges what kb/query.py understands (years, titles, document types, levels, regions,
tiers, needs, thesaurus expansions) with kb/lookup.py's clause references (quoted phrases,
clause numbers, 《title》), and adds the words with their role (content, frame, stop, cue),
the weighted tokens of the lexical channels, the bridge expansions with their provenance,
what coverage counts as finding each content word, and the highlight candidates.
Nothing here reads the index.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from kb.lookup import ClauseQuery, parse_clause_query
from kb.query import LEVEL_CUES, Expansion, Understanding, understand
from kb.retrieval.fusion import DEFAULT_TUNING, Tuning
from kb.retrieval.slots import question_slot
from kb.retrieval.vocabulary import Vocabulary, vocabulary
from kb.segment import Segmenter, bigrams, is_word, normalize, stop_words

CONTENT, FRAME, STOP, CUE = "content", "frame", "stop", "cue"
_TITLE_BRACKETS = re.compile(r"《[^《》]*》")
_LEVEL_CUE_WORDS = tuple(sorted({c for cues in LEVEL_CUES.values() for c in cues}, key=len, reverse=True))


@dataclass(frozen=True)
class Word:
    """A word of the question and its role: content (what it is about), frame (有没有, 怎么办), stop, cue (市里)."""

    text: str
    role: str


@dataclass(frozen=True)
class ContentWord:
    """A content word and what counts as finding it: itself, its search-mode parts, its expansions."""

    word: str
    parts: tuple[str, ...]
    expansions: tuple[str, ...]


@dataclass(frozen=True)
class AnalysedQuestion(Understanding):
    """Everything the search stages need to know about a question (an Understanding, plus the analysis)."""

    normalised: str = ""
    words: tuple[Word, ...] = ()
    content: tuple[ContentWord, ...] = ()
    word_query: tuple[tuple[str, float], ...] = ()  # word channel: the user's words at 1, expansions below
    bigram_query: tuple[tuple[str, float], ...] = ()  # bigram channel, the same way
    user_words: tuple[str, ...] = ()  # the user's own search-mode words (index-side channel, highlights)
    clause: ClauseQuery = field(default_factory=ClauseQuery)
    heading_text: str = ""  # the query without 《titles》 (for a heading lookup)
    slot: str | None = None  # the kind of value asked for (kb/retrieval/slots.py: time, quantity), if any

    @property
    def frames(self) -> tuple[str, ...]:
        """The frame words found (question patterns and content-free words the bridge lists)."""
        return tuple(w.text for w in self.words if w.role == FRAME)

    @property
    def is_empty(self) -> bool:
        """True when nothing is left to search for (no content word, no clause reference, no title)."""
        return not self.content and not self.user_words and not self.clause.is_reference and not self.titles

    def highlight_candidates(self) -> tuple[str, ...]:
        """Return whole content words first, then their search-mode parts (so 专精特新 lights up whole)."""
        return tuple(dict.fromkeys([c.word for c in self.content] + list(self.user_words)))

    def as_dict(self) -> dict:
        """Return the JSON-ready view of the API and the search page (Understanding's, plus words and frames)."""
        out = super().as_dict()
        out["words"] = [{"text": w.text, "role": w.role} for w in self.words]
        out["frames"] = list(self.frames)
        return out


class Analyser:
    """Analyses questions with one segmenter and one vocabulary bridge (caches the segmentation of expansion terms)."""

    def __init__(self, segmenter: Segmenter, vocab: Vocabulary | None = None) -> None:
        self.segmenter = segmenter
        self.vocab = vocab if vocab is not None else vocabulary()
        self._term_words: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()

    def _words_of(self, term: str) -> tuple[str, ...]:
        got = self._term_words.get(term)
        if got is None:
            got = tuple(self.segmenter.words(term))
            with self._lock:
                if len(self._term_words) > 50000:
                    self._term_words.clear()
                self._term_words[term] = got
        return got

    def analyse(self, query: str, *, doc_types: tuple[str, ...] = (), regions: tuple[str, ...] = (),
                expand: bool = True, tuning: Tuning = DEFAULT_TUNING) -> AnalysedQuestion:
        """Return the analysed question; `doc_types`/`regions` are the values present in the index."""
        u = understand(query, doc_types=doc_types, regions=regions, expand=expand and tuning.expansion_weight > 0,
                       expansion_weight=tuning.expansion_weight)
        norm = normalize(query)
        tokens = self.segmenter.cut_question(norm)
        frames = self.vocab.find_frames(tokens) if tuning.use_frames else []
        frame_at = {i: m for m in frames for i in range(m.start, m.end)}
        # frames become spaces, so a frame between two words does not glue them into a bigram
        content_text = "".join(" " if i in frame_at else tok for i, tok in enumerate(tokens))
        stops = stop_words()
        cues = {c for c in _LEVEL_CUE_WORDS if c in norm}
        words: list[Word] = []
        content_words: list[str] = []
        for i, tok in enumerate(tokens):
            tok = tok.strip()
            if i in frame_at:
                m = frame_at[i]
                if i == m.start:
                    words.append(Word(m.text, FRAME if self.vocab.frames.get(m.text) == "frame" else STOP))
            elif not tok or not is_word(tok):
                continue
            elif tok in cues:
                words.append(Word(tok, CUE))
            elif (len(tok) < 2 and tok not in self.vocab.by_form) or tok in stops:
                # one character is a content word only where the bridge knows it (退, 扣, 罚: 退还, 扣除, 罚款)
                words.append(Word(tok, STOP))
            else:
                words.append(Word(tok, CONTENT))
                content_words.append(tok)
        content_words = list(dict.fromkeys(content_words))
        user_words = tuple(self.segmenter.words(content_text))

        expansions: list[Expansion] = list(u.expansions)
        if expand and tuning.bridge_weight > 0 and self.vocab:
            seen = {e.term: i for i, e in enumerate(expansions)}
            for p in self.vocab.find_forms(tokens, norm, set(frame_at)):
                boost = 1 + tuning.bridge_long_form_boost * max(0, len(p.form) - 2) / 2
                weight = round(min(1.0, tuning.bridge_weight * p.weight * boost), 4)
                if p.term in seen:
                    i = seen[p.term]
                    if expansions[i].weight < weight:
                        expansions[i] = Expansion(p.form, p.term, weight, p.provenance)
                    continue
                seen[p.term] = len(expansions)
                expansions.append(Expansion(p.form, p.term, weight, p.provenance))

        if expand and tuning.answer_type_weight > 0 and self.vocab:
            said = {e.term for e in expansions}
            for ask, slots in self.vocab.find_answer_types(tokens):
                for slot in slots:
                    if slot not in said and slot not in norm:
                        said.add(slot)
                        expansions.append(Expansion(ask, slot, tuning.answer_type_weight, "answer-type"))

        word_query: dict[str, float] = {w: 1.0 for w in user_words}
        bigram_query: dict[str, float] = {b: 1.0 for b in bigrams(content_text)}
        for e in expansions:
            toks = self._words_of(e.term)
            for w in toks:
                # a part of another word of the same term (科学 of 科学技术) says less than the term: half weight
                weight = e.weight * (0.5 if any(w != x and w in x for x in toks) else 1.0)
                if word_query.get(w, 0.0) < weight:
                    word_query[w] = weight
            for b in bigrams(e.term):
                if bigram_query.get(b, 0.0) < e.weight:
                    bigram_query[b] = e.weight

        content = tuple(
            ContentWord(w, tuple(x for x in self._words_of(w) if x != w),
                        tuple(dict.fromkeys(x for e in expansions if e.source in w or w in e.source
                                            for x in self._words_of(e.term))))
            for w in content_words)
        cq = parse_clause_query(query)
        return AnalysedQuestion(
            text=u.text, years=u.years, titles=u.titles, doc_types=u.doc_types, clause_refs=u.clause_refs,
            levels=u.levels, regions=u.regions, tiers=u.tiers, needs=u.needs, expansions=tuple(expansions),
            normalised=norm, words=tuple(words), content=content, word_query=tuple(word_query.items()),
            bigram_query=tuple(bigram_query.items()), user_words=user_words, clause=cq,
            heading_text=_TITLE_BRACKETS.sub(" ", query).strip(), slot=question_slot(norm))
