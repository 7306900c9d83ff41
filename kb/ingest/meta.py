"""Find and check document metadata in policy text: title, 文号, dates, issuer, level, status.

Everything here reads the text only; a value that cannot be found is left empty for
the caller to report, never guessed from weak evidence.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass

from kb.ingest.normalize import display_width
from kb.domain import LEVELS, STATUSES
from kb.text import chinese_number

DATE_KEYS = ("published", "valid_from", "valid_until")

_DATE_AR = r"(?P<y>(?:19|20)\d{2})\s*年\s*(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*日"
_DATE_CN = (r"(?P<cy>[〇零○Oo0Ο一二三四五六七八九]{4})\s*年\s*(?P<cm>[一二三四五六七八九十]{1,2})\s*月"
            r"\s*(?P<cd>[一二三四五六七八九十]{1,3})\s*日")
DATE_RE = re.compile(f"(?:{_DATE_AR}|{_DATE_CN})")
_DATE_LINE = re.compile(rf"^[（(]?\s*(?:{_DATE_AR}|{_DATE_CN})\s*[)）]?$")
_YINFA_LINE = re.compile(rf"(?:{_DATE_AR}|{_DATE_CN})\s*印发\s*$")

_DOC_NO = (r"(?P<prefix>[\u4e00-\u9fff]{1,16})\s*[〔\[【［(（]\s*(?P<year>(?:19|20)\d{2})\s*[〕\]】］)）]"
           r"\s*(?P<num>\d{1,5})\s*号")
DOC_NO_RE = re.compile(_DOC_NO)
_DOC_NO_LINE = re.compile(rf"^[（(]?\s*{_DOC_NO}\s*[)）]?(?:\s+签发人[:：].*)?$")

# Clause numbering that starts a new paragraph: 第X条/章, 一、 （一） 1. 1、 （1） ① and the like.
CLAUSE_START = re.compile(
    r"^(?:第[一二三四五六七八九十百千零〇\d]+[编章节条款项部分]"
    r"|第[一二三四五六七八九十]{1,3}[，,、]"
    r"|[一二三四五六七八九十]+[、.．]"
    r"|[（(][一二三四五六七八九十\d]{1,3}[）)]"
    r"|\d{1,3}(?:[、．]|\.(?!\d))"
    r"|[①-⑳]"
    r"|#"
    r"|附件|附表|抄送|抄报|主送)"
)
SENTENCE_END = re.compile(r"[。！？：；.!?:;][”’」』\"'）)]?$")

_HEAD_SKIP = re.compile(
    r"^(?:附\s*件\s*\d*\s*[:：]?"
    r"|[^关的]{2,40}文件"
    r"|.*签发人[:：].*"
    r"|(?:密级|秘密|机密|绝密|特急|加急|平急|急件|★).*"
    r"|(?:主动公开|依申请公开|不予公开|公开方式[:：].*)"
    r"|[\d\s\-—–]+"
    r"|(?:索引号|主题分类|发文机关|发文字号|成文日期|发布日期|发布机构|生效日期|废止日期|有效性|文号|来源|信息来源|发布时间)[:：].*"
    r"|\|.*"
    r"|#+)$"
)
_TITLE_END_WORD = re.compile(
    r"(?:通知|办法|意见|规定|方案|计划|决定|细则|条例|解读|公告|通告|批复|函|纲要|指引|指南|措施|规划|要点|"
    r"报告|目录|清单|标准|说明|答记者问|问答|章程|规则|公报|决议|建议|复函)[）)]?$"
)
_TITLE_TAIL = re.compile(
    r"^[（(](?:征求意见稿|试行|暂行|修订|修订稿|送审稿|草案|[\d\-—–~至年版第一二三四五六七八九十]+)[）)]$"
)

_ORGAN_SUFFIX = re.compile(
    r"(?:人民政府|政府|办公厅|办公室|委员会|管委会|领导小组|工作小组|局|厅|部|委|院|署|办|中心|银行|协会|联合会|"
    r"党委|党组|常委会|人大|政协)$"
)
_ORGAN_NAME = re.compile(r"^[\u4e00-\u9fff（）()]{2,40}$")
_ADMIN_MARK = re.compile(r"自治区|自治州|自治县|自治旗|地区|省|市(?!场|民|容)|县(?!域|级)|区(?!域|划)|旗|盟")
_NOT_CONFIDENT = re.compile(r"开发区|高新区|新区|园区|经开区|保税区|示范区|试验区|实验区|片区|社区|小区|功能区")
_PROVINCIAL_CITIES = ("北京市", "上海市", "天津市", "重庆市")
_NATIONAL_HINT = re.compile(r"国务院|中共中央|全国人民代表大会|全国人大|国家|中央|^中国人民银行|部|总局|总署")

_LABELS = {
    "doc_no": re.compile(r"^(?:发文字号|文号|发文号|文件编号)\s*[:：]\s*(.+)$"),
    "issuer": re.compile(r"^(?:发文机关|发布机关|发文单位|制发机关|发布机构)\s*[:：]\s*(.+)$"),
    "published": re.compile(r"^(?:成文日期|印发日期|发文日期)\s*[:：]\s*(.+)$"),
    "valid_from": re.compile(r"^(?:生效日期|施行日期|实施日期)\s*[:：]\s*(.+)$"),
    "valid_until": re.compile(r"^(?:废止日期|失效日期)\s*[:：]\s*(.+)$"),
}
_WEAK_LABELS = {
    "published": re.compile(r"^(?:发布日期|发布时间|公开日期)\s*[:：]\s*(.+)$"),
}


@dataclass(frozen=True)
class TitleSplit:
    """A title found in the text: the joined title and the line span [start, end) it came from."""

    title: str
    start: int
    end: int


@dataclass(frozen=True)
class Found:
    """Metadata found in a document's text; "" where nothing reliable was found."""

    doc_no: str = ""
    published: str = ""
    issuer: str = ""
    notes: tuple[str, ...] = ()


