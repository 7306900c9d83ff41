"""Query understanding and the policy thesaurus (format, and every target term is real vocabulary)."""

from __future__ import annotations

from importlib import resources

import pytest

from kb.corpus import read_corpus
from kb.query import NEEDS, ThesaurusError, parse_thesaurus, thesaurus, understand
from kb.segment import Segmenter, normalize, user_dictionary_words

from conftest import CORPUS, SHARED, shared_available


def _thesaurus_entries():
    return parse_thesaurus((resources.files("kb") / "data" / "thesaurus.tsv").read_text(encoding="utf-8"))


def test_thesaurus_format():
    entries = _thesaurus_entries()
    assert len(entries) >= 80
    sources = [e.source for e in entries]
    assert len(sources) == len(set(sources)), "duplicate source words"
    for e in entries:
        assert e.need == "" or e.need in NEEDS


def test_thesaurus_targets_are_real_vocabulary():
    """Every target is in the corpora (corpus/, plus ../shared/corpora when present) or the jieba dictionary."""
    corpora = [CORPUS] + [p for p in (SHARED / "corpora").glob("*") if p.is_dir()]
    corpus_text = normalize("\n".join(d.body for d in read_corpus(corpora)))
    seg = Segmenter()
    jieba_words = set(user_dictionary_words())
    tok = seg._get()
    missing = []
    for e in _thesaurus_entries():
        for target in e.targets:
            if normalize(target) not in corpus_text and target not in jieba_words and target not in tok.FREQ:
                missing.append((e.source, target))
    if missing and not shared_available():
        pytest.skip(f"needs ../shared/corpora: targets not in corpus/ nor the jieba dictionary: "
                    f"{sorted({t for _, t in missing})}")
    assert not missing, f"thesaurus targets found neither in the corpus nor in the jieba dictionary: {missing}"


def test_thesaurus_errors_name_the_line():
    with pytest.raises(ThesaurusError, match="line 2"):
        parse_thesaurus("贷款\t融资\tfinancing\n只有一列\n")
    with pytest.raises(ThesaurusError, match="unknown need"):
        parse_thesaurus("贷款\t融资\tmoney\n")


def test_understanding_of_an_enterprise_question():
    u = understand("我们是连云港的制造业小企业，想贷款，有什么支持", regions=("连云港", "江苏"))
    assert "financing" in u.needs
    assert "连云港" in u.regions
    terms = {e.term for e in u.expansions}
    assert "融资" in terms and "中小企业" in terms
    assert all(e.weight < 1 for e in u.expansions)  # expansions weigh less than the user's own words


def test_understanding_of_document_and_clause_references():
    u = understand("2022年政府工作报告关于《优质中小企业梯度培育管理暂行办法》第三条", doc_types=("政府工作报告",))
    assert u.years == (2022,)
    assert u.doc_types == ("政府工作报告",)
    assert u.titles == ("优质中小企业梯度培育管理暂行办法",)
    assert u.clause_refs == ("三条",)
    assert understand("市里有什么政策").levels == ("municipal",)
    assert understand("小巨人企业有哪些奖励").tiers == ("专精特新小巨人",)
    assert understand("贷款", expand=False).expansions == ()


def test_longest_thesaurus_word_wins():
    u = understand("想上数控设备")
    assert [e.source for e in u.expansions][0] == "数控设备"
    assert thesaurus()[0].source == max((e.source for e in thesaurus()), key=len)
