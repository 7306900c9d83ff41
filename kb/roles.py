"""Build-time clause roles: what a clause is, what support it offers, whom it addresses, its conditions.

Transparent rules over cue-word tables (below) and the clause's heading path; every
annotation carries `why_role`, the cue that decided it. Accuracy on a hand-labelled set
of real clauses is measured by tests/test_roles.py and quoted in the README.

Roles:
- goal:       a target the government sets itself ("到2025年…", "预期目标是…"); its numbers
              are never conditions an enterprise must meet.
- task:       work the government sets itself (reforms, systems, sectors) with no concrete
              benefit an enterprise could use or apply for.
- support:    something enterprises get or can apply for: money, loans, tax or fee relief,
              talent help, simpler approvals, IP help, digitalisation help, markets, services.
- condition:  who qualifies: eligibility conditions (申报条件, 企业应具备…).
- safeguard:  how the plan is carried out (组织领导, 保障措施, 政府自身建设).
- background: context: reasons, review of past work, principles, problems, greetings.
"""

from __future__ import annotations

import re
import unicodedata

from kb.domain import (INDUSTRY_CUES, NEEDS, ROLE_LABELS, ROLES, SIZE_CUES, TIER_TEXT_EXTRA,  # noqa: F401
                       TIERS, region_terms)  # (ROLE_LABELS: read from here too)
from kb.text import chinese_number
from kb.types import Clause, Document

ROLES_VERSION = "2"

# --- role cues -------------------------------------------------------------------------

# Cues in a heading of the clause's path (nearest heading first). Order = precedence.
HEADING_ROLE_CUES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("condition", ("申报条件", "申请条件", "认定条件", "支持对象", "申报对象", "扶持对象", "适用对象",
                   "申报范围", "支持范围", "基本条件", "申报要求", "认定标准")),
    ("background", ("背景", "回顾", "过去一年", "过去五年", "发展成就", "形势", "基本原则", "指导思想", "重要意义")),
    ("goal", ("目标",)),
    ("safeguard", ("保障措施", "组织实施", "组织领导", "政府自身建设", "保障机制", "监督考核")),
)

# Eligibility statements in the clause's own text.
CONDITION_TEXT_RE = re.compile(
    r"(?:申报|申请|参评|认定)(?:的)?(?:企业|单位|主体)(?:应|须|需|必须)"
    r"|(?:应当|应|须|需)(?:同时)?(?:具备|满足|符合)(?:以下|下列|如下)"
    r"|(?:具备|满足|符合)(?:以下|下列|如下)(?:条件|要求)"
)

# Targets the government sets itself.
GOAL_TEXT_RE = re.compile(
    r"预期目标(?:是|为)|主要目标(?:是|为)|目标(?:是|为)[:：]|^(?:——)?(?:力争)?到(?:19|20)[0-9]{2}年"
    r"|上述(?:主要)?预期目标|^提出上述.{0,6}目标"
)

# Context: review of past work, problems, addresses to the audience.
BACKGROUND_TEXT_RE = re.compile(
    r"^(?:过去一年|过去五年|一年来|五年来|回顾过去|展望)"
    r"|^在(?:充分)?肯定成绩的同时|^(?:——)?[^，,。]{0,12}取得(?:新的|重要|重大)?(?:进展|成效|成就|突破)"
    r"|党的二十大报告指出|重要贺信|在制定《|起草形成《|最近印发《"
)
# Addresses to the audience open a speech paragraph (checked before the heading is stripped).
ADDRESS_RE = re.compile(r"^(?:各位代表|同志们|现在[，,]我代表)")
# Organisation and supervision of the work itself.
SAFEGUARD_TEXT_RE = re.compile(r"政府自身建设|(?:加强|强化)组织领导|督查检查|考核评价|跟踪督办")
# A past-tense review paragraph ("一是…。出台…政策，…增长27.3%") inside a review section is
# caught by the heading cue "回顾"; outside one, these words mark reported results.
_RESULT_RE = re.compile(r"(?:增长|下降|提高到|增加到|突破|达到)[0-9.]+(?:%|万|亿)|同比")

