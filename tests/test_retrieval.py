"""The retrieval stages on their own: floor and coverage (no index), question analysis, bridge matching,
fusion arithmetic and the bm25s adapter (a real bm25s model over a few made-up token lists)."""

from __future__ import annotations

import numpy as np
import pytest

from kb.retrieval import floor
from kb.retrieval.analysis import CONTENT, CUE, FRAME, Analyser
from kb.retrieval.fusion import Tuning, best_chunk_per_clause, combine, fuse_lexical, normalised, top_rows
from kb.retrieval.lexical import LexicalChannel
from kb.retrieval.vocabulary import BridgeTerm, Vocabulary, everyday_tokens
from kb.service import shared_segmenter

# -- floor -------------------------------------------------------------------------------------

T = floor.CoverageTerm


def test_coverage_is_the_idf_share_found():
    terms = [T("融资", 4.0, ("融资",)), T("担保", 2.0, ("担保", "融资担保"))]
    assert floor.coverage(terms, lambda tok: tok == "融资") == pytest.approx(4 / 6)
    assert floor.coverage(terms, lambda tok: tok == "融资担保") == pytest.approx(2 / 6)
    assert floor.coverage(terms, lambda tok: False) == 0.0
    assert floor.coverage([], lambda tok: True) == 0.0


def test_coverage_of_every_row_at_once_equals_coverage_row_by_row():
    import numpy as np

    holdings = {0: {"增值税", "免征"}, 1: {"银行", "贷款"}, 2: {"银行"}, 3: set()}
    terms = [T("增值税", 4.0, ("增值税",)), T("免税", 2.0, ("免税", "免征")), T("银行贷款", 3.0, (), parts=("银行", "贷款"))]

    def rows_with(tok):
        return np.array([r for r, toks in holdings.items() if tok in toks], dtype=np.int64)

    got = floor.coverage_rows(terms, rows_with, len(holdings))
    want = [floor.coverage(terms, lambda tok, r=r: tok in holdings[r]) for r in holdings]
    assert got == pytest.approx(want)
    assert got[0] == pytest.approx(6 / 9) and got[1] == pytest.approx(3 / 9) and got[3] == 0.0


def test_an_unknown_compound_counts_when_all_its_parts_are_there():
    term = T("银行贷款", 5.0, (), parts=("银行", "贷款"))
    assert floor.coverage([term], lambda tok: tok in {"银行", "贷款"}) == 1.0
    assert floor.coverage([term], lambda tok: tok == "银行") == 0.0


def _judge(terms, cov, dense=0.0, exact=False):
    return floor.judge(terms, cov, dense, min_coverage=0.34, offtopic_coverage=0.75, min_dense=0.5, exact=exact)


def test_a_question_with_a_policy_word_is_always_answered():
    terms = [T("增值税", 4.0, ("增值税",), topical=True), T("农户", 6.0, ("农户",))]
    assert _judge(terms, 0.9).confidence == floor.HIGH
    low = _judge(terms, 0.1)
    assert low.confidence == floor.LOW and low.message
    assert _judge(terms, 0.1, dense=0.6).confidence == floor.HIGH


def test_a_question_without_policy_words_is_refused_unless_it_matches_well():
    terms = [T("葡萄", 8.0, ("葡萄",)), T("狗狗", 5.0, ("狗狗",), known=False)]
    assert _judge(terms, 0.6).confidence == floor.NONE
    assert _judge(terms, 0.8).confidence == floor.HIGH
    assert _judge(terms, 0.6, dense=0.7).confidence == floor.HIGH


def test_an_everyday_form_makes_a_question_topical_only_when_most_of_it_is_known():
    # 退 (an everyday form of 退还) among words the corpus uses: answered; 医院 among words it never
    # uses (宝宝, 发烧): refused
    real = [T("退", 3.0, ("退", "退还"), everyday=True), T("多缴", 4.0, ("多缴",))]
    assert _judge(real, 0.5).confidence != floor.NONE
    nonsense = [T("医院", 3.0, ("医院",), everyday=True), T("宝宝", 5.0, (), known=False), T("发烧", 5.0, (), known=False)]
    assert _judge(nonsense, 0.5).confidence == floor.NONE


def test_nothing_known_is_refused_and_exact_matches_are_sure():
    unknown = [T("湖人队", 5.0, (), known=False)]
    assert _judge(unknown, 0.0).confidence == floor.NONE
    assert _judge([], 0.0).confidence == floor.NONE
    assert _judge(unknown, 0.0, exact=True).confidence == floor.HIGH
    assert floor.known_share([T("a", 1.0, ()), T("b", 3.0, (), known=False)]) == pytest.approx(0.25)


# -- vocabulary and analysis --------------------------------------------------------------------