_ZERO_LOOKALIKES = str.maketrans({c: "〇" for c in "○OoΟ0"})  # written for 〇 in years of scanned documents


def _cn_number(text: str) -> int:
    """Return the value of a Chinese numeral of a date (二〇二三, 十二, 二十一); ValueError when it is none."""
    value = chinese_number(text.translate(_ZERO_LOOKALIKES))
    if value is None:
        raise ValueError(f"not a Chinese numeral: {text!r}")
    return value


def _date_from_match(match: re.Match[str]) -> str:
    """Return YYYY-MM-DD for a DATE_RE-style match, or "" when it is no real calendar date."""
    try:
        if match.group("y"):
            year, month, day = int(match.group("y")), int(match.group("m")), int(match.group("d"))
        else:
            year = _cn_number(match.group("cy"))
            month, day = _cn_number(match.group("cm")), _cn_number(match.group("cd"))
        return _dt.date(year, month, day).isoformat()
    except (ValueError, KeyError):
        return ""


def parse_date(text: str) -> str:
    """Return the first date in `text` as YYYY-MM-DD (2023年1月20日, 二〇二三年一月二十日, 2023-1-20), or ""."""
    match = DATE_RE.search(text)
    if match:
        return _date_from_match(match)
    match = re.search(r"((?:19|20)\d{2})[-./](\d{1,2})[-./](\d{1,2})", text)
    if match:
        try:
            return _dt.date(*(int(g) for g in match.groups())).isoformat()
        except ValueError:
            return ""
    return ""


def normalize_doc_no(text: str) -> str:
    """Return the first 文号 in `text` in the standard form X〔2023〕1号, or ""."""
    match = DOC_NO_RE.search(text)
    if not match:
        return ""
    return f"{match.group('prefix')}〔{match.group('year')}〕{match.group('num')}号"


def _plain(line: str) -> str:
    return line.strip().lstrip("#").strip()


def _title_line_ok(line: str) -> bool:
    return (4 <= len(line) <= 80 and not SENTENCE_END.search(line) and not line.endswith(("，", ","))
            and not CLAUSE_START.match(line) and not DATE_RE.search(line))