# Support: a concrete benefit (left) for enterprises (right).
BENEFIT_CUES: tuple[str, ...] = (
    "给予", "奖补", "补助", "补贴", "奖励", "贴息", "资金支持", "专项资金", "减免", "免征", "减半征收",
    "退还", "退税", "加计扣除", "降低", "减轻", "缓缴", "延期还本", "贷款", "信贷", "融资担保", "担保",
    "专属金融产品", "金融产品", "金融服务", "上市融资", "出口信用保险", "稳岗返还", "返还", "帮扶",
    "提供", "服务专员", "供需对接", "巡诊", "诊断", "培育一批", "赋能", "支持专精特新", "支持企业",
    "帮助企业", "助力", "简化审批", "优化审批", "应享尽享", "直达企业", "覆盖面", "拓市场",
    "知识产权战略", "质量提升", "智能化改造", "减税", "降费", "优惠", "融资", "起征点", "让利", "免除",
    "减负", "纾困", "质押",
)
BENEFICIARY_CUES: tuple[str, ...] = (
    "企业", "市场主体", "经营主体", "个体工商户", "纳税人", "中小微", "小微", "中小商户", "创业",
)
# Government-side work: reforms, macro policy, systems.
TASK_CUES: tuple[str, ...] = (
    "改革", "体制", "机制", "制度", "宏观", "货币政策", "财政政策", "赤字", "国有", "国企", "债务",
    "风险", "布局", "体系", "预算", "战略", "统筹", "建设", "监管", "治理", "规划",
)
# Support needs benefit points >= SUPPORT_RATIO x task points, and at least SUPPORT_MIN of them.
SUPPORT_RATIO = 1.2
SUPPORT_MIN = 3
SUPPORT_MIN_SHORT = 2  # ... or this many in a short clause (the 八大工程 lines of a plan are one sentence)
SHORT_CLAUSE = 120
# A benefit aimed at enterprises: "支持专精特新企业…", "为企业提供…", "对小微企业…".
DIRECTED_RE = re.compile(r"(?:支持|帮助|扶持|鼓励|引导|推动|助力|服务|为|对|向|提升|减轻|降低|培育)[^，,。；;]{0,12}?"
                         r"(?:企业|市场主体|经营主体|个体工商户|纳税人|商户)")

# --- kinds of support (keys of kb.domain.NEEDS) -------------------------------------------

KIND_CUES: dict[str, tuple[str, ...]] = {
    "funding": ("奖补", "补助", "补贴", "奖励", "专项资金", "资金支持", "财政资金", "以奖代补", "资助",
                "稳岗返还", "扶持资金", "在资金"),
    "financing": ("融资", "信贷", "贷款", "金融产品", "金融服务", "上市", "挂牌", "担保", "股权投资",
                  "创业投资", "风险投资", "债券", "再贷款", "普惠金融", "科技金融", "信用保险", "贴息",
                  "授信", "资本市场", "首贷"),
    "tax": ("减税", "税费", "税收", "增值税", "所得税", "退税", "纳税", "税率", "免征", "缓税", "降费",
            "社保费", "缴费负担", "收费", "加计扣除", "留抵", "缓缴", "费率", "减负"),
    "talent": ("人才", "技能", "职业培训", "技能培训", "用工", "引才", "工匠", "科研人员", "职称"),
    "approvals": ("审批", "核准", "备案", "行政许可", "许可事项", "证照", "涉企执法", "执法检查", "行政执法",
                  "包容审慎", "简政放权", "放管服", "一网通办", "营商环境", "政务服务", "乱罚款", "乱检查",
                  "简易注销"),
    "ip": ("知识产权", "专利", "商标", "版权"),
    "digital": ("数字化", "智能化", "数控", "工业互联网", "上云", "信息化", "智能制造", "数字技术",
                "数字经济", "两化融合", "互联网+", "宽带", "5g", "人工智能"),
    "market": ("开拓市场", "市场开拓", "拓市场", "供需对接", "产业链配套", "协作配套", "配套能力",
               "政府采购", "出口", "外贸", "订单", "展会", "参展", "市场准入", "首台套", "海外仓",
               "跨境电商", "统一大市场"),
    "services": ("服务平台", "公共服务示范", "服务专员", "服务体系", "精准服务", "示范基地", "孵化",
                 "咨询", "诊断", "中介服务", "双创", "创业创新", "服务能力", "服务商", "巡诊", "提供全方位"),
    "rights": ("款项支付", "支付款项", "拖欠", "付款期限", "账款", "乱收费", "乱罚款", "乱检查", "乱摊派",
               "检查次数", "执法检查", "罚款", "权益保护", "合法权益", "投诉", "保证金", "违约金", "收费项目"),
    "quality": ("质量提升", "质量品牌", "品牌", "质量强国", "质量基础设施", "标准体系", "标准提升",
                "精品", "认证", "质量管理", "工匠精神", "品质"),
}
# Words that contain a cue but mean something else.
KIND_STOPS: dict[str, tuple[str, ...]] = {
    "tax": ("税源",),
    "financing": ("上市公司", "融资平台"),
    "digital": ("数字化治理",),
}