VOCAB = Vocabulary(
    [BridgeTerm("民企", "民营企业", 0.6, "abbrev:rule"), BridgeTerm("欠款", "拖欠", 0.5, "colloquial:manual"),
     BridgeTerm("生意", "买卖", 0.36, "synonym:cilin")],
    {"有没有": "frame", "能不能": "frame", "要": "frame", "我们": "stop"},
    frozenset({"融资", "拖欠"}))


def test_long_everyday_forms_are_found_with_a_word_inserted():
    from kb.retrieval.vocabulary import _gapped_at

    vocab = Vocabulary([BridgeTerm("请客吃饭", "业务招待费", 0.5, "colloquial:manual")], {}, frozenset())
    assert [p.term for p in vocab.find_forms(["请", "客户", "吃饭"], "请客户吃饭")] == ["业务招待费"]
    assert _gapped_at("请客吃饭", "请客户吃饭", 0)
    assert not _gapped_at("请客吃饭", "请客户们去吃饭", 0)  # more than one character at a gap
    assert not _gapped_at("请客吃饭", "请 客吃饭", 0)  # a frame (a space here) is not skipped
    assert not _gapped_at("请客吃饭", "请客吃", 0)


def test_frames_match_whole_words_only():
    assert [m.text for m in VOCAB.find_frames(["能", "不能", "贷款"])] == ["能不能"]
    assert VOCAB.find_frames(["主要", "任务"]) == []  # 要 inside 主要 is not a frame
    assert [m.text for m in VOCAB.find_frames(["要", "贷款"])] == ["要"]


def test_everyday_forms_both_ways():
    found = VOCAB.find_forms(["民企", "有", "欠款"], "民企有欠款")
    assert [(p.form, p.term) for p in found] == [("民企", "民营企业"), ("欠款", "拖欠")]
    assert VOCAB.find_forms(["民营企业", "民企"], "民营企业民企") == []  # the question already says the term
    assert everyday_tokens(VOCAB, ["拖欠", "款项", "拖欠", "买卖"]) == ["欠款", "欠款"]  # Cilin pairs stay query-side
    assert {"民营企业", "民企", "融资", "拖欠"} <= VOCAB.policy_words
    assert "欠款" not in VOCAB.policy_words and "生意" not in VOCAB.policy_words  # everyday words stay everyday


def test_analysis_roles_expansions_and_clause_references():
    analyser = Analyser(shared_segmenter(), VOCAB)
    q = analyser.analyse("我们民企有没有拖欠问题，市里管吗", tuning=Tuning())
    roles = {w.text: w.role for w in q.words}
    assert roles["有没有"] == FRAME and roles["市里"] == CUE and roles["拖欠"] == CONTENT
    assert "有没有" not in q.user_words and "我们" not in [c.word for c in q.content]
    assert [(e.source, e.term, e.provenance) for e in q.expansions if e.provenance != "thesaurus"] == [
        ("民企", "民营企业", "abbrev:rule")]
    weights = dict(q.word_query)
    assert weights["拖欠"] == 1.0 and 0 < weights["民营企业"] < 1.0
    assert q.as_dict()["frames"] == ["有没有"]
    ref = analyser.analyse("《某某办法》第三条“专项资金”")
    assert ref.clause.phrases == ("专项资金",) and ref.clause.markers == ("article:3",) and ref.titles == ("某某办法",)
    assert ref.heading_text == "第三条“专项资金”"


def test_frames_and_bridge_can_be_switched_off():
    analyser = Analyser(shared_segmenter(), VOCAB)
    q = analyser.analyse("民企有没有欠款", tuning=Tuning(use_frames=False, bridge_weight=0.0))
    assert not q.frames and all(e.provenance == "thesaurus" for e in q.expansions)
    assert analyser.analyse("有没有", tuning=Tuning()).is_empty


# -- fusion and the lexical adapter -------------------------------------------------------------

def test_fusion_arithmetic():
    words, bigrams = np.array([2.0, 1.0, 0.0]), np.array([0.0, 4.0, 0.0])
    assert normalised(np.zeros(3)).tolist() == [0, 0, 0]
    fused = fuse_lexical(words, bigrams, None, Tuning(word_weight=0.6, bigram_weight=0.4))
    assert fused.tolist() == pytest.approx([0.6, 0.7, 0.0])
    hybrid = combine(fused, np.array([0.9, 0.1, 0.2]), "hybrid", Tuning(dense_weight=1.0, dense_floor=0.35))
    assert hybrid.tolist() == pytest.approx([1.6, 0.7, 0.0])  # dense above its floor, divided by its best
    assert top_rows(np.array([0.1, 0.5, 0.3]), 2).tolist() == [1, 2]
    best = best_chunk_per_clause(np.array([0.2, 0.9, 0.5, 0.0]), np.array([0, 0, 1, 2]), 5)
    assert best == {0: 1, 1: 2}  # clause 2 scores nothing


