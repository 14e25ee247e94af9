"""Training precision: auto means bf16 exactly on a GPU that supports it; bad values are refused."""

from __future__ import annotations

import pytest
import torch

from bertsmith import precision
from bertsmith.errors import ConfigError
from bertsmith.runconfig import RunConfig


@pytest.mark.parametrize("cuda, bf16_gpu, expected", [(False, False, False), (True, False, False), (True, True, True)])
def test_auto_is_bf16_exactly_on_a_gpu_that_supports_it(monkeypatch, cuda, bf16_gpu, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_gpu)
    assert precision.use_bf16("auto") is expected
    assert precision.use_bf16("bf16") is True and precision.use_bf16("fp32") is False


def test_a_bad_precision_is_refused_naming_the_setting():
    with pytest.raises(ConfigError, match="precision = 'fp16': expected auto, fp32 or bf16"):
        precision.use_bf16("fp16")
    with pytest.raises(ValueError, match="precision"):
        RunConfig.model_validate({"precision": "fp16"})
