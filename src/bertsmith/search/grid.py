"""Bort's architecture grid ⟨D, A, H, I⟩: depth, attention heads, hidden size and FFN size, every
layer alike (the Bort paper). The ``extract`` strategy searches it.

Grids:

- ``bort``: the paper's grid for a BERT-large teacher, D ∈ {2, 4, …, 12}, A ∈ {4, 8, 12, 16},
  H ∈ {512, 768, 1024}, I ∈ {256, 512, 768, 1024, 3072}, with BERT's head size H/A;
- ``teacher`` (the default): bertsmith's scaling of that grid to any teacher of depth D_T, heads A_T,
  hidden H_T and FFN I_T: six depths evenly spaced up to D_T, A ∈ A_T·{1/4, 1/2, 3/4, 1},
  H ∈ H_T·{1/2, 3/4, 1} and I ∈ I_T·{1/16, 1/8, 3/16, 1/4, 3/4} (Bort's values as fractions of
  BERT-large's), rounded, with the teacher's head size, so that every candidate is a slice of the
  teacher (``--init teacher``/``supernet`` need that);
- a YAML file with ``depth``, ``heads``, ``hidden``, ``ffn`` lists and ``head_dim`` (``ratio`` for
  H/A, or a number); the values are bounded as a search space's (``space.MAX_LAYERS``, ``MAX_WIDTH``).

As in Bort, combinations where A does not divide H are skipped (with either head size).
Embeddings, activation, layer-norm epsilon, pooler and head activation come from the teacher.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Literal, Union

from pydantic import Field, field_validator

from ..arch import ArchSpec, _Frozen, read_yaml_file, validate_mapping
from ..errors import ConfigError
from .space import Depth, SearchSpace, Width

GRIDS = ("teacher", "bort")


class Grid(_Frozen):
    """The values of each of ⟨D, A, H, I⟩; ``head_dim``: ``ratio`` (H/A) or a fixed head size."""

    depth: list[Depth] = Field(min_length=1)
    heads: list[Width] = Field(min_length=1)
    hidden: list[Width] = Field(min_length=1)
    ffn: list[Width] = Field(min_length=1)
    head_dim: Union[Literal["ratio"], Width] = "ratio"

    @field_validator("depth", "heads", "hidden", "ffn")
    @classmethod
    def _sorted(cls, values: list[int]) -> list[int]:
        return sorted(set(values))

    @property
    def size(self) -> int:
        """Tuples before the divisibility filter."""
        return len(self.depth) * len(self.heads) * len(self.hidden) * len(self.ffn)

    def tuples(self) -> list[tuple[int, int, int, int]]:
        """The ⟨D, A, H, I⟩ tuples where A divides H, in grid order."""
        return [
            (d, a, h, i)
            for d, a, h, i in itertools.product(self.depth, self.heads, self.hidden, self.ffn)
            if h % a == 0
        ]

    def spec(self, d: int, a: int, h: int, i: int, template: ArchSpec) -> ArchSpec:
        """The architecture ⟨d, a, h, i⟩ with the template's (the teacher's) embeddings and settings."""
        dim = h // a if self.head_dim == "ratio" else self.head_dim
        first = template.layers[0]
        return ArchSpec.uniform(
            layers=d,
            hidden=h,
            heads=a,
            ffn=i,
            qk_dim=dim,
            v_dim=dim,
            activation=first.ffn.activation,
            embeddings=_embeddings(template),
            layer_norm_eps=template.layer_norm_eps,
            **template.inherited(),
        )

    def candidates(self, template: ArchSpec) -> list[ArchSpec]:
        """Every buildable architecture of the grid."""
        if not self.tuples():
            raise ConfigError(f"the grid is empty: no heads value ({self.heads}) divides a hidden size ({self.hidden})")
        return [self.spec(*t, template) for t in self.tuples()]

    def space(self, template: ArchSpec) -> SearchSpace:
        """The grid as a uniform search space (what a supernet for ``--init supernet`` trains over)."""
        if self.head_dim == "ratio":
            raise ConfigError("a supernet shares one head size: give the grid a fixed head_dim (--init supernet)")
        return SearchSpace.from_dict(
            {
                "depth": self.depth,
                "hidden": self.hidden,
                "per_layer": False,
                "layer": {
                    "heads": self.heads,
                    "qk_dim": [self.head_dim],
                    "v_dim": [self.head_dim],
                    "ffn": self.ffn,
                    "activation": [template.layers[0].ffn.activation],
                },
                "embeddings": _embeddings(template).model_dump(mode="json"),
                **template.inherited(),
            },
            source="the extraction grid",
        )


def _embeddings(template: ArchSpec):
    return template.embeddings.model_copy(update={"size": None})


def bort_grid() -> Grid:
    """The paper's grid (the Bort paper), for BERT-large-sized teachers."""
    return Grid(
        depth=[2, 4, 6, 8, 10, 12],
        heads=[4, 8, 12, 16],
        hidden=[512, 768, 1024],
        ffn=[256, 512, 768, 1024, 3072],
        head_dim="ratio",
    )


def scaled_grid(teacher: ArchSpec) -> Grid:
    """Bort's grid as fractions of the teacher's shape (see the module docstring)."""
    first = teacher.layers[0]
    d, a, h, i = teacher.num_layers, first.attention.heads, teacher.hidden, first.ffn.size

    def scale(n: int, fractions: tuple[float, ...], multiple: int = 1) -> list[int]:
        return [max(multiple, round(n * f / multiple) * multiple) for f in fractions]

    return Grid(
        depth=scale(d, tuple(k / 6 for k in range(1, 7))),
        heads=scale(a, (1 / 4, 1 / 2, 3 / 4, 1)),
        hidden=scale(h, (1 / 2, 3 / 4, 1), multiple=8),
        ffn=scale(i, (1 / 16, 1 / 8, 3 / 16, 1 / 4, 3 / 4), 8),
        head_dim=first.attention.qk_dim,
    )


def resolve_grid(name: str | os.PathLike, teacher: ArchSpec) -> Grid:
    """``teacher``, ``bort`` or a grid YAML file."""
    if str(name) == "teacher":
        return scaled_grid(teacher)
    if str(name) == "bort":
        return bort_grid()
    path = Path(name)
    if path.suffix not in (".yaml", ".yml", ".json"):
        raise ConfigError(f"grid {str(name)!r}: expected {' or '.join(GRIDS)} or a grid YAML file")
    return validate_mapping(Grid, read_yaml_file(path, "the grid", ConfigError), source=str(path), what="grid")
