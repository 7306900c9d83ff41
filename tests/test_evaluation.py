"""Gold scoring arithmetic (kb/evaluation.py) on made-up ranks: no index."""

import pytest

from kb.evaluation import pooled


def test_pooled_figures_are_those_of_the_questions_taken_together():
    a = {"ranks": [1, None, 6], "refused": 1, "low": 1}
    b = {"ranks": [2, 3], "refused": 0, "low": 2}
    m = pooled([a, b])
    assert m["n"] == 5 and m["ranks"] == [1, None, 6, 2, 3]
    assert m["hit@1"] == pytest.approx(1 / 5)
    assert m["hit@5"] == pytest.approx(3 / 5)  # 6 is outside the top 5
    assert m["mrr@10"] == pytest.approx((1 + 1 / 6 + 1 / 2 + 1 / 3) / 5)
    assert (m["refused"], m["low"]) == (1, 3)
    assert pooled([])["n"] == 0
