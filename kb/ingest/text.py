"""Decode raw bytes to text: BOMs, strict UTF-8, then charset-normalizer with GB18030 for Chinese.

A wrong guess is worse than a refusal, so every decoding is checked afterwards
(control and replacement characters) and doubtful guesses are refused with the reason.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from dataclasses import dataclass

from kb.ingest.base import Extraction, IngestError

_BOMS = (  # longest first: the UTF-32 LE BOM starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8", "UTF-8 with BOM"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16"),
)
_GB_FAMILY = {"gb2312", "gbk", "gb18030", "hz", "cp936", "euc_cn", "iso2022_cn"}
_BIG5_FAMILY = {"big5", "big5hkscs", "cp950"}
# Share of odd characters above which a decoding is judged wrong rather than a few stray bytes.
_MAX_ODD_SHARE = 0.05
_MIN_GB2312_SHARE = 0.9
_MAX_BROKEN_PER = 1000  # at most one broken byte sequence per this many characters


@dataclass(frozen=True)
class Decoded:
    """Text decoded from bytes, with the encoding used and any doubt worth telling the user."""

    text: str
    encoding: str
    warnings: tuple[str, ...] = ()


def _odd_share(text: str) -> float:
    """Return the share of characters that no real document contains many of."""
    if not text:
        return 0.0
    odd = 0
    for ch in text:
        if ch in "\n\r\t\f":
            continue
        if ch == "\ufffd":
            odd += 1
            continue
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Co", "Cn", "Cs"):
            odd += 1
    return odd / len(text)


def _looks_like_simplified_chinese(text: str) -> bool:
    """True when almost every non-ASCII letter of `text` is a GB2312 character (common Chinese)."""
    wide = [ch for ch in text[:200_000] if ord(ch) > 127 and not ch.isspace()]
    if len(wide) < 2:
        return False
    common = 0
    for ch in wide:
        try:
            ch.encode("gb2312")
            common += 1
        except UnicodeEncodeError:
            pass
    return common / len(wide) >= _MIN_GB2312_SHARE


def _check(text: str, name: str, encoding: str) -> str:
    if _odd_share(text) > _MAX_ODD_SHARE:
        raise IngestError(
            f"{name}: decoding as {encoding} gives mostly control or replacement characters; "
            "the encoding cannot be determined reliably (save the file as UTF-8 and try again)"
        )
    return text


def _nearly(data: bytes, encoding: str) -> tuple[str, int] | None:
    """Decode allowing a few broken byte sequences (a damaged or cut file); None if more than a few."""
    text = data.decode(encoding, errors="replace")
    broken = text.count("\ufffd")
    return (text, broken) if broken <= max(1, len(text) // _MAX_BROKEN_PER) else None


def _strict(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None


def decode_bytes(data: bytes, name: str, *, declared: str = "") -> Decoded:
    """Return `data` decoded; `declared` is an encoding the file names itself (HTML meta charset).

    Order: BOM, the declared encoding, strict UTF-8, then charset-normalizer (GB2312/GBK
    read as GB18030, its superset). Raises IngestError for empty, binary or doubtful input.
    """
    if not data or not data.strip(b" \t\r\n\x00"):
        raise IngestError(f"{name}: the file is empty")
    for bom, encoding, label in _BOMS:
        if data.startswith(bom):
            text = _strict(data[len(bom):], encoding)
            if text is None:
                raise IngestError(f"{name}: starts with a {label} byte-order mark but is not valid {label}")
            return Decoded(_check(text, name, label), label)
    if b"\x00" in data:
        raise IngestError(
            f"{name}: contains NUL bytes, so it is binary, not text "
            "(UTF-16 text is accepted only with a byte-order mark)"
        )
    warnings: list[str] = []
    if declared:
        enc = _python_codec(declared)
        if enc is None:
            warnings.append(f"the file declares an unknown charset {declared!r}; detected the encoding instead")
        elif enc in ("ascii", "latin_1", "iso8859-1") or enc.startswith(("cp125", "iso8859")):
            # Western single-byte charsets decode any bytes at all, so such a declaration
            # on a Chinese page proves nothing; detect instead.
            enc = None
        else:
            text = _strict(data, enc)
            if text is not None and _odd_share(text) <= _MAX_ODD_SHARE:
                label = {"gb18030": "GB18030", "utf-8": "UTF-8", "big5": "Big5"}.get(enc, enc)
                return Decoded(text, label, tuple(warnings))
            warnings.append(f"the file declares charset {declared!r} but does not decode with it; "
                            "detected the encoding instead")
    text = _strict(data, "utf-8")
    if text is not None:
        return Decoded(_check(text, name, "UTF-8"), "UTF-8", tuple(warnings))
    nearly = _nearly(data, "utf-8")
    if nearly is not None and _mostly_chinese(nearly[0]):
        text, broken = nearly
        return Decoded(_check(text, name, "UTF-8"), "UTF-8",
                       (*warnings, f"{broken} invalid UTF-8 byte sequence(s) replaced with \ufffd"))
    return _detect(data, name, warnings)


def _mostly_chinese(text: str) -> bool:
    """True when a reading with a few broken bytes (U+FFFD) is still mostly common Chinese."""
    return _looks_like_simplified_chinese(text.replace("\ufffd", ""))


def _python_codec(label: str) -> str | None:
    label = label.strip().strip("'\"").lower()
    try:
        codec = codecs.lookup(label).name
    except LookupError:
        return None
    return "gb18030" if codec in _GB_FAMILY or label in _GB_FAMILY else codec


def _detect(data: bytes, name: str, warnings: list[str]) -> Decoded:
    from charset_normalizer import from_bytes  # heavy import, only for non-UTF-8 input

    best = from_bytes(data).best()
    guess = best.encoding if best is not None else ""
    if guess in _GB_FAMILY:
        nearly = _nearly(data, "gb18030")
        if nearly is None:
            raise IngestError(f"{name}: looks like GBK/GB18030 text but contains many bytes invalid in GB18030")
        text, broken = nearly
        if broken:
            warnings = [*warnings, f"{broken} invalid GB18030 byte sequence(s) replaced with \ufffd"]
        return Decoded(_check(text, name, "GB18030"), "GB18030", tuple(warnings))
    if guess in _BIG5_FAMILY:
        text = _strict(data, guess)
        if text is not None and _odd_share(text) <= _MAX_ODD_SHARE:
            return Decoded(text, "Big5", (*warnings, "decoded as Big5 (traditional Chinese); check the text"))
    # charset-normalizer is unreliable on short Chinese texts (it may answer UTF-16 or a
    # Korean code page for a few GBK bytes): accept GB18030 only when the result is
    # almost entirely common simplified Chinese, which random or foreign bytes never are.
    nearly = _nearly(data, "gb18030")
    if nearly is not None and _odd_share(nearly[0]) <= _MAX_ODD_SHARE and _mostly_chinese(nearly[0]):
        text, broken = nearly
        note = f"charset detection said {guess}" if guess else "charset detection was not conclusive"
        warnings = [*warnings, f"decoded as GB18030 ({note}); check the text"]
        if broken:
            warnings.append(f"{broken} invalid GB18030 byte sequence(s) replaced with \ufffd")
        return Decoded(text, "GB18030", tuple(warnings))
    if best is None:
        raise IngestError(f"{name}: cannot determine the text encoding (not UTF-8, GBK/GB18030 or UTF-16 with BOM)")
    raise IngestError(
        f"{name}: the encoding is not UTF-8 or GBK/GB18030 (best guess {guess}, not reliable for Chinese text); "
        "save the file as UTF-8 and try again"
    )


def read_text(data: bytes, name: str) -> Extraction:
    """Return the Extraction of a plain-text file: the decoded text, lines as they are."""
    decoded = decode_bytes(data, name)
    warnings = list(decoded.warnings)
    if decoded.encoding not in ("UTF-8", "UTF-8 with BOM") and not any(w.startswith("decoded as") for w in warnings):
        warnings.insert(0, f"decoded as {decoded.encoding}")
    return Extraction(body=decoded.text, warnings=tuple(dict.fromkeys(warnings)))


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-]+)""", re.IGNORECASE)


def declared_html_charset(data: bytes) -> str:
    """Return the charset an HTML file declares in a <meta> tag near its start, or ""."""
    match = _META_CHARSET.search(data[:8192])
    return match.group(1).decode("ascii") if match else ""
