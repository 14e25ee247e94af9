"""Search spaces: which ArchSpecs a search may propose, read from YAML.

A space gives choices per dimension: a list of values or a range ``{min, max, step}``. The depth,
hidden size and embedding size are global; the layer dimensions (attention kind, heads, query/key and
value head dims, FFN kind, size, activation, and the dimensions the kinds add: ConvBERT's kernel and
head ratio, groups, expression; see ``bertsmith.kinds``) are chosen once for all layers
(``per_layer: false``) or for each layer on its own. A kind's dimensions are ignored for the other
kinds, and combinations that the modeling code cannot build (e.g. groups that do not divide the
hidden size) are left out, so
``size()`` counts buildable architectures exactly. ``budget`` holds the constraints (``budget.py``);
where latency is measured (``budget.device``) is the search's choice, not the space's.

Every value is checked where it is written, and the space is bounded before anything is listed: a
depth of 1 to MAX_LAYERS, sizes (hidden, embedding, heads, head dims, FFN, kernel, ratio, groups) of
1 to MAX_WIDTH, at most MAX_CHOICES values per dimension (a range is counted, not listed) and at most
MAX_CANDIDATES layer shapes (hidden sizes × attention and FFN combinations) to check. Expressions
must parse (``modeling.expr``, itself bounded).

    depth: [2, 4, 6]
    hidden: {min: 128, max: 384, step: 128}
    layer:
      heads: [4, 8, 12]
      qk_dim: [32]
      v_dim: [32]
      ffn: {min: 256, max: 1536, step: 256}
    per_layer: true
    budget: {params: 5M}
"""

from __future__ import annotations

import itertools
import math
import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Union

import numpy as np
from pydantic import AfterValidator, Discriminator, Field, Tag, create_model, model_validator

from ..arch import (
    ArchSpec,
    EmbeddingSpec,
    Float,
    LATER_DEFAULTS,
    Int,
    _Frozen,
    read_yaml_file,
    short_repr,
    validate_mapping,
)
from ..errors import SpecError
from ..files import digest
from ..kinds import ATTENTION, FFN, AttentionSpec, Choice, FFNSpec, KindSpec
from ..modeling.expr import ACTIVATIONS
from .budget import Budget

MAX_LAYERS = 128  # the deepest depth choice
MAX_WIDTH = 65536  # the largest size choice (hidden, embedding, heads, head dims, FFN, kernel, ratio, groups)
MAX_CHOICES = 4096  # values of one dimension
MAX_CANDIDATES = 100_000  # layer shapes checked for buildability: hidden sizes × (attention + FFN combinations)

Width = Annotated[Int, Field(gt=0, le=MAX_WIDTH)]
Depth = Annotated[Int, Field(gt=0, le=MAX_LAYERS)]


class Range(_Frozen):
    """Every value from ``min`` to ``max`` (inclusive) in steps of ``step``."""

    min: Width
    max: Width
    step: Annotated[Int, Field(gt=0)] = 1

    @model_validator(mode="after")
    def _check(self) -> "Range":
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) is below min ({self.min})")
        return self

    def count(self) -> int:
        """How many values, without listing them."""
        return (self.max - self.min) // self.step + 1

    def values(self) -> list[int]:
        return list(range(self.min, self.max + 1, self.step))


class DepthRange(Range):
    """A range of depths: 1 to MAX_LAYERS."""

    min: Depth
    max: Depth


def _distinct(values: list) -> list:
    """The values in their order, each once: a repeated choice is not another architecture."""
    return list(dict.fromkeys(values))


Distinct = AfterValidator(_distinct)


def _kind(value: Any) -> str:
    return "<range>" if isinstance(value, (dict, Range)) else "<list>"


def _choices(item: Any, range_type: type[Range]) -> Any:
    """A dimension's choices: a list of ``item`` or a ``range_type`` mapping (errors name the key, not the union)."""
    return Annotated[
        Union[Annotated[range_type, Tag("<range>")], Annotated[list[item], Distinct, Tag("<list>")]],
        Discriminator(_kind),
    ]


Ints = _choices(Width, Range)
Depths = _choices(Depth, DepthRange)


def _count(choice: Any) -> int:
    return choice.count() if isinstance(choice, Range) else len(choice)


def _values(choice: Any) -> list:
    return choice.values() if isinstance(choice, Range) else list(choice)


def _known(names: Any, what: str) -> AfterValidator:
    """A check that a value is one of ``names`` (a registry or a mapping of them)."""

    def check_name(name: str) -> str:
        if name not in names:
            raise ValueError(f"unknown {what} {short_repr(name)} (known: {', '.join(names)})")
        return name

    return AfterValidator(check_name)