def test_lexical_channel_over_a_real_bm25s_model():
    import bm25s

    model = bm25s.BM25()
    model.index([["融资", "担保"], ["担保"], ["拖欠", "款项"]], show_progress=False)
    ch = LexicalChannel(model)
    assert ch.n_rows == 3 and ch.known("担保") and not ch.known("葡萄")
    assert ch.df("担保") == 2 and ch.idf("融资") > ch.idf("担保") and ch.idf("葡萄") is None
    assert ch.has("款项", 2) and not ch.has("款项", 0)
    scores = ch.scores({"融资": 1.0, "拖欠": 0.5, "葡萄": 1.0})
    assert scores[0] > 0 and scores[1] == 0 and 0 < scores[2]


def test_a_not_a_question_form_stays_one_frame_whatever_the_dictionary_joins_across_it():
    # made-up questions: jieba's dictionary has 不能自己 and 不能不, so 能不能自己 / 能不能不 came out as
    # 能 + 不能自己 / 能 + 不能不, and the frame 能不能 was never found; 可不可以 and 需不需要 still match as runs
    from kb.retrieval.analysis import Analyser
    from kb.segment import Segmenter

    seg = Segmenter()
    assert "不能自己" in seg.cut("小厂能不能自己定标准")
    for text, frame, content in (("小厂能不能自己定标准", "能不能", {"自己", "标准"}),
                                 ("协会硬拉我们入会能不能不加", "能不能", {"协会", "入会"}),
                                 ("个体户可不可以开发票", "可不可以", {"个体户", "开发票"}),
                                 ("新厂需不需要办环评", "需不需要", {"环评"})):
        tokens = seg.cut_question(text)
        assert "".join(tokens) == text
        q = Analyser(seg).analyse(text)
        roles = {w.text: w.role for w in q.words}
        assert roles.get(frame) == "frame", (text, roles)
        assert content <= {w.text for w in q.words if w.role == "content"}, (text, roles)
        assert not any("不" in w.text and w.role == "content" for w in q.words), (text, roles)
    assert seg.cut_question("防不胜防") == ["防不胜防"]  # no A-not-A form (胜 is not 防)


def test_question_words_jieba_makes_up_are_recut_and_one_character_bridge_words_count():
    # "上个月税交多了可以退吗" (made up): the HMM glues 税交多 into one made-up word; re-cut, 税 and 退 are content words
    # (the bridge knows them) and bring their corpus terms; 多, 了, 吗 stay stop words
    from kb.retrieval.analysis import Analyser
    from kb.segment import Segmenter

    seg = Segmenter()
    assert "税交多" in seg.cut("上个月税交多了可以退吗")
    assert "税交多" not in seg.cut_question("上个月税交多了可以退吗")
    assert "".join(seg.cut_question("上个月税交多了可以退吗")) == "上个月税交多了可以退吗"
    q = Analyser(seg).analyse("上个月税交多了可以退吗")
    roles = {w.text: w.role for w in q.words}
    assert roles["税"] == "content" and roles["退"] == "content" and roles["吗"] == "stop"
    terms = {e.term for e in q.expansions}
    assert {"退还", "税款"} <= terms


def test_an_interrogative_adds_the_drafting_words_of_its_answer_below_the_users_words():
    from kb.retrieval.analysis import Analyser
    from kb.retrieval.fusion import Tuning
    from kb.segment import Segmenter

    an = Analyser(Segmenter())
    q = an.analyse("发明专利保护多久")
    slots = {e.term: e for e in q.expansions if e.provenance == "answer-type"}
    assert "期限" in slots and slots["期限"].weight < 1.0
    weights = dict(q.word_query)
    assert weights["期限"] < weights["专利"]
    off = an.analyse("发明专利保护多久", tuning=Tuning(answer_type_weight=0.0))
    assert not any(e.provenance == "answer-type" for e in off.expansions)


# -- answer slots ------------------------------------------------------------------------------

