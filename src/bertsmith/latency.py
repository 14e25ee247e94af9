"""Latency measured on this machine's CPU or GPU: warm-up, then repeats, reported as median and spread."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from .device import latency_device, synchronize


@dataclass(frozen=True)
class Timing:
    """Seconds per call over ``repeats`` timed calls after ``warmup`` untimed ones."""

    median: float
    p10: float
    p90: float
    mean: float
    repeats: int
    warmup: int

    @property
    def spread(self) -> float:
        """(p90 − p10) / median: the relative spread of the timed calls."""
        return (self.p90 - self.p10) / self.median if self.median else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "spread": self.spread}


def time_calls(fn: Callable[[], object], *, warmup: int = 3, repeats: int = 20) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then time ``repeats`` calls with a monotonic clock."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    samples.sort()
    q = statistics.quantiles(samples, n=10) if len(samples) >= 2 else [samples[0]] * 9
    return Timing(statistics.median(samples), q[0], q[-1], statistics.fmean(samples), repeats, warmup)


def random_batch(vocab_size: int, batch: int, seq_len: int, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """A fixed random batch of token ids with a full attention mask (reproducible by seed)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab_size, (batch, seq_len), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def measure_inference(
    model: torch.nn.Module,
    vocab_size: int,
    *,
    batch: int,
    seq_len: int,
    threads: int | None = None,
    warmup: int = 3,
    repeats: int = 20,
    device: str = "cpu",
) -> Timing:
    """Forward latency of ``model`` in eval mode under ``torch.inference_mode`` on ``device`` (``cpu``,
    or ``cuda``: the model is moved there and each call waits for the GPU to finish)."""
    where = latency_device(device, "device")
    if threads is not None:
        torch.set_num_threads(threads)
    inputs = {k: v.to(where) for k, v in random_batch(vocab_size, batch, seq_len).items()}
    model.eval().to(where)

    def call():
        with torch.inference_mode():
            model(**inputs)
        synchronize(where)

    return time_calls(call, warmup=warmup, repeats=repeats)


def measure_onnxruntime(
    path: str,
    vocab_size: int,
    *,
    batch: int,
    seq_len: int,
    threads: int | None = None,
    warmup: int = 3,
    repeats: int = 20,
) -> Timing:
    """Forward latency of an exported ONNX graph under onnxruntime's CPU provider (bertsmith's session
    settings, ``hf.deploy.session``)."""
    from .hf.deploy import feed, session  # ONNX's packages: only to time an ONNX file

    ort_session = session(path, threads=threads)
    inputs = feed(ort_session, random_batch(vocab_size, batch, seq_len))
    return time_calls(lambda: ort_session.run(None, inputs), warmup=warmup, repeats=repeats)
