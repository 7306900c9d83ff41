"""Answer slots: the kind of value a question asks for, and which chunks state a value of that kind.

Classic question answering matches the answer type of a question to text that can fill it. Two
types matter for enterprises' questions about statutes and plans, and both are visible on the
surface of the text:

- **time**: how long, by when (多久, 几年, 多少天, 什么时候, 截止) — a chunk states a time span or
  a date (十年, 三个月, 三十日内, 15个工作日, 次年三月三十一日, 之日起, 期限, 届满);
- **quantity**: how much, what share (多少, 多少钱, 几成, 百分之几, 几倍, 最多, 上限) — a chunk states an
  amount of money, a percentage, a multiple or a numeric limit (五百万元, 12%, 百分之五十, 三倍,
  不超过80人).

The question patterns are the interrogatives of kb/data/answer_types.tsv (duration, time, amount,
proportion) and the bare quantity interrogatives; the chunk patterns are the way Chinese drafting
writes numbers and units. Neither was written from any question set. A chunk's slots are found
once, at build time, from its own text (not the title or headings, which hold 三年行动计划), and
stored as one byte per chunk (`slots.npy`); the search multiplies the score of chunks holding the
asked-for kind of value by 1 + Tuning.slot_weight. Nothing here reads the index.
"""

from __future__ import annotations

import re

import numpy as np

SLOTS_VERSION = "1"  # part of the build fingerprint: change it when a pattern changes
TIME, QUANTITY = "time", "quantity"
BITS = {TIME: 1, QUANTITY: 2}

# a count in Chinese or Arabic digits, never a four-digit year (2025年 is a date in a title, not a span)
_NUM = r"(?:(?<![0-9])[0-9]{1,3}(?:\.[0-9]+)?(?![0-9])|[一二三四五六七八九十百两半]+)"
_CHUNK = {
    TIME: re.compile(
        rf"{_NUM}个?(?:工作日|日|天|周|个月|年)|{_NUM}月{_NUM}日|期限|之日起|届满|日内"),
    QUANTITY: re.compile(
        rf"[0-9一二三四五六七八九十百千万亿.]+(?:万元|亿元|元)|[0-9.]+[%％]|百分之[一二三四五六七八九十百零点]+"
        rf"|{_NUM}倍|(?:不超过|不低于|不少于|未超过|超过|低于)[0-9一二三四五六七八九十百千万亿]+"),
}
# interrogatives, longest first where one holds another; time is tested first (多少天 asks for a span)
_QUESTION = {
    TIME: re.compile(r"多久|多长时间|多长|几年|几个月|几天|几日|多少天|多少年|多少个月|多少日|什么时候|啥时候|何时"
                     r"|哪天|几号|几月几号|截止|期限多长|有效期多长"),
    QUANTITY: re.compile(r"多少|几成|百分之几|什么比例|多大比例|几倍|上限|最多|最高|多大"),
}


def question_slot(text: str) -> str | None:
    """Return the kind of value a (normalised) question asks for: TIME, QUANTITY or None."""
    for kind in (TIME, QUANTITY):
        if _QUESTION[kind].search(text):
            return kind
    return None


def chunk_slots(text: str) -> int:
    """Return the slot bits of one chunk's own text (BITS[kind] set when it states such a value)."""
    return sum(bit for kind, bit in BITS.items() if _CHUNK[kind].search(text))


def slot_bits(texts: list[str]) -> np.ndarray:
    """Return one byte of slot bits per chunk text (what a build stores as slots.npy)."""
    return np.fromiter((chunk_slots(t) for t in texts), dtype=np.uint8, count=len(texts))


def slot_mask(bits: np.ndarray | None, kind: str | None) -> np.ndarray | None:
    """Return a 0/1 float array of the chunks stating a value of `kind`, or None (no kind, or no bits in the build)."""
    if bits is None or kind is None:
        return None
    return ((bits & BITS[kind]) > 0).astype(np.float32)
