"""Read a web page saved from a government site: keep the article, drop the site around it.

The article is the first known content container (TRS_Editor, zoom, Custom_UnionStyle,
content, …) holding a fair share of the page's Chinese text, else the element whose
<p> children hold the most Chinese text. Paragraphs become lines, data tables Markdown.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup
from bs4.element import Comment, Declaration, Doctype, NavigableString, ProcessingInstruction, Tag

from kb.ingest.base import Extraction, IngestError
from kb.ingest.meta import labelled_metadata, normalize_doc_no, parse_date
from kb.ingest.normalize import count_cjk, join_inline, markdown_table, normalize_line
from kb.ingest.text import declared_html_charset, decode_bytes

_ALWAYS_NOISE = ("script", "style", "noscript", "iframe", "object", "embed", "nav", "form", "button",
                 "input", "select", "textarea", "svg", "canvas", "template", "map", "audio", "video")
_LAYOUT_NOISE = ("header", "footer", "aside")
# id/class words of site furniture; long ones match inside a token, short ones must be a whole part of it.
_NOISE_SUBSTR = ("breadcrumb", "crumb", "share", "footer", "header", "navbar", "copyright", "pagination",
                 "sidebar", "fenxiang", "dayin", "guanbi", "weizhi", "qrcode", "erweima", "related",
                 "toolbar", "topbar", "menu", "banner", "fontsize", "font-size", "zihao")
_NOISE_PARTS = {"nav", "top", "foot", "head", "side", "print", "close", "prev", "next", "pager",
                "link", "links", "ad", "ads", "logo", "search", "bottom", "position", "location", "dqwz",
                "xgwz", "ewm", "login", "tools", "tool", "fx", "wz", "bq", "weibo", "weixin", "wechat",
                "comment", "comments", "slide", "friend", "hot", "rank"}
# Known article containers, most specific first (ids and classes seen on Chinese government sites).
_CONTAINERS = ("trs_editor", "custom_unionstyle", "ucap-content", "zoom", "article-content", "article_content",
               "articlecontent", "main-text", "main_text", "maintext", "pages_content", "pages-content",
               "content-text", "content_text", "text_content", "detail-content", "detail_content",
               "details-content", "news_content", "newscontent", "view", "conter", "con_text", "xxgk_content",
               "article", "content", "main-content", "main_content", "text", "main")
_SPECIFIC_CONTAINERS = frozenset(_CONTAINERS[:_CONTAINERS.index("article")])
_BLOCK = {"p", "div", "section", "article", "li", "ul", "ol", "dl", "dt", "dd", "blockquote", "center",
          "h1", "h2", "h3", "h4", "h5", "h6", "pre", "address", "figure", "figcaption", "main", "tr",
          "header", "footer", "aside", "hr", "caption", "body", "html"}
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_TEXT_NOISE = re.compile(
    r"^(?:[【\[（(]?\s*(?:打印(?:本页|此页|文章)?|关闭(?:窗口|本页)?|返回(?:顶部|首页)?|收藏|分享到?|纠错|"
    r"我要纠错|字号|大|中|小|默认)\s*[】\])）]?\s*)+$"
    r"|^(?:上一篇|下一篇|上一条|下一条|相关(?:文章|链接|阅读|新闻|文件)|当前位置|您(?:现在)?的位置|所在位置)\s*[:：>].*"
    r"|^(?:上一篇|下一篇|上一条|下一条)$"
    r"|^分享到\s*[:：].*|^扫一扫.*|^【?字号\s*[:：]?.*(?:大|中|小)】?$|^.{0,20}\s*>\s*.{0,20}\s*>\s*.{0,40}$"
    r"|^(?:浏览次数|访问量|阅读次数|点击数)\s*[:：].*"
)
_TITLE_SPLIT = re.compile(r"\s*(?:_|\||｜| - | — |--|——)\s*")


def _raw_tokens(tag: Tag) -> list[str]:
    classes = tag.get("class") or []
    if isinstance(classes, str):
        classes = classes.split()
    ident = tag.get("id") or ""
    return [str(t) for t in [*classes, ident] if t]


def _tokens(tag: Tag) -> list[str]:
    return [t.lower() for t in _raw_tokens(tag)]


def _is_noise(tag: Tag) -> bool:
    """True for site furniture: by id/class words, or hidden with an inline display:none."""
    if re.search(r"display\s*:\s*none", str(tag.get("style") or ""), re.IGNORECASE):
        return True
    for token in _raw_tokens(tag):
        lowered = token.lower()
        if any(word in lowered for word in _NOISE_SUBSTR):
            return True
        parts = re.split(r"[-_\s]+|(?<=[a-z])(?=[A-Z])", token)  # nav-bar, top_nav, leftNav
        if any(part.lower() in _NOISE_PARTS for part in parts):
            return True
    return False


def _cjk_in_paragraphs(tag: Tag) -> int:
    return sum(count_cjk(p.get_text()) for p in tag.find_all("p")) or count_cjk(tag.get_text())


def _remove_noise(soup: BeautifulSoup) -> None:
    for tag in soup.find_all(_ALWAYS_NOISE):
        tag.decompose()
    page_cjk = max(count_cjk(soup.get_text()), 1)
    candidates = [t for t in soup.find_all(True) if t.name in _LAYOUT_NOISE or _is_noise(t)]
    for tag in candidates:
        if tag.decomposed:  # inside an element already removed
            continue
        # Never drop what holds most of the page's text: a site may call its whole body "main-top".
        if count_cjk(tag.get_text()) > 0.5 * page_cjk or _matches_container(tag) or any(
                _matches_container(d) for d in tag.find_all(True)):
            continue
        tag.decompose()


def _matches_container(tag: Tag, name: str | None = None) -> bool:
    """True when `tag` has the container id/class `name`, or any specific one when name is None."""
    tokens = _tokens(tag)
    if name is None:
        return any(t in _SPECIFIC_CONTAINERS for t in tokens)
    return name in tokens


def _densest(root: Tag) -> Tag | None:
    """Return the element whose direct <p> children hold the most Chinese text."""
    score: dict[int, tuple[int, Tag]] = {}
    for p in root.find_all("p"):
        parent = p.parent
        if parent is None:
            continue
        cjk = count_cjk(p.get_text())
        prev = score.get(id(parent), (0, parent))
        score[id(parent)] = (prev[0] + cjk, parent)
    if not score:
        return None
    best_cjk, best = max(score.values(), key=lambda item: item[0])
    return best if best_cjk else None


def _find_container(soup: BeautifulSoup) -> tuple[Tag, str]:
    """Return (article element, warning or "")."""
    root = soup.body or soup
    densest = _densest(root)
    densest_cjk = _cjk_in_paragraphs(densest) if densest is not None else 0
    for name in _CONTAINERS:
        found = [t for t in root.find_all(True) if _matches_container(t, name)]
        if not found:
            continue
        best = max(found, key=lambda t: count_cjk(t.get_text()))
        cjk = count_cjk(best.get_text())
        if cjk >= 10 and cjk >= 0.5 * densest_cjk:
            return best, ""
    if densest is not None:
        return densest, "no known article container found; kept the block with the most Chinese text"
    return root, "no article container or paragraphs found; kept the whole page text"


class _Walker:
    """Turn an element tree into paragraph lines, tables into Markdown."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._buf: list[str] = []

    def flush(self) -> None:
        text = join_inline(self._buf)
        self._buf.clear()
        if text:
            self.lines.append(text)

    def walk(self, tag: Tag) -> None:
        for child in tag.children:
            if isinstance(child, (Comment, Declaration, Doctype, ProcessingInstruction)):
                continue
            if isinstance(child, NavigableString):
                self._buf.append(str(child))
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name
            if name == "br":
                self.flush()
            elif name == "table":
                self.flush()
                self.table(child)
            elif name in _HEADINGS:
                self.flush()
                text = join_inline([child.get_text()])
                if text:
                    self.lines.append("#" * _HEADINGS[name] + " " + text)
            elif name in _BLOCK:
                self.flush()
                self.walk(child)
                self.flush()
            else:
                self.walk(child)

    def table(self, table: Tag) -> None:
        rows = _table_rows(table)
        if rows is None:  # a layout table: read its cells as ordinary blocks
            for cell in table.find_all(["td", "th"]):
                if cell.find_parent("table") is table:
                    self.walk(cell)
                    self.flush()
            return
        if self.lines:
            self.lines.append("")
        self.lines.extend(markdown_table(rows))
        self.lines.append("")