def find_title(lines: list[str], *, window: int = 12, wrap_width: int = 0) -> TitleSplit | None:
    """Return the document title from its first lines, joining a title wrapped over lines.

    Layout lines before the title (附件1, the red header "…文件", 文号, 密级, dates) are
    skipped. Returns None when the first real line is a paragraph, not a title.
    `wrap_width` (PDF text): the width of a full body line; a line that wide is body
    text, so it never continues the title.
    """
    seen = 0
    for i, raw in enumerate(lines):
        line = _plain(raw)
        if not line:
            continue
        seen += 1
        if seen > window:
            return None
        if _HEAD_SKIP.match(line) or _DOC_NO_LINE.match(line) or _DATE_LINE.match(line):
            continue
        if not _title_line_ok(line):
            return None
        parts, end = [line], i + 1
        j = i + 1
        while j < len(lines) and len(parts) < 4:
            nxt = _plain(lines[j])
            if not nxt:  # a blank line ends the title, unless a (征求意见稿)-style tail follows
                if j + 1 < len(lines) and _TITLE_TAIL.match(_plain(lines[j + 1])):
                    j += 1
                    continue
                break
            if _TITLE_TAIL.match(nxt):
                parts.append(nxt)
                end = j + 1
                j += 1
                continue
            joined = "".join(parts)
            if wrap_width and display_width(nxt) >= 0.85 * wrap_width:
                break
            if (_TITLE_END_WORD.search(joined) or not _title_line_ok(nxt) or len(nxt) > 40
                    or _DOC_NO_LINE.match(nxt) or len(joined) + len(nxt) > 100 or nxt.startswith("各")):
                break
            parts.append(nxt)
            end = j + 1
            j += 1
        return TitleSplit(title="".join(parts), start=i, end=end)
    return None


def _organs(line: str) -> list[str]:
    """Return the organ names a signature line consists of, or [] if it is something else."""
    parts = [p for p in re.split(r"[\s\u3000、]+", line.strip()) if p]
    if not parts or len(parts) > 4:
        return []
    for part in parts:
        if (not _ORGAN_NAME.match(part) or not _ORGAN_SUFFIX.search(part)
                or part.startswith("关于") or "的" in part):
            return []
    return parts


def _signature(nonblank: list[str]) -> tuple[str, list[str]] | None:
    """Return (date, issuers) of the first signature block: organ line(s), then a date line."""
    for k, line in enumerate(nonblank):
        if k < 2:
            continue
        match = _DATE_LINE.match(line)
        organs: list[str] = []
        if match:
            back = k - 1
            while back >= 0 and len(organs) < 6:
                found = _organs(nonblank[back])
                if not found:
                    break
                organs[:0] = found
                back -= 1
        else:
            same = re.match(rf"^(?P<who>.+?)[\s\u3000]+(?:{_DATE_AR}|{_DATE_CN})$", line)
            if not same:
                continue
            organs = _organs(same.group("who"))
            match = same
        date = _date_from_match(match)
        if organs and date:
            return date, organs
    return None


def find_metadata(lines: list[str]) -> Found:
    """Return 文号, published date and issuer found in the body lines.

    published: the date of the first signature block (organ name line(s) followed by a
    date line), else a "…印发" date, else a date line near the end, else one under the
    title. issuer: the organs of that signature block, else the red header "X文件".
    """
    nonblank = [_plain(line) for line in lines if line.strip()]
    head = nonblank[:15]
    notes: list[str] = []

    doc_no = ""
    for line in head:
        label = _LABELS["doc_no"].match(line)
        if _DOC_NO_LINE.match(line) or label:
            doc_no = normalize_doc_no(line)
            if doc_no:
                break

    published, issuer = "", ""
    signature = _signature(nonblank)
    if signature:
        published, organs = signature
        issuer = "、".join(organs)
    if not published:
        for line in reversed(nonblank):
            match = _YINFA_LINE.search(line)
            if match and _date_from_match(match):
                published = _date_from_match(match)
                notes.append("published is the 印发 (printing) date; no signed date was found")
                break
    if not published:
        for line in reversed(nonblank[-10:]):
            match = _DATE_LINE.match(line)
            if match and _date_from_match(match):
                published = _date_from_match(match)
                break
    if not published:
        for line in nonblank[:10]:
            match = _DATE_LINE.match(line)
            if match and _date_from_match(match):
                published = _date_from_match(match)
                break
    if not issuer:
        for line in head[:5]:
            header = re.match(r"^(.{2,40})文件$", line)
            if header and _organs(header.group(1)):
                issuer = "、".join(_organs(header.group(1)))
                break
    return Found(doc_no=doc_no, published=published, issuer=issuer, notes=tuple(notes))


