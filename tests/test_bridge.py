"""The vocabulary bridge data (kb/data/bridge.tsv, frames.tsv, terms.tsv) and its loader kb/bridge.py."""

from __future__ import annotations

from importlib import resources

import pytest

from kb import bridge
from kb.bridge import BRIDGE_COLUMNS, BridgeError, KINDS, parse_bridge, parse_frames
from kb.query import NEEDS
from kb.segment import normalize
from tests.conftest import CORPUS, SHARED

LAWS = SHARED / "raw" / "national-laws"


def _data(name: str) -> str:
    return (resources.files("kb") / "data" / name).read_text(encoding="utf-8")


def _rows(name: str) -> list[list[str]]:
    lines = [ln for ln in _data(name).splitlines() if ln.strip() and not ln.startswith("#")]
    return [ln.split("\t") for ln in lines[1:]]  # first line is the header


def _corpus_text() -> str:
    texts = [p.read_text(encoding="utf-8") for p in sorted(CORPUS.glob("*.md"))]
    if LAWS.is_dir():
        texts += [p.read_text(encoding="utf-8") for p in sorted(LAWS.glob("*.md")) if p.name != "README.md"]
    return normalize("\n".join(texts))


def test_bridge_file_format():
    lines = [ln for ln in _data("bridge.tsv").splitlines() if ln.strip() and not ln.startswith("#")]
    assert tuple(lines[0].split("\t")) == BRIDGE_COLUMNS
    rows = _rows("bridge.tsv")
    assert len(rows) > 100
    for row in rows:
        assert len(row) == len(BRIDGE_COLUMNS), row
        form, term, weight, kind, provenance, need = row
        assert form.strip() == form and form and term.strip() == term and term
        assert 0 < float(weight) <= 1, row
        assert kind in KINDS, row
        assert provenance in {"inventory-manual", "rule", "rule+lexicon", "cilin"}, row
        assert need == "" or need in NEEDS, row


def test_no_self_maps_and_no_duplicate_rows():
    rows = _rows("bridge.tsv")
    assert all(normalize(form) != normalize(term) for form, term, *_ in rows)
    pairs = [(form, term) for form, term, *_ in rows]
    assert len(pairs) == len(set(pairs))


def test_every_term_occurs_in_the_corpus_texts():
    text = _corpus_text()
    terms = {term for _form, term, *_ in _rows("bridge.tsv")}
    if not LAWS.is_dir():
        # Without the laws only the seed can be checked; the terms from the seed must still be there.
        seeded = [t for t in terms if normalize(t) in text]
        assert seeded, "no bridge term occurs in corpus/"
        pytest.skip("../shared/raw/national-laws is not present; checked the seed's terms only")
    missing = sorted(t for t in terms if normalize(t) not in text)
    assert not missing, f"bridge terms not in corpus/ or the national laws: {missing[:20]}"


def test_the_user_words_weigh_more_than_expansions():
    rows = _rows("bridge.tsv")
    by_prov = {}
    for _f, _t, weight, _k, provenance, _n in rows:
        by_prov.setdefault(provenance, set()).add(float(weight))
    assert max(max(ws) for ws in by_prov.values()) < 1.0
    # Cilin synonyms are the least sure source: always below the hand-written forms.
    if "cilin" in by_prov and "inventory-manual" in by_prov:
        assert max(by_prov["cilin"]) < min(by_prov["inventory-manual"])


def test_loader_expansions_and_everyday_forms():
    b = bridge.load_bridge()
    assert b is bridge.load_bridge()  # cached
    e = b.entries[0]
    got = bridge.expansions(e.everyday_form)
    assert (e.term, e.weight, e.kind, e.provenance) in got
    assert (e.everyday_form, e.weight) in bridge.everyday_forms(e.term)
    assert bridge.expansions("这不是一个词语xyz") == ()
    assert bridge.everyday_forms("这不是一个词语xyz") == ()
    forms = bridge.everyday_form_list()
    assert len(forms[0]) >= len(forms[-1])


def test_known_abbreviations_come_from_the_rules():
    assert ("个体工商户", 0.6, "abbrev", "rule+lexicon") in bridge.expansions("个体户")
    assert any(t == "民营企业" and k == "abbrev" for t, _w, k, _p in bridge.expansions("民企"))


def test_frames():
    frames = bridge.frame_words()
    assert frames["有没有"] == "frame" and frames["请问"] == "stop"
    assert set(frames.values()) <= {"frame", "stop"}
    # A frame word is never an everyday form of a term (it would bring content into a frame).
    assert not set(frames) & set(bridge.load_bridge().by_form)


def test_terms_inventory_format():
    lines = [ln for ln in _data("terms.tsv").splitlines() if ln.strip() and not ln.startswith("#")]
    header = lines[0].split("\t")
    assert header[:3] == ["term", "freq", "docs"]
    rows = [ln.split("\t") for ln in lines[1:]]
    assert len(rows) > 500
    assert len({r[0] for r in rows}) == len(rows)
    assert all(len(r) == len(header) and int(r[1]) >= 2 for r in rows)


@pytest.mark.parametrize("text, message", [
    ("a\tb\n", "columns"),
    ("民企\t民营企业\tx\tabbrev\trule\t\n", "not a number"),
    ("民企\t民营企业\t1.5\tabbrev\trule\t\n", "outside"),
    ("民企\t民营企业\t0.5\tnickname\trule\t\n", "kind"),
    ("民企\t民营企业\t0.5\tabbrev\trule\tnosuchneed\n", "unknown need"),
])
def test_parse_bridge_names_the_bad_line(text, message):
    with pytest.raises(BridgeError, match=message):
        parse_bridge("# comment\n" + text, needs=frozenset(NEEDS))


def test_parse_frames_rejects_unknown_category():
    assert parse_frames("# c\n有没有\tframe\n") == {"有没有": "frame"}
    with pytest.raises(BridgeError, match="frames line 1"):
        parse_frames("有没有\tcontent\n")