def _cell_text(cell: Tag) -> str:
    walker = _Walker()
    walker.walk(cell)
    walker.flush()
    return " ".join(line for line in walker.lines if line)


def _table_rows(table: Tag) -> list[list[str]] | None:
    """Return the cell texts of a data table, or None for a table used for page layout."""
    if table.find("table") is not None:
        return None
    trs = [tr for tr in table.find_all("tr") if tr.find_parent("table") is table]
    rows: list[list[str]] = []
    pending: dict[int, int] = {}  # column -> rows still covered by a rowspan above
    for tr in trs:
        row: list[str] = []
        col = 0
        for cell in tr.find_all(["td", "th"], recursive=False):
            while pending.get(col, 0) > 0:
                pending[col] -= 1
                row.append("")
                col += 1
            span = _int_attr(cell, "colspan")
            down = _int_attr(cell, "rowspan")
            row.append(_cell_text(cell))
            for extra in range(span):
                if extra:
                    row.append("")
                if down > 1:
                    pending[col] = down - 1
                col += 1
        while pending.get(col, 0) > 0:
            pending[col] -= 1
            row.append("")
            col += 1
        rows.append(row)
    width = max((len(r) for r in rows), default=0)
    if len(rows) < 2 or width < 2:
        return None
    # Long running text in cells means the table only positions the article on the page.
    if any(len(cell) > 300 for row in rows for cell in row):
        return None
    return rows


