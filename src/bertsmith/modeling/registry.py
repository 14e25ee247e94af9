"""The registries of attention and FFN kinds. A new kind is one new module and one entry here;
ArchSpec validation, the cost model, the encoder and the parametrized tests pick it up."""

from .attention import SelfAttention
from .ffn import DenseFFN, GroupedFFN
from .mixed_attention import MixedAttention
from .searched_ffn import SearchedFFN

ATTENTION = {"mhsa": SelfAttention, "mixed": MixedAttention}
FFN = {"dense": DenseFFN, "grouped": GroupedFFN, "searched": SearchedFFN}
