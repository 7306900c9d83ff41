"""Profile matching: which support measures fit an enterprise, grouped by kind, with numeric conditions checked.

An enterprise `Profile` (region, industry, tier, size, figures, needs) is matched against
the clause annotations of kb.roles (stored in the index at build time, computed here when
an index has none) and ranked with lexical retrieval on each need's vocabulary. Goals the
government sets itself are shown as context, never as conditions; a condition the profile
is silent on is "unknown", never "met".
"""

from __future__ import annotations

import math
import re
import threading
import weakref
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlencode

import numpy as np

from kb.cite import Validity
from kb.index import KnowledgeIndex
from kb.domain import (INDUSTRIAL_CUES, NEEDS, QUESTION_INDUSTRIES, QUESTION_SIZES, ROLE_LABELS, SIZE_ALIASES,
                       SIZES, TIER_ALIASES, TIER_LADDER, TIERS, region_terms)
from kb.query import Understanding, thesaurus
from kb.roles import (KIND_CUES, ROLES_VERSION, annotate_clause, industries_in, kinds_in)
from kb.search import DEFAULT_TUNING, Searcher
from kb.text import leading_year
from kb.segment import normalize
from kb.types import Clause, Document

# --- the profile --------------------------------------------------------------------------

# name -> (label, unit, integer?)
NUMBER_FIELDS: dict[str, tuple[str, str, bool]] = {
    "employees": ("从业人员", "人", True),
    "revenue_wan_yuan": ("上年度营业收入", "万元", False),
    "rd_share_percent": ("研发费用占营业收入比重", "%", False),
    "patents": ("有效发明专利", "件", True),
    "years_registered": ("成立年限", "年", False),
    "taxable_income_wan_yuan": ("年度应纳税所得额", "万元", False),
    "assets_wan_yuan": ("资产总额", "万元", False),
}
TEXT_FIELDS: dict[str, str] = {"region": "所在地区", "industry": "所属行业", "tier": "梯度层级", "size": "企业规模"}
MAX_NUMBER = 1e12  # no profile figure is larger; beyond it a number is a typo or a probe
PROFILE_FIELDS = ("region", "industry", "tier", "size", *NUMBER_FIELDS, "needs")
_TIER_ALIASES = {normalize(c): tier for tier, cues in TIERS.items() for c in cues + (tier,)}
_TIER_ALIASES.update(TIER_ALIASES)
MAX_TEXT = 100


