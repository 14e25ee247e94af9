"""Speed helpers for the modules of this folder. Torch only: this file is copied next to exported models.

Dropout: the modules call ``dropout(x, module)`` and ``dropout_add(residual, x, module)`` (for
``residual + dropout(x)``) instead of calling their ``nn.Dropout`` modules (whose ``p`` and
``training`` flag they read). On CPU in training mode the keep mask comes from 32 random bits per
element (torch's default generator, so ``torch.manual_seed`` still makes runs reproducible)
instead of ``bernoulli_``, whose CPU kernel draws one number at a time and costs several times
more than everything else in a dropout; the mask is applied with one multiply (one multiply-add
with the residual). The distribution is the same (keep with probability 1 − p, exact to 2⁻³²,
survivors scaled by 1/(1 − p)); only the random stream differs from ``F.dropout``'s. On other
devices and while jit-tracing or exporting to ONNX it is ``F.dropout``; in eval mode the identity,
so eval outputs are unchanged. Under torch.compile the same mask is traced (with ``torch.randint``,
which dynamo supports); ``compile_model`` turns on inductor's ``fallback_random`` so that the draw
stays torch's fast CPU generator rather than inductor's per-element generator, which made a
compiled bert-mini training step slower than the eager one.

``compile_model(model)`` is the opt-in ``torch.compile`` path (defaults unchanged).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def tracing() -> bool:
    """True while jit-tracing or exporting to ONNX (graphs that must stay standard ops)."""
    if torch.jit.is_tracing():
        return True
    return bool(getattr(torch.onnx, "is_in_onnx_export", lambda: False)())


def dropout_mask(x: torch.Tensor, p: float) -> torch.Tensor | None:
    """A mask like ``x`` (CPU): 1/(1 − p) with probability 1 − p, else 0; None where the fast mask
    does not apply (then use ``F.dropout``).

    Full-range 64-bit draws viewed as int32 pairs give 32 uniform bits per element; an element is
    kept when its bits are at or above −2³¹ + round(p·2³²), so P(keep) = 1 − p to 2⁻³². The
    comparison is done as clamp + subtract (0/1 in int32), which is cheaper than a bool tensor.
    """
    if x.device.type != "cpu" or tracing():
        return None
    k = round(p * 2**32)
    if not 0 < k < 2**32:
        return None
    n = x.numel()
    if torch.compiler.is_compiling():  # dynamo does not trace random_; randint is a bit slower
        bits = torch.randint(-(2**63), 2**63 - 1, ((n + 1) // 2,), dtype=torch.int64)
    else:
        bits = torch.empty((n + 1) // 2, dtype=torch.int64).random_(-(2**63), None)
    bits = bits.view(torch.int32)[:n]
    threshold = -(2**31) + k
    keep = bits.clamp_(threshold - 1, threshold).sub_(threshold - 1)
    return keep.to(x.dtype).mul_(1.0 / (1.0 - p)).view(x.shape)


def dropout_p(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout(x, p, training)`` with the fast CPU mask described in the module docstring."""
    if not training or p == 0.0:
        return x
    mask = dropout_mask(x, p)
    return F.dropout(x, p, True) if mask is None else x * mask


def dropout(x: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """``module(x)`` for an ``nn.Dropout`` (its own ``p`` and ``training`` flag), fast on CPU. Any
    other module put in its place (an ``nn.Identity``, a subclass, one with hooks) is just called."""
    if type(module) is not nn.Dropout or module._forward_hooks or module._forward_pre_hooks:
        return module(x)
    return dropout_p(x, module.p, module.training)


def dropout_add(residual: torch.Tensor, x: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """``residual + module(x)`` for an ``nn.Dropout``; on CPU in training one fused multiply-add."""
    if type(module) is not nn.Dropout or module._forward_hooks or module._forward_pre_hooks:
        return residual + module(x)
    if not module.training or module.p == 0.0:
        return residual + x
    mask = dropout_mask(x, module.p)
    return residual + F.dropout(x, module.p, True) if mask is None else torch.addcmul(residual, x, mask)


def compile_model(model: nn.Module, *, inference: bool = False, **kwargs) -> nn.Module:
    """``torch.compile(model)`` with settings that suit these encoders on CPU (opt-in; eager stays
    the default). The compiled module shares the parameters of ``model``; the first call of each
    mode (train / eval) and input shape compiles (tens of seconds on a small CPU). Shapes are
    static by default (``dynamic=False``), which gives the fastest kernels at a fixed batch and
    sequence length. ``inference=True`` adds inductor's weight freezing (constant folding and
    pre-packed weights): only for a model in eval mode under ``torch.no_grad``/``inference_mode``
    whose weights no longer change. Extra keyword arguments go to ``torch.compile``."""
    kwargs.setdefault("dynamic", False)
    options = kwargs.setdefault("options", {})
    options.setdefault("fallback_random", True)
    if inference:
        options.setdefault("freezing", True)
    return torch.compile(model, **kwargs)
