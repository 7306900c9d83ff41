"""Read a Word .docx file: paragraphs in body order, heading styles as Markdown '#', tables as Markdown.

The body's XML children are walked in order so a table stays under the clause it
belongs to. Word's automatic list numbers live outside the text; they are not rebuilt.
"""

from __future__ import annotations

import io
import re
import time
import zipfile
import zlib

from kb.ingest.base import Extraction, IngestError
from kb.ingest.normalize import join_inline, markdown_table

_HEADING_STYLE = re.compile(r"^(?:heading|标题)\s*(\d)$", re.IGNORECASE)
_TITLE_STYLE = re.compile(r"^(?:title|标题)$", re.IGNORECASE)
_VISIBLE_NUMBER = re.compile(
    r"^\s*(?:[（(]?[\d一二三四五六七八九十]+[）)、.．]|第[一二三四五六七八九十百\d]+[章节条]|[①-⑳])"
)


MAX_UNPACKED_BYTES = 100 * 2**20  # a .docx whose parts inflate past this is refused (a zip bomb)
MAX_PARAGRAPHS = 50_000  # far above any policy document; 95 MB of one-word paragraphs is not a document
TIME_BUDGET_SECONDS = 60.0  # a conversion that takes longer is stopped


def _count_paragraphs(data: bytes) -> int:
    """Return how many paragraph tags word/document.xml holds, reading it as a stream (0 when it is absent)."""
    count, tail = 0, b""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package, package.open("word/document.xml") as part:
            while chunk := part.read(1 << 20):
                window = tail + chunk
                count += window.count(b"<w:p>") + window.count(b"<w:p ")
                tail = window[-4:]  # a tag cut by the chunk boundary is counted in the next window only
    except (KeyError, zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error):
        return 0  # python-docx reports what is wrong with the package
    return count


def _open(data: bytes, name: str):
    try:
        import docx  # python-docx
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ImportError("reading .docx needs python-docx: pip install python-docx") from exc
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise IngestError(f"{name}: not a .docx (Word 2007+) file; an old .doc must be saved as .docx first")
    try:  # the sizes the package declares bound what inflating it can take (zipfile checks them)
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            unpacked = sum(info.file_size for info in package.infolist())
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise IngestError(f"{name}: cannot read as .docx ({type(exc).__name__}: {exc})") from exc
    if unpacked > MAX_UNPACKED_BYTES:
        raise IngestError(f"{name}: the .docx unpacks to {unpacked // 2**20} MB, over the limit of "
                          f"{MAX_UNPACKED_BYTES // 2**20} MB")
    paragraphs = _count_paragraphs(data)  # before parsing: a million tiny paragraphs take a gigabyte of XML tree
    if paragraphs > MAX_PARAGRAPHS:
        raise IngestError(f"{name}: the .docx has {paragraphs} paragraphs, over the limit of {MAX_PARAGRAPHS}")
    try:
        return docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises many types on a damaged package
        raise IngestError(f"{name}: cannot read as .docx ({type(exc).__name__}: {exc})") from exc


class _StyleCache:
    """Style name and numbering per style id, looked up once: python-docx searches styles.xml on every call."""

    def __init__(self, qn) -> None:
        self._qn = qn
        self._styles: dict[str | None, tuple[str, bool]] = {}

    def get(self, paragraph) -> tuple[str, bool]:
        """Return (style name, whether the style numbers its paragraphs)."""
        style_id = paragraph._p.style
        if style_id not in self._styles:
            try:
                style = paragraph.style
                ppr = style.element.find(self._qn("w:pPr"))
                self._styles[style_id] = (style.name or "", ppr is not None and ppr.find(self._qn("w:numPr")) is not None)
            except Exception:  # a style id missing from styles.xml
                self._styles[style_id] = ("", False)
        return self._styles[style_id]


def _outline_level(p_element, qn) -> int:
    ppr = p_element.find(qn("w:pPr"))
    lvl = ppr.find(qn("w:outlineLvl")) if ppr is not None else None
    if lvl is None:
        return 0
    try:
        value = int(lvl.get(qn("w:val")))
    except (TypeError, ValueError):
        return 0
    return value + 1 if 0 <= value < 6 else 0


