"""Budgets: upper bounds on an architecture's cost, from a search space or ``--budget params=5M``.

``params`` bounds the non-embedding parameters (the layers and the pooler: the part a search
changes; the embedding table is the vocabulary's), ``total_params`` all parameters, ``flops`` the
FLOPs of one sequence of ``seq_len`` tokens (``cost.flops``), and ``latency`` the measured latency in
milliseconds of a batch of ``batch`` × ``seq_len`` on the named ``device``. Counts take the suffixes
K, M, G, T (10³ ... 10¹²); latency takes ``ms`` or ``s`` (a bare number is milliseconds).
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from ..arch import ArchSpec, Int, _Frozen, _one_line, short_repr
from ..errors import ConfigError

_SCALE = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_COUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)\s*$", re.IGNORECASE)
_TIME = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*$", re.IGNORECASE)


def parse_count(value: Any) -> int:
    """``5M`` → 5,000,000; plain numbers pass through."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float):
        number = value
    else:
        match = _COUNT.match(str(value))
        if not match:
            raise ValueError(f"{short_repr(value)} is not a count (a number with an optional K, M, G or T)")
        number = float(match[1]) * _SCALE[match[2].upper()]
    if not math.isfinite(number):
        raise ValueError(f"{short_repr(value)} is not a finite count")
    return int(number)


def parse_ms(value: Any) -> float:
    """``20ms`` or ``0.02s`` → 20.0 milliseconds; a bare number is milliseconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            ms = float(value)
        except OverflowError:  # an int beyond any float
            ms = math.inf
    else:
        match = _TIME.match(str(value))
        if not match:
            raise ValueError(f"{short_repr(value)} is not a time (a number with ms or s)")
        ms = float(match[1]) * (1000.0 if (match[2] or "ms").lower() == "s" else 1.0)
    if not math.isfinite(ms):
        raise ValueError(f"{short_repr(value)} is not a finite time")
    return ms


class Budget(_Frozen):
    """Upper bounds; ``None`` means no bound."""

    params: int | None = Field(default=None, gt=0)
    total_params: int | None = Field(default=None, gt=0)
    flops: int | None = Field(default=None, gt=0)
    latency: float | None = Field(default=None, gt=0)
    device: Literal["cpu", "cuda"] = "cpu"
    seq_len: Int = Field(default=128, gt=0)
    batch: Int = Field(default=1, gt=0)

    @field_validator("params", "total_params", "flops", mode="before")
    @classmethod
    def _count(cls, value: Any) -> Any:
        return None if value is None else parse_count(value)

    @field_validator("latency", mode="before")
    @classmethod
    def _time(cls, value: Any) -> Any:
        return None if value is None else parse_ms(value)

    @classmethod
    def parse(cls, text: str) -> "Budget":
        """``params=5M,latency=20ms`` (the ``--budget`` option; several may be joined by commas)."""
        fields: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, value = part.partition("=")
            if not sep or not value.strip():
                raise ConfigError(f"--budget {part!r}: expected NAME=VALUE, e.g. params=5M or latency=20ms")
            fields[name.strip()] = value.strip()
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise ConfigError(f"--budget {text!r}: {_one_line(exc)}") from None

    def bounded(self, spec: ArchSpec, latency_ms: float | None = None) -> list[tuple[str, float, float]]:
        """(name, limit, value) of every bound that is set; the latency bound only with a ``latency_ms``."""
        from ..cost import encoder_params, flops, params  # imports torch: a budget alone is read without it

        out = []
        for name, limit, value in (
            ("params", self.params, lambda: encoder_params(spec)),
            ("total_params", self.total_params, lambda: params(spec)),
            ("flops", self.flops, lambda: flops(spec, self.seq_len)),
            ("latency", self.latency, lambda: latency_ms),
        ):
            if limit is not None and (name != "latency" or latency_ms is not None):
                out.append((name, limit, value()))
        return out

    def violations(self, spec: ArchSpec, latency_ms: float | None = None) -> list[str]:
        """What ``spec`` exceeds, one phrase each (empty when within budget). The latency bound needs
        the measured or predicted ``latency_ms``; it is not checked without one."""
        return [
            f"latency {value:.2f} ms > {limit:g} ms" if name == "latency" else f"{name} {value:,} > {limit:,}"
            for name, limit, value in self.bounded(spec, latency_ms)
            if value > limit
        ]
