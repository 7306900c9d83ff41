"""Read and write corpus documents: `key: value` front matter between `---` lines, then text.

Owns doc_id assignment (stable, URL-safe, unique across several corpus folders)
and the per-document content hash.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from kb.types import Document, KNOWN_META_KEYS

FRONT_MATTER_FENCE = "---"
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_SLUG_RE = re.compile(r"[^a-z0-9]+")
DOC_ID_MAX_CHARS = 120  # what the /doc/<doc_id> route accepts (web/pages.py builds its pattern from this)
SLUG_MAX_CHARS = 100  # leaves room for the "-<hash>" assign_doc_ids may add to a colliding id


class CorpusError(ValueError):
    """A corpus file or folder a user supplied is unusable; the message says why."""


@dataclass(frozen=True)
class CorpusFile:
    """A corpus file found on disk, before parsing."""

    path: Path
    corpus_root: Path
    raw_hash: str


def parse_front_matter(text: str, *, name: str = "<text>") -> tuple[dict[str, str], str]:
    """Split a corpus document into (front matter dict, body).

    Raises CorpusError naming `name` when the block is missing or malformed.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if not lines or lines[0].strip() != FRONT_MATTER_FENCE:
        raise CorpusError(f"{name}: no front matter (the file must start with a '---' line)")
    meta: dict[str, str] = {}
    for i in range(1, len(lines)):
        line = lines[i].rstrip("\r")
        if line.strip() == FRONT_MATTER_FENCE:
            body = "\n".join(lines[i + 1:])
            if not meta.get("title", "").strip():
                raise CorpusError(f"{name}: front matter has no 'title'")
            return meta, body.lstrip("\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or not _KEY_RE.match(key):
            raise CorpusError(f"{name}: front matter line {i + 1} is not 'key: value': {line[:60]!r}")
        meta[key] = value.strip()
    raise CorpusError(f"{name}: front matter is not closed by a '---' line")


def render_document(meta: dict[str, str], body: str) -> str:
    """Return corpus-format text: known keys first in DESIGN.md order, then the rest."""
    if not str(meta.get("title", "")).strip():
        raise CorpusError("a corpus document needs a title")
    ordered = [k for k in KNOWN_META_KEYS if k in meta] + [k for k in meta if k not in KNOWN_META_KEYS]
    lines = [FRONT_MATTER_FENCE]
    for key in ordered:
        if not _KEY_RE.match(key):
            raise CorpusError(f"front-matter key {key!r} is not a plain identifier")
        value = " ".join(str(meta[key]).split())  # one line per key, always
        if value:
            lines.append(f"{key}: {value}")
    lines.append(FRONT_MATTER_FENCE)
    return "\n".join(lines) + "\n\n" + body.strip("\n") + "\n"


def content_hash(text: str) -> str:
    """Return the sha256 hex digest of a document's text (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def slugify(name: str) -> str:
    """Return a lowercase ASCII slug of at most SLUG_MAX_CHARS; non-ASCII or long names get a short hash
    so ids stay URL-safe, unique and within DOC_ID_MAX_CHARS."""
    norm = unicodedata.normalize("NFKC", name).lower()
    slug = _SLUG_RE.sub("-", norm).strip("-")
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:10]
    if not slug or any(ord(c) > 127 for c in norm if c.isalnum()):
        slug = f"{slug}-{digest}" if slug else f"doc-{digest}"
    if len(slug) > SLUG_MAX_CHARS:
        slug = f"{slug[:SLUG_MAX_CHARS - 11].rstrip('-')}-{digest}"
    return slug


def list_corpus_files(roots: list[Path]) -> list[CorpusFile]:
    """Return every `*.md` document under the given corpus folders, sorted for stability."""
    found: list[CorpusFile] = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise CorpusError(f"corpus folder not found: {root}")
        for path in sorted(root.rglob("*.md")):
            if path.name.lower() == "readme.md" or any(p.startswith(".") for p in path.relative_to(root).parts):
                continue
            raw = path.read_bytes()
            found.append(CorpusFile(path=path, corpus_root=root, raw_hash=hashlib.sha256(raw).hexdigest()))
    return found


def assign_doc_ids(files: list[CorpusFile]) -> dict[Path, str]:
    """Map each file to a doc_id: its slugged stem, or `<folder>-<stem>` where stems collide.

    The result depends only on the set of files, not their order, so ids are stable.
    """
    by_slug: dict[str, list[CorpusFile]] = {}
    for f in files:
        by_slug.setdefault(slugify(f.path.stem), []).append(f)
    ids: dict[Path, str] = {}
    for slug, group in by_slug.items():
        if len(group) == 1:
            ids[group[0].path] = slug
            continue
        for f in group:
            rel = f.path.relative_to(f.corpus_root).with_suffix("")
            candidate = slugify("-".join([f.corpus_root.resolve().name, *rel.parts]))
            ids[f.path] = candidate
    taken: dict[str, Path] = {}
    for path in sorted(ids):
        doc_id = ids[path]
        if doc_id in taken:  # still colliding: disambiguate by the full path
            doc_id = f"{doc_id}-{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"
            ids[path] = doc_id
        taken[doc_id] = path
    return ids


def decode_corpus_text(raw: bytes, name: str) -> tuple[str, dict[str, str], str]:
    """Return (text with normalised line ends, front matter, body) of a corpus file's bytes.

    Raises CorpusError naming `name` when it is not UTF-8 text with valid front matter.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{name}: not UTF-8 (byte {exc.start}); convert it with 'kb add'") from exc
    if "\x00" in text:
        raise CorpusError(f"{name}: contains NUL bytes; not a text document")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    meta, body = parse_front_matter(text, name=name)
    return text, meta, body


def read_document(path: Path, doc_id: str) -> Document:
    """Parse one corpus file into a Document; raises CorpusError with the file named."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read ({exc.strerror})") from exc
    text, meta, body = decode_corpus_text(raw, str(path))
    return Document(
        doc_id=doc_id,
        title=meta["title"].strip(),
        meta=tuple(meta.items()),
        body=body,
        content_hash=content_hash(text),
        source_path=os.fspath(path),
    )


def read_corpus(roots: list[Path]) -> list[Document]:
    """Read every document of the given corpus folders, with ids assigned."""
    files = list_corpus_files(roots)
    ids = assign_doc_ids(files)
    return [read_document(f.path, ids[f.path]) for f in files]
