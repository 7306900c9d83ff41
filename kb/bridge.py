"""The vocabulary bridge: everyday forms an enterprise uses -> the policy and legal terms of the corpus,
and the question-frame words that carry no content.

Data only, built by scripts/build_vocab.py from the corpus term inventory (kb/data/terms.tsv),
general abbreviation rules, HIT Cilin same-class synonyms and hand-written everyday forms of
inventory terms (kb/data/bridge_manual.tsv); never from evaluation questions. Every row records
its provenance and kind (abbrev, synonym, colloquial, or instance: a member of the category the term
names, weighed lower). Files: kb/data/bridge.tsv, kb/data/frames.tsv, and kb/data/answer_types.tsv (what kind
of answer an interrogative asks for, and the drafting words that state it).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from kb.segment import normalize

BRIDGE_COLUMNS = ("everyday_form", "term", "weight", "kind", "provenance", "need")
KINDS = ("abbrev", "synonym", "colloquial", "instance")  # instance: a member of the category the term names
FRAME_CATEGORIES = ("frame", "stop")


class BridgeError(ValueError):
    """A bridge or frames file is malformed; the message names the line."""


@dataclass(frozen=True)
class BridgeEntry:
    """One row of kb/data/bridge.tsv: `everyday_form` said by a user stands for corpus `term`."""

    everyday_form: str
    term: str
    weight: float
    kind: str
    provenance: str
    need: str = ""


@dataclass(frozen=True)
class Bridge:
    """The loaded bridge, indexed both ways."""

    entries: tuple[BridgeEntry, ...]
    by_form: dict[str, tuple[BridgeEntry, ...]]
    by_term: dict[str, tuple[BridgeEntry, ...]]


def _data_text(name: str) -> str:
    return (resources.files("kb") / "data" / name).read_text(encoding="utf-8")


def parse_bridge(text: str, *, needs: frozenset[str] | None = None) -> list[BridgeEntry]:
    """Parse bridge TSV text (header line, '#' comments); raises BridgeError naming the bad line."""
    entries: list[BridgeEntry] = []
    header_seen = False
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if not header_seen and tuple(cols[:len(BRIDGE_COLUMNS)]) == BRIDGE_COLUMNS:
            header_seen = True
            continue
        if len(cols) != len(BRIDGE_COLUMNS):
            raise BridgeError(f"bridge line {n}: want {len(BRIDGE_COLUMNS)} tab-separated columns "
                              f"{'/'.join(BRIDGE_COLUMNS)}: {line!r}")
        form, term, weight_s, kind, provenance, need = (c.strip() for c in cols)
        if not form or not term or not provenance:
            raise BridgeError(f"bridge line {n}: empty everyday_form, term or provenance: {line!r}")
        try:
            weight = float(weight_s)
        except ValueError:
            raise BridgeError(f"bridge line {n}: weight {weight_s!r} is not a number") from None
        if not 0.0 < weight <= 1.0:
            raise BridgeError(f"bridge line {n}: weight {weight} is outside (0, 1]")
        if kind not in KINDS:
            raise BridgeError(f"bridge line {n}: kind {kind!r} is not one of {', '.join(KINDS)}")
        if need and needs is not None and need not in needs:
            raise BridgeError(f"bridge line {n}: unknown need {need!r}")
        entries.append(BridgeEntry(normalize(form), term, weight, kind, provenance, need))
    return entries


def parse_frames(text: str) -> dict[str, str]:
    """Parse frames TSV text (word<TAB>category); raises BridgeError naming the bad line."""
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) < 2 or cols[1].strip() not in FRAME_CATEGORIES or not cols[0].strip():
            raise BridgeError(f"frames line {n}: want 'word<TAB>frame|stop': {line!r}")
        out[normalize(cols[0].strip())] = cols[1].strip()
    return out


def parse_answer_types(text: str) -> dict[str, tuple[str, ...]]:
    """Parse answer-types TSV text (interrogatives<TAB>slot words<TAB>category); raises BridgeError naming the bad line."""
    out: dict[str, tuple[str, ...]] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        asks = [normalize(w.strip()) for w in cols[0].split("|") if w.strip()] if cols else []
        slots = tuple(w.strip() for w in cols[1].split("|") if w.strip()) if len(cols) > 1 else ()
        if len(cols) != 3 or not asks or not slots or not cols[2].strip():
            raise BridgeError(f"answer types line {n}: want 'interrogatives<TAB>slot words<TAB>category': {line!r}")
        for ask in asks:
            out[ask] = tuple(dict.fromkeys(out.get(ask, ()) + slots))
    return out


@lru_cache(maxsize=1)
def load_bridge() -> Bridge:
    """Return the bundled bridge (parsed once), indexed by everyday form and by term, best weight first."""
    from kb.query import NEEDS

    entries = tuple(parse_bridge(_data_text("bridge.tsv"), needs=frozenset(NEEDS)))
    by_form: dict[str, list[BridgeEntry]] = {}
    by_term: dict[str, list[BridgeEntry]] = {}
    for e in entries:
        by_form.setdefault(e.everyday_form, []).append(e)
        by_term.setdefault(e.term, []).append(e)

    def freeze(d: dict[str, list[BridgeEntry]]) -> dict[str, tuple[BridgeEntry, ...]]:
        return {k: tuple(sorted(v, key=lambda e: (-e.weight, e.term, e.everyday_form))) for k, v in d.items()}

    return Bridge(entries, freeze(by_form), freeze(by_term))


def expansions(word: str) -> tuple[tuple[str, float, str, str], ...]:
    """Return (term, weight, kind, provenance) for the corpus terms an everyday `word` stands for."""
    return tuple((e.term, e.weight, e.kind, e.provenance) for e in load_bridge().by_form.get(normalize(word), ()))


def everyday_forms(term: str) -> tuple[tuple[str, float], ...]:
    """Return (everyday form, weight) for a corpus `term`: what to index a clause under besides its words."""
    return tuple((e.everyday_form, e.weight) for e in load_bridge().by_term.get(term, ()))


def everyday_form_list() -> tuple[str, ...]:
    """Return every everyday form, longest first (for matching inside an unsegmented question)."""
    return tuple(sorted(load_bridge().by_form, key=lambda f: (-len(f), f)))


@lru_cache(maxsize=1)
def frame_words() -> dict[str, str]:
    """Return {word or phrase: 'frame' | 'stop'} for question-frame words that carry no content."""
    return parse_frames(_data_text("frames.tsv"))


@lru_cache(maxsize=1)
def answer_types() -> dict[str, tuple[str, ...]]:
    """Return {interrogative: slot words} (多久 -> 期限, 日内, 之日起)."""
    return parse_answer_types(_data_text("answer_types.tsv"))