def _dimensions(kinds: dict[str, type[KindSpec]]) -> dict[str, Choice]:
    """The search-space dimensions that a family's kinds add, in the order of the kinds."""
    return {name: choice for kind in kinds.values() for name, choice in kind.choices.items()}


def _dimension(choice: Choice) -> tuple[Any, list]:
    """A kind's dimension as a field: sizes (a list or a range) or a list of ``choice.item``, with its default."""
    return (Ints if choice.item is None else Annotated[list[choice.item], Distinct]), choice.default


class _LayerChoices(_Frozen):
    """Choices for one layer's dimensions: the attention's (kind, heads, qk_dim, v_dim, then its kinds'),
    the FFN's (kind, size, its kinds', activation)."""

    @model_validator(mode="after")
    def _check(self) -> "_LayerChoices":
        for name in type(self).model_fields:
            count = _count(getattr(self, name))
            if not count:
                raise ValueError(f"{name}: no choices")
            if count > MAX_CHOICES:
                raise ValueError(f"{name}: {count} choices, over the limit of {MAX_CHOICES}")
        return self

    def candidates(self) -> int:
        """Attention plus FFN combinations, counted without listing them."""
        n = {name: _count(getattr(self, name)) for name in type(self).model_fields}

        def combinations(kinds: dict[str, type[KindSpec]], chosen: list[str], common: tuple[str, ...]) -> int:
            return sum(math.prod(n[dim] for dim in (*common, *kinds[kind].choices)) for kind in chosen)

        return combinations(ATTENTION, self.attention, ("heads", "qk_dim", "v_dim")) + combinations(
            FFN, self.ffn_kind, ("ffn", "activation")
        )


LayerChoices = create_model(
    "LayerChoices",
    __base__=_LayerChoices,
    __module__=__name__,
    attention=(Annotated[list[Annotated[str, _known(ATTENTION, "kind")]], Distinct], ["mhsa"]),
    heads=Ints,
    qk_dim=Ints,
    v_dim=Ints,
    **{name: _dimension(choice) for name, choice in _dimensions(ATTENTION).items()},
    ffn_kind=(Annotated[list[Annotated[str, _known(FFN, "kind")]], Distinct], ["dense"]),
    ffn=Ints,
    **{name: _dimension(choice) for name, choice in _dimensions(FFN).items()},
    activation=(Annotated[list[Annotated[str, _known(ACTIVATIONS, "activation")]], Distinct], ["gelu"]),
)


