"""Attention and FFN kinds: each one module here (its schema, summary, search-space choices and slicer,
see ``kinds.base``) beside its torch module in ``bertsmith.modeling``, and one ``register`` line below."""

from .base import KINDS, AttentionSpec, Choice, FFNSpec, KindModule, KindSpec, Slicer, register
from .dense import DenseSpec
from .grouped import GroupedSpec
from .mhsa import MHSASpec
from .mixed import MixedSpec
from .searched import SearchedSpec

for _kind in (MHSASpec, MixedSpec, DenseSpec, GroupedSpec, SearchedSpec):
    register(_kind)

ATTENTION, FFN = KINDS["attention"], KINDS["ffn"]

__all__ = [
    "ATTENTION",
    "FFN",
    "KINDS",
    "AttentionSpec",
    "Choice",
    "FFNSpec",
    "KindModule",
    "KindSpec",
    "Slicer",
    "register",
]
