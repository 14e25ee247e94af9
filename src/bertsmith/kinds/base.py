"""What every attention and FFN kind shares: its family's fields, the contract a kind fulfils, and the
registry of kinds.

A kind is one subclass of ``AttentionSpec`` or ``FFNSpec`` (its schema: the family's fields plus its
own, ``kind`` a literal), naming the torch module that builds it (``bertsmith.modeling``, which stays
pure torch: it is copied next to exported models), the search-space dimensions it adds
(``choices``) and, where it has one, how its weights are cut from a larger model (``slicer``).
``register`` adds it to ``KINDS`` and its module to ``bertsmith.modeling.registry``. Validating a
family's base class picks the kind's model by the ``kind`` field through ``KINDS`` (a discriminated
union looked up when validating, so a kind registered later is known at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, get_origin

import torch
from pydantic import SerializerFunctionWrapHandler, ValidatorFunctionWrapHandler, model_serializer, model_validator

from ..fields import PositiveInt, _Frozen, field_error, short_repr
from ..modeling import registry as modules

Family = Literal["attention", "ffn"]


class KindModule(Protocol):
    """What a kind's torch module provides besides ``__init__`` and ``forward``: its rules and exact costs."""

    @staticmethod
    def problem(spec: Any, hidden: int) -> str | None:
        """Why ``spec`` cannot be built at width ``hidden`` (``field: message``), or None."""

    @staticmethod
    def count_params(spec: Any, hidden: int) -> int: ...

    @staticmethod
    def count_flops(spec: Any, hidden: int, seq_len: int) -> int: ...


@dataclass(frozen=True)
class Choice:
    """A search-space dimension that a kind adds to a space's ``layer`` section (named like the spec field it
    sets): the choices a space that does not name it has, and the type of one value (None: a size, given
    as a list or a ``{min, max, step}`` range)."""

    default: list
    item: Any = None


@dataclass(frozen=True)
class Slicer:
    """How a kind's weights are cut from a larger layer (``modeling.elastic``): from layers of which kinds
    (``sources``), and, overridden by a kind, what must match and the tensors that are not simply the
    leading part of the source's. ``units``: the layer's units (heads and their dims, or FFN neurons) can
    also be scored, reordered and pruned one by one (importance, ``reorder``, ``select_units``, pruning
    gates; these know the fused qkv and output projections of ``mhsa`` and the two linears of ``dense``)."""

    sources: tuple[str, ...]
    units: bool = False

    def problem(self, source: Any, target: Any) -> str | None:
        """Why ``target`` cannot be cut from ``source`` (a spec of one of ``sources``): ``field: message``."""
        return None

    def source_name(self, name: str, source: Any) -> tuple[str, bool]:
        """The source's tensor behind the target's ``name`` (within the layer's attention or FFN, e.g.
        ``blocks.0.lin1.weight``), and whether the target's is zeros instead."""
        return name, False

    def cut(self, name: str, tensor: torch.Tensor, source: Any, target: Any, hidden: int) -> torch.Tensor | None:
        """The target's ``name`` cut from the source's ``tensor`` (a view or a differentiable function of it),
        or None when it is the leading part of every dimension."""
        return None