# --- addressees: tiers, sizes and industries are in kb/domain.py --------------------------

# --- numeric conditions -------------------------------------------------------------------

CONDITION_FIELDS: dict[str, tuple[str, str]] = {
    # field: (cue regex, unit regex)
    "rd_share_percent": (
        r"研发(?:费用|投入|经费)(?:总额)?(?:占|与)(?:同期|上年度|当年|企业)?(?:营业收入|销售收入|主营业务收入)"
        r"(?:总额)?(?:的)?(?:比重|比例|之比)?|研发投入强度|研发费用占比|研发投入占比",
        r"%",
    ),
    "patents": (r"(?:有效|授权|自主)*(?:发明专利|专利|知识产权|Ⅰ类知识产权|i类知识产权)", r"件|项|个"),
    "revenue_wan_yuan": (r"(?:营业收入|主营业务收入|销售收入|营收|应征增值税销售额|销售额)(?:总额)?", r"亿元|万元|元"),
    "taxable_income_wan_yuan": (r"(?:年度)?应纳税所得额", r"亿元|万元|元"),
    "assets_wan_yuan": (r"资产总额", r"亿元|万元|元"),
    "years_registered": (r"(?:注册成立|成立|注册|设立)(?:时间|年限)?", r"年"),
    "employees": (r"(?:从业人员|职工人数|员工人数|从业人数|职工|员工)", r"人|名"),
}
_PRE_OPS = {
    "不低于": ">=", "不少于": ">=", "不小于": ">=", "达到": ">=", "达": ">=", "满": ">=",
    "未超过": "<=", "未达到": "<",
    "超过": ">", "高于": ">", "大于": ">", "多于": ">",
    "不超过": "<=", "不高于": "<=", "不多于": "<=", "不大于": "<=",
    "低于": "<", "少于": "<", "小于": "<", "不足": "<", "不满": "<",
}
_POST_OPS = {"及以上": ">=", "以上": ">=", "及以下": "<=", "以下": "<=", "以内": "<="}
_NUM = r"[0-9]+(?:\.[0-9]+)?|[一二两三四五六七八九十百〇零]+"
# Sentences about totals or averages describe goals or results, never one enterprise.
_AGGREGATE_RE = re.compile(r"户均|平均|累计|全市|全省|全国|总量|培育.{0,12}家|力争|到(?:19|20)[0-9]{2}年")
_ENTERPRISE_RE = re.compile(r"企业|申报单位|申请单位|申报主体|申请人|公司")
_SENTENCE_SPLIT = re.compile(r"(?<=[。；;！？!?\n])")


def _norm(text: str) -> str:
    """NFKC + lower case, quotation marks removed (so 专精特新“小巨人”企业 reads 专精特新小巨人企业)."""
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"[“”‘’\"'「」『』]", "", text)


def _cn_number(text: str) -> float | None:
    """Return the value of an Arabic (decimals too) or Chinese numeral."""
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", text):
        return float(text)
    value = chinese_number(text)
    return None if value is None else float(value)


def _hits(text: str, cues: tuple[str, ...], stops: tuple[str, ...] = ()) -> list[str]:
    """Return the cues found in text (each once), ignoring occurrences inside a stop word."""
    for stop in stops:
        text = text.replace(stop, " ")
    return [c for c in cues if c in text]


def kinds_in(text: str) -> dict[str, list[str]]:
    """Return {need kind: cue words found} for a text, in NEEDS order."""
    norm = _norm(text)
    for phrase in ("高质量", "质量效益", "发展质量"):  # quality of growth, not product quality
        norm = norm.replace(phrase, " ")
    out: dict[str, list[str]] = {}
    for kind in NEEDS:
        found = _hits(norm, KIND_CUES[kind], KIND_STOPS.get(kind, ()))
        if found:
            out[kind] = found
    return out


def tiers_in(text: str) -> list[str]:
    """Return the enterprise tiers (keys of kb.domain.TIERS) a text addresses."""
    norm = _norm(text)
    out = []
    for tier, cues in TIERS.items():
        if any(_norm(c) in norm for c in cues + TIER_TEXT_EXTRA.get(tier, ())):
            out.append(tier)
    return out


def sizes_in(text: str) -> list[str]:
    """Return the enterprise size classes a text addresses (中型, 小型, 微型, 大型, 个体工商户, 规上)."""
    norm = _norm(text)
    out: list[str] = []
    for cue, classes in SIZE_CUES:
        if cue in norm:
            out.extend(c for c in classes if c not in out)
    return out