def test_answer_slots_of_questions_and_of_real_clause_text():
    from kb.retrieval.slots import BITS, QUANTITY, TIME, chunk_slots, question_slot, slot_bits, slot_mask

    # questions written for this test
    assert question_slot("商标注册后能用多久") == TIME
    assert question_slot("多少天内要交") == TIME  # a span, though it says 多少
    assert question_slot("研发费用能多扣多少") == QUANTITY
    assert question_slot("怎么申请专利") is None
    # real clause text (专利法 第四十二条, 第四十三条; 保障中小企业款项支付条例 2025)
    term = "发明专利权的期限为二十年，实用新型专利权的期限为十年，外观设计专利权的期限为十五年，均自申请日起计算。"
    fee = "专利权人应当自被授予专利权的当年开始缴纳年费。"
    interest = "按照每日利率万分之五支付逾期利息"
    assert chunk_slots(term) & BITS[TIME] and not chunk_slots(term) & BITS[QUANTITY]
    assert chunk_slots(fee) == 0
    assert chunk_slots("处理期限最长不得超过90日") & BITS[TIME]
    assert not chunk_slots(interest) & BITS[TIME]
    # a year in a title is a date, not a span; a share is a quantity
    assert chunk_slots("连云港市专精特新企业培育三年行动计划（2022-2025年）") == BITS[TIME]  # 三年
    assert chunk_slots("2025年") == 0
    assert chunk_slots("在年度利润总额12％以内的部分") == BITS[QUANTITY]
    bits = slot_bits([term, fee])
    assert bits.dtype == np.uint8 and slot_mask(bits, TIME).tolist() == [1.0, 0.0]
    assert slot_mask(bits, None) is None and slot_mask(None, TIME) is None


def test_the_encoder_reads_at_most_the_first_characters_of_a_long_question():
    # made-up questions; the lexical channels still read all of a question, only the encoder's text is cut
    from kb.search import DENSE_QUERY_CHARS, dense_text

    analyser = Analyser(shared_segmenter())
    short = "小企业被拖欠货款怎么办"
    assert dense_text(analyser.analyse(short), short, Tuning()) == short
    long = "我们是一家做零部件配套的小企业，" * 40
    cut = dense_text(analyser.analyse(long[:500]), long[:500], Tuning())
    assert cut == long[:DENSE_QUERY_CHARS] and len(cut) == DENSE_QUERY_CHARS < 500
    with_terms = dense_text(analyser.analyse(long[:500]), long[:500], Tuning(dense_expansions=True))
    assert with_terms.startswith(cut)


def test_our_bm25_build_gives_bm25s_scores(tmp_path):
    # the index build counts terms with numpy (kb/retrieval/lexical.py); every score must be bm25s's own
    import bm25s

    from kb.retrieval.lexical import B, K1, save_bm25
    from kb.segment import Segmenter, bigrams

    from conftest import SEED_DOC

    seg = Segmenter()
    lines = [line for line in SEED_DOC.read_text(encoding="utf-8").splitlines()[12:] if line.strip()]
    for name, tokens in (("words", [seg.words(t) for t in lines] + [[]]), ("bigrams", [bigrams(t) for t in lines])):
        save_bm25(tokens, tmp_path / name)
        ours = bm25s.BM25.load(str(tmp_path / name))
        theirs = bm25s.BM25(k1=K1, b=B)
        theirs.index([t if t else [""] for t in tokens], show_progress=False)
        assert ours.scores["num_docs"] == theirs.scores["num_docs"] == len(tokens)
        assert set(ours.vocab_dict) == set(theirs.vocab_dict)
        a, b = LexicalChannel(ours), LexicalChannel(theirs)
        for token in theirs.vocab_dict:
            if token == "" and theirs.vocab_dict[""] >= len(theirs.scores["indptr"]) - 1:
                continue  # bm25s lists "" without a column when no row is empty
            assert a.rows_with(token).tolist() == b.rows_with(token).tolist(), token
            np.testing.assert_allclose(a.scores({token: 1.0}), b.scores({token: 1.0}), rtol=1e-6, atol=1e-7)


def test_longer_everyday_forms_weigh_more_but_never_above_the_users_words():
    # made-up pairs of equal weight: a four-character form is surer than a two-character one
    vocab = Vocabulary([BridgeTerm("请客吃饭", "业务招待费", 0.5, "colloquial:manual"),
                        BridgeTerm("欠款", "拖欠", 0.5, "colloquial:manual")], {}, frozenset())
    analyser = Analyser(shared_segmenter(), vocab)

    def weights(tuning):
        q = analyser.analyse("请客吃饭的欠款", tuning=tuning)
        return {e.term: e.weight for e in q.expansions if e.provenance == "colloquial:manual"}

    flat = weights(Tuning(bridge_long_form_boost=0.0))
    assert flat["业务招待费"] == flat["拖欠"] == pytest.approx(0.3 * 0.5)
    boosted = weights(Tuning(bridge_long_form_boost=2.0))
    assert boosted["拖欠"] == pytest.approx(0.3 * 0.5)  # two characters: no boost
    assert boosted["业务招待费"] == pytest.approx(0.3 * 0.5 * 3)  # four characters: x (1 + 2 * 2 / 2)
    assert weights(Tuning(bridge_long_form_boost=100.0))["业务招待费"] == 1.0  # capped at the user's words' weight