class KindSpec(_Frozen):
    """One layer's attention or FFN. Subclassed once per family (``AttentionSpec``, ``FFNSpec``), then once
    per kind. A kind's fields beyond its family's are its own: the summary, ``described`` and the spec files
    show them after the family's."""

    kind: str
    family: ClassVar[Family]
    module: ClassVar[type[KindModule]]
    choices: ClassVar[dict[str, Choice]] = {}
    slicer: ClassVar[Slicer | None] = None
    examples: ClassVar[tuple[dict[str, Any], ...]] = ({},)
    """Fields of a few small valid layers of this kind, set over the family's fields a test picks (its own
    fields, and those of the family it needs otherwise), so that the tests covering every kind cover it."""
    legacy: ClassVar[bool] = False
    """One of the kinds that shared one schema before kinds owned their fields (``LEGACY_FIELDS``)."""

    def __new__(cls, **data: Any) -> "KindSpec":
        """``AttentionSpec(kind="mixed", ...)``: a family's base class makes the model of the kind."""
        if data and FAMILIES.get(cls.family) is cls:
            return cls.model_validate(data)  # then __init__ validates it again, as its own kind
        return super().__new__(cls)

    @classmethod
    def name(cls) -> str:
        return cls.model_fields["kind"].default

    @classmethod
    def own_fields(cls) -> tuple[str, ...]:
        """The fields this kind adds to its family's."""
        return tuple(f for f in cls.model_fields if f not in FAMILIES[cls.family].model_fields)

    def summary(self) -> str:
        """This part of ``ArchSpec.summary``, e.g. ``grouped f3072 g4``: the family's text, then a kind's own."""
        raise NotImplementedError

    def described(self) -> str:
        """The fields that set the shapes of this part's tensors, for an error about one
        (``hf.mapping.field_of``), e.g. ``kind=grouped, size=3072, groups=4``: the family's, then the kind's own."""
        own = "".join(f", {name}={getattr(self, name)!r}" for name in self.own_fields())
        return self._described() + own

    def _described(self) -> str:
        raise NotImplementedError

    @model_validator(mode="wrap")
    @classmethod
    def _of_kind(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> "KindSpec":
        """A family's base class validates a mapping as the model of its ``kind`` (default: the family's)."""
        if FAMILIES.get(cls.family) is not cls or not isinstance(data, dict):
            return handler(data)
        kind = data.get("kind", cls.model_fields["kind"].default)
        kinds = KINDS[cls.family]
        if not isinstance(kind, str) or kind not in kinds:
            raise field_error("kind", kind, f"unknown kind {short_repr(kind)} (known: {', '.join(kinds)})")
        return kinds[kind].model_validate(data)

    @model_validator(mode="before")
    @classmethod
    def _legacy_fields(cls, data: Any) -> Any:
        """A legacy kind reads the other legacy kinds' fields at their defaults (it wrote them) and refuses
        them set."""
        if not cls.legacy or not isinstance(data, dict):
            return data
        data = dict(data)
        for field, (owner, default) in LEGACY_FIELDS[cls.family].items():
            if field in data and field not in cls.model_fields:
                value = data.pop(field)
                if value != default or isinstance(value, bool):
                    raise field_error(
                        field, value, f"{' and '.join(owner.own_fields())} apply only to kind {owner.name()!r}"
                    )
        return data

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A legacy kind writes every legacy kind's fields, in their order, the others' at their defaults:
        the specs written before kinds owned their fields keep their bytes and digests."""
        data = handler(self)
        if not self.legacy:
            return data
        layout = [*FAMILIES[self.family].model_fields, *LEGACY_FIELDS[self.family]]
        return {name: data[name] if name in data else LEGACY_FIELDS[self.family][name][1] for name in layout}


class AttentionSpec(KindSpec):
    """One layer's attention: ``heads`` heads with query/key dim ``qk_dim`` and value dim ``v_dim`` each
    (independent of hidden/heads, as schuBERT's). Its kind may add fields (``bertsmith.kinds``)."""

    family: ClassVar[Family] = "attention"
    kind: str = "mhsa"
    heads: PositiveInt
    qk_dim: PositiveInt
    v_dim: PositiveInt

    @property
    def all_heads(self) -> int:
        """Every head of the layer, the kind's other heads (e.g. convolution heads) included."""
        return self.heads

    def summary(self) -> str:
        return f"{self.kind} a{self.heads} k{self.qk_dim} v{self.v_dim}"

    def _described(self) -> str:
        return f"kind={self.kind}, heads={self.heads}, qk_dim={self.qk_dim}, v_dim={self.v_dim}"


class FFNSpec(KindSpec):
    """One layer's feed-forward network: inner ``size`` and ``activation``. Its kind may add fields."""

    family: ClassVar[Family] = "ffn"
    kind: str = "dense"
    size: PositiveInt
    activation: str = "gelu"

    def summary(self) -> str:
        return f"{self.kind} f{self.size}"

    def _described(self) -> str:
        return f"kind={self.kind}, size={self.size}"


FAMILIES: dict[str, type[KindSpec]] = {"attention": AttentionSpec, "ffn": FFNSpec}
KINDS: dict[str, dict[str, type[KindSpec]]] = {"attention": {}, "ffn": {}}
LEGACY_FIELDS: dict[str, dict[str, tuple[type[KindSpec], Any]]] = {"attention": {}, "ffn": {}}
"""Per family, the legacy kinds' own fields in their order: field → (its kind, its default)."""


def register(kind: type[KindSpec]) -> type[KindSpec]:
    """Add ``kind`` (a subclass of ``AttentionSpec`` or ``FFNSpec`` with a literal ``kind``) to the registry,
    and its module to ``bertsmith.modeling.registry`` (what the encoder builds). A kind whose ``choices``
    add search-space dimensions is registered before ``bertsmith.search.space`` is imported: a space's
    layer section is made of the dimensions of the kinds registered then."""
    name, family = kind.name(), kind.family
    if get_origin(kind.model_fields["kind"].annotation) is not Literal or FAMILIES[family] is kind:
        raise TypeError(f"{kind.__name__}: a kind subclasses AttentionSpec or FFNSpec with a literal kind")
    if KINDS[family].get(name, kind) is not kind:
        raise TypeError(f"{kind.__name__}: the {family} kind {name!r} is {KINDS[family][name].__name__} already")
    KINDS[family][name] = kind
    (modules.ATTENTION if family == "attention" else modules.FFN)[name] = kind.module
    if kind.legacy:
        LEGACY_FIELDS[family] |= {f: (kind, kind.model_fields[f].default) for f in kind.own_fields()}
    return kind