def industries_in(text: str) -> list[str]:
    """Return the industries a text names (keys of INDUSTRY_CUES)."""
    norm = _norm(text)
    return [name for name, cues in INDUSTRY_CUES.items() if any(c in norm for c in cues)]


def _heading_role(path: tuple[str, ...]) -> tuple[str, str] | None:
    """Return (role, reason) from the nearest heading of the path that carries a role cue."""
    for heading in reversed(path):
        norm = _norm(heading)
        for role, cues in HEADING_ROLE_CUES:
            for cue in cues:
                if cue in norm:
                    return role, f"标题“{heading}”含“{cue}”"
    return None


def _support_evidence(norm: str) -> tuple[float, float, list[str], list[str], list[str]]:
    """Return (benefit points, task points, benefit cues, beneficiary cues, task cues) of normalised text.

    Points count every occurrence; a benefit aimed at enterprises ("为企业提供") adds a point.
    """
    benefit_pts = sum(norm.count(c) for c in BENEFIT_CUES) + len(DIRECTED_RE.findall(norm))
    task_pts = sum(norm.count(c) for c in TASK_CUES)
    return (benefit_pts, task_pts, _hits(norm, BENEFIT_CUES), _hits(norm, BENEFICIARY_CUES),
            _hits(norm, TASK_CUES))


def classify_role(path: tuple[str, ...], text: str) -> tuple[str, str]:
    """Return (role, why) for a clause given its heading path and its own text."""
    norm = _norm(text)
    body = norm
    if path and _norm(path[-1]) and body.startswith(_norm(path[-1])):
        body = body[len(_norm(path[-1])):].lstrip("。.、:： \n")
    m = ADDRESS_RE.search(norm)
    if m:
        return "background", f"致辞用语“{m.group(0)}”"
    m = CONDITION_TEXT_RE.search(norm)
    if m:
        return "condition", f"正文含申报条件用语“{m.group(0)}”"
    heading = _heading_role(path)
    if heading and heading[0] in ("condition", "background", "goal"):
        return heading
    m = GOAL_TEXT_RE.search(body)
    if m:
        return "goal", f"正文含目标用语“{m.group(0)}”"
    if heading and heading[0] == "safeguard":
        return heading
    m = BACKGROUND_TEXT_RE.search(body)
    if m:
        return "background", f"正文含背景用语“{m.group(0)}”"
    m = SAFEGUARD_TEXT_RE.search(body)
    if m:
        return "safeguard", f"正文含保障用语“{m.group(0)}”"
    benefit_pts, task_pts, benefits, beneficiaries, tasks = _support_evidence(norm)
    least = SUPPORT_MIN_SHORT if len(norm) <= SHORT_CLAUSE else SUPPORT_MIN
    if beneficiaries and benefit_pts >= least and benefit_pts >= SUPPORT_RATIO * task_pts:
        return "support", (f"给企业的具体支持：{'、'.join(benefits[:4])}；对象：{'、'.join(beneficiaries[:3])}")
    if not benefits and not tasks and _RESULT_RE.search(body) and not re.search(r"今年|要|将|拟", body):
        return "background", "正文为已取得的数字结果"
    reason = "政府自身的工作部署"
    if tasks:
        reason += f"（{'、'.join(tasks[:4])}）"
    return "task", reason


def _op_of(pre: str | None, post: str | None) -> str | None:
    """Return the comparison a pre-/post-position word pair states ("不低于…", "…以上"), or None."""
    if pre and _PRE_OPS[pre] in (">", "<"):
        return _PRE_OPS[pre]
    if post:
        return _POST_OPS[post]
    return _PRE_OPS[pre] if pre else None


def _condition(sentence: str, field: str, m: re.Match, cue: str) -> dict | None:
    op = _op_of(m.group("pre"), m.group("post"))
    value = _cn_number(m.group("num"))
    if op is None or value is None:
        return None
    unit = m.group("unit")
    if field in WAN_YUAN_FIELDS:
        value = value * 10000 if unit == "亿元" else value / 10000 if unit == "元" else value
        unit = "万元"
    if value == int(value):
        value = int(value)
    cond = {"text": sentence.strip(), "field": field, "op": op, "value": value, "unit": unit, "quote": m.group(0)}
    if field == "patents" and "发明专利" in cue:
        cond["qualifier"] = "发明专利"
    if field in APPROXIMATE_CUES:
        measured = next((c for c in APPROXIMATE_CUES[field] if c in cue), "")
        if measured:
            cond["measures"] = measured  # the clause counts something the profile field only approximates
    return cond


