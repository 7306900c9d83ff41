"""One raw file in, one corpus document out: pick the reader, normalise, find metadata, render.

Also writes a result into a corpus folder atomically.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from kb.corpus import CorpusError, decode_corpus_text, render_document, slugify
from kb.ingest.base import Extraction, IngestError
from kb.ingest.law import MAX_SLUG, law_slug, looks_like_law, parse_law
from kb.ingest.meta import find_metadata, find_title, guess_level, normalize_doc_no, status_from_title, validate_meta
from kb.ingest.normalize import normalize_body, normalize_line
from kb.types import KNOWN_META_KEYS

DEFAULT_MAX_BYTES = 50 * 2**20
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
OVERRIDE_KEYS = ("title", "issuer", "doc_no", "level", "region", "published", "valid_from", "valid_until",
                 "status", "doc_type", "source")
# Metadata that describes one particular document; the others may describe a whole batch (`kb add`, admin upload).
PER_FILE_KEYS = ("title", "doc_no", "published", "valid_from", "valid_until", "source")
# Fields looked for in every document; the ones still empty are reported as missing.
SEARCHED_KEYS = ("title", "doc_no", "published", "issuer", "level", "status")
SUPPORTED_SUFFIXES = (".txt", ".html", ".htm", ".docx", ".pdf", ".md")
_HINTS = {
    ".doc": "save it as .docx first",
    ".wps": "save it as .docx first",
    ".rtf": "save it as .docx first",
    ".ofd": "export it as PDF first",
    ".xls": "copy the text into a .docx or .txt first",
    ".xlsx": "copy the text into a .docx or .txt first",
}


@dataclass(frozen=True)
class IngestResult:
    """A converted document: the corpus text to write, its parts, and what could not be found."""

    source: Path
    doc_text: str
    meta: dict[str, str]
    body: str
    missing: tuple[str, ...]
    warnings: tuple[str, ...]
    suggested_name: str
    alternate_name: str = ""  # the name to use when another version already takes `suggested_name`


def _readers() -> dict[str, Callable[[bytes, str], Extraction]]:
    # Imported here so `kb` starts fast and a reader's library is loaded only when needed.
    from kb.ingest.docx import read_docx
    from kb.ingest.html import read_html
    from kb.ingest.pdf import read_pdf
    from kb.ingest.text import read_text

    return {".txt": read_text, ".html": read_html, ".htm": read_html, ".docx": read_docx, ".pdf": read_pdf}


def _size_text(n: int) -> str:
    if n >= 2**20 and n % 2**20 == 0:
        return f"{n // 2**20} MB"
    if n >= 2**20:
        return f"{n / 2**20:.1f} MB"
    return f"{n} bytes"


def _check_size(size: int, max_bytes: int, name: str) -> None:
    if size > max_bytes:
        raise IngestError(f"{name}: the file is {_size_text(size)}, over the limit of {_size_text(max_bytes)}")


def _check_suffix(filename: str, name: str) -> str:
    suffix = Path(filename).suffix.lower()
    if suffix in SUPPORTED_SUFFIXES:
        return suffix
    hint = _HINTS.get(suffix)
    kind = f"{suffix} files are" if suffix else "files without an extension are"
    raise IngestError(f"{name}: {kind} not supported ({hint}); supported: {', '.join(SUPPORTED_SUFFIXES)}"
                      if hint else f"{name}: {kind} not supported; supported: {', '.join(SUPPORTED_SUFFIXES)}")



def clean_overrides(overrides: dict[str, str] | None, name: str) -> dict[str, str]:
    """Return the non-empty overrides, stripped; raises IngestError for unknown keys or bad values."""
    cleaned: dict[str, str] = {}
    for key, value in (overrides or {}).items():
        if value is None or not str(value).strip():
            continue
        if key not in OVERRIDE_KEYS and key not in KNOWN_META_KEYS:
            raise IngestError(f"{name}: unknown metadata field {key!r}; known: {', '.join(OVERRIDE_KEYS)}")
        cleaned[key] = " ".join(str(value).split())
    problems = validate_meta(cleaned)
    if problems:
        raise IngestError(f"{name}: {'; '.join(problems)}")
    return cleaned


def ingest_file(path: Path, overrides: dict[str, str] | None = None, *,
                max_bytes: int = DEFAULT_MAX_BYTES) -> IngestResult:
    """Convert one raw file on disk; the size is checked before any of it is read.

    Raises IngestError (naming the file) for anything the user can fix.
    """
    path = Path(path)
    name = str(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise IngestError(f"{name}: file not found") from None
    except OSError as exc:
        raise IngestError(f"{name}: cannot read ({exc.strerror})") from exc
    if not stat.S_ISREG(info.st_mode):
        raise IngestError(f"{name}: not a regular file")
    _check_suffix(path.name, name)
    _check_size(info.st_size, max_bytes, name)
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise IngestError(f"{name}: cannot read ({exc.strerror})") from exc
    _check_size(len(data), max_bytes, name)  # it may have grown since stat()
    return _ingest(data, path.name, name, path, overrides)


def ingest_bytes(data: bytes, filename: str, overrides: dict[str, str] | None = None, *,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> IngestResult:
    """Convert one raw file given as bytes (a web upload); `filename` gives its type and name."""
    base = re.split(r"[\\/]", filename)[-1] or "upload"
    _check_suffix(base, base)
    _check_size(len(data), max_bytes, base)
    return _ingest(bytes(data), base, base, Path(base), overrides)


def _strip_title_lines(lines: list[str], title: str) -> list[str]:
    """Remove the leading line(s) that spell out `title` (a title the format already gave)."""
    target = re.sub(r"\s+", "", title)
    nonblank = [i for i, line in enumerate(lines) if line.strip()][:10]
    for a, start in enumerate(nonblank):
        joined = ""
        for stop in nonblank[a:a + 4]:
            joined += re.sub(r"\s+", "", lines[stop].lstrip("#"))
            if joined == target:
                return lines[:start] + lines[stop + 1:]
            if not target.startswith(joined):
                break
    return lines


def _ingest(data: bytes, filename: str, name: str, source: Path,
            overrides: dict[str, str] | None) -> IngestResult:
    suffix = _check_suffix(filename, name)
    cleaned = clean_overrides(overrides, name)
    digest = hashlib.sha256(data).hexdigest()
    if suffix == ".md" and _has_front_matter(data):
        return _ingest_markdown(data, filename, name, source, cleaned)
    reader = _readers()[".txt" if suffix == ".md" else suffix]  # Markdown without front matter is text
    extraction = reader(data, name)
    raw_lines = extraction.body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if looks_like_law(raw_lines, normalize_line(extraction.title, halfwidth=False)):
        return _ingest_law(raw_lines, extraction, filename, name, source, cleaned, digest)
    body, removed = normalize_body(extraction.body)
    warnings = list(extraction.warnings)
    if removed:
        warnings.append(f"removed {removed} stray control character(s)")
    lines = body.split("\n")

    title = normalize_line(extraction.title)
    if title:
        lines = _strip_title_lines(lines, title)
    else:
        split = find_title(lines)
        if split is not None:
            title = split.title
            if not cleaned.get("title") or re.sub(r"\s+", "", cleaned["title"]) == re.sub(r"\s+", "", title):
                del lines[split.start:split.end]
    found = find_metadata(lines)
    warnings.extend(found.notes)
    final_title = cleaned.get("title") or title
    if not final_title:
        raise IngestError(f"{name}: no title found in the text (the first line is a paragraph); "
                          "give one with --title")
    body, _ = normalize_body("\n".join(lines))
    if not body.strip():
        raise IngestError(f"{name}: no text found besides the title")

    labelled, fallback = extraction.labelled, extraction.fallback
    meta: dict[str, str] = {"title": final_title}
    meta["issuer"] = cleaned.get("issuer") or labelled.get("issuer") or found.issuer
    meta["doc_no"] = (cleaned.get("doc_no") or labelled.get("doc_no") or found.doc_no
                      or _doc_no_in_title(final_title))
    meta["level"] = cleaned.get("level") or guess_level(meta["issuer"])
    meta["region"] = cleaned.get("region", "")
    meta["doc_type"] = cleaned.get("doc_type", "")
    meta["published"] = cleaned.get("published") or labelled.get("published") or found.published
    if not meta["published"] and fallback.get("published"):
        meta["published"] = fallback["published"]
        warnings.append("published is the web page's publication date; no signed date was found in the text")
    meta["valid_from"] = cleaned.get("valid_from") or labelled.get("valid_from", "")
    meta["valid_until"] = cleaned.get("valid_until") or labelled.get("valid_until", "")
    meta["status"] = cleaned.get("status") or status_from_title(final_title)
    meta["source"] = cleaned.get("source") or labelled.get("source", "")
    for key, value in cleaned.items():
        meta.setdefault(key, value)
    meta["source_file"] = filename
    meta["source_sha256"] = digest
    meta = {k: v for k, v in meta.items() if v}
    problems = validate_meta(meta)
    if problems:  # extracted values are built valid; this guards the code, not the user
        raise AssertionError(f"{name}: extracted metadata invalid: {problems}")
    return _result(source, meta, body, warnings)


def _has_front_matter(data: bytes) -> bool:
    """True when a Markdown file starts with a '---' front-matter line (a corpus document)."""
    head = data.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")[:8]
    return head.startswith(b"---")


def _ingest_law(lines: list[str], extraction: Extraction, filename: str, name: str, source: Path,
                cleaned: dict[str, str], digest: str) -> IngestResult:
    """Convert a law or regulation in its published form (see kb/ingest/law.py)."""
    law = parse_law(lines, filename, normalize_line(extraction.title, halfwidth=False))
    title = cleaned.get("title") or law.title
    if not title:
        raise IngestError(f"{name}: no title found before the first article; give one with --title")
    body, removed = _CONTROL_CHARS.subn("", law.body)
    if not body.strip():
        raise IngestError(f"{name}: no text found besides the title")
    warnings = list(extraction.warnings) + list(law.notes)
    if removed:
        warnings.append(f"removed {removed} stray control character(s)")
    meta = {**law.meta, **cleaned, "title": title}
    if cleaned.get("valid_from"):
        meta.pop("valid_from_note", None)
    meta["source_file"] = filename
    meta["source_sha256"] = digest
    problems = validate_meta(meta)
    if problems:
        raise IngestError(f"{name}: {'; '.join(problems)}")
    version = meta.get("published", "")
    result = _result(source, meta, body, warnings, name=law_slug(title, version))
    if len(version) == 10:
        result = replace(result, alternate_name=law_slug(title, "")[:MAX_SLUG] + "-" + version)
    return result


def _doc_no_in_title(title: str) -> str:
    match = re.search(r"[（(]([^（）()]*[〔\[【［(（]\s*\d{4}\s*[〕\]】］)）]\s*\d+\s*号)[）)]\s*$", title)
    return normalize_doc_no(match.group(1)) if match else ""


def _corpus_stem(stem: str) -> str:
    """Return a file stem the corpus reader does not skip (it leaves README.md to describe the folder)."""
    return f"{stem}-doc" if stem.lower() == "readme" else stem


def _result(source: Path, meta: dict[str, str], body: str, warnings: list[str], *,
            doc_text: str | None = None, name: str | None = None) -> IngestResult:
    missing = tuple(k for k in SEARCHED_KEYS if not meta.get(k))
    text = doc_text if doc_text is not None else render_document(meta, body)
    return IngestResult(
        source=source,
        doc_text=text,
        meta=meta,
        body=body,
        missing=missing,
        warnings=tuple(dict.fromkeys(warnings)),
        suggested_name=_corpus_stem(name or slugify(meta.get("doc_no") or meta["title"])),
    )


def _ingest_markdown(data: bytes, filename: str, name: str, source: Path,
                     cleaned: dict[str, str]) -> IngestResult:
    try:  # the same checks `kb build` makes when it reads the corpus
        text, meta, body = decode_corpus_text(data.removeprefix(b"\xef\xbb\xbf"), name)
    except CorpusError as exc:
        raise IngestError(str(exc)) from exc
    problems = validate_meta(meta)
    if problems:
        raise IngestError(f"{name}: {'; '.join(problems)}")
    if not body.strip():
        raise IngestError(f"{name}: the document has front matter but no text")
    doc_text: str | None = text if text.endswith("\n") else text + "\n"
    if cleaned:
        meta = {**meta, **cleaned}
        doc_text = None
    # A corpus file keeps its own stem: its doc_id is derived from it.
    return _result(source, meta, body, [], doc_text=doc_text, name=slugify(Path(filename).stem))


def keep_in_trash(path: Path) -> Path:
    """Link (or copy) `path` into `.trash/` beside it under a name that never replaces an earlier one.

    Returns the path in the trash; the corpus reader skips hidden folders, so it is never indexed.
    """
    trash = path.parent / ".trash"
    trash.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        target = trash / f"{path.stem}.{stamp}{'' if n == 0 else f'-{n}'}{path.suffix}"
        try:
            os.link(path, target)  # fails if the name is taken: nothing is overwritten
        except FileExistsError:
            continue
        except OSError:  # no hard links on this file system
            if target.exists():
                continue
            shutil.copy2(path, target)
        return target
    raise OSError(f"no free name in {trash}")


def write_to_corpus(result: IngestResult, corpus_dir: Path, *, overwrite: bool = False) -> Path:
    """Write `result` as `<corpus_dir>/<suggested_name>.md` atomically and return that path.

    An identical existing file is left alone; a different one is replaced only with
    `overwrite`. The text goes to a temporary file in the same folder first, then
    os.replace, so readers never see a partial file.
    """
    corpus_dir = Path(corpus_dir)
    target = corpus_dir / f"{result.suggested_name}.md"
    payload = result.doc_text.encode("utf-8")
    try:
        corpus_dir.mkdir(parents=True, exist_ok=True)
        if target.exists():
            if target.is_file() and target.read_bytes() == payload:
                return target
            if not overwrite:
                raise IngestError(f"{target}: already exists with different content; "
                                  "use --overwrite to replace it")
            if target.is_file():
                keep_in_trash(target)  # replaced, never lost: the old text stays in .trash/ as remove does
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=corpus_dir)
    except OSError as exc:
        raise IngestError(f"{target}: cannot write ({exc.strerror})") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise IngestError(f"{target}: cannot write ({exc.strerror})") from exc
        raise
    return target


def same_source(corpus_dir: Path, result: IngestResult) -> Path | None:
    """Return another corpus file converted from the same original file, if any."""
    digest = result.meta.get("source_sha256")
    if not digest or not corpus_dir.is_dir():
        return None
    own = corpus_dir / f"{result.suggested_name}.md"
    needle = f"source_sha256: {digest}"
    for path in sorted(corpus_dir.glob("*.md")):
        if path == own:
            continue
        try:
            with path.open(encoding="utf-8", errors="replace") as handle:
                head = handle.read(4096)
        except OSError:
            continue
        if needle in head:
            return path
    return None