class ProfileError(ValueError):
    """A profile cannot be used; `code` and `field` say what is wrong, the message how to fix it."""

    def __init__(self, message: str, code: str = "invalid_profile", field: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.field = field


@dataclass(frozen=True)
class Profile:
    """What an enterprise says about itself; every field optional (None / "" / () = not given)."""

    region: str = ""
    industry: str = ""
    tier: str = ""
    size: str = ""
    employees: int | None = None
    revenue_wan_yuan: float | None = None
    rd_share_percent: float | None = None
    patents: int | None = None  # valid invention patents (有效发明专利)
    years_registered: float | None = None
    taxable_income_wan_yuan: float | None = None  # 年度应纳税所得额
    assets_wan_yuan: float | None = None  # 资产总额
    needs: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        """Return True when nothing at all is given."""
        return self == Profile()


def _tier_name(value: str) -> str | None:
    norm = normalize(value).replace("“", "").replace("”", "").replace('"', "")
    if norm in _TIER_ALIASES:
        return _TIER_ALIASES[norm]
    for alias, tier in sorted(_TIER_ALIASES.items(), key=lambda kv: -len(kv[0])):
        if alias and alias in norm:
            return tier
    return None


def parse_profile(obj) -> Profile:
    """Return a Profile from a JSON-like object; raises ProfileError naming the bad field.

    Unknown fields, wrong types, negative or non-finite numbers, shares above 100 and
    unknown needs, tiers or sizes are errors; null means "not given".
    """
    if not isinstance(obj, dict):
        raise ProfileError(f"the profile must be a JSON object, not {type(obj).__name__}", "invalid_profile")
    unknown = [k for k in obj if k not in PROFILE_FIELDS]
    if unknown:
        raise ProfileError(f"unknown profile field {unknown[0]!r}; known fields: {', '.join(PROFILE_FIELDS)}",
                           "unknown_field", str(unknown[0]))
    values: dict = {}
    for name in TEXT_FIELDS:
        raw = obj.get(name)
        if raw is None:
            continue
        if not isinstance(raw, str):
            raise ProfileError(f"{name} must be text, not {type(raw).__name__}", "invalid_type", name)
        raw = " ".join(raw.split())
        if any(ch < " " or ch == "\x7f" or "\ud800" <= ch <= "\udfff" for ch in raw):
            raise ProfileError(f"{name} contains control characters or invalid Unicode", "invalid_value", name)
        if len(raw) > MAX_TEXT:
            raise ProfileError(f"{name} is too long (at most {MAX_TEXT} characters)", "invalid_value", name)
        if not raw:
            continue
        if name == "tier":
            tier = _tier_name(raw)
            if tier is None:
                raise ProfileError(f"unknown tier {raw!r}; one of: {', '.join(TIER_LADDER)}", "invalid_value", name)
            raw = tier
        if name == "size":
            size = raw if raw in SIZES else SIZE_ALIASES.get(raw)
            if size is None:
                raise ProfileError(f"unknown size {raw!r}; one of: {', '.join(SIZES)}", "invalid_value", name)
            raw = size
        values[name] = raw
    for name, (label, unit, integer) in NUMBER_FIELDS.items():
        raw = obj.get(name)
        if raw is None:
            continue
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise ProfileError(f"{name} must be a number, not {type(raw).__name__}", "invalid_type", name)
        if isinstance(raw, int) and abs(raw) > MAX_NUMBER:  # math.isfinite() of an int past 2**1024 overflows
            raise ProfileError(f"{name} is out of range (at most {MAX_NUMBER:.0e})", "invalid_value", name)
        if not math.isfinite(raw) or raw < 0:
            raise ProfileError(f"{name} must be a number of 0 or more, not {raw}", "invalid_value", name)
        if name == "rd_share_percent" and raw > 100:
            raise ProfileError(f"{name} is a percentage from 0 to 100, not {raw}", "invalid_value", name)
        if raw > MAX_NUMBER:
            raise ProfileError(f"{name} is implausibly large: {raw}", "invalid_value", name)
        if integer:
            if raw != int(raw):
                raise ProfileError(f"{name} must be a whole number, not {raw}", "invalid_value", name)
            raw = int(raw)
        values[name] = raw
    needs = obj.get("needs")
    if needs is not None:
        if isinstance(needs, str):
            needs = [needs]
        if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
            raise ProfileError("needs must be a list of need names", "invalid_type", "needs")
        bad = [n for n in needs if n not in NEEDS]
        if bad:
            raise ProfileError(f"unknown need {bad[0]!r}; known needs: {', '.join(NEEDS)}", "unknown_need", "needs")
        values["needs"] = tuple(dict.fromkeys(needs))
    return Profile(**values)


def _fmt(number: float) -> str:
    """Return a number as people write it: 8000, 6.5 (never 8000.0 or 1.2e+06)."""
    if float(number).is_integer():
        return str(int(number))
    return f"{number:.6f}".rstrip("0").rstrip(".")


def form_query(profile: Profile) -> str:
    """Return the query string that fills the eligibility form with this profile (for "edit")."""
    pairs: list[tuple[str, str]] = []
    for name in (*TEXT_FIELDS, *NUMBER_FIELDS):
        value = getattr(profile, name)
        if value not in (None, ""):
            pairs.append((name, _fmt(value) if isinstance(value, (int, float)) else value))
    pairs.extend(("needs", n) for n in profile.needs)
    return urlencode(pairs)


# --- records of an answer -------------------------------------------------------------------

@dataclass(frozen=True)
class ConditionCheck:
    """A numeric condition a clause states, compared with the profile."""

    text: str  # the sentence that states it, quoted
    quote: str  # the words that state it ("研发费用占营业收入比重不低于3%")
    field: str
    op: str
    value: float
    unit: str
    verdict: str  # met | not_met | unknown
    reason: str
    clause_id: str  # where it is stated (may be another clause of the same document)
    branch: str = ""  # the alternative it belongs to ("工业企业" / "其他企业"), "" when the clause has one


@dataclass(frozen=True)
class MatchItem:
    """One clause in an answer group."""

    doc: Document
    clause: Clause
    role: str
    kinds: tuple[str, ...]
    why: str
    validity: Validity
    conditions: tuple[ConditionCheck, ...]
    score: float
    to_check: tuple[str, ...] = ()  # conditions the clause states without a number: checked by hand
    branch_note: str = ""  # which alternative of the clause was judged, and why


@dataclass(frozen=True)
class MatchGroup:
    """The clauses of one kind of support."""

    kind: str
    label: str
    items: tuple[MatchItem, ...]
    note: str = ""


@dataclass(frozen=True)
class EligibilityAnswer:
    """Measures that fit a profile, grouped by kind of support."""

    profile: Profile
    groups: tuple[MatchGroup, ...]
    today: date
    message: str = ""
    all_outdated: bool = False
    region_note: str = ""
    region_used: str = ""  # the profile's region as matched against documents ("连云港" -> "江苏省连云港市")

    @property
    def items(self) -> tuple[MatchItem, ...]:
        """Every item of every group."""
        return tuple(i for g in self.groups for i in g.items)


# --- annotations per index ---------------------------------------------------------------------

@dataclass(frozen=True)
class _Entry:
    row: int
    doc_row: int
    clause: Clause
    annotation: dict


_TABLES: "weakref.WeakKeyDictionary[KnowledgeIndex, tuple[_Entry, ...]]" = weakref.WeakKeyDictionary()
_TABLES_LOCK = threading.Lock()


def clause_annotations(index: KnowledgeIndex) -> tuple[_Entry, ...]:
    """Return every clause of an index with its role annotation (cached per loaded index).

    Uses the annotations stored at build time when they were made by this ROLES_VERSION,
    and computes them (kb.roles.annotate_clause) when the index has none or older ones.
    """
    with _TABLES_LOCK:
        cached = _TABLES.get(index)
        if cached is not None:
            return cached
        stored_ok = index.manifest.get("annotator_version") == ROLES_VERSION
        entries = []
        for doc_row, doc in enumerate(index.documents):
            for clause in index.clauses_of(doc.doc_id):
                row = index.clause_row(doc.doc_id, clause.clause_id)
                ann = index.annotation(row) if stored_ok else {}
                if ann.get("version") != ROLES_VERSION or "role" not in ann:
                    ann = annotate_clause(doc, clause)
                entries.append(_Entry(row=row, doc_row=doc_row, clause=clause, annotation=ann))
        table = tuple(entries)
        _TABLES[index] = table
        return table


# --- matching ---------------------------------------------------------------------------------

class _MatchTable:
    """The clause annotations of one loaded index arranged for match(): who can be a candidate for a kind,
    the condition clauses per document, and document validity per day (it reads the document's text)."""

    def __init__(self, entries: tuple[_Entry, ...]) -> None:
        self.entries = entries
        self.rows = np.array([e.row for e in entries], dtype=np.int64)
        roles = [e.annotation.get("role", "task") for e in entries]
        self.support = np.array([i for i, role in enumerate(roles) if role == "support"], dtype=np.int64)
        self.support_rows = self.rows[self.support]
        by_kind: dict[str, list[int]] = {}
        for i, (e, role) in enumerate(zip(entries, roles)):
            if role != "background":
                for kind in dict.fromkeys(e.annotation.get("kinds", [])):
                    by_kind.setdefault(kind, []).append(i)
        self.tagged = {kind: np.array(found, dtype=np.int64) for kind, found in by_kind.items()}
        self.conditions_by_doc: dict[int, list[_Entry]] = {}
        for e, role in zip(entries, roles):
            if role == "condition":
                self.conditions_by_doc.setdefault(e.doc_row, []).append(e)
        self._validity: dict[date, dict[int, Validity]] = {}

    def candidates(self, kind: str, rel: np.ndarray) -> list[_Entry]:
        """Entries (not background) tagged with `kind`, or support clauses whose relevance `rel` (per clause
        row) reaches RETRIEVAL_ONLY_FLOOR; in table order."""
        rows = self.support_rows
        inside = rows < len(rel)
        relevant = self.support[inside][rel[rows[inside]] >= RETRIEVAL_ONLY_FLOOR]
        chosen = np.union1d(self.tagged.get(kind, np.zeros(0, dtype=np.int64)), relevant)
        return [self.entries[i] for i in chosen.tolist()]

    def validity_on(self, searcher: Searcher, today: date):
        """Return doc_row -> the document's validity on `today`, judged with its text (plan periods), remembered."""
        if today not in self._validity and len(self._validity) > 8:
            self._validity.clear()
        cache = self._validity.setdefault(today, {})
        index = searcher.index

        def validity(doc_row: int) -> Validity:
            if doc_row not in cache:
                doc = index.documents[doc_row]
                full = index.document(doc.doc_id)
                cache[doc_row] = searcher.validity(doc, today, text=full.body if full else "")
            return cache[doc_row]

        return validity


_MATCH_TABLES: "weakref.WeakKeyDictionary[KnowledgeIndex, _MatchTable]" = weakref.WeakKeyDictionary()


def _match_table(index: KnowledgeIndex) -> _MatchTable:
    entries = clause_annotations(index)
    with _TABLES_LOCK:
        table = _MATCH_TABLES.get(index)
        if table is None or table.entries is not entries:
            table = _MATCH_TABLES[index] = _MatchTable(entries)
        return table


ROLE_WEIGHTS = {"support": 0.6, "condition": 0.5, "safeguard": 0.25, "task": 0.2, "goal": 0.0}
RETRIEVAL_ONLY_FLOOR = 0.6  # a clause the rules did not tag with the kind needs this retrieval score
RECENCY_WEIGHT = 0.25  # newer documents first, all else equal: full weight this year, none after RECENCY_YEARS
RECENCY_YEARS = 25
OUTDATED_PER_KIND = 2  # expired, superseded or repealed measures listed after those in force
JUDGED_BONUS = 0.2  # per condition the profile's figures decide, met or not_met (at most three)


def _recency(doc: Document, today: date) -> float:
    year = leading_year(doc.get("published") or doc.get("valid_from"))
    if year is None:
        return 0.0
    age = max(0, today.year - year)
    return RECENCY_WEIGHT * max(0.0, 1 - age / RECENCY_YEARS)


def need_query(kind: str, profile: Profile) -> str:
    """Return the retrieval query for one need: its label, cue words, thesaurus terms, the profile's tier."""
    words = [NEEDS[kind], *KIND_CUES[kind][:10]]
    for entry in thesaurus():
        if entry.need == kind:
            words.extend(entry.targets)
    if profile.tier:
        words.append(profile.tier)
    if profile.industry:
        words.append(profile.industry)
    return " ".join(dict.fromkeys(words))[:480]


def _clause_relevance(searcher: Searcher, query: str) -> np.ndarray:
    """Return a lexical score in [0, 1] per clause row (best chunk of the clause)."""
    return searcher.relevance(query, DEFAULT_TUNING)


def _profile_region_terms(profile: Profile, index: KnowledgeIndex) -> tuple[tuple[str, ...], str]:
    """Return the profile's region as names (省, 市 …) and the full name used, completing a bare city name
    ("连云港") from the regions of the indexed documents ("江苏省连云港市")."""
    if not profile.region:
        return (), ""
    terms = region_terms(profile.region)
    if len(terms) == 1:
        for doc in index.documents:
            doc_terms = region_terms(doc.get("region"))
            if doc_terms and doc_terms[-1] == terms[0]:
                return doc_terms, doc.get("region")
    return terms, profile.region


def _region_fit(doc: Document, terms: tuple[str, ...]) -> tuple[str, str]:
    """Return (fit, note): fit is local | national | unstated | other | any (profile silent)."""
    region = doc.get("region")
    if not terms:
        return "any", "未填写地区，未按地区筛选"
    if not region:
        return "unstated", "文件未注明适用地区"
    doc_terms = region_terms(region)
    if region.strip() == "全国" or doc.get("level") == "national" or not doc_terms:
        return "national", "全国性文件"
    if doc_terms[-1] in terms:
        return "local", f"地区匹配：{doc_terms[-1]}（文件适用于{region}）"
    return "other", f"文件适用于{region}"


def _tier_fit(tiers: list[str], profile: Profile) -> tuple[float, str]:
    if not tiers:
        return 0.0, ""
    named = "、".join(tiers)
    if not profile.tier:
        return 0.0, f"面向：{named}"
    mine = TIER_LADDER.index(profile.tier)
    if any(TIER_LADDER.index(t) <= mine for t in tiers if t in TIER_LADDER):
        return 0.3, f"面向：{named}（与您的梯度“{profile.tier}”相符）"
    return -0.4, f"面向：{named}（高于您填写的梯度“{profile.tier}”）"


def _size_fit(sizes: list[str], profile: Profile) -> tuple[float, str]:
    classes = [s for s in sizes if s in SIZES]
    if not classes or not profile.size:
        return 0.0, ""
    if profile.size in classes:
        return 0.1, f"规模：{profile.size}企业在适用范围内"
    return -0.3, f"规模：条款面向{'、'.join(classes)}企业，您填写的是{profile.size}"


def _industry_fit(industries: list[str], profile: Profile) -> tuple[float, str]:
    if not industries or not profile.industry:
        return 0.0, ""
    mine = industries_in(profile.industry) or [profile.industry]
    if set(mine) & set(industries):
        return 0.15, f"行业：{'、'.join(sorted(set(mine) & set(industries)))}"
    return -0.2, f"行业：条款提到{'、'.join(industries)}"


_COMPARE = {">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, "<": lambda a, b: a < b}
_OP_WORDS = {">=": "不低于", ">": "高于", "<=": "不超过", "<": "低于"}


def check_condition(cond: dict, profile: Profile, clause_id: str) -> ConditionCheck:
    """Compare one extracted condition with the profile: met, not_met, or unknown when the profile is silent."""
    name = cond["field"]
    label, unit, _ = NUMBER_FIELDS[name]
    mine = getattr(profile, name)
    op, value = cond["op"], float(cond["value"])
    need = f"{label}{_OP_WORDS[op]}{_fmt(value)}{unit}"
    if mine is None:
        verdict, reason = "unknown", f"条件要求{need}；您未填写{label}"
    elif name == "patents" and cond.get("qualifier") != "发明专利":
        # the profile counts invention patents; the clause counts every kind of patent
        if op in (">=", ">") and _COMPARE[op](mine, value):
            verdict, reason = "met", f"条件要求{need}（各类专利）；您的有效发明专利为{_fmt(mine)}{unit}，已满足"
        else:
            verdict, reason = "unknown", (f"条件要求{need}（各类专利）；您填写的是有效发明专利（{_fmt(mine)}{unit}），"
                                          "实用新型等其他专利未计入，请核对")
    elif _COMPARE[op](mine, value):
        verdict, reason = "met", f"条件要求{need}；您填写{_fmt(mine)}{unit}，满足"
    else:
        verdict, reason = "not_met", f"条件要求{need}；您填写{_fmt(mine)}{unit}，不满足"
    measured = cond.get("measures", "")
    if measured and mine is not None:
        reason += f"（条款计算的是{measured}，您填写的{label}只是近似，请按{measured}核对）"
    return ConditionCheck(text=cond["text"], quote=cond.get("quote", ""), field=name, op=op, value=cond["value"],
                          unit=cond.get("unit", unit), verdict=verdict, reason=reason, clause_id=clause_id,
                          branch=cond.get("branch", ""))


def choose_branch(branches: list[str], profile: Profile) -> tuple[str | None, str]:
    """Return (the alternative of a clause that applies to the profile, why); None when it cannot be told."""
    industrial = [b for b in branches if "工业" in b]
    other = [b for b in branches if "其他" in b]
    if not industrial or not other:
        return None, ""
    if not profile.industry:
        return None, f"未填写行业，{'、'.join(branches)}两类条件都列出"
    if any(c in profile.industry for c in INDUSTRIAL_CUES):
        return industrial[0], f"按您填写的行业“{profile.industry}”适用“{industrial[0]}”一类条件"
    return other[0], f"按您填写的行业“{profile.industry}”适用“{other[0]}”一类条件（非工业行业）"


def _scope(clause: Clause) -> tuple[str, ...]:
    """The headings a condition clause applies under: its section (a paragraph) or its parent (a heading)."""
    if clause.kind == "article":  # an article's conditions are its own: articles of a law are siblings
        return clause.path
    return clause.path if not clause.heading else clause.path[:-1]


def _conditions_for(entry: _Entry, doc_conditions: list[_Entry],
                    profile: Profile) -> tuple[tuple[ConditionCheck, ...], str]:
    """Return the checked conditions of a measure (its own and those of condition clauses over it), and a note
    on which alternative was judged when the clause states several ("(一)工业企业… (二)其他企业…")."""
    if entry.annotation.get("role") == "goal":
        return (), ""
    found: list[ConditionCheck] = []
    seen: set[tuple] = set()
    sources = [entry] + [c for c in doc_conditions if c.row != entry.row
                         and entry.clause.path[:len(_scope(c.clause))] == _scope(c.clause)]
    for source in sources:
        if source.annotation.get("role") not in ("support", "condition"):
            continue
        for cond in source.annotation.get("conditions", []):
            key = (cond["field"], cond["op"], cond["value"], cond.get("branch", ""))
            if key in seen:
                continue
            seen.add(key)
            found.append(check_condition(cond, profile, source.clause.clause_id))
    branches = list(dict.fromkeys(c.branch for c in found if c.branch))
    chosen, note = choose_branch(branches, profile) if len(branches) > 1 else (None, "")
    if chosen is not None:
        found = [c for c in found if not c.branch or c.branch == chosen]
    return tuple(found), note


def match(searcher: Searcher, profile: Profile, today: date, *, per_kind: int = 6,
          goals_per_kind: int = 2) -> EligibilityAnswer:
    """Return the measures of the index that fit the profile, grouped by the kinds it needs (all when none).

    Candidates are clauses whose annotation names the kind (or that retrieval ranks very
    high for it) in documents that apply to the profile's region; they are ranked by
    retrieval on the need's vocabulary, role, and the fit of region, tier, size and industry.
    Up to `per_kind` measures and `goals_per_kind` related goals (context only) per kind.
    """
    index = searcher.index
    table = _match_table(index)
    entries = table.entries
    terms, region_full = _profile_region_terms(profile, index)
    region_fits = [_region_fit(d, terms) for d in index.documents]
    region_note = ""
    if terms and not any(fit == "local" for fit, _ in region_fits):
        region_note = f"索引中没有专门适用于{profile.region}的地方文件；下面是全国性或未注明地区的文件。"
    conditions_by_doc = table.conditions_by_doc
    validity = table.validity_on(searcher, today)

    recency = [_recency(d, today) for d in index.documents]
    kinds = profile.needs or tuple(NEEDS)
    groups = []
    for kind in kinds:
        rel = _clause_relevance(searcher, need_query(kind, profile))
        measures: list[tuple[float, int, MatchItem]] = []
        goals: list[tuple[float, int, MatchItem]] = []
        for e in table.candidates(kind, rel):
            ann = e.annotation
            role = ann.get("role", "task")
            tagged = kind in ann.get("kinds", [])
            r = float(rel[e.row]) if e.row < len(rel) else 0.0
            fit, region_why = region_fits[e.doc_row]
            if fit == "other":
                continue
            doc = index.documents[e.doc_row]
            v = validity(e.doc_row)
            tier_score, tier_why = _tier_fit(ann.get("tiers", []), profile)
            size_score, size_why = _size_fit(ann.get("sizes", []), profile)
            ind_score, ind_why = _industry_fit(ann.get("industries", []), profile)
            conditions, branch_note = _conditions_for(e, conditions_by_doc.get(e.doc_row, []), profile)
            if branch_note and ind_score < 0:  # the clause has a branch for the profile's industry too
                ind_score, ind_why = 0.0, ""
            cues = ann.get("kind_cues", {}).get(kind, [])
            score = (r + (0.6 if tagged else 0.0) + min(len(cues), 4) * 0.05 + ROLE_WEIGHTS.get(role, 0.0)
                     + {"local": 0.3, "national": 0.0, "unstated": 0.0, "any": 0.0}[fit]
                     + tier_score + size_score + ind_score + recency[e.doc_row] - (0.15 if v.outdated else 0.0))
            kind_why = (f"支持类型：{NEEDS[kind]}（条款用词：{'、'.join(cues[:4])}）" if tagged and cues
                        else f"支持类型：{NEEDS[kind]}（检索相关）")
            role_why = ("条款性质：目标——政府为自己设定的目标，仅供参考，不是申报条件" if role == "goal"
                        else f"条款性质：{ROLE_LABELS.get(role, role)}")
            # a clause stating numbers the profile gives (met or not) speaks to this enterprise directly
            score += JUDGED_BONUS * min(sum(c.verdict in ("met", "not_met") for c in conditions), 3)
            why = "；".join(w for w in (region_why, kind_why, tier_why, size_why, ind_why, role_why, branch_note) if w)
            item = MatchItem(doc=doc, clause=e.clause, role=role, kinds=tuple(ann.get("kinds", [])), why=why,
                             validity=v, conditions=conditions, score=round(score, 4),
                             to_check=tuple(ann.get("to_check", [])), branch_note=branch_note)
            (goals if role == "goal" else measures).append((-score, e.row, item))
        # measures in force first, then expired, superseded or repealed ones, each by score
        measures.sort(key=lambda t: (t[2].validity.outdated, t[0], t[1]))
        goals.sort(key=lambda t: (t[2].validity.outdated, t[0], t[1]))
        current = [i for _, _, i in measures if not i.validity.outdated][:per_kind]
        # outdated measures follow, for reference: at least OUTDATED_PER_KIND, more when few are in force
        outdated = [i for _, _, i in measures if i.validity.outdated][:max(OUTDATED_PER_KIND, per_kind - len(current))]
        items = tuple(current + outdated) + tuple(i for _, _, i in goals[:goals_per_kind])
        if items or profile.needs:
            note = "" if items else "没有找到这类支持的条款。"
            groups.append(MatchGroup(kind=kind, label=NEEDS[kind], items=items, note=note))
    answer_items = [i for g in groups for i in g.items]
    all_outdated = bool(answer_items) and all(i.validity.outdated for i in answer_items)
    if not answer_items:
        message = "没有找到与您的情况和需求相关的条款。可以放宽地区或需求再试。"
    elif all_outdated:
        message = ("找到的条款全部来自计划期已结束、已失效、已被替代、已废止或仍是征求意见稿的文件，仅供参考；"
                   "申请前请向主管部门核实现行政策。")
    else:
        message = ""
    return EligibilityAnswer(profile=profile, groups=tuple(groups), today=today, message=message,
                             all_outdated=all_outdated, region_note=region_note, region_used=region_full)


# --- questions in plain words -------------------------------------------------------------------------

# "We are …", "our company …": the asker describes their own enterprise.
SELF_CUES_RE = re.compile(r"我们|我司|我公司|本公司|我厂|本厂|我单位|本单位|我企业|我们企业|咱们|我家|我是|我的(?:公司|企业|厂)")
# "What support is there / can we get / do we qualify".
ELIGIBILITY_CUES_RE = re.compile(r"有什么支持|有哪些支持|什么支持|能享受|可以享受|享受哪些|享受什么|符合|能申请|可以申请|"
                                 r"申请哪些|能拿到|可以拿到|有资格|有什么政策|有哪些政策|什么政策|有什么补贴|有哪些补贴|"
                                 r"能得到|可以得到|怎么申请|帮扶|扶持政策")
_QUESTION_NUMBERS = (
    ("rd_share_percent", r"研发(?:投入|费用)?(?:占比|强度|占营业收入比重|占收入)[^0-9]{0,4}([0-9]+(?:\.[0-9]+)?)\s*%"),
    ("employees", r"([0-9]+)\s*(?:个)?(?:人|名员工|名职工|个员工)"),
    ("patents", r"([0-9]+)\s*(?:件|项|个)(?:有效)?(?:发明)?专利|发明专利\s*([0-9]+)\s*(?:件|项|个)"),
    ("years_registered", r"成立(?:了)?\s*([0-9]+)\s*年"),
    ("revenue_wan_yuan", r"(?:营收|营业收入|年收入|销售额)[^0-9]{0,3}([0-9]+(?:\.[0-9]+)?)\s*(万|亿)"),
)


def _need_named(need: str, text: str) -> bool:
    """Return True when a thesaurus word of this need occurs in the text."""
    return any(e.need == need and e.source in text for e in thesaurus())


def profile_from_question(question: str, understanding: Understanding) -> Profile | None:
    """Return the profile a plain-words eligibility question describes, or None when it is not one.

    An eligibility question names a need (贷款, 补贴, 数字化 … via the thesaurus or the
    support cue words) and either describes the asker's enterprise (我们是…) or asks what
    it can get (有什么支持, 能享受, 符合 …). Region and tier come from `understanding`.
    """
    norm = normalize(question)
    numbers: dict = {}
    described = norm  # the question without the figures it states ("有8件发明专利" is not a need for IP help)
    for name, pattern in _QUESTION_NUMBERS:
        m = re.search(pattern, norm)
        if not m:
            continue
        raw = next(g for g in m.groups() if g and re.match(r"[0-9]", g))
        value = float(raw)
        if name == "revenue_wan_yuan" and m.group(2) == "亿":
            value *= 10000
        if not value <= MAX_NUMBER:  # out of range (or infinite): not understood, left to the reader
            continue
        numbers[name] = int(value) if NUMBER_FIELDS[name][2] else value
        described = described.replace(m.group(0), " ")
    needs = [n for n in understanding.needs if n in kinds_in(described) or _need_named(n, described)]
    needs.extend(k for k in kinds_in(described) if k not in needs)
    if not needs or not (SELF_CUES_RE.search(norm) or ELIGIBILITY_CUES_RE.search(norm)):
        return None
    industry = next((name for name, cues in QUESTION_INDUSTRIES if any(c in norm for c in cues)), "")
    size = next((name for name, cues in QUESTION_SIZES if any(c in norm for c in cues)), "")
    tier = ""
    for t in TIER_LADDER[::-1]:
        if t in understanding.tiers:
            tier = t
            break
    region = understanding.regions[0] if understanding.regions else ""
    ordered = tuple(n for n in NEEDS if n in needs)
    return Profile(region=region, industry=industry, tier=tier, size=size, needs=ordered, **numbers)


def eligibility_for_question(searcher: Searcher, question: str, today: date,
                             understanding: Understanding | None = None) -> EligibilityAnswer | None:
    """Return the grouped answer for a plain-words eligibility question, or None when it is not one."""
    u = understanding or searcher.understand(question)
    profile = profile_from_question(question, u)
    if profile is None:
        return None
    return match(searcher, profile, today)
