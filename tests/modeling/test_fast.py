"""The speed paths of ``bertsmith.modeling.fast``: the CPU dropout mask, the explicit attention path
and the opt-in ``compile_model`` (same outputs as eager, ≤ 1e-4)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bertsmith.modeling import BertsmithForSequenceClassification, BertsmithModel
from bertsmith.modeling.fast import compile_model, dropout, dropout_add, dropout_mask

from ..conftest import tiny_spec


def test_dropout_mask_has_the_right_distribution_and_scale():
    torch.manual_seed(0)
    x = torch.empty(400_000)
    for p in (0.1, 0.5, 0.9):
        mask = dropout_mask(x, p)
        assert mask.shape == x.shape and mask.dtype == x.dtype
        assert mask.unique().tolist() == pytest.approx([0.0, 1.0 / (1.0 - p)])
        rate = (mask == 0).double().mean().item()
        assert abs(rate - p) < 5 * (p * (1 - p) / x.numel()) ** 0.5  # 5 standard errors


def test_dropout_is_reproducible_and_backpropagates_through_the_mask():
    module = nn.Dropout(0.3)
    x = torch.randn(7, 33, requires_grad=True)
    torch.manual_seed(1)
    a = dropout(x, module)
    torch.manual_seed(1)
    b = dropout(x, module)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    a.sum().backward()
    torch.testing.assert_close(x.grad, (a != 0).float() / 0.7)
    torch.manual_seed(2)
    residual = torch.randn(7, 33)
    torch.testing.assert_close(dropout_add(residual, x, module.eval()), residual + x)
    assert dropout(x, module) is x  # eval: identity


def test_other_modules_in_place_of_dropout_are_called():
    x = torch.randn(4, 5)
    assert dropout(x, nn.Identity()) is x
    torch.testing.assert_close(dropout_add(x, x, nn.Identity()), 2 * x)
    module = nn.Dropout(0.5)
    module.register_forward_hook(lambda mod, inp, out: out * 0)
    assert torch.count_nonzero(dropout(x, module)) == 0


def test_dropout_falls_back_where_the_fast_mask_does_not_apply():
    assert dropout_mask(torch.empty(10), 1e-12) is None  # p below 2^-32: F.dropout keeps it exact
    torch.manual_seed(0)
    out = dropout(torch.ones(1000), nn.Dropout(1.0))
    assert torch.count_nonzero(out) == 0


def test_explicit_attention_path_matches_sdpa():
    """With scores requested the layers take the explicit softmax(QKᵀ/√k + mask)·V path; without,
    SDPA. Both give the same hidden states."""
    torch.manual_seed(0)
    spec = tiny_spec("mhsa", "dense", True)
    model = BertsmithModel(spec).eval()
    ids = torch.randint(1, 97, (3, 11))
    mask = torch.ones(3, 11, dtype=torch.long)
    mask[1, 6:] = 0
    plain = model(ids, mask).last_hidden_state
    explicit = model(ids, mask, output_attentions=True).last_hidden_state
    torch.testing.assert_close(explicit, plain, atol=1e-5, rtol=1e-5)


def _compiled_or_skip(model, **kwargs):
    try:
        compiled = compile_model(model, **kwargs)
        return compiled
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"torch.compile cannot run here: {type(exc).__name__}: {exc}")


def _run_or_skip(fn):
    try:
        return fn()
    except Exception as exc:  # torch.compile compiles lazily, on the first call
        if "inductor" in type(exc).__module__ or "dynamo" in type(exc).__module__ or "Compil" in type(exc).__name__:
            pytest.skip(f"torch.compile cannot run here: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        raise


@pytest.mark.parametrize("inference", [False, True], ids=["compile", "compile-freezing"])
def test_compiled_model_matches_eager_in_eval(inference):
    torch.manual_seed(0)
    spec = tiny_spec("mhsa", "dense", False)
    model = BertsmithForSequenceClassification(spec, num_labels=3).eval()
    ids = torch.randint(1, 97, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 5:] = 0
    compiled = _compiled_or_skip(copy.deepcopy(model), inference=inference)
    with torch.inference_mode():
        expected, out = model(ids, mask, output_hidden_states=True)
        logits, compiled_out = _run_or_skip(lambda: compiled(ids, mask, output_hidden_states=True))
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
    for a, b in zip(compiled_out.hidden_states, out.hidden_states):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_compiled_training_step_matches_eager():
    """Train mode without dropout (so both are deterministic): same loss and gradients."""
    torch.manual_seed(0)
    spec = tiny_spec("mhsa", "dense", False, hidden_dropout=0.0, attention_dropout=0.0)
    model = BertsmithForSequenceClassification(spec, num_labels=3).train()
    twin = copy.deepcopy(model)
    compiled = _compiled_or_skip(twin)
    ids = torch.randint(1, 97, (2, 9))
    labels = torch.tensor([0, 2])
    loss = F.cross_entropy(model(ids)[0], labels)
    loss.backward()
    compiled_loss = _run_or_skip(lambda: F.cross_entropy(compiled(ids)[0], labels))
    compiled_loss.backward()
    torch.testing.assert_close(compiled_loss, loss, atol=1e-4, rtol=1e-4)
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-4, rtol=1e-4, msg=name)
