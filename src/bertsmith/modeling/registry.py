"""The torch modules of the attention and FFN kinds, by name: what the encoder builds. The kinds
themselves (their spec fields, summary, search-space choices and slicing) are ``bertsmith.kinds``,
whose ``register`` adds a kind's module here; the built-in ones are listed here too, since exported
models (this folder, copied beside them) build without bertsmith."""

from .attention import SelfAttention
from .ffn import DenseFFN, GroupedFFN
from .mixed_attention import MixedAttention
from .searched_ffn import SearchedFFN

ATTENTION = {"mhsa": SelfAttention, "mixed": MixedAttention}
FFN = {"dense": DenseFFN, "grouped": GroupedFFN, "searched": SearchedFFN}