class SearchSpace(_Frozen):
    """Depth, hidden and embedding sizes, per-layer choices, whether layers choose independently,
    the embeddings' fixed settings (vocabulary, positions: the teacher's) and the budget."""

    depth: Depths
    hidden: Ints
    embedding_size: Annotated[list[Width | None], Distinct] = [None]
    layer: LayerChoices
    per_layer: bool = False
    embeddings: EmbeddingSpec = EmbeddingSpec()
    pooler: bool = True
    head_activation: Annotated[str, _known(ACTIVATIONS, "activation")] = "gelu"
    relative_attention_buckets: Int = Field(0, ge=0)
    dropout: Float | None = Field(None, ge=0, lt=1)
    budget: Budget = Budget()

    @model_validator(mode="after")
    def _check(self) -> "SearchSpace":
        for name in ("depth", "hidden", "embedding_size"):
            count = _count(getattr(self, name))
            if not count:
                raise ValueError(f"{name}: no choices")
            if count > MAX_CHOICES:
                raise ValueError(f"{name}: {count} choices, over the limit of {MAX_CHOICES}")
        candidates = _count(self.hidden) * self.layer.candidates()
        if candidates > MAX_CANDIDATES:
            raise ValueError(
                f"layer: {candidates:,} layer shapes to check (hidden sizes × attention and FFN "
                f"combinations), over the limit of {MAX_CANDIDATES:,}: narrow the choices"
            )
        if self.embeddings.trigram and None in self.embedding_size:
            raise ValueError("embedding_size: trigram embeddings need a size (null is not a choice)")
        if not self._buildable:
            raise ValueError("layer: no combination of the layer and embedding choices can be built at any hidden size")
        return self

    # ---- reading ------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, *, source: str = "space") -> "SearchSpace":
        return validate_mapping(cls, data, source=source, what="search-space")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SearchSpace":
        path = Path(path)
        data = read_yaml_file(path, "the search space", SpecError)
        if isinstance(data, dict) and isinstance(data.get("budget"), dict) and "device" in data["budget"]:
            raise SpecError(
                f"{path}: budget.device: a search space does not choose where latency is measured; "
                "give it to the search (bertsmith search --budget device=cuda, or budget.device in a "
                "run config)"
            )
        return cls.from_dict(data, source=str(path))

    # ---- the architectures ----------------------------------------------------------------------
    def _attention_options(self, hidden: int) -> list[AttentionSpec]:
        c = self.layer
        out = []
        for kind in map(ATTENTION.get, c.attention):
            own = list(kind.choices)
            for a, k, v, *values in itertools.product(
                _values(c.heads), _values(c.qk_dim), _values(c.v_dim), *(_values(getattr(c, dim)) for dim in own)
            ):
                spec = kind(heads=a, qk_dim=k, v_dim=v, **dict(zip(own, values)))
                if kind.module.problem(spec, hidden) is None:
                    out.append(spec)
        return out

    def _ffn_options(self, hidden: int) -> list[FFNSpec]:
        c = self.layer
        out = []
        for kind in map(FFN.get, c.ffn_kind):
            own = list(kind.choices)
            for size, *values, act in itertools.product(
                _values(c.ffn), *(_values(getattr(c, dim)) for dim in own), c.activation
            ):
                spec = kind(size=size, activation=act, **dict(zip(own, values)))
                if kind.module.problem(spec, hidden) is None:
                    out.append(spec)
        return out

    def _embedding_sizes(self, hidden: int) -> list[int | None]:
        return [e for e in self.embedding_size if not self.embeddings.trigram or e <= hidden]

    @cached_property
    def _buildable(self) -> dict[int, tuple[list[AttentionSpec], list[FFNSpec], list[int | None]]]:
        """Hidden size → its buildable attention, FFN and embedding-size choices (sizes with none left out)."""
        out = {}
        for hidden in _values(self.hidden):
            options = (self._attention_options(hidden), self._ffn_options(hidden), self._embedding_sizes(hidden))
            if all(options):
                out[hidden] = options
        return out

    def size(self) -> int:
        """The number of distinct buildable architectures (budget not applied)."""
        total = 0
        for attention, ffn, sizes in self._buildable.values():
            per_layer = len(attention) * len(ffn)
            for depth in _values(self.depth):
                total += len(sizes) * (per_layer**depth if self.per_layer else per_layer)
        return total

    def sample(self, rng: np.random.Generator) -> ArchSpec:
        """One architecture, each dimension drawn uniformly from its buildable choices."""
        hidden = list(self._buildable)[int(rng.integers(len(self._buildable)))]
        attention, ffn, sizes = self._buildable[hidden]
        depths = _values(self.depth)
        depth = depths[int(rng.integers(len(depths)))]

        def layer() -> dict:
            return {"attention": attention[int(rng.integers(len(attention)))], "ffn": ffn[int(rng.integers(len(ffn)))]}

        shared = layer()
        layers = [layer() if self.per_layer else shared for _ in range(depth)]
        embeddings = self.embeddings.model_copy(update={"size": sizes[int(rng.integers(len(sizes)))]})
        return self._spec(hidden=hidden, layers=layers, embeddings=embeddings)

    # ---- genes: the space as flat named choices (for Optuna samplers) ----------------------------
    def _layer_dims(self) -> dict[str, list]:
        """The per-layer dimensions with their values; those a kind adds only when one of its kinds is a
        choice."""
        c = self.layer

        def added(kinds: dict[str, type[KindSpec]], chosen: list[str]) -> dict[str, list]:
            return {
                dim: _values(getattr(c, dim))
                for dim in _dimensions(kinds)
                if any(dim in kinds[kind].choices for kind in chosen)
            }

        return {
            "attention": c.attention,
            "heads": _values(c.heads),
            "qk_dim": _values(c.qk_dim),
            "v_dim": _values(c.v_dim),
            **added(ATTENTION, c.attention),
            "ffn_kind": c.ffn_kind,
            "ffn": _values(c.ffn),
            **added(FFN, c.ffn_kind),
            "activation": c.activation,
        }

    def genes(self) -> dict[str, list]:
        """Gene name → its values. Global genes ``depth``, ``hidden``, ``embedding_size``; layer
        genes ``layer.DIM`` (shared) or ``layerI.DIM`` for every layer up to the largest depth (a
        fixed-length genome: a shallower architecture ignores the genes of its missing layers, so
        crossover and mutation see the same genes in every trial). Single-valued genes are left out."""
        out = {"depth": _values(self.depth), "hidden": list(self._buildable), "embedding_size": self.embedding_size}
        layer_dims = self._layer_dims()
        prefixes = [f"layer{i}." for i in range(max(_values(self.depth)))] if self.per_layer else ["layer."]
        for prefix in prefixes:
            out |= {prefix + dim: values for dim, values in layer_dims.items()}
        return {name: values for name, values in out.items() if len(values) > 1}

    def from_genes(self, genes: dict[str, Any]) -> ArchSpec:
        """The architecture that gene values describe (missing genes take their only value).
        Raises ``SpecError`` naming the gene or dimension when the combination cannot be built."""
        all_genes = {
            "depth": _values(self.depth),
            "hidden": list(self._buildable),
            "embedding_size": self.embedding_size,
        }
        unknown = sorted(set(genes) - set(self.genes()))
        if unknown:
            raise SpecError(f"{unknown[0]}: not a gene of this search space")

        def value(name: str, values: list) -> Any:
            v = genes.get(name, values[0])
            if v not in values:
                raise SpecError(f"{name}: {v!r} is not one of the space's choices {values}")
            return v

        depth, hidden, emb = (value(n, all_genes[n]) for n in ("depth", "hidden", "embedding_size"))
        layer_dims = {dim: values for dim, values in self._layer_dims().items()}
        layers = []
        for i in range(depth):
            prefix = f"layer{i}." if self.per_layer else "layer."
            d = {dim: value(prefix + dim, values) for dim, values in layer_dims.items()}
            d = {dim: d.get(dim, _values(getattr(self.layer, dim))[0]) for dim in _ALL_LAYER_DIMS}
            att, ffn = ATTENTION[d["attention"]], FFN[d["ffn_kind"]]
            layers.append(
                {
                    "attention": {
                        "kind": d["attention"],
                        "heads": d["heads"],
                        "qk_dim": d["qk_dim"],
                        "v_dim": d["v_dim"],
                        **{dim: d[dim] for dim in att.choices},
                    },
                    "ffn": {
                        "kind": d["ffn_kind"],
                        "size": d["ffn"],
                        "activation": d["activation"],
                        **{dim: d[dim] for dim in ffn.choices},
                    },
                }
            )
        embeddings = self.embeddings.model_copy(update={"size": emb})
        return self._spec(hidden=hidden, layers=layers, embeddings=embeddings)

    def suggest(self, trial: Any) -> ArchSpec:
        """Ask an Optuna trial for every gene (categorical) and build the architecture."""
        return self.from_genes({name: trial.suggest_categorical(name, values) for name, values in self.genes().items()})

    # ---- extremes -------------------------------------------------------------------------------
    def extreme(self, largest: bool) -> ArchSpec:
        """The architecture with the most (``largest``) or fewest parameters in every dimension:
        the deepest/shallowest depth, the widest/narrowest buildable hidden size, and per layer the
        attention and FFN choices with the most/fewest parameters at that width."""
        pick = max if largest else min
        hidden = pick(self._buildable)
        attention, ffn, sizes = self._buildable[hidden]
        att = pick(attention, key=lambda a: a.module.count_params(a, hidden))
        f = pick(ffn, key=lambda s: s.module.count_params(s, hidden))
        size = pick(sizes, key=lambda e: hidden if e is None else e)
        embeddings = self.embeddings.model_copy(update={"size": size})
        depth = pick(_values(self.depth))
        return self._spec(hidden=hidden, layers=[{"attention": att, "ffn": f}] * depth, embeddings=embeddings)

    def _spec(self, **fields: Any) -> ArchSpec:
        """An architecture of this space: the space's pooler, head activation and (when set) dropout rates."""
        rates = {} if self.dropout is None else {"hidden_dropout": self.dropout, "attention_dropout": self.dropout}
        return ArchSpec.build(
            pooler=self.pooler,
            head_activation=self.head_activation,
            relative_attention_buckets=self.relative_attention_buckets,
            **rates,
            **fields,
        )

    def digest(self) -> str:
        """sha256 of the space's definition: a study remembers which space it searched."""
        definition = self.model_dump(mode="json")
        if definition["dropout"] is None:  # unset: the digest of a space written before the field existed
            del definition["dropout"]
        for name, default in LATER_DEFAULTS.items():  # likewise
            if definition[name] == default:
                del definition[name]
        return digest(definition)


_ALL_LAYER_DIMS = tuple(LayerChoices.model_fields)
