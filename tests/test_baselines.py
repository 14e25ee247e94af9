"""The built-in baselines at a budget: the teacher shrunk uniformly, and its layers dropped."""

from __future__ import annotations

import pytest

from bertsmith.baselines import build, scaled
from bertsmith.cost import encoder_params, flops
from bertsmith.presets import get
from bertsmith.search.budget import Budget

MINILM = get("minilm-l6")  # 10,794,624 non-embedding parameters


def test_uniform_is_the_largest_uniform_scaling_within_the_budget():
    budget = Budget(params=encoder_params(MINILM) // 4)
    spec = build("uniform", MINILM, budget)
    assert spec.num_layers == 6 and encoder_params(spec) <= budget.params
    assert spec.hidden < MINILM.hidden and spec.layers[0].attention.heads < 12 and spec.layers[0].ffn.size < 1536
    factor = spec.hidden / MINILM.hidden
    assert encoder_params(scaled(MINILM, factor + 0.01)) > budget.params  # a little larger is over budget


def test_layers_keeps_the_deepest_stack_of_teacher_layers_within_the_budget():
    spec = build("layers", MINILM, Budget(params=encoder_params(MINILM) // 4))
    assert spec.hidden == 384 and spec.num_layers == 1  # one MiniLM layer is 1.77M, two are 3.55M
    assert build("layers", MINILM, Budget(params=5_471_232)).num_layers == 3  # three layers and the pooler exactly
    assert build("layers", MINILM, Budget(params=5_471_231)).num_layers == 2


def test_every_bound_of_the_budget_is_respected():
    budget = Budget(params=encoder_params(MINILM) // 2, flops=flops(MINILM, 128) // 8)
    spec = build("uniform", MINILM, budget)
    assert budget.violations(spec) == [] and flops(spec, 128) > flops(MINILM, 128) // 10


@pytest.mark.parametrize(
    "name, budget, message",
    [
        ("uniform", Budget(params=100), "leaves no attention head"),
        ("layers", Budget(params=1_000_000), "not even one of the teacher's layers fits"),
        ("uniform", Budget(latency=5.0), "needs a params, total_params or flops bound"),
        ("stretch", Budget(params=10), "unknown baseline 'stretch'"),
    ],
)
def test_a_budget_without_such_a_baseline_says_why(name, budget, message):
    with pytest.raises(ValueError, match=message):
        build(name, MINILM, budget)
