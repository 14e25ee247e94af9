"""Process memory helpers: the sampled peak sees a short-lived allocation; release_memory runs anywhere."""

from __future__ import annotations

import time

import pytest
import torch

from bertsmith.memory import PeakMemory, release_memory, rss_gb

pytestmark = pytest.mark.skipif(rss_gb() is None, reason="needs /proc (Linux)")


def test_peak_sees_an_allocation_that_is_gone_at_the_end():
    release_memory()
    before = rss_gb()
    with PeakMemory(interval=0.01) as peak:
        block = torch.ones(64 * 2**20)  # 256 MiB, every page touched
        time.sleep(0.2)
        del block
        release_memory()
    assert rss_gb() < before + 0.1  # the block is gone...
    assert peak.gb >= before + 0.2  # ...but the peak saw it


def test_peak_of_nothing_is_the_current_size():
    with PeakMemory() as peak:
        now = rss_gb()
    assert abs(peak.gb - now) < 0.05
