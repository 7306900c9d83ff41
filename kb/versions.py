"""Versions and repeal derived from the corpus: which document supersedes which, and from when.

Documents with the same title (中华人民共和国 prefix ignored), region and issuer are versions
of one document, ordered by version date: the older is superseded by the newer from the
newer's valid_from. An effective-date article "本法自X起施行。《Y》同时废止。" repeals Y from X.
Nothing is written back to the corpus: the facts are derived at build time (kept in the
manifest) and applied on the one reference date an answer is judged on. Also owns the
article-by-article comparison of two versions and the in-force-first ordering of hits.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass, replace
from datetime import date, timedelta
from functools import lru_cache
from typing import Callable

from kb.structure import parse_clauses
from kb.types import Document, Hit

VERSIONS_VERSION = "1"
NATIONAL_PREFIX = "中华人民共和国"
LAW_TYPES = ("法律", "行政法规")
_DATE = r"((?:19|20)\d{2})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日"
_REPEAL_RE = re.compile(r"自\s*(?:" + _DATE + r"|(公布|发布|颁布)之日)\s*起(?:施行|实施)[。，；]?([^\n]{0,300}?)同时废止")
_TITLE_RE = re.compile(r"《([^《》\n]{2,80})》")
_ARTICLE_NO_RE = re.compile(r"^第([一二三四五六七八九十百千零〇两0-9]+)条")


def title_key(title: str) -> str:
    """Return the comparable form of a title: no spaces, 《》 or 中华人民共和国 prefix."""
    t = re.sub(r"\s+", "", title or "").strip("《》")
    return t[len(NATIONAL_PREFIX):] if t.startswith(NATIONAL_PREFIX) and len(t) > len(NATIONAL_PREFIX) else t


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat((value or "").strip()[:10])
    except ValueError:
        return None


@dataclass(frozen=True)
class VersionFacts:
    """What the corpus says about one document's place among versions and repeals."""

    doc_id: str
    title: str
    version: str  # this version's date (published)
    valid_from: str
    previous: str = ""  # doc_id of the version before
    superseded_by: str = ""  # doc_id of the version after
    superseded_from: str = ""  # YYYY-MM-DD the next version applies from
    repealed_by: str = ""  # doc_id of the act that repeals this one
    repealed_from: str = ""


@dataclass(frozen=True)
class Repeal:
    """A document an act repeals by name ("《…》同时废止"), with the act and the date."""

    title: str
    by: str  # doc_id of the repealing act
    by_title: str
    from_date: str
    target: str = ""  # doc_id when the repealed document is in the knowledge base


