"""The domain vocabulary, in one place: document levels and statuses with their labels, region names, the
support needs, enterprise tiers and the cultivation ladder, sizes and industries (with the words texts,
profiles and questions name them by), clause roles with their labels.

Query understanding (kb/query.py), build-time clause roles (kb/roles.py), eligibility matching
(kb/eligibility.py), ingestion and the web pages all read these; none defines its own copy.
Cue words of needs and roles (how a clause offers money, what makes it a goal) stay with kb/roles.py.
"""

from __future__ import annotations

import re

# --- documents ------------------------------------------------------------------------------------
LEVELS = ("national", "provincial", "municipal", "county")
LEVEL_LABELS = {"national": "国家", "provincial": "省级", "municipal": "市级", "county": "县区"}
STATUSES = ("effective", "draft", "expired", "superseded", "repealed", "interpretation")
STATUS_LABELS = {
    "effective": "现行有效",
    "draft": "征求意见稿",
    "expired": "已失效",
    "superseded": "已被替代",
    "repealed": "已废止",
    "interpretation": "政策解读",
}

# --- where -----------------------------------------------------------------------------------------

def region_terms(region: str) -> tuple[str, ...]:
    """Split a region value like '江苏省连云港市' into the names people use ('江苏', '连云港')."""
    parts = re.findall(r"(.+?)(?:省|市|自治区|自治州|县|区|$)", region)
    return tuple(p for p in parts if len(p) >= 2 and p not in ("全国",))


# --- what an enterprise needs: the support taxonomy shared by questions, roles and eligibility -----
NEEDS: dict[str, str] = {
    "funding": "资金奖补",
    "financing": "融资与上市",
    "tax": "税费减免",
    "talent": "人才",
    "approvals": "审批与监管",
    "ip": "知识产权",
    "digital": "数字化转型",
    "market": "市场与供应链",
    "services": "服务与平台",
    "quality": "质量品牌",
    "rights": "权益保护（款项、收费、检查）",
}

# --- who an enterprise is -------------------------------------------------------------------------
# Tiers, each with the words that name it in a text.
TIERS: dict[str, tuple[str, ...]] = {
    "制造业单项冠军": ("单项冠军",),
    "专精特新小巨人": ("小巨人",),
    "专精特新中小企业": ("专精特新中小企业", "专精特新企业"),
    "创新型中小企业": ("创新型中小企业",),
}
# The cultivation ladder, lowest first: a 小巨人 is also a 专精特新 and an innovative SME.
TIER_LADDER = ("创新型中小企业", "专精特新中小企业", "专精特新小巨人", "制造业单项冠军")
# Tier names as TIERS spells them, also found (by kb/roles.py) in a clause with the policy's quotation marks removed.
TIER_TEXT_EXTRA: dict[str, tuple[str, ...]] = {
    "专精特新中小企业": ("专精特新发展", "专精特新项目", "专精特新企业"),
}
# How a profile may name a tier besides TIERS' own names and cues (kb/eligibility.py).
TIER_ALIASES = {"专精特新“小巨人”企业": "专精特新小巨人", "专精特新小巨人企业": "专精特新小巨人",
                "国家级专精特新小巨人": "专精特新小巨人", "省级专精特新中小企业": "专精特新中小企业"}

SIZES = ("大型", "中型", "小型", "微型")
# Words of a clause that address enterprises of these size classes (kb/roles.py).
SIZE_CUES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("中小微企业", ("中型", "小型", "微型")),
    ("中小企业", ("中型", "小型", "微型")),
    ("小微企业", ("小型", "微型")),
    ("微型企业", ("微型",)),
    ("个体工商户", ("个体工商户",)),
    ("大企业", ("大型",)),
    ("大型企业", ("大型",)),
    ("龙头企业", ("大型",)),
    ("规模以上", ("规上",)),
)
# How a profile may name a size (kb/eligibility.py).
SIZE_ALIASES = {"大型企业": "大型", "中型企业": "中型", "小型企业": "小型", "微型企业": "微型", "小企业": "小型",
                "小微企业": "小型", "中企业": "中型", "大企业": "大型"}
# How a question in plain words names the asker's size (kb/eligibility.py).
QUESTION_SIZES = (("微型", ("微型企业", "个体")), ("小型", ("小企业", "小型企业", "小公司", "小厂", "小微")),
                  ("中型", ("中型企业", "中等规模")), ("大型", ("大型企业", "大企业")))

# Industries, with the words of a clause (or a profile's industry) that name them (kb/roles.py).
INDUSTRY_CUES: dict[str, tuple[str, ...]] = {
    "制造业": ("制造业", "制造企业", "工业企业", "先进制造"),
    "服务业": ("服务业",),
    "外贸": ("外贸企业", "出口企业", "外贸"),
    "科技型": ("科技型中小企业", "科技型企业", "高新技术企业"),
    "软件和信息技术": ("软件", "信息技术服务"),
    "农业": ("农业企业", "新型农业经营主体", "农民合作社"),
    "建筑业": ("建筑业",),
    "交通运输": ("交通运输",),
    "餐饮住宿零售文旅": ("餐饮", "住宿", "零售", "旅游"),
}
# How a question in plain words names the asker's industry (kb/eligibility.py).
QUESTION_INDUSTRIES = (
    ("制造业", ("制造业", "制造企业", "工厂", "厂子", "工业企业", "生产企业")),
    ("软件和信息技术", ("软件", "信息技术", "互联网企业")),
    ("外贸", ("外贸", "出口企业")),
    ("服务业", ("服务业",)),
    ("农业", ("农业",)),
)
# A profile industry that is 工业 (国民经济行业分类: 采矿业, 制造业, 电力、热力、燃气及水生产和供应业), for clauses
# whose conditions differ for 工业企业 and 其他企业 (kb/eligibility.py).
INDUSTRIAL_CUES = ("制造", "工业", "采矿", "矿业", "电力", "热力", "燃气", "自来水", "水生产", "供水")

# --- what a clause does ---------------------------------------------------------------------------
ROLES = ("goal", "task", "support", "condition", "safeguard", "background")
ROLE_LABELS = {
    "goal": "目标", "task": "任务", "support": "支持措施", "condition": "申报条件",
    "safeguard": "保障措施", "background": "背景",
}
