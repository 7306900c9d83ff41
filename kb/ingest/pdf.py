"""Read a PDF with a text layer: drop running headers/footers and page numbers, rejoin wrapped lines.

Chinese has no spaces between words, so a wrapped line is joined to the next without
one. A PDF without a text layer (a scan) is refused: there is no OCR here.
"""

from __future__ import annotations

import io
import logging
import math
import re

from kb.ingest.base import Extraction, IngestError
from kb.ingest.meta import CLAUSE_START, DATE_RE, DOC_NO_RE, SENTENCE_END, find_title
from kb.ingest.normalize import display_width, normalize_line, to_halfwidth_alnum

_PAGE_NUMBER = re.compile(
    r"^(?:[-－—–~·\s]*\d{1,4}[-－—–~·\s]*"
    r"|(?:共\s*\d+\s*页\s*[,，]?\s*)?第\s*\d+\s*页(?:\s*[,，/]?\s*共\s*\d+\s*页)?"
    r"|\d{1,4}\s*/\s*\d{1,4}"
    r"|(?:page|p\.)\s*\d+(?:\s*(?:of|/)\s*\d+)?)$",
    re.IGNORECASE,
)
_EDGE = 2  # lines at the top and at the bottom of a page that may be running headers/footers
_SPACED_CJK = re.compile(r"(?<=[\u4e00-\u9fff]) (?=[\u4e00-\u9fff])")


def _page_texts(data: bytes, name: str) -> list[str]:
    try:
        from pypdf import PdfReader
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ImportError("reading .pdf needs pypdf: pip install pypdf") from exc
    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise IngestError(f"{name}: not a PDF file (no %PDF header)")
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # pypdf warns about harmless quirks of real files
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError(f"{name}: the PDF is password-protected")
        return [page.extract_text() or "" for page in reader.pages]
    except IngestError:
        raise
    except Exception as exc:  # pypdf raises many types on damaged files
        raise IngestError(f"{name}: cannot read as PDF ({type(exc).__name__}: {exc})") from exc


def _clean_line(line: str) -> str:
    # Full-width digits stay as they are until the body is normalised: line widths
    # (see join_lines) must reflect the page as laid out.
    line = normalize_line(line, halfwidth=False)
    # Some PDFs space out every character ("关 于 印 发"): undo that, but only then.
    cjk_pairs = len(re.findall(r"[\u4e00-\u9fff][\u4e00-\u9fff ]", line))
    if cjk_pairs >= 4 and len(_SPACED_CJK.findall(line)) >= 0.5 * cjk_pairs:
        line = _SPACED_CJK.sub("", line)
    return line


def _shape(line: str) -> str:
    """A line with digits masked, so "第 3 页" and "第 4 页" compare equal."""
    return re.sub(r"\d+", "#", re.sub(r"\s+", "", line))


def strip_running_lines(pages: list[list[str]]) -> tuple[list[list[str]], int]:
    """Return pages without running headers/footers and page numbers, and how many lines went.

    A running line is one whose shape recurs within the top or bottom lines of most pages.
    """
    needed = max(2, math.floor(len(pages) / 2) + 1)
    top_counts: dict[str, int] = {}
    bottom_counts: dict[str, int] = {}
    for lines in pages:
        for shape in {_shape(line) for line in lines[:_EDGE]}:
            top_counts[shape] = top_counts.get(shape, 0) + 1
        for shape in {_shape(line) for line in lines[-_EDGE:]}:
            bottom_counts[shape] = bottom_counts.get(shape, 0) + 1
    running_top = {s for s, n in top_counts.items() if n >= needed and len(pages) >= 2}
    running_bottom = {s for s, n in bottom_counts.items() if n >= needed and len(pages) >= 2}
    removed = 0
    cleaned = []
    for lines in pages:
        lines = list(lines)
        for _ in range(_EDGE + 1):
            if lines and (_shape(lines[0]) in running_top or _PAGE_NUMBER.match(lines[0])):
                lines.pop(0)
                removed += 1
        for _ in range(_EDGE + 1):
            if lines and (_shape(lines[-1]) in running_bottom or _PAGE_NUMBER.match(lines[-1])):
                lines.pop()
                removed += 1
        cleaned.append(lines)
    return cleaned, removed