WAN_YUAN_FIELDS = ("revenue_wan_yuan", "taxable_income_wan_yuan", "assets_wan_yuan")
# field -> what a clause may count that the profile field (营业收入 …) only approximates
APPROXIMATE_CUES: dict[str, tuple[str, ...]] = {"revenue_wan_yuan": ("应征增值税销售额", "销售额")}
_BRANCH_RE = re.compile(r"^\s*[（(]\s*[一二三四五六七八九十]{1,3}\s*[)）]\s*([^，,：:；;。]{2,12}?)\s*[，,：:]")
_ITEM_RE = re.compile(r"^\s*[（(]\s*[一二三四五六七八九十]{1,3}\s*[)）]\s*(.+?)\s*$")

_PRE = "|".join(sorted(_PRE_OPS, key=len, reverse=True))
_POST = "|".join(sorted(_POST_OPS, key=len, reverse=True))


def _field_conditions(sentence: str) -> list[dict]:
    """Return numeric conditions about an enterprise stated in one sentence."""
    norm = unicodedata.normalize("NFKC", sentence)
    out = []
    for field, (cue_re, unit_re) in CONDITION_FIELDS.items():
        tail = rf"(?P<pre>{_PRE})?\s*(?P<num>{_NUM})\s*(?P<unit>{unit_re})(?P<post>{_POST})?"
        pattern = re.compile(rf"(?P<cue>{cue_re})[^，,。；;]{{0,14}}?" + tail)
        # a second bound right after the first: "营业收入2000万元以上、不超过4亿元"
        more = re.compile(r"\s*[、,，]?\s*(?:且|但|并且)?" + tail)
        for m in pattern.finditer(norm):
            cue = m.group("cue")
            if field == "years_registered" and not re.search(r"成立|注册|设立", cue):
                continue
            cond = _condition(sentence, field, m, cue)
            if cond:
                out.append(cond)
            m2 = more.match(norm, m.end())
            if m2 and m2.group("pre"):
                cond2 = _condition(sentence, field, m2, cue)
                if cond2:
                    cond2["quote"] = f"{cue}…{m2.group(0).strip('、,， ')}"
                    out.append(cond2)
    return out


def extract_conditions(text: str) -> list[dict]:
    """Return the numeric conditions about an enterprise that a clause text states.

    Each is {"text": sentence, "field", "op", "value", "unit", "quote"}; sentences about
    totals, averages or targets (户均, 全市, 到2025年 …) and sentences that do not speak of
    an enterprise are skipped.
    """
    out = []
    for sentence in _SENTENCE_SPLIT.split(text):
        if not sentence.strip() or _AGGREGATE_RE.search(sentence) or not _ENTERPRISE_RE.search(sentence):
            continue
        found = _field_conditions(sentence)
        branch = _BRANCH_RE.match(sentence)
        if branch and len(found) >= 2:
            # "(一)工业企业，年度应纳税所得额不超过30万元，从业人数不超过100人…": one branch of alternatives
            for cond in found:
                cond["branch"] = branch.group(1)
        out.extend(found)
    return out


def items_to_check(text: str) -> list[str]:
    """Return the listed items （一）… of a condition clause that state no number, to be checked by hand."""
    out = []
    for line in text.split("\n"):
        m = _ITEM_RE.match(line)
        if m and not _field_conditions(line) and len(m.group(1)) >= 4:
            out.append(line.strip())
    return out


def annotate_clause(doc: Document, clause: Clause) -> dict:
    """Return the JSON-ready annotation of a clause: role, kinds, addressees, conditions, reasons.

    Uses only the clause (text, heading path) and the document's metadata, never its body,
    so it also works on documents loaded from an index.
    """
    role, why_role = classify_role(clause.path, clause.text)
    scope = " ".join(clause.path[-1:]) + "\n" + clause.text
    kinds = kinds_in(scope)
    conditions = extract_conditions(clause.text) if role in ("condition", "support") else []
    to_check = items_to_check(clause.text) if role == "condition" else []
    region = doc.get("region").strip()
    return {
        "role": role,
        "kinds": list(kinds),
        "kind_cues": kinds,
        "tiers": tiers_in(scope),
        "sizes": sizes_in(scope),
        "industries": industries_in(scope),
        "regions": [region] if region else [],
        "region_terms": list(region_terms(region)) if region else [],
        "conditions": conditions,
        "to_check": to_check,
        "why_role": why_role,
        "version": ROLES_VERSION,
    }