def _int_attr(tag: Tag, name: str) -> int:
    try:
        return max(1, min(int(str(tag.get(name, "1")).strip() or 1), 50))
    except ValueError:
        return 1


def _headings(root: Tag) -> list[str]:
    texts = []
    for tag in root.find_all(["h1", "h2", "h3"]):
        text = join_inline([tag.get_text()])
        if 4 <= len(text) <= 120:
            texts.append(text)
    return texts


def _page_title(soup: BeautifulSoup) -> tuple[str, str]:
    """Return (<meta name=ArticleTitle> content, <title> text); either may be ""."""
    meta = soup.find("meta", attrs={"name": re.compile(r"^ArticleTitle$", re.I)})
    article_title = join_inline([meta.get("content", "")]) if meta else ""
    title = join_inline([soup.title.get_text()]) if soup.title else ""
    return article_title, title


def _choose_title(article_title: str, page_title: str, candidates: list[str], fallback_headings: list[str]) -> str:
    """Pick the article title: the site's own ArticleTitle, else the longest heading or
    leading line that the <title> contains (the <title> adds the site name), else the
    first part of the <title>."""
    if article_title:
        return article_title
    inside = [c for c in candidates if len(c) >= 4 and page_title and c in page_title]
    if inside:
        return max(inside, key=len)
    for candidate in candidates:
        if page_title and len(page_title) >= 4 and page_title in candidate:
            return candidate
    if page_title:
        parts = [p for p in _TITLE_SPLIT.split(page_title) if p]
        if parts and len(parts[0]) >= 4:
            return parts[0]
    headings = [c for c in candidates if c in fallback_headings] or fallback_headings
    return headings[0] if headings else ""