def labelled_metadata(lines: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Return (labelled, weak) metadata stated as "发文字号：…", "成文日期：…", "发布日期：…" lines."""
    labelled: dict[str, str] = {}
    weak: dict[str, str] = {}
    for raw in lines:
        line = raw.strip()
        for key, pattern in _LABELS.items():
            match = pattern.match(line)
            if match and key not in labelled:
                value = match.group(1).strip()
                if key == "doc_no":
                    value = normalize_doc_no(value)
                elif key == "issuer":
                    value = "、".join(_organs(value)) or ""
                else:
                    value = parse_date(value)
                if value:
                    labelled[key] = value
        for key, pattern in _WEAK_LABELS.items():
            match = pattern.match(line)
            if match and key not in weak and parse_date(match.group(1)):
                weak[key] = parse_date(match.group(1))
    return labelled, weak


def _level_of(organ: str) -> str:
    if _NOT_CONFIDENT.search(organ):
        return ""
    marks = _ADMIN_MARK.findall(organ)
    if not marks:
        return "national" if _NATIONAL_HINT.search(organ) else ""
    if organ.startswith(("国务院", "中共中央", "全国人民代表大会")):
        return "national"
    last = marks[-1]
    if last in ("省", "自治区"):
        return "provincial"
    if last == "市" and organ.startswith(_PROVINCIAL_CITIES) and len(marks) == 1:
        return "provincial"
    if last in ("市", "自治州", "地区", "盟"):
        return "municipal"
    if last in ("县", "自治县", "区", "旗", "自治旗"):
        return "county"
    return ""


def guess_level(issuer: str) -> str:
    """Return the administrative level implied by the issuer's name, or "" when not certain.

    国务院/部委 -> national, 省/自治区 (and 北京/上海/天津/重庆市) -> provincial,
    市/州 -> municipal, 县/区 -> county; joint issuers must agree; development zones
    and the like are left alone. A county-level city (昆山市) reads as municipal.
    """
    organs = [o for o in re.split(r"[、，,\s\u3000]+", issuer) if o]
    levels = {_level_of(o) for o in organs}
    if len(levels) == 1:
        return levels.pop()
    return ""


def status_from_title(title: str) -> str:
    """Return draft for a 征求意见稿, interpretation for a 解读, else ""."""
    if "征求意见稿" in title:
        return "draft"
    if "解读" in title:
        return "interpretation"
    return ""


def check_date(value: str) -> bool:
    """True when `value` is YYYY, YYYY-MM or YYYY-MM-DD naming a real date."""
    match = re.fullmatch(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?", value)
    if not match:
        return False
    year, month, day = match.groups()
    try:
        _dt.date(int(year), int(month or 1), int(day or 1))
    except ValueError:
        return False
    return True


def validate_meta(meta: dict[str, str]) -> list[str]:
    """Return a list of problems with level, status and date values (empty when all is well)."""
    problems = []
    level = meta.get("level", "")
    if level and level not in LEVELS:
        problems.append(f"level {level!r} is not one of {', '.join(LEVELS)}")
    status = meta.get("status", "")
    if status and status not in STATUSES:
        problems.append(f"status {status!r} is not one of {', '.join(STATUSES)}")
    for key in DATE_KEYS:
        value = meta.get(key, "")
        if value and not check_date(value):
            problems.append(f"{key} {value!r} is not a date written YYYY, YYYY-MM or YYYY-MM-DD")
    start, end = meta.get("valid_from", ""), meta.get("valid_until", "")
    if start and end and check_date(start) and check_date(end) and end < start:
        problems.append(f"valid_until {end} is before valid_from {start}")
    return problems