@dataclass(frozen=True)
class Versions:
    """The version and repeal facts of a corpus."""

    facts: tuple[VersionFacts, ...] = ()
    repeals: tuple[Repeal, ...] = ()

    def get(self, doc_id: str) -> VersionFacts | None:
        """Return the facts of one document, or None when it has none."""
        return self._by_id().get(doc_id)

    def _by_id(self) -> dict[str, VersionFacts]:
        cache = self.__dict__.get("_cache")
        if cache is None:
            cache = {f.doc_id: f for f in self.facts}
            object.__setattr__(self, "_cache", cache)
        return cache

    def group(self, doc_id: str) -> tuple[VersionFacts, ...]:
        """Return every version of the document (oldest first); () when it has only itself."""
        f = self.get(doc_id)
        if f is None or not (f.previous or f.superseded_by):
            return ()
        while f.previous and self.get(f.previous):
            f = self.get(f.previous)
        chain = [f]
        while f.superseded_by and self.get(f.superseded_by) and len(chain) < 50:
            f = self.get(f.superseded_by)
            chain.append(f)
        return tuple(chain)

    def valid_until(self, doc_id: str) -> str:
        """Return the derived last day (YYYY-MM-DD) of a superseded or repealed document, or ""."""
        f = self.get(doc_id)
        if f is None:
            return ""
        ends = [d for d in (_day(f.superseded_from), _day(f.repealed_from)) if d is not None]
        return (min(ends) - timedelta(days=1)).isoformat() if ends else ""

    def in_force(self, doc: Document, as_of: date) -> bool:
        """True when the document applies on `as_of` (started, not yet superseded or repealed)."""
        meta = self.effective_meta(doc, as_of)
        start = _day(meta.get("valid_from", ""))
        return meta.get("status") not in ("superseded", "repealed", "expired", "draft") and (
            start is None or start <= as_of)

    def effective_meta(self, doc: Document, as_of: date) -> dict[str, str]:
        """Return the front matter as it applies on `as_of`: status, superseded_by, valid_until derived.

        A value the front matter states is kept; a document superseded or repealed from a date
        is effective before it; a law or regulation in the knowledge base with no stated status
        is effective from its valid_from.
        """
        meta = doc.meta_dict()
        f = self.get(doc.doc_id)
        stated = str(meta.get("status", "") or "").strip()
        if f is not None:
            until = self.valid_until(doc.doc_id)
            repealed = _day(f.repealed_from)
            superseded = _day(f.superseded_from)
            if repealed is not None and repealed <= as_of and stated in ("", "effective"):
                meta["status"] = "repealed"
                by = self.get(f.repealed_by)
                meta["repealed_by"] = f.repealed_by
                meta["repealed_note"] = f"自{f.repealed_from}起由《{by.title if by else f.repealed_by}》废止"
            elif superseded is not None and superseded <= as_of and stated in ("", "effective"):
                meta["status"] = "superseded"
                newer = self.get(f.superseded_by)
                label = f"{newer.title}（{newer.version}版本）" if newer else f.superseded_by
                meta["superseded_by"] = meta.get("superseded_by") or label
                meta["superseded_from"] = f.superseded_from
            if until and not meta.get("valid_until") and meta.get("status") in ("superseded", "repealed"):
                meta["valid_until"] = until
        if not stated and meta.get("status") not in ("superseded", "repealed") and (
                meta.get("doc_type") in LAW_TYPES or f is not None and (f.previous or f.superseded_by)):
            start = _day(meta.get("valid_from", ""))
            if start is None or start <= as_of:
                meta["status"] = "effective"
                since = f"自{meta['valid_from']}起施行；" if start else ""
                meta["effective_note"] = since + "知识库中没有取代或废止它的文件"
        return meta

    def to_json(self) -> dict:
        """Return the facts as JSON (kept in the index manifest)."""
        return {"version": VERSIONS_VERSION,
                "facts": [f.__dict__ | {} for f in self.facts],
                "repeals": [r.__dict__ | {} for r in self.repeals]}

    @classmethod
    def from_json(cls, data) -> "Versions | None":
        """Return the facts stored by `to_json`, or None when absent or of another version."""
        if not isinstance(data, dict) or data.get("version") != VERSIONS_VERSION:
            return None
        keys_f = set(VersionFacts.__dataclass_fields__)
        keys_r = set(Repeal.__dataclass_fields__)
        return cls(facts=tuple(VersionFacts(**{k: v for k, v in f.items() if k in keys_f}) for f in data["facts"]),
                   repeals=tuple(Repeal(**{k: v for k, v in r.items() if k in keys_r}) for r in data["repeals"]))


def _version_date(doc: Document) -> str:
    return (doc.get("published") or doc.get("valid_from") or "").strip()


def find_repeals(doc: Document) -> list[tuple[str, str]]:
    """Return (repealed title, from YYYY-MM-DD) for each document the text repeals on commencement."""
    out = []
    for m in _REPEAL_RE.finditer(doc.body):
        if m.group(4):
            start = doc.get("published")
        else:
            try:
                start = date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat()
            except ValueError:
                continue
        for t in _TITLE_RE.findall(m.group(5)):
            out.append((t.strip(), start))
    return out


