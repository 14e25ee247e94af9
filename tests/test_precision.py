"""Training precision: auto means bf16 exactly where the CPU has bf16 units; bad values are refused."""

from __future__ import annotations

import pytest
import torch

from bertsmith import precision
from bertsmith.errors import ConfigError
from bertsmith.runconfig import RunConfig


@pytest.mark.parametrize("flags, native", [("fpu avx2 avx512f", False), ("fpu avx512f avx512_bf16", True),
                                            ("fpu amx_tile amx_bf16", True), (None, False)])
def test_auto_is_bf16_exactly_where_the_cpu_computes_it(tmp_path, monkeypatch, flags, native):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpuinfo = tmp_path / "cpuinfo"
    if flags is not None:
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    monkeypatch.setattr(precision, "CPUINFO", cpuinfo)
    assert precision.native_bf16() is native
    assert precision.use_bf16("auto") is native
    assert precision.use_bf16("bf16") is True and precision.use_bf16("fp32") is False


def test_a_bad_precision_is_refused_naming_the_setting():
    with pytest.raises(ConfigError, match="precision = 'fp16': expected auto, fp32 or bf16"):
        precision.use_bf16("fp16")
    with pytest.raises(ValueError, match="precision"):
        RunConfig.model_validate({"precision": "fp16"})
