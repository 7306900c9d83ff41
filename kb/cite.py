"""Citation helpers: the validity label of a document (in force, draft, interpretation, expired …).

`validity_of` is pure: it reads the front matter, the title and optionally the text, and
compares dates with the `today` it is given (never the machine clock).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from kb.text import YEAR

# Worst first: the code of a document is the first of these that applies.
VALIDITY_CODES = ("repealed", "superseded", "expired", "draft", "pending", "interpretation", "effective", "unknown")
# Codes that mean "do not rely on this as a policy in force".
OUTDATED_CODES = frozenset({"repealed", "superseded", "expired", "draft"})

# Five-year plan names -> their last year.
_FIVE_YEAR_PLANS = {"十一五": 2010, "十二五": 2015, "十三五": 2020, "十四五": 2025, "十五五": 2030}
_YEAR = rf"({YEAR})"
_RANGE_RE = re.compile(_YEAR + r"\s*年?\s*(?:-|—|–|－|~|～|至|到)\s*" + _YEAR + r"\s*年")
_BY_YEAR_RE = re.compile(r"(?:到|至|截至|力争到)\s*" + _YEAR + r"\s*年")
_PLAN_TITLE_RE = re.compile(r"计划|规划|方案|纲要|行动|意见|措施|办法|政策")
_ANNUAL_REPORT_RE = re.compile(_YEAR + r"\s*年.{0,20}政府工作报告")
_DATE_RE = re.compile(rf"^\s*({YEAR})(?:-([0-9]{{1,2}}))?(?:-([0-9]{{1,2}}))?\s*$")


@dataclass(frozen=True)
class Validity:
    """Whether a document can be relied on today: a code, a short label and the reasons."""

    code: str  # one of VALIDITY_CODES
    label: str  # short Chinese label shown on every item, e.g. "计划期已结束（至2025年）"
    detail: str = ""  # all reasons, joined with "；"
    flags: tuple[str, ...] = ()  # every code that applies, worst first
    ends: date | None = None  # last day of the plan period or validity, when known

    @property
    def outdated(self) -> bool:
        """True when the document is expired, a draft, superseded or repealed."""
        return self.code in OUTDATED_CODES

    def to_json(self) -> dict:
        """Return the one JSON shape of a validity, `{"code", "label", "detail"}` (search results and
        eligibility items both carry it)."""
        return {"code": self.code, "label": self.label, "detail": self.detail}


def _parse_date(value: str, *, end: bool) -> date | None:
    """Parse YYYY, YYYY-MM or YYYY-MM-DD; `end` picks the last day of a year or month."""
    m = _DATE_RE.match(value or "")
    if not m:
        return None
    year = int(m.group(1))
    month = int(m.group(2)) if m.group(2) else (12 if end else 1)
    if not 1 <= month <= 12:
        return None
    if m.group(3):
        day = int(m.group(3))
    elif end:
        day = (date(year + (month == 12), month % 12 + 1, 1) - date(year, month, 1)).days
    else:
        day = 1
    try:
        return date(year, month, day)
    except ValueError:
        return None


def plan_end_year(title: str, text: str = "", doc_type: str = "") -> tuple[int | None, str]:
    """Return (last year of the plan period the document states, where it was found), or (None, "").

    Looked for, in order: a year range in the title ("（2023-2025年）"), a five-year plan
    name in the title ("十四五"), the year of an annual government work report, and — only
    for plan-like titles (计划, 规划, 方案 …) — the latest "到2025年" in the text.
    """
    ranges = [int(b) for a, b in _RANGE_RE.findall(title) if int(b) >= int(a)]
    if ranges:
        return max(ranges), "标题"
    for name, year in _FIVE_YEAR_PLANS.items():
        if name in title:
            return year, "标题"
    annual = _ANNUAL_REPORT_RE.search(title)
    if annual or ("政府工作报告" in doc_type and re.search(_YEAR + "年", title)):
        year = int(annual.group(1)) if annual else int(re.search(_YEAR + "年", title).group(1))
        return year, "年度报告"
    if text and _PLAN_TITLE_RE.search(title):
        years = [int(y) for y in _BY_YEAR_RE.findall(text)]
        if years:
            return max(years), "正文"
    return None, ""


def validity_of(doc_meta: dict, title: str, today: date, *, text: str = "") -> Validity:
    """Return the validity of a document from its front matter, title and (optionally) text.

    Rules: status draft/interpretation/expired/superseded/repealed from the front matter;
    expired also when `valid_until` is before `today` or when the stated plan period
    (see `plan_end_year`) ended before `today`'s year; a 征求意见稿 in the title is a draft.
    """
    status = str(doc_meta.get("status", "") or "").strip().lower()
    found: dict[str, tuple[str, str]] = {}  # code -> (label, reason)
    ends: date | None = None

    if status == "repealed":
        note = str(doc_meta.get("repealed_note", "") or "").strip()  # derived by kb.versions
        found["repealed"] = ("已废止", note or "文件已废止")
    if status == "superseded":
        by = str(doc_meta.get("superseded_by", "") or "").strip()
        since = str(doc_meta.get("superseded_from", "") or "").strip()
        reason = f"已被{by}替代" if by else "文件已被新文件替代"
        found["superseded"] = ("已被替代", reason + (f"（自{since}起）" if since else ""))
    if status == "expired":
        found["expired"] = ("已失效", "文件状态为已失效")
    until = _parse_date(str(doc_meta.get("valid_until", "") or ""), end=True)
    if until is not None:
        ends = until
        if until < today:
            found.setdefault("expired", (f"已过有效期（至{until.isoformat()}）", f"有效期至{until.isoformat()}"))
    end_year, where = plan_end_year(title, text, str(doc_meta.get("doc_type", "") or ""))
    if end_year is not None:
        ends = ends or date(end_year, 12, 31)
        if end_year < today.year:
            if where == "年度报告":
                label, reason = f"年度安排已过（{end_year}年）", f"{end_year}年政府工作报告，所列为当年工作安排"
            else:
                label, reason = f"计划期已结束（至{end_year}年）", f"{where}所述计划期至{end_year}年"
            found.setdefault("expired", (label, reason))
    if status == "draft" or "征求意见稿" in title:
        found["draft"] = ("征求意见稿", "征求意见稿，未正式施行")
    starts = _parse_date(str(doc_meta.get("valid_from", "") or ""), end=False)
    if starts is not None and starts > today:
        found["pending"] = (f"尚未施行（{starts.isoformat()}起）", f"{starts.isoformat()}起施行")
    if status == "interpretation":
        interprets = str(doc_meta.get("interprets", "") or "")
        reason = "政策解读，不是政策原文"
        if "征求意见稿" in interprets:
            reason += "；解读的是征求意见稿"
        found["interpretation"] = ("政策解读", reason)
    if status == "effective":
        note = str(doc_meta.get("effective_note", "") or "").strip()  # derived by kb.versions
        found["effective"] = ("现行有效", note or "文件状态为现行有效")
    if not found:
        found["unknown"] = ("未注明效力", "文件未注明效力状态")
    flags = tuple(c for c in VALIDITY_CODES if c in found)
    code = flags[0]
    return Validity(code=code, label=found[code][0], detail="；".join(found[c][1] for c in flags),
                    flags=flags, ends=ends)