def _has_numbering(paragraph, qn, style_numbered: bool) -> bool:
    ppr = paragraph._p.find(qn("w:pPr"))
    return (ppr is not None and ppr.find(qn("w:numPr")) is not None) or style_numbered


def _table_lines(table, check_time) -> list[str]:
    rows: list[list[str]] = []
    above: list[object] = []
    for row in table.rows:
        check_time()
        texts: list[str] = []
        cells: list[object] = []
        for col, cell in enumerate(row.cells):
            tc = cell._tc
            merged_left = bool(cells) and cells[-1] is tc
            merged_up = col < len(above) and above[col] is tc
            cells.append(tc)
            texts.append("" if merged_left or merged_up else join_inline([" ".join(p.text for p in cell.paragraphs)]))
        above = cells
        rows.append(texts)
    if len(rows) == 1 and len(rows[0]) == 1:  # a one-cell box around text, not a table
        return [rows[0][0]] if rows[0][0] else []
    return markdown_table(rows)


def read_docx(data: bytes, name: str) -> Extraction:
    """Return the Extraction of a .docx file: body text in order, the Title-style paragraph as title."""
    document = _open(data, name)
    from docx.oxml.ns import qn
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    container = document._body
    blocks: list[str] = []
    title = ""
    hidden_numbers = 0
    paragraphs = sum(1 for _ in document.element.body.iter(qn("w:p")))
    if paragraphs > MAX_PARAGRAPHS:
        raise IngestError(f"{name}: the .docx has {paragraphs} paragraphs, over the limit of {MAX_PARAGRAPHS}")
    styles = _StyleCache(qn)
    deadline = time.monotonic() + TIME_BUDGET_SECONDS

    def check_time() -> None:
        if time.monotonic() > deadline:
            raise IngestError(f"{name}: converting the .docx took longer than {TIME_BUDGET_SECONDS:g} seconds; "
                              "it was stopped")

    def walk(element) -> None:
        nonlocal title, hidden_numbers
        for child in element.iterchildren():
            if child.tag == qn("w:p"):
                check_time()
                paragraph = Paragraph(child, container)
                text = paragraph.text
                if not text.strip():
                    continue
                style, style_numbered = styles.get(paragraph)
                heading = _HEADING_STYLE.match(style)
                level = int(heading.group(1)) if heading else _outline_level(child, qn)
                if _TITLE_STYLE.match(style):
                    one_line = join_inline([text.replace("\n", "")])
                    if not title:
                        title = one_line
                    else:
                        blocks.append(one_line)
                elif level:
                    blocks.append("#" * min(level, 6) + " " + join_inline([text.replace("\n", "")]))
                else:
                    if _has_numbering(paragraph, qn, style_numbered) and not _VISIBLE_NUMBER.match(text):
                        hidden_numbers += 1
                    blocks.extend(line for line in (join_inline([part]) for part in text.split("\n")) if line)
            elif child.tag == qn("w:tbl"):
                table_lines = _table_lines(Table(child, container), check_time)
                if table_lines:
                    blocks.append("\n".join(table_lines))
            elif child.tag in (qn("w:sdt"), qn("w:customXml")):
                content = child.find(qn("w:sdtContent"))
                walk(content if content is not None else child)

    try:
        walk(document.element.body)
    except IngestError:
        raise
    except Exception as exc:  # malformed XML inside an otherwise valid package
        raise IngestError(f"{name}: cannot read the .docx body ({type(exc).__name__}: {exc})") from exc
    if not blocks and not title:
        raise IngestError(f"{name}: the document has no text")
    warnings = []
    if hidden_numbers:
        warnings.append(f"{hidden_numbers} list paragraph(s) use Word automatic numbering; "
                        "the numbers are not part of the text and were not copied")
    return Extraction(body="\n\n".join(blocks), title=title, warnings=tuple(warnings))