def derive_versions(docs: list[Document]) -> Versions:
    """Return the version and repeal facts of a corpus (documents with their bodies)."""
    groups: dict[tuple[str, str, str], list[Document]] = {}
    for doc in docs:
        key = (title_key(doc.title), doc.get("region").strip(), doc.get("issuer").strip())
        groups.setdefault(key, []).append(doc)
    # an issuer left blank on one version joins the group of the same title that names one
    for key in [k for k in groups if not k[2]]:
        named = [k for k in groups if k[:2] == key[:2] and k[2]]
        if len(named) == 1:
            groups[named[0]].extend(groups.pop(key))
    facts: dict[str, VersionFacts] = {}
    for members in groups.values():
        dated = sorted((d for d in members if _day(_version_date(d))), key=lambda d: (_version_date(d), d.doc_id))
        distinct = len({_version_date(d) for d in dated}) == len(dated)
        for i, doc in enumerate(dated):
            prev = dated[i - 1] if i > 0 and distinct else None
            nxt = dated[i + 1] if i + 1 < len(dated) and distinct else None
            facts[doc.doc_id] = VersionFacts(
                doc_id=doc.doc_id, title=doc.title, version=_version_date(doc), valid_from=doc.get("valid_from"),
                previous=prev.doc_id if prev else "", superseded_by=nxt.doc_id if nxt else "",
                superseded_from=(nxt.get("valid_from") or _version_date(nxt)) if nxt else "")
        for doc in members:
            facts.setdefault(doc.doc_id, VersionFacts(doc.doc_id, doc.title, _version_date(doc), doc.get("valid_from")))
    by_key: dict[str, list[str]] = {}
    for doc in docs:
        by_key.setdefault(title_key(doc.title), []).append(doc.doc_id)
    titles = {d.doc_id: d.title for d in docs}
    repeals: dict[str, Repeal] = {}
    for doc in docs:
        for named, start in find_repeals(doc):
            key = title_key(named)
            if key == title_key(doc.title):
                continue
            targets = by_key.get(key, [])
            for target in targets:
                f = facts[target]
                if not f.repealed_from or start < f.repealed_from:
                    facts[target] = replace(f, repealed_by=doc.doc_id, repealed_from=start)
            old = repeals.get(key)
            if old is None or start < old.from_date:
                repeals[key] = Repeal(title=named, by=doc.doc_id, by_title=titles[doc.doc_id], from_date=start,
                                      target=targets[0] if targets else "")
    return Versions(facts=tuple(facts[d.doc_id] for d in docs if d.doc_id in facts),
                    repeals=tuple(sorted(repeals.values(), key=lambda r: (r.from_date, r.title))))


def facts_from_metadata(docs: list[Document]) -> Versions:
    """Derive versions from metadata alone (documents loaded without bodies): no repeals."""
    return derive_versions([replace(d, body="") for d in docs])


# --- ranking ----------------------------------------------------------------------------------

MIN_SAME = 0.5  # clauses or articles this similar are one, changed (or renumbered)

ABOUT_EQUAL = 0.8  # a version in force scoring at least this share of an outdated one's score goes first


def _in_force_on(versions: Versions, as_of: date) -> Callable[[Document], bool]:
    """Return versions.in_force(doc, as_of), remembered per document for one ranking."""
    memo: dict[str, bool] = {}

    def in_force(doc: Document) -> bool:
        if doc.doc_id not in memo:
            memo[doc.doc_id] = versions.in_force(doc, as_of)
        return memo[doc.doc_id]

    return in_force


def _version_in_force(hit: Hit, others: list[Hit], in_force: Callable[[Document], bool], versions: Versions,
                      min_same: float, min_score: float = float("-inf")) -> int | None:
    """Return the position in `others` of the first version in force (`in_force`) of `hit`'s clause (same
    title group, text at least `min_same` alike, score at least `min_score`), when `hit` is outdated."""
    group = {f.doc_id for f in versions.group(hit.doc.doc_id)}
    if not group or in_force(hit.doc):
        return None
    return next((j for j, other in enumerate(others)
                 if other.doc.doc_id in group and in_force(other.doc)
                 and other.score >= min_score and _ratio(hit.clause.text, other.clause.text) >= min_same), None)


