"""Text normalisation and segmentation: one owned `jieba.Tokenizer` with the policy dictionary.

Produces two token streams for the lexical channels: jieba words (search mode,
stop words and punctuation removed) and character bigrams (robust to
segmentation differences and abbreviations).
"""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
import threading
from functools import lru_cache
from importlib import resources
from pathlib import Path

from kb.text import compact, fold  # noqa: F401  (compact: read from here too)

SEGMENTER_VERSION = "2"

_KEEP_RE = re.compile(r"[0-9a-z\u3400-\u9fff\uf900-\ufaff%.]+")
_CJK_OR_ALNUM = re.compile(r"[0-9a-z\u3400-\u9fff\uf900-\ufaff]")
# the A-not-A question form (能不能, 是不是, 可不可以, 需不需要): one token, whatever jieba's dictionary
# joins across it (能不能自己 would be 能 + 不能自己, 能不能不 能 + 不能不)
_A_NOT_A = re.compile(r"([\u3400-\u9fff])不\1")


normalize = fold  # NFKC + lower case (kb/text.py); the name the segmenting stages use


def _data_file(name: str) -> Path:
    return Path(str(resources.files("kb") / "data" / name))


@lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    """Return the stop-word set kept in `kb/data/stopwords.txt`."""
    lines = _data_file("stopwords.txt").read_text(encoding="utf-8").splitlines()
    return frozenset(w.strip() for w in lines if w.strip() and not w.startswith("#"))


def user_dictionary_words() -> list[str]:
    """Return the words of the policy user dictionary."""
    lines = _data_file("userdict.txt").read_text(encoding="utf-8").splitlines()
    return [ln.split()[0] for ln in lines if ln.strip() and not ln.startswith("#")]


class Segmenter:
    """Owns a jieba Tokenizer loaded with the policy user dictionary (lazily, thread-safe)."""

    def __init__(self, extra_words: list[str] | None = None) -> None:
        self._extra = list(extra_words or [])
        self._lock = threading.Lock()
        self._tokenizer = None

    @property
    def version(self) -> str:
        """Identify segmentation behaviour: code version plus dictionary contents."""
        digest = hashlib.sha1()
        digest.update(_data_file("userdict.txt").read_bytes())
        digest.update(_data_file("stopwords.txt").read_bytes())
        digest.update("\n".join(self._extra).encode("utf-8"))
        return f"{SEGMENTER_VERSION}-{digest.hexdigest()[:10]}"

    def _get(self):
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    import jieba

                    jieba.setLogLevel(logging.WARNING)
                    tok = jieba.Tokenizer()
                    tok.tmp_dir = tempfile.gettempdir()
                    tok.initialize()
                    tok.load_userdict(str(_data_file("userdict.txt")))
                    for word in self._extra:
                        tok.add_word(word)
                    self._tokenizer = tok
        return self._tokenizer

    def words(self, text: str) -> list[str]:
        """Return search-mode jieba words of normalised text, without stop words or punctuation."""
        stops = stop_words()
        out: list[str] = []
        for tok in self._get().cut_for_search(normalize(text), HMM=True):
            tok = tok.strip()
            if not tok or tok in stops or not _CJK_OR_ALNUM.search(tok):
                continue
            out.append(tok)
        return out

    def cut(self, text: str) -> list[str]:
        """Return every precise-mode jieba token of normalised text, punctuation and spaces included (they join back to it)."""
        return self._get().lcut(normalize(text), HMM=True)

    def cut_question(self, text: str) -> list[str]:
        """Return `cut` tokens of a question, with words jieba's HMM made up re-cut by the dictionary alone.

        On everyday phrasing the HMM glues characters into words no dictionary has (税交多 of
        税交多了, 招人时); those are re-cut without it (税/交/多, 招人/时). The tokens still join
        back to the text. The index is not affected (its words come from `words`).
        """
        text = normalize(text)
        out: list[str] = []
        last = 0
        for m in _A_NOT_A.finditer(text):  # the text around an A-not-A form is cut on its own
            out.extend(self._cut_everyday(text[last:m.start()]))
            out.append(m.group(0))
            last = m.end()
        out.extend(self._cut_everyday(text[last:]))
        return out

    def _cut_everyday(self, text: str) -> list[str]:
        if not text:
            return []
        tok = self._get()
        out: list[str] = []
        for t in tok.lcut(text, HMM=True):
            if len(t) >= 2 and not tok.FREQ.get(t) and _CJK_OR_ALNUM.search(t) and not t.isascii():
                parts = tok.lcut(t, HMM=False)
                if len(parts) > 1:
                    out.extend(parts)
                    continue
            out.append(t)
        return out

    def precise_words(self, text: str) -> list[str]:
        """Return precise-mode jieba words of normalised text, stop words kept, punctuation removed."""
        return [w for w in (t.strip() for t in self.cut(text)) if w and is_word(w)]

    def content_words(self, text: str) -> list[str]:
        """Return precise-mode words of two or more characters, without stop words (what a question is about)."""
        stops = stop_words()
        return [w for w in self.precise_words(text) if len(w) >= 2 and w not in stops]


def is_word(token: str) -> bool:
    """True when a token has a CJK character, a letter or a digit (not punctuation or space)."""
    return bool(_CJK_OR_ALNUM.search(token))


def bigrams(text: str) -> list[str]:
    """Return overlapping character bigrams within runs of CJK/alphanumeric characters.

    ASCII words and numbers stay whole tokens so "2025" is not split into "20", "02".
    """
    out: list[str] = []
    for run in _KEEP_RE.findall(normalize(text)):
        pieces = re.findall(r"[0-9a-z%.]+|[\u3400-\u9fff\uf900-\ufaff]", run)
        if len(pieces) == 1:
            out.append(pieces[0])
            continue
        out.extend(a + b for a, b in zip(pieces, pieces[1:]))
    return out