def _full_width(widths: list[int]) -> int:
    """The width of a full line of body text: the 90th percentile of line widths."""
    ordered = sorted(widths)
    return ordered[int(0.9 * (len(ordered) - 1))] if ordered else 0


def _standalone(line: str) -> bool:
    """Dates and 文号 on a line of their own never join a neighbour."""
    return bool(re.fullmatch(r"[（(]?\s*" + DATE_RE.pattern + r"\s*(?:印发)?[)）]?", line)
                or re.fullmatch(r"[（(]?\s*" + DOC_NO_RE.pattern + r"\s*[)）]?", line))


def join_lines(lines: list[str], widths: list[int] | None = None) -> list[str]:
    """Return paragraphs rebuilt from wrapped PDF lines.

    A line is joined to the one before unless the one before ends a sentence
    (。！？：；), it starts with clause numbering (一、 （一） 1. 第X条), either is a
    lone date or 文号, or the one before is clearly shorter than a full line (a heading
    or the end of a paragraph; "full" is the 90th percentile of line widths, counting
    a Chinese character as two columns and ASCII as one). `widths` are the lines' widths
    as printed, when the lines have been normalised since (full-width digits made ASCII).
    """
    if widths is None:
        widths = [display_width(line) for line in lines]
    full = _full_width(widths)
    paragraphs: list[str] = []
    prev, prev_width = "", 0
    for line, width in zip(lines, widths, strict=True):
        if not paragraphs:
            paragraphs.append(line)
            prev, prev_width = line, width
            continue
        # Lines wrapped by the layout fill the width to within a character or two; a
        # clearly shorter line ended its paragraph (or is a heading such as 四、…).
        short = full >= 20 and prev_width < 0.85 * full
        numbered_heading = (full >= 20 and paragraphs[-1] == prev and CLAUSE_START.match(prev) is not None
                            and prev_width < 0.92 * full)
        if (SENTENCE_END.search(prev) or CLAUSE_START.match(line) or _standalone(line) or _standalone(prev)
                or short or numbered_heading):
            paragraphs.append(line)
        else:
            glue = " " if re.search(r"[A-Za-z,]$", prev) and re.match(r"[A-Za-z]", line) else ""
            paragraphs[-1] += glue + line
        prev, prev_width = line, width
    return paragraphs


def read_pdf(data: bytes, name: str) -> Extraction:
    """Return the Extraction of a PDF's text layer; refuses scans without text."""
    texts = _page_texts(data, name)
    if not texts:
        raise IngestError(f"{name}: the PDF has no pages")
    pages = [[line for line in (_clean_line(raw) for raw in text.split("\n")) if line] for text in texts]
    if not any(pages):
        raise IngestError(
            f"{name}: the PDF has no text layer; it looks like a scanned image and OCR is not available here "
            "(run OCR elsewhere, or supply a .docx/.txt version)"
        )
    warnings = []
    empty = [str(i + 1) for i, lines in enumerate(pages) if not lines]
    if empty:
        warnings.append(f"page(s) {', '.join(empty)} have no text layer (scanned?) and are missing from the text")
    pages, removed = strip_running_lines(pages)
    if removed:
        warnings.append(f"removed {removed} running header/footer or page-number line(s)")
    printed = [line for page in pages for line in page]
    widths = [display_width(line) for line in printed]
    lines = [to_halfwidth_alnum(line) for line in printed]
    full = _full_width(widths)
    split = find_title(lines, wrap_width=full if full >= 20 else 0)
    title, start, end = "", 0, 0
    if split is not None:
        title, start, end = split.title, split.start, split.end
    body = "\n\n".join(lines[:start] + join_lines(lines[end:], widths[end:]))
    return Extraction(body=body, title=title, warnings=tuple(warnings))