def prefer_in_force(hits: list[Hit], as_of: date, versions: Versions,
                    about_equal: float = ABOUT_EQUAL) -> list[Hit]:
    """Return the hits with, for versions of one clause that match about equally (same document
    title, similar clause text), the version in force on `as_of` before the others; ranks renumbered."""
    out = list(hits)
    in_force = _in_force_on(versions, as_of)
    i = 0
    while i < len(out):
        hit = out[i]
        j = _version_in_force(hit, out[i + 1:], in_force, versions, MIN_SAME, about_equal * hit.score)
        if j is not None:
            out.insert(i, out.pop(i + 1 + j))
        i += 1
    return [replace(h, rank=n) for n, h in enumerate(out, start=1)]


SAME_TEXT = 0.9  # an outdated clause this similar to its version in force ranked above it is folded into it


def fold_versions(hits: list[Hit], as_of: date, versions: Versions, same: float = SAME_TEXT) -> list[Hit]:
    """Return the hits with each outdated clause whose version in force on `as_of` ranks above it with
    (nearly) the same text folded into that hit's `also_in`, so one article is not listed twice; an
    outdated clause ranked first (a question about the old version) stays; ranks renumbered."""
    out: list[Hit] = []
    in_force = _in_force_on(versions, as_of)
    for hit in hits:
        i = _version_in_force(hit, out, in_force, versions, same)
        if i is None:
            out.append(hit)
        else:
            out[i] = replace(out[i], also_in=out[i].also_in + ((hit.doc, hit.clause),))
    return [replace(h, rank=n) for n, h in enumerate(out, start=1)]


# --- what changed -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Article:
    """One article of a version: its number as written, clause id, and text without the number."""

    number: str  # "第十五条"
    clause_id: str
    text: str


@dataclass(frozen=True)
class ArticleChange:
    """How one article differs between two versions: added, removed, changed or unchanged."""

    change: str  # added | removed | changed | unchanged
    old: Article | None
    new: Article | None
    similarity: float
    diff: tuple[tuple[str, str], ...] = ()  # (equal | insert | delete, text)

    @property
    def renumbered(self) -> bool:
        """True when the article kept its text (or most of it) under another number."""
        return self.old is not None and self.new is not None and self.old.number != self.new.number


def articles_of(doc: Document) -> list[Article]:
    """Return the articles (第X条) of a document with their text."""
    out = []
    for clause in parse_clauses(doc):
        if clause.kind != "article":
            continue
        m = _ARTICLE_NO_RE.match(clause.heading)
        if not m:
            continue
        text = clause.text[len(m.group(0)):].strip(" \u3000")
        out.append(Article(number=m.group(0), clause_id=clause.clause_id, text=text))
    return out


