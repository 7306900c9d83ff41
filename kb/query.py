"""Query understanding: years and documents a question names, clause references, region/level and
tier cues, the need behind it, and thesaurus expansions (weighted below the user's own words).

Everything here is shown to the user, so it stays simple and transparent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from kb.domain import NEEDS, TIERS  # noqa: F401  (the vocabulary lives in kb/domain.py)
from kb.segment import normalize
from kb.text import YEAR

# Words that point at the government level a question is about.
LEVEL_CUES: dict[str, tuple[str, ...]] = {
    "municipal": ("市里", "我市", "本市", "全市", "市级", "市政府", "市委"),
    "provincial": ("省里", "我省", "本省", "全省", "省级", "省政府"),
    "national": ("国家层面", "中央", "国务院", "全国"),
}

_YEAR_RE = re.compile(rf"(?<![0-9])({YEAR})(?![0-9])")
_TITLE_RE = re.compile(r"《([^《》]{2,80})》")
_CLAUSE_REF_RE = re.compile(r"第([一二三四五六七八九十百零〇两]+|[0-9]+)(条|章|节|编)")


@dataclass(frozen=True)
class Expansion:
    """One expansion: the user's word, the policy term added, its weight, where the pair comes from."""

    source: str
    term: str
    weight: float
    provenance: str = "thesaurus"


@dataclass(frozen=True)
class Understanding:
    """What a question was understood as."""

    text: str
    years: tuple[int, ...] = ()
    titles: tuple[str, ...] = ()
    doc_types: tuple[str, ...] = ()
    clause_refs: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    expansions: tuple[Expansion, ...] = ()

    def as_dict(self) -> dict:
        """Return a JSON-ready view (for the API and the search page)."""
        return {
            "years": list(self.years), "titles": list(self.titles), "doc_types": list(self.doc_types),
            "clause_refs": list(self.clause_refs), "levels": list(self.levels), "regions": list(self.regions),
            "tiers": list(self.tiers), "needs": [{"kind": n, "label": NEEDS[n]} for n in self.needs],
            "expansions": [{"from": e.source, "to": e.term, "weight": e.weight, "provenance": e.provenance}
                           for e in self.expansions],
        }


@dataclass(frozen=True)
class ThesaurusEntry:
    """One line of kb/data/thesaurus.tsv."""

    source: str
    targets: tuple[str, ...]
    need: str


class ThesaurusError(ValueError):
    """The thesaurus file is malformed; the message names the line."""


def parse_thesaurus(text: str) -> list[ThesaurusEntry]:
    """Parse thesaurus TSV text; raises ThesaurusError naming the bad line."""
    entries = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) not in (2, 3) or not cols[0].strip() or not cols[1].strip():
            raise ThesaurusError(f"thesaurus line {n}: want 'word<TAB>term|term[<TAB>need]': {line!r}")
        need = cols[2].strip() if len(cols) == 3 else ""
        if need and need not in NEEDS:
            raise ThesaurusError(f"thesaurus line {n}: unknown need {need!r}")
        targets = tuple(t.strip() for t in cols[1].split("|") if t.strip())
        entries.append(ThesaurusEntry(normalize(cols[0].strip()), targets, need))
    return entries


@lru_cache(maxsize=1)
def thesaurus() -> tuple[ThesaurusEntry, ...]:
    """Return the bundled thesaurus, longest source words first."""
    text = (resources.files("kb") / "data" / "thesaurus.tsv").read_text(encoding="utf-8")
    return tuple(sorted(parse_thesaurus(text), key=lambda e: len(e.source), reverse=True))


def _match_entries(norm: str) -> list[ThesaurusEntry]:
    """Return the entries whose source word occurs in the text, longest first, without overlaps."""
    taken = [False] * len(norm)
    found = []
    for entry in thesaurus():
        start = norm.find(entry.source)
        while start >= 0:
            end = start + len(entry.source)
            if not any(taken[start:end]):
                for i in range(start, end):
                    taken[i] = True
                found.append(entry)
                break
            start = norm.find(entry.source, start + 1)
    return found


def understand(query: str, *, doc_types: tuple[str, ...] = (), regions: tuple[str, ...] = (),
               expand: bool = True, expansion_weight: float = 0.4) -> Understanding:
    """Return what the query names and needs; `doc_types`/`regions` are the values present in the index."""
    norm = normalize(query)
    years = tuple(dict.fromkeys(int(y) for y in _YEAR_RE.findall(norm)))
    titles = tuple(dict.fromkeys(m.strip() for m in _TITLE_RE.findall(query)))
    named_types = tuple(t for t in doc_types if t and normalize(t) in norm)
    clause_refs = tuple(dict.fromkeys("".join(m) for m in _CLAUSE_REF_RE.findall(norm)))
    levels = tuple(level for level, cues in LEVEL_CUES.items() if any(c in norm for c in cues))
    named_regions = tuple(r for r in regions if r and normalize(r) in norm)
    tiers = tuple(t for t, cues in TIERS.items() if any(normalize(c) in norm for c in cues))
    entries = _match_entries(norm)
    needs = tuple(dict.fromkeys(e.need for e in entries if e.need))
    expansions: list[Expansion] = []
    if expand:
        seen = set()
        for e in entries:
            for t in e.targets:
                if t not in seen and normalize(t) not in norm:
                    seen.add(t)
                    expansions.append(Expansion(e.source, t, expansion_weight))
    return Understanding(text=query, years=years, titles=titles, doc_types=named_types, clause_refs=clause_refs,
                         levels=levels, regions=named_regions, tiers=tiers, needs=needs,
                         expansions=tuple(expansions))

