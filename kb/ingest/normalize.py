"""Text normalisation shared by all ingest readers: widths, spaces, line endings, blank lines.

Rules (kept deliberately simple):
- full-width digits and Latin letters (０-９ Ａ-Ｚ ａ-ｚ) become ASCII; Chinese punctuation
  such as （）。，：；〔〕 and full-width symbols are kept as they are;
- line endings become "\\n"; zero-width characters and a BOM are dropped; no-break and
  other odd spaces become ordinary spaces;
- U+3000 (ideographic space) is treated as layout: leading and trailing whitespace of a
  line (indentation with 　　) is removed, and inside a line any run of two or more
  whitespace characters becomes one character (U+3000 if the run had one, else a space);
  a single U+3000 between words (第一条　为了…) is kept;
- trailing spaces go, and runs of blank lines collapse to one blank line.
"""

from __future__ import annotations

import re

_FULLWIDTH_ALNUM = {
    **{0xFF10 + i: 0x30 + i for i in range(10)},
    **{0xFF21 + i: 0x41 + i for i in range(26)},
    **{0xFF41 + i: 0x61 + i for i in range(26)},
}
_ODD_SPACES = {c: 0x20 for c in (0x00A0, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008,
                                 0x2009, 0x200A, 0x202F, 0x205F)}
_DROPPED = {c: None for c in (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD)}
_LAYOUT = {**_ODD_SPACES, **_DROPPED, 0x2028: 0x0A, 0x2029: 0x0A, 0x0C: 0x0A, 0x0B: 0x0A}
_TRANSLATE = {**_FULLWIDTH_ALNUM, **_LAYOUT}

_INNER_WS_RUN = re.compile(r"[ \t\u3000]{2,}")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")

CJK_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def count_cjk(text: str) -> int:
    """Return the number of CJK ideographs in `text`."""
    return len(CJK_CHAR.findall(text))


def display_width(text: str) -> int:
    """Return the width of `text` in columns: two for a Chinese (non-ASCII) character, one for ASCII."""
    return sum(1 if ord(ch) < 128 else 2 for ch in text)


def to_halfwidth_alnum(text: str) -> str:
    """Return `text` with full-width digits/letters made ASCII and layout characters cleaned."""
    return text.translate(_TRANSLATE)


def _collapse_run(match: re.Match[str]) -> str:
    return "\u3000" if "\u3000" in match.group(0) else " "


def normalize_line(line: str, *, halfwidth: bool = True) -> str:
    """Return one line with indentation removed, space runs collapsed and (by default) widths normalised."""
    line = line.translate(_TRANSLATE if halfwidth else _LAYOUT).replace("\t", " ")
    line = line.strip(" \u3000\r\n")
    return _INNER_WS_RUN.sub(_collapse_run, line)


def normalize_body(text: str) -> tuple[str, int]:
    """Return (normalised body text, number of stray control characters removed)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = to_halfwidth_alnum(text)
    text, removed = _CONTROL.subn("", text)
    lines = [normalize_line(line) if not line.lstrip().startswith("|") else line.strip() for line in text.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n") + "\n", removed


def join_inline(fragments: list[str]) -> str:
    """Join text fragments of one paragraph from markup (HTML/Word), collapsing source whitespace.

    A line break in the markup source between two Chinese characters is dropped (it is
    only source formatting); elsewhere whitespace becomes a single space.
    """
    text = "".join(fragments)
    text = re.sub(r"[ \t]*[\r\n]+[ \t]*", "\n", text)
    text = re.sub(r"(?<=[^\x00-\x7f])\n(?=[^\x00-\x7f])", "", text)
    text = re.sub(r"[ \t\n\r\f\v]+", " ", text)
    return text.strip(" \u3000\u00a0")


def markdown_table(rows: list[list[str]]) -> list[str]:
    """Return Markdown table lines for `rows` (first row is the header); [] for an empty table."""
    cleaned = [[" ".join(cell.split()).replace("|", "\\|") for cell in row] for row in rows]
    cleaned = [row for row in cleaned if any(cell for cell in row)]
    if not cleaned:
        return []
    width = max(len(row) for row in cleaned)
    cleaned = [row + [""] * (width - len(row)) for row in cleaned]
    lines = ["| " + " | ".join(cleaned[0]) + " |", "|" + " --- |" * width]
    lines += ["| " + " | ".join(row) + " |" for row in cleaned[1:]]
    return lines