def _source_url(text: str, soup: BeautifulSoup) -> str:
    saved = re.search(r"<!--\s*saved from url=\(\d+\)\s*(\S+?)\s*-->", text[:4096])
    if saved:
        return saved.group(1)
    link = soup.find("link", rel="canonical")
    if link and link.get("href", "").startswith("http"):
        return link["href"]
    og = soup.find("meta", attrs={"property": "og:url"})
    if og and og.get("content", "").startswith("http"):
        return og["content"]
    return ""


def _meta_tags(soup: BeautifulSoup) -> tuple[dict[str, str], dict[str, str]]:
    labelled: dict[str, str] = {}
    fallback: dict[str, str] = {}
    for tag in soup.find_all("meta"):
        name = str(tag.get("name", "")).lower()
        content = str(tag.get("content", "")).strip()
        if not content:
            continue
        if name in ("pubdate", "publishdate", "firstpublishedtime") and parse_date(content):
            fallback.setdefault("published", parse_date(content))
        elif name in ("filenumber", "wenhao") and normalize_doc_no(content):
            labelled.setdefault("doc_no", normalize_doc_no(content))
    return labelled, fallback


def read_html(data: bytes, name: str) -> Extraction:
    """Return the Extraction of a saved web page (article text, title, metadata in the page)."""
    decoded = decode_bytes(data, name, declared=declared_html_charset(data))
    warnings = list(decoded.warnings)
    if decoded.encoding not in ("UTF-8", "UTF-8 with BOM") and not any(w.startswith("decoded as") for w in warnings):
        warnings.insert(0, f"decoded as {decoded.encoding}")
    try:
        soup = BeautifulSoup(decoded.text, "lxml")
    except Exception as exc:  # lxml raises several types on broken markup
        raise IngestError(f"{name}: cannot parse as HTML ({type(exc).__name__}: {exc})") from exc
    source = _source_url(decoded.text, soup)
    article_title, page_title = _page_title(soup)
    all_headings = _headings(soup)
    labelled, fallback = _meta_tags(soup)
    for tag in soup.find_all(_ALWAYS_NOISE):
        tag.decompose()
    # An info box (发文机关/发文字号/成文日期) often sits outside the article: read the page for it,
    # both "label：value" lines and a label cell followed by its value cell.
    page_lines = [normalize_line(line) for line in soup.get_text("\n").split("\n") if line.strip()]
    pairs = [f"{a.rstrip(':：').strip()}：{b}" for a, b in zip(page_lines, page_lines[1:], strict=False)
             if re.fullmatch(r"[\u4e00-\u9fff]{2,6}\s*[:：]?", a)]
    found_labelled, found_weak = labelled_metadata(page_lines + pairs)
    labelled = {**found_labelled, **labelled}
    fallback = {**found_weak, **fallback}
    if source:
        labelled["source"] = source
    _remove_noise(soup)  # the site's logo heading goes with the page header
    container, warning = _find_container(soup)
    if warning:
        warnings.append(warning)
    walker = _Walker()
    try:
        walker.walk(container)
    except RecursionError:
        raise IngestError(f"{name}: the page's markup is nested too deeply to read") from None
    walker.flush()
    leading = [line.lstrip("#").strip() for line in walker.lines if line and not line.startswith("|")][:5]
    title = _choose_title(article_title, page_title, _headings(soup) + leading, all_headings)
    lines = [line for line in walker.lines if not (line and len(line) <= 60 and _TEXT_NOISE.match(line))]
    body = "\n\n".join(_merge_table_lines(lines))
    if not body.strip():
        raise IngestError(f"{name}: no article text found in the page")
    return Extraction(body=body, title=title, labelled=labelled, fallback=fallback, warnings=tuple(warnings))


def _merge_table_lines(lines: list[str]) -> list[str]:
    """Group consecutive Markdown table rows into one block so they stay one table."""
    blocks: list[str] = []
    table: list[str] = []
    for line in lines:
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            blocks.append("\n".join(table))
            table = []
        if line:
            blocks.append(line)
    if table:
        blocks.append("\n".join(table))
    return blocks
