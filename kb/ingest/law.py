"""Laws and regulations in their published form: title, 题注 history lines, 编章节 headings, 第X条 articles.

Recognises the form (as the national database and the LawRefBook/Laws collection publish it),
keeps the article text unchanged, and finds the metadata the text states: issuer and type
from the history lines, 国务院令 number, this version's date, the commencement article.
Nothing is guessed; what is not found is left empty for `kb add` to report.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from functools import lru_cache

from kb.ingest.normalize import normalize_line

COLLECTION_MARKER = "<!-- INFO END -->"
COLLECTION_SOURCE = "国家法律法规数据库（经 LawRefBook/Laws 收集）"
OFFICIAL_TEXT_LICENSE = "法律、行政法规的官方正式文本，依《中华人民共和国著作权法》第五条不适用该法保护"
NATIONAL_PREFIX = "中华人民共和国"
MAX_SLUG = 90  # ids stay well under 100 characters with the "-YYYY-MM-DD" of a colliding version

_NUM = "[一二三四五六七八九十百千零〇两0-9０-９]+"
ARTICLE_LINE = re.compile(rf"^第{_NUM}条(?:[ \u3000]|$)")
_HEADING_LINE = re.compile(rf"^#*\s*第{_NUM}[编章节](?:[ \u3000]|$)")
_HISTORY_LINE = re.compile(r"^[（(]?\s*((?:19|20)\d{2})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日\s*(.*?)\s*[)）]?\s*$")
_HISTORY_EVENT = re.compile(r"通过|公布|发布|修正|修订|施行|批准|废止")
_ORDER_NO = re.compile(r"国务院令第\s*(\d+)\s*号")
_FILE_DATE = re.compile(r"[(（]((?:19|20)\d{2})-(\d{2})-(\d{2})[)）]\s*$")
_COMMENCEMENT = re.compile(
    r"本(?:法|条例|细则|规定|办法|决定|规则)自\s*(?:((?:19|20)\d{2})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日"
    r"|(公布|发布|颁布)之日)\s*起(?:施行|实施)")
_ARTICLE_NO = re.compile(rf"^(第{_NUM}条)")


@dataclass(frozen=True)
class LawText:
    """A law or regulation read from its published form.

    `body` is the text from the first heading or article on (title, history lines and the
    collection's marker removed), article lines unchanged; `meta` holds what was found;
    `notes` say where a value came from when that is not the obvious place.
    """

    title: str
    history: tuple[str, ...]
    body: str
    meta: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def _clean(line: str) -> str:
    return normalize_line(line, halfwidth=False)


def _title_of(line: str) -> str:
    return _clean(line.lstrip("#"))


def _history_entry(line: str) -> tuple[_dt.date, str] | None:
    """Return (date, event text) of a 题注 line ("2020年7月5日 中华人民共和国国务院令第728号公布")."""
    m = _HISTORY_LINE.match(_clean(line))
    if not m or not _HISTORY_EVENT.search(m.group(4)):
        return None
    try:
        day = _dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None
    return day, m.group(4).rstrip("）)").strip()


def looks_like_law(lines: list[str], title: str = "") -> bool:
    """True when the text has the published form of a law: articles 第X条, with 题注 history lines
    or the collection's marker before them (a regulation-like text without either is read as any
    policy text)."""
    stripped = [_clean(x) for x in lines]
    articles = [i for i, x in enumerate(stripped) if ARTICLE_LINE.match(x)]
    if len(articles) < 2:
        return False
    head = [x for x in stripped[:articles[0]] if x]
    return COLLECTION_MARKER in head or any(_history_entry(x) for x in head[:20])


def short_title(title: str) -> str:
    """Return the title without the 中华人民共和国 prefix and without spaces or 《》."""
    t = re.sub(r"\s+", "", title).strip("《》")
    return t[len(NATIONAL_PREFIX):] if t.startswith(NATIONAL_PREFIX) and len(t) > len(NATIONAL_PREFIX) else t


@lru_cache(maxsize=1)
def _tokenizer():
    import jieba

    tok = jieba.Tokenizer()
    for word in ("实施条例", "实施细则", "暂行条例"):
        tok.add_word(word)
    return tok


def law_slug(title: str, version: str) -> str:
    """Return a readable ASCII file name: the pinyin of the short title by word, plus the version year.

    `version` is YYYY-MM-DD (or YYYY); "qiye-suodeshui-fa-shishi-tiaoli-2019".
    """
    from pypinyin import lazy_pinyin

    words = [w for w in _tokenizer().cut(short_title(title), HMM=False) if w.strip()]
    parts = ["".join(lazy_pinyin(w)) for w in words]
    slug = "-".join(re.sub(r"[^a-z0-9]+", "", p.lower()) for p in parts)
    slug = re.sub(r"-{2,}", "-", slug).strip("-")[:MAX_SLUG].strip("-") or "law"
    return f"{slug}-{version[:4]}" if version else slug


def file_name_date(filename: str) -> str:
    """Return the YYYY-MM-DD a collection file name carries ("名称(2019-04-23).md"), or ""."""
    stem = re.sub(r"\.[A-Za-z0-9]+$", "", filename)
    m = _FILE_DATE.search(stem)
    if not m:
        return ""
    try:
        return _dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat()
    except ValueError:
        return ""


def _issuer(history: list[tuple[_dt.date, str]]) -> tuple[str, str]:
    """Return (issuer, doc_type) of the latest history line that names the organ."""
    for _, event in reversed(history):
        if "全国人民代表大会常务委员会" in event:
            return "全国人民代表大会常务委员会", "法律"
        if "全国人民代表大会" in event:
            return "全国人民代表大会", "法律"
        if "国务院" in event:
            return "国务院", "行政法规"
    return "", ""


def _commencement(body: str) -> tuple[str, str, str]:
    """Return (YYYY-MM-DD or "公布", the article number, the sentence) of the last commencement statement."""
    found = None
    for line in body.split("\n"):
        m = _COMMENCEMENT.search(line)
        if m:
            article = _ARTICLE_NO.match(line.strip())
            found = (m, article.group(1) if article else "", m.group(0))
    if found is None:
        return "", "", ""
    m, article, sentence = found
    if m.group(4):
        return "公布", article, sentence
    try:
        return _dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat(), article, sentence
    except ValueError:
        return "", "", ""


def parse_law(lines: list[str], filename: str, title: str = "") -> LawText:
    """Read a law in its published form; `title` is one the file format already gave (HTML, Word).

    The caller checked `looks_like_law`. Lines before the first heading or article are the
    title (when not given), the history lines and the collection marker; they leave the body.
    """
    notes: list[str] = []
    start = next(i for i, x in enumerate(lines) if ARTICLE_LINE.match(_clean(x)) or _HEADING_LINE.match(_clean(x)))
    head = [_clean(x) for x in lines[:start] if _clean(x)]
    marker = COLLECTION_MARKER in head
    head = [x for x in head if x != COLLECTION_MARKER]
    history: list[tuple[_dt.date, str]] = []
    rest: list[str] = []
    for line in head:
        entry = _history_entry(line)
        if entry:
            history.append(entry)
        else:
            rest.append(line)
    if not title and rest:
        title = _title_of(rest.pop(0))
    wanted = re.sub(r"\s+", "", title)
    rest = [x for x in rest if re.sub(r"\s+", "", _title_of(x)) != wanted]
    if rest:
        notes.append(f"kept out of the body, before the first article: {' / '.join(r[:30] for r in rest[:3])}")

    body_lines = [_clean(x) for x in lines[start:]]
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(body_lines)).strip("\n") + "\n"

    meta: dict[str, str] = {"title": title}
    issuer, doc_type = _issuer(history)
    if issuer:
        meta.update(issuer=issuer, level="national", doc_type=doc_type, license=OFFICIAL_TEXT_LICENSE)
    version = ""
    acts = [h for h in history if h[1] != "施行"]  # "2020年1月1日 施行" dates commencement, not a version
    if acts:
        version_day, version_event = max(acts, key=lambda h: h[0])
        version = version_day.isoformat()
        order = _ORDER_NO.search(version_event)
        if order:
            meta["doc_no"] = f"国务院令第{order.group(1)}号"
    named = file_name_date(filename)
    if version and named and named > version:
        # the collection dates the version later than the last history line: the 题注 is incomplete
        notes.append(f"published {named} is the version date in the file name; the latest history line "
                     f"is {version}")
        version = named
        meta.pop("doc_no", None)  # the 令 number of the last history line is an earlier version's
    elif version and named and named != version:
        notes.append(f"the file name says {named}, the latest history line {version}; published is taken "
                     "from the history line")
    if not version and named:
        version = named
        notes.append(f"published {named} is the date in the file name (the text has no history lines)")
    if version:
        meta["published"] = version
    if history:
        meta["history"] = "；".join(f"{d.year}年{d.month}月{d.day}日 {e.replace('；', '，')}" for d, e in history)

    start_day, article, sentence = _commencement(body)
    where = f"{article}“{sentence}”" if article else f"“{sentence}”"
    if start_day == "公布" and version:
        meta["valid_from"] = version
        meta["valid_from_note"] = f"{where}；取本版本日期"
    elif start_day and version and start_day < version:
        meta["valid_from"] = version
        meta["valid_from_note"] = f"{where}为原文件施行日期，早于本版本日期；本版本自版本日期起算"
        notes.append(f"valid_from is the version date {version}: {article or 'the text'} gives {start_day}, "
                     "the original commencement")
    elif start_day and start_day != "公布":
        meta["valid_from"] = start_day
        meta["valid_from_note"] = where
    elif version:
        in_force = [d for d, e in history if re.fullmatch(r"施行", e)]
        if in_force:
            meta["valid_from"] = in_force[-1].isoformat()
            meta["valid_from_note"] = "题注所载施行日期"
        else:
            meta["valid_from"] = version
            meta["valid_from_note"] = "正文未载施行日期；取本版本日期"
            notes.append(f"valid_from is the version date {version}: no commencement article was found")
    if marker:
        meta["source"] = COLLECTION_SOURCE
    return LawText(title=title, history=tuple(h for h in meta.get("history", "").split("；") if h), body=body,
                   meta={k: v for k, v in meta.items() if v}, notes=tuple(notes))