@lru_cache(maxsize=2048)  # searches compare the same pairs of versions again and again
def _ratio(a: str, b: str) -> float:
    """difflib's ratio of two texts, 0.0 when an upper bound of it is below 0.5: the bounds are
    SequenceMatcher's real_quick_ratio and quick_ratio, computed here without building the matcher
    (its index of b is most of the cost, and most pairs stop at a bound)."""
    total = len(a) + len(b)
    if total == 0:
        return 1.0
    if 2 * min(len(a), len(b)) / total < 0.5 or 2 * sum((Counter(a) & Counter(b)).values()) / total < 0.5:
        return 0.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def compare_versions(old: Document, new: Document) -> list[ArticleChange]:
    """Return the article-by-article changes from `old` to `new`, in the new version's order
    (removed articles after the article that preceded them).

    Articles are matched by identical text first, then by the same number when similar
    enough, then by the most similar text, since revisions renumber.
    """
    olds, news = articles_of(old), articles_of(new)
    match: dict[int, tuple[int, float]] = {}  # new index -> (old index, similarity)
    used: set[int] = set()
    by_text: dict[str, list[int]] = {}
    for i, a in enumerate(olds):
        by_text.setdefault(a.text, []).append(i)
    for j, b in enumerate(news):
        for i in by_text.get(b.text, []):
            if i not in used:
                match[j] = (i, 1.0)
                used.add(i)
                break
    old_by_no = {a.number: i for i, a in enumerate(olds)}
    for j, b in enumerate(news):
        i = old_by_no.get(b.number)
        if j in match or i is None or i in used:
            continue
        r = _ratio(olds[i].text, b.text)
        if r >= MIN_SAME:
            match[j] = (i, r)
            used.add(i)
    pairs = []
    for j, b in enumerate(news):
        if j in match:
            continue
        for i, a in enumerate(olds):
            if i not in used:
                r = _ratio(a.text, b.text)
                if r >= MIN_SAME:
                    pairs.append((r, j, i))
    for r, j, i in sorted(pairs, key=lambda p: (-p[0], p[1], p[2])):
        if j in match or i in used:
            continue
        match[j] = (i, r)
        used.add(i)
    changes: list[ArticleChange] = []
    removed_after: dict[int, list[int]] = {}
    matched_old = sorted((i, j) for j, (i, _) in match.items())
    for i in range(len(olds)):
        if i in used:
            continue
        before = [j for oi, j in matched_old if oi < i]
        removed_after.setdefault(max(before) if before else -1, []).append(i)
    for i in removed_after.get(-1, []):
        changes.append(ArticleChange("removed", olds[i], None, 0.0))
    for j, b in enumerate(news):
        if j in match:
            i, r = match[j]
            a = olds[i]
            if a.text == b.text:
                changes.append(ArticleChange("unchanged", a, b, 1.0))
            else:
                changes.append(ArticleChange("changed", a, b, round(r, 3), char_diff(a.text, b.text)))
        else:
            changes.append(ArticleChange("added", None, b, 0.0))
        for i in removed_after.get(j, []):
            changes.append(ArticleChange("removed", olds[i], None, 0.0))
    return changes


def char_diff(a: str, b: str) -> tuple[tuple[str, str], ...]:
    """Return the character-level difference of two texts as (equal | insert | delete, text) runs."""
    out: list[tuple[str, str]] = []
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "equal":
            out.append(("equal", a[i1:i2]))
        if op in ("delete", "replace"):
            out.append(("delete", a[i1:i2]))
        if op in ("insert", "replace"):
            out.append(("insert", b[j1:j2]))
    return tuple(out)


def changes_to_json(old: Document, new: Document, changes: list[ArticleChange]) -> dict:
    """Return the comparison as JSON: both versions, counts, and every article that is not unchanged."""
    def art(a: Article | None, doc: Document) -> dict | None:
        if a is None:
            return None
        return {"number": a.number, "clause_id": a.clause_id, "text": a.text,
                "url": f"/doc/{doc.doc_id}#{a.clause_id}"}

    counts = {k: sum(1 for c in changes if c.change == k) for k in ("added", "removed", "changed", "unchanged")}
    counts["renumbered"] = sum(1 for c in changes if c.renumbered)
    return {
        "old": {"doc_id": old.doc_id, "title": old.title, "published": old.get("published")},
        "new": {"doc_id": new.doc_id, "title": new.title, "published": new.get("published")},
        "summary": counts,
        "articles": [{"change": c.change, "renumbered": c.renumbered, "similarity": c.similarity,
                      "old": art(c.old, old), "new": art(c.new, new),
                      "diff": [{"op": op, "text": t} for op, t in c.diff]}
                     for c in changes if c.change != "unchanged" or c.renumbered],
    }
