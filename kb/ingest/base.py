"""Shared records of the ingest stage: the user-facing error and what a format reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field


class IngestError(ValueError):
    """A raw file a user supplied cannot be turned into a corpus document; the message says why."""


@dataclass(frozen=True)
class Extraction:
    """What a format reader found in one raw file, before metadata extraction.

    `body` is text with one paragraph per line (tables as Markdown); `title` is a
    title the format itself marks (Word "Title" style, an HTML heading, the
    leading lines of a PDF), or "" when it must be found in the text. `labelled`
    holds metadata the file states explicitly (an HTML info box 发文字号/成文日期);
    `fallback` holds weaker hints (a web page's publication date) used only when
    the text yields nothing.
    """

    body: str
    title: str = ""
    labelled: dict[str, str] = field(default_factory=dict)
    fallback: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
