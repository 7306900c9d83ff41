"""The domain vocabulary, in one place: document levels and statuses with their labels, the support
needs, enterprise tiers and the cultivation ladder, enterprise sizes, clause roles with their labels.

Query understanding (kb/query.py), build-time clause roles (kb/roles.py), eligibility matching
(kb/eligibility.py), ingestion and the web pages all read these; none defines its own copy.
Cue words (how the text names a tier, a size, a need) stay with the stage that matches them.
"""

from __future__ import annotations

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
SIZES = ("大型", "中型", "小型", "微型")

# --- what a clause does ---------------------------------------------------------------------------
ROLES = ("goal", "task", "support", "condition", "safeguard", "background")
ROLE_LABELS = {
    "goal": "目标", "task": "任务", "support": "支持措施", "condition": "申报条件",
    "safeguard": "保障措施", "background": "背景",
}
