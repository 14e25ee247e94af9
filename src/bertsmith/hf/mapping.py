"""How bertsmith specs and weights correspond to transformers' BERT, RoBERTa, ConvBERT, ELECTRA,
DistilBERT and MPNet.

Specs: ``spec_from_config`` reads a transformers ``config.json`` dict into an ArchSpec;
``stock_kind`` decides whether a spec (with a head) fits a stock transformers family, and
``hf_config_kwargs`` writes the matching config fields.

Weights: ``model_entries`` lists, for every bertsmith parameter, the transformers tensor(s) it
corresponds to (an ``Entry``). Most are one-to-one renames; bertsmith fuses the query, key and
value projections (and, for ``mixed`` attention, ConvBERT's ``conv_out_layer`` V') into one ``qkv``
linear, so that entry concatenates rows; ConvBERT's separable-conv bias has a trailing dimension of
one. The same table serves import (transformers → bertsmith) and stock export (the reverse).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from ..arch import ArchSpec
from ..errors import CheckpointError, SpecError

HF_SOURCES = ("bert", "roberta", "convbert", "electra", "distilbert", "mpnet")
HEADS = ("base", "classification", "mlm", "qa")
QA_OUTPUTS = "qa_outputs"  # every family's extractive QA head: a [2, hidden] linear (start, end)
QA_OUTPUT_NAMES = ("start_logits", "end_logits")  # a QA model's outputs (ONNX too), as transformers names them

# Where transformers' head models keep their encoder.
BASE_PREFIX = {
    "bert": "bert.",
    "roberta": "roberta.",
    "convbert": "convbert.",
    "electra": "electra.",
    "distilbert": "distilbert.",
    "mpnet": "mpnet.",
}
ROBERTA_POSITIONS = ("roberta", "mpnet")  # positions counted from pad_token_id + 1, padding skipped

# The MLM decoder weight, tied to the token embeddings in bertsmith (never stored by bertsmith).
TIED_DECODER = {
    "bert": "cls.predictions.decoder.weight",
    "roberta": "lm_head.decoder.weight",
    "mpnet": "lm_head.decoder.weight",
    "convbert": "generator_lm_head.weight",
    "electra": "generator_lm_head.weight",
    "bertsmith": "decoder.weight",
}

# transformers' ``hidden_act`` names → bertsmith activations, and back.
ACT_FROM_HF = {
    "gelu": "gelu",
    "gelu_python": "gelu",
    "relu": "relu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "silu": "swish",
    "swish": "swish",
    "leaky_relu": "leaky_relu",
}
ACT_TO_HF = {
    "gelu": "gelu",
    "relu": "relu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "swish": "silu",
    "leaky_relu": "leaky_relu",
}

# The defaults of transformers' BertConfig, RobertaConfig and ConvBertConfig: a config.json may omit them.
_COMMON_DEFAULTS = {
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
}
CONFIG_DEFAULTS = {
    "bert": dict(_COMMON_DEFAULTS),
    "roberta": {**_COMMON_DEFAULTS, "vocab_size": 50265, "pad_token_id": 1},
    "convbert": {
        **_COMMON_DEFAULTS,
        "pad_token_id": 1,
        "embedding_size": 768,
        "head_ratio": 2,
        "conv_kernel_size": 9,
        "num_groups": 1,
    },
    "electra": {
        **_COMMON_DEFAULTS,
        "embedding_size": 128,
        "hidden_size": 256,
        "num_attention_heads": 4,
        "intermediate_size": 1024,
    },
}

# The activation of the family's classification head on the first token (dense → act → out_proj).
HEAD_ACTIVATION = {"roberta": "tanh", "mpnet": "tanh", "distilbert": "relu"}

# DistilBERT's names for the BERT config fields, and the values it does not configure (no token types,
# LayerNorm eps fixed at 1e-12).
CONFIG_NAMES = {
    "distilbert": {
        "hidden_size": "dim",
        "num_hidden_layers": "n_layers",
        "num_attention_heads": "n_heads",
        "intermediate_size": "hidden_dim",
        "hidden_act": "activation",
        "hidden_dropout_prob": "dropout",
        "attention_probs_dropout_prob": "attention_dropout",
    },
}
CONFIG_FIXED = {
    "distilbert": {"type_vocab_size": 0, "layer_norm_eps": 1e-12},
    "mpnet": {"type_vocab_size": 0, "pad_token_id": 1},
}  # MPNet: no token types, padding index 1
CONFIG_DEFAULTS["mpnet"] = {
    **{k: v for k, v in _COMMON_DEFAULTS.items() if k != "type_vocab_size"},
    "vocab_size": 30527,
    "pad_token_id": 1,
    "relative_attention_num_buckets": 32,
}
CONFIG_DEFAULTS["distilbert"] = {
    "vocab_size": 30522,
    "dim": 768,
    "n_layers": 6,
    "n_heads": 12,
    "hidden_dim": 3072,
    "activation": "gelu",
    "dropout": 0.1,
    "attention_dropout": 0.1,
    "max_position_embeddings": 512,
    "initializer_range": 0.02,
    "pad_token_id": 0,
}

STOCK_ARCHITECTURES = {
    "bert": {
        "base": "BertModel",
        "classification": "BertForSequenceClassification",
        "mlm": "BertForMaskedLM",
        "qa": "BertForQuestionAnswering",
    },
    "distilbert": {
        "base": "DistilBertModel",
        "classification": "DistilBertForSequenceClassification",
        "qa": "DistilBertForQuestionAnswering",
    },
    "mpnet": {
        "base": "MPNetModel",
        "classification": "MPNetForSequenceClassification",
        "mlm": "MPNetForMaskedLM",
        "qa": "MPNetForQuestionAnswering",
    },
    "electra": {
        "base": "ElectraModel",
        "classification": "ElectraForSequenceClassification",
        "mlm": "ElectraForMaskedLM",
        "qa": "ElectraForQuestionAnswering",
    },
    "convbert": {
        "base": "ConvBertModel",
        "classification": "ConvBertForSequenceClassification",
        "mlm": "ConvBertForMaskedLM",
        "qa": "ConvBertForQuestionAnswering",
    },
}


# ---- specs ----------------------------------------------------------------------------------
def config_name(source: str, key: str) -> str:
    """The name of BERT's config field ``key`` in a ``source`` config.json."""
    return CONFIG_NAMES.get(source, {}).get(key, key)


def _field(cfg: dict, key: str, source: str, where: str, kind: type = int, positive: bool = True):
    if key in CONFIG_FIXED.get(source, {}):
        return CONFIG_FIXED[source][key]
    key = config_name(source, key)
    value = cfg.get(key)
    if value is None:
        value = CONFIG_DEFAULTS[source][key]
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or (positive and value <= 0) or (not positive and value < 0):
        want = f"a {'positive' if positive else 'non-negative'} {'integer' if kind is int else 'number'}"
        raise CheckpointError(f"{where}: {key} = {value!r}: expected {want}")
    return value


def activation_from_hf(cfg: dict, source: str, where: str) -> str:
    key = config_name(source, "hidden_act")
    act = cfg.get(key) or CONFIG_DEFAULTS[source][key]
    if not isinstance(act, str) or act not in ACT_FROM_HF:
        raise CheckpointError(f"{where}: {key} = {act!r} is not supported (supported: {', '.join(ACT_FROM_HF)})")
    return ACT_FROM_HF[act]


def spec_from_config(cfg: dict, source: str, *, pooler: bool, where: str) -> ArchSpec:
    """The ArchSpec of a transformers BERT / RoBERTa / ConvBERT / DistilBERT ``config.json`` dict."""

    def f(key: str, **kw):
        return _field(cfg, key, source, where, **kw)

    hidden, n_layers = f("hidden_size"), f("num_hidden_layers")
    heads, inner = f("num_attention_heads"), f("intermediate_size")
    position_type = cfg.get("position_embedding_type") or "absolute"
    if position_type != "absolute":
        raise CheckpointError(
            f"{where}: position_embedding_type = {position_type!r} is not supported (only 'absolute')"
        )
    if cfg.get("is_decoder") or cfg.get("add_cross_attention"):
        raise CheckpointError(f"{where}: is_decoder / add_cross_attention: only bidirectional encoders are supported")
    activation = activation_from_hf(cfg, source, where)
    pad = cfg.get("pad_token_id")
    pad = CONFIG_DEFAULTS[source]["pad_token_id"] if pad is None else pad
    pad = CONFIG_FIXED.get(source, {}).get("pad_token_id", pad)
    buckets = 0
    if source == "mpnet":
        buckets = f("relative_attention_num_buckets")
        if buckets != 32:  # transformers' MPNetEncoder buckets offsets into 32 whatever the table's size
            raise CheckpointError(
                f"{where}: relative_attention_num_buckets = {buckets}: only 32 is supported "
                "(what transformers' MPNet computes with)"
            )
    embeddings = {
        "vocab_size": f("vocab_size"),
        "max_positions": f("max_position_embeddings"),
        "type_vocab_size": f("type_vocab_size", positive=False),
        "pad_token_id": pad,
        "positions": "roberta" if source in ROBERTA_POSITIONS else "absolute",
    }
    ffn = {"kind": "dense", "size": inner, "activation": activation}
    if source == "convbert":
        ratio = f("head_ratio")
        attention_heads = heads // ratio if heads // ratio >= 1 else 1  # as ConvBertSelfAttention
        if hidden % attention_heads:
            raise CheckpointError(
                f"{where}: hidden_size ({hidden}) is not a multiple of num_attention_heads // head_ratio"
                f" ({attention_heads})"
            )
        head_dim = (hidden // attention_heads) // 2
        attention = {
            "kind": "mixed",
            "heads": attention_heads,
            "qk_dim": head_dim,
            "v_dim": head_dim,
            "conv_kernel": f("conv_kernel_size"),
            "head_ratio": 2,  # transformers always has as many conv heads as attention heads
        }
        groups = f("num_groups")
        if groups > 1:
            ffn |= {"kind": "grouped", "groups": groups}
        emb_size = f("embedding_size")
        if emb_size != hidden:
            embeddings["size"] = emb_size
    else:
        if hidden % heads:
            raise CheckpointError(f"{where}: hidden_size ({hidden}) is not a multiple of num_attention_heads ({heads})")
        attention = {"kind": "mhsa", "heads": heads, "qk_dim": hidden // heads, "v_dim": hidden // heads}
        if source == "electra" and f("embedding_size") != hidden:  # ELECTRA's factorized embeddings
            embeddings["size"] = f("embedding_size")
    try:
        return ArchSpec.build(
            hidden=hidden,
            embeddings=embeddings,
            layers=[{"attention": attention, "ffn": ffn}] * n_layers,
            layer_norm_eps=f("layer_norm_eps", kind=float),
            hidden_dropout=f("hidden_dropout_prob", kind=float, positive=False),
            attention_dropout=f("attention_probs_dropout_prob", kind=float, positive=False),
            initializer_range=f("initializer_range", kind=float),
            pooler=pooler,
            head_activation=HEAD_ACTIVATION.get(source, "gelu"),
            relative_attention_buckets=buckets,
        )
    except SpecError as exc:
        raise CheckpointError(f"{where}: {exc}") from None


def check_spec_fits_source(spec: ArchSpec, source: str, where: str) -> None:
    """A spec given for a transformers checkpoint must use the kinds that checkpoint has."""
    if source == "bertsmith":
        return
    att_kind = "mixed" if source == "convbert" else "mhsa"
    ffn_kinds = ("dense", "grouped") if source == "convbert" else ("dense",)
    for i, layer in enumerate(spec.layers):
        if layer.attention.kind != att_kind:
            raise CheckpointError(
                f"{where}: layers[{i}].attention.kind = {layer.attention.kind!r}, but a {source} checkpoint has {att_kind!r}"
            )
        if layer.ffn.kind not in ffn_kinds:
            raise CheckpointError(
                f"{where}: layers[{i}].ffn.kind = {layer.ffn.kind!r}, but a {source} checkpoint has {' or '.join(ffn_kinds)}"
            )
    if spec.embeddings.trigram:
        raise CheckpointError(f"{where}: embeddings.trigram: a {source} checkpoint has no trigram embeddings")
    if (spec.embeddings.positions == "roberta") != (source in ROBERTA_POSITIONS):
        raise CheckpointError(
            f"{where}: embeddings.positions = {spec.embeddings.positions!r} does not match a {source} checkpoint"
        )


def stock_kind(spec: ArchSpec, head: str) -> tuple[str, str]:
    """``("bert" | "convbert", "")`` when stock transformers classes hold this spec and head exactly,
    else ``("remote", why)``. A QA model is judged without its pooler, which it never uses (transformers'
    QA models have none; ``export_pretrained`` leaves it out)."""
    if head == "qa" and spec.pooler:
        spec = spec.replace(pooler=False)
    if not spec.is_uniform:
        return "remote", "layers differ in shape"
    emb, layer = spec.embeddings, spec.layers[0]
    att, ffn = layer.attention, layer.ffn
    if spec.relative_attention_buckets:
        return _mpnet_kind(spec, head)
    if emb.trigram:
        return "remote", "trigram embeddings"
    if emb.positions != "absolute":
        return "remote", "RoBERTa positions"
    if emb.type_vocab_size == 0:
        return _distilbert_kind(spec, head)
    if ffn.kind not in ("dense", "grouped"):
        return "remote", f"ffn kind {ffn.kind!r}"
    if ffn.activation not in ACT_TO_HF:
        return "remote", f"activation {ffn.activation!r}"
    if att.kind == "mhsa":
        if ffn.kind != "dense":
            return "remote", "grouped FFN with self-attention"
        if att.qk_dim != att.v_dim or att.heads * att.qk_dim != spec.hidden:
            return "remote", "head dims differ from hidden / heads"
        # BertModel and its classifier pool; its QA model has no pooler
        if emb.size is not None or (not spec.pooler and head in ("base", "classification")):
            return _electra_kind(spec, head)
        if spec.pooler and head == "mlm":
            return "remote", "a pooler (BertForMaskedLM has none)"
        if head == "mlm" and ffn.activation != "gelu":
            return "remote", "BERT's MLM head would use the FFN activation"
        return "bert", ""
    if att.kind == "mixed":
        if att.head_ratio != 2:
            return "remote", "head ratio other than 2"
        if att.qk_dim != att.v_dim or 2 * att.heads * att.qk_dim != spec.hidden:
            return "remote", "head dims differ from hidden / (2 * heads)"
        if spec.pooler:
            return "remote", "a pooler (ConvBERT has none)"
        if emb.size == spec.hidden:
            return "remote", "an embedding projection at embedding size == hidden"
        if head == "classification" and ffn.activation != "gelu":
            return "remote", "ConvBERT's classification head would use the FFN activation"
        return "convbert", ""
    return "remote", f"attention kind {att.kind!r}"


def _mpnet_kind(spec: ArchSpec, head: str) -> tuple[str, str]:
    """``("mpnet", "")`` when a uniform spec with a relative position bias is a stock MPNet model."""
    emb, att, ffn = spec.embeddings, spec.layers[0].attention, spec.layers[0].ffn
    why = None
    if (emb.positions, emb.pad_token_id, emb.type_vocab_size, emb.size, emb.trigram) != ("roberta", 1, 0, None, False):
        why = "relative position bias without MPNet's embeddings (RoBERTa positions from 1, no token types)"
    elif spec.relative_attention_buckets != 32:
        why = f"relative_attention_buckets = {spec.relative_attention_buckets} (transformers' MPNet uses 32)"
    elif ffn.kind != "dense" or ffn.activation not in ACT_TO_HF:
        why = f"ffn {ffn.kind} {ffn.activation}"
    elif att.qk_dim != att.v_dim or att.heads * att.qk_dim != spec.hidden:
        why = "head dims differ from hidden / heads"
    elif spec.pooler != (head == "base"):
        why = "MPNetModel has a pooler, its classifier and masked-LM models none"
    elif head == "classification" and spec.head_activation != "tanh":
        why = f"head_activation = {spec.head_activation!r} (MPNet's classifier uses tanh)"
    return ("remote", why) if why else ("mpnet", "")


def _electra_kind(spec: ArchSpec, head: str) -> tuple[str, str]:
    """``("electra", "")`` when a uniform self-attention spec without a pooler (or with factorized
    embeddings) is a stock ELECTRA model: its heads are gelu, its embeddings project when e != h."""
    emb = spec.embeddings
    if spec.pooler:
        return "remote", "factorized embeddings with a pooler (ELECTRA has none)"
    if emb.size == spec.hidden:
        return "remote", "an embedding projection at embedding size == hidden"
    if head == "classification" and spec.head_activation != "gelu":
        return "remote", f"head_activation = {spec.head_activation!r} (ELECTRA's classifier uses gelu)"
    return "electra", ""


def _distilbert_kind(spec: ArchSpec, head: str) -> tuple[str, str]:
    """``("distilbert", "")`` when a uniform spec without token types is a stock DistilBERT model."""
    emb, att, ffn = spec.embeddings, spec.layers[0].attention, spec.layers[0].ffn
    why = None
    if att.kind != "mhsa" or ffn.kind != "dense":
        why = "no token type embeddings"
    elif spec.pooler:
        why = "no token type embeddings, with a pooler (DistilBERT has none)"
    elif head == "mlm":
        why = "no token type embeddings, with a masked-LM head"
    elif ffn.activation not in ("gelu", "relu"):
        why = f"DistilBERT's activation is gelu or relu, not {ffn.activation!r}"
    elif emb.size is not None:
        why = "factorized embeddings"
    elif att.qk_dim != att.v_dim or att.heads * att.qk_dim != spec.hidden:
        why = "head dims differ from hidden / heads"
    elif spec.layer_norm_eps != 1e-12:
        why = f"layer_norm_eps = {spec.layer_norm_eps:g} (DistilBERT's is 1e-12)"
    elif head == "classification" and spec.head_activation != "relu":
        why = f"head_activation = {spec.head_activation!r} (DistilBERT's classifier uses relu)"
    return ("remote", why) if why else ("distilbert", "")


def hf_config_kwargs(spec: ArchSpec, kind: str) -> dict:
    """Fields of transformers' BertConfig / ConvBertConfig / DistilBertConfig for a spec that
    ``stock_kind`` accepts."""
    emb, att, ffn = spec.embeddings, spec.layers[0].attention, spec.layers[0].ffn
    if kind == "mpnet":
        return {
            "vocab_size": emb.vocab_size,
            "hidden_size": spec.hidden,
            "num_hidden_layers": spec.num_layers,
            "num_attention_heads": att.heads,
            "intermediate_size": ffn.size,
            "hidden_act": ACT_TO_HF[ffn.activation],
            "hidden_dropout_prob": spec.hidden_dropout,
            "attention_probs_dropout_prob": spec.attention_dropout,
            "max_position_embeddings": emb.max_positions,
            "initializer_range": spec.initializer_range,
            "layer_norm_eps": spec.layer_norm_eps,
            "relative_attention_num_buckets": 32,
            "pad_token_id": 1,
        }
    if kind == "distilbert":
        return {
            "vocab_size": emb.vocab_size,
            "dim": spec.hidden,
            "n_layers": spec.num_layers,
            "n_heads": att.heads,
            "hidden_dim": ffn.size,
            "activation": ffn.activation,
            "dropout": spec.hidden_dropout,
            "attention_dropout": spec.attention_dropout,
            "seq_classif_dropout": spec.hidden_dropout,
            "max_position_embeddings": emb.max_positions,
            "sinusoidal_pos_embds": False,
            "initializer_range": spec.initializer_range,
            "pad_token_id": emb.pad_token_id,
        }
    kwargs = {
        "vocab_size": emb.vocab_size,
        "hidden_size": spec.hidden,
        "num_hidden_layers": spec.num_layers,
        "num_attention_heads": att.heads,
        "intermediate_size": ffn.size,
        "hidden_act": ACT_TO_HF[ffn.activation],
        "hidden_dropout_prob": spec.hidden_dropout,
        "attention_probs_dropout_prob": spec.attention_dropout,
        "max_position_embeddings": emb.max_positions,
        "type_vocab_size": emb.type_vocab_size,
        "initializer_range": spec.initializer_range,
        "layer_norm_eps": spec.layer_norm_eps,
        "pad_token_id": emb.pad_token_id,
    }
    if kind == "electra":
        kwargs["embedding_size"] = emb.size or spec.hidden
    if kind == "convbert":
        kwargs |= {
            "num_attention_heads": 2 * att.heads,
            "head_ratio": 2,
            "conv_kernel_size": att.conv_kernel,
            "num_groups": ffn.groups if ffn.kind == "grouped" else 1,
            "embedding_size": emb.size or spec.hidden,
        }
    return kwargs


# ---- weights --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """One bertsmith tensor ``ours`` and the transformers tensor(s) ``theirs`` it is made of: one
    (a rename), several fused along dim 0 (``splits`` rows each), or one with a trailing dim of 1
    (``unsqueeze``). ``preferred`` names a tensor read instead of ``theirs`` when the checkpoint has
    it (the MLM decoder's own bias: the head's ``bias`` is tied to it only while the embeddings are
    tied); export writes ``theirs``."""

    ours: str
    theirs: tuple[str, ...]
    splits: tuple[int, ...] = ()
    unsqueeze: bool = False
    preferred: tuple[str, ...] = ()

    def prefixed(self, ours: str, theirs: str) -> "Entry":
        return Entry(
            ours + self.ours,
            tuple(theirs + t for t in self.theirs),
            self.splits,
            self.unsqueeze,
            tuple(theirs + t for t in self.preferred),
        )

    def their_shapes(self, shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        if self.splits:
            return [(n, *shape[1:]) for n in self.splits]
        if self.unsqueeze:
            return [(*shape, 1)]
        return [tuple(shape)]

    def combine(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        if self.splits:
            return torch.cat(tensors, dim=0)
        return tensors[0].squeeze(-1) if self.unsqueeze else tensors[0]

    def split(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        if self.splits:
            return list(tensor.split(list(self.splits), dim=0))
        return [tensor.unsqueeze(-1) if self.unsqueeze else tensor]


def _pair(ours: str, theirs: str) -> list[Entry]:
    return [Entry(f"{ours}.weight", (f"{theirs}.weight",)), Entry(f"{ours}.bias", (f"{theirs}.bias",))]


@dataclass(frozen=True)
class LayerNames:
    """Where a transformers family keeps one layer's tensors: the layers' prefix, then within a layer
    the query, key and value projections, the attention output and its LayerNorm, the FFN's two
    linears and its LayerNorm."""

    layers: str
    qkv: tuple[str, str, str]
    out: str
    attention_norm: str
    up: str
    down: str
    ffn_norm: str


_BERT_LAYER = LayerNames(
    "encoder.layer.",
    ("attention.self.query", "attention.self.key", "attention.self.value"),
    "attention.output.dense",
    "attention.output.LayerNorm",
    "intermediate.dense",
    "output.dense",
    "output.LayerNorm",
)
LAYER_NAMES = {
    "distilbert": LayerNames(
        "transformer.layer.",
        ("attention.q_lin", "attention.k_lin", "attention.v_lin"),
        "attention.out_lin",
        "sa_layer_norm",
        "ffn.lin1",
        "ffn.lin2",
        "output_layer_norm",
    ),
    "mpnet": LayerNames(
        "encoder.layer.",
        ("attention.attn.q", "attention.attn.k", "attention.attn.v"),
        "attention.attn.o",
        "attention.LayerNorm",
        "intermediate.dense",
        "output.dense",
        "output.LayerNorm",
    ),
}  # every other family names its layers as BERT does


def encoder_entries(spec: ArchSpec, source: str) -> list[Entry]:
    """The encoder's tensors (bertsmith ``BertsmithModel`` names) from a transformers BERT / RoBERTa /
    ConvBERT / ELECTRA / DistilBERT / MPNet base model (names without the ``bert.`` / ``roberta.`` / ...
    prefix): the embeddings (token types and the projection where the spec has them), MPNet's shared
    relative position bias, every layer (ConvBERT's convolution for ``mixed`` attention) and the pooler."""
    emb, names = spec.embeddings, LAYER_NAMES.get(source, _BERT_LAYER)
    out = [
        Entry("embeddings.word.weight", ("embeddings.word_embeddings.weight",)),
        Entry("embeddings.position.weight", ("embeddings.position_embeddings.weight",)),
    ]
    if emb.type_vocab_size:
        out.append(Entry("embeddings.token_type.weight", ("embeddings.token_type_embeddings.weight",)))
    out += _pair("embeddings.norm", "embeddings.LayerNorm")
    if emb.size is not None:
        out += _pair("embeddings.project", "embeddings_project")
    if spec.relative_attention_buckets:
        out.append(Entry("relative.bias.weight", ("encoder.relative_attention_bias.weight",)))
    for i, layer in enumerate(spec.layers):
        ours, theirs = f"layers.{i}.", f"{names.layers}{i}."
        att = layer.attention
        a, k, v = att.heads, att.qk_dim, att.v_dim
        parts, splits = list(names.qkv), [a * k, a * k, a * v]
        if att.kind == "mixed":  # ConvBERT: BERT's names
            parts.append("attention.self.conv_out_layer")
            splits.append(att.conv_heads * v)
        for w in ("weight", "bias"):
            out.append(Entry(f"{ours}attention.qkv.{w}", tuple(f"{theirs}{n}.{w}" for n in parts), tuple(splits)))
        out += _pair(f"{ours}attention.out", f"{theirs}{names.out}")
        out += _pair(f"{ours}attention.norm", f"{theirs}{names.attention_norm}")
        if att.kind == "mixed":
            conv = f"{theirs}attention.self.key_conv_attn_layer"
            out += [
                Entry(f"{ours}attention.depthwise.weight", (f"{conv}.depthwise.weight",)),
                Entry(f"{ours}attention.pointwise.weight", (f"{conv}.pointwise.weight",)),
                Entry(f"{ours}attention.conv_bias", (f"{conv}.bias",), unsqueeze=True),
            ]
            out += _pair(f"{ours}attention.conv_kernel", f"{theirs}attention.self.conv_kernel_layer")
        out += _pair(f"{ours}ffn.up", f"{theirs}{names.up}")
        out += _pair(f"{ours}ffn.down", f"{theirs}{names.down}")
        out += _pair(f"{ours}ffn.norm", f"{theirs}{names.ffn_norm}")
    if spec.pooler:
        out += _pair("pooler", "pooler.dense")
    return out


def head_entries(source: str, head: str) -> list[Entry]:
    """The head's tensors (bertsmith names) in a transformers head model."""
    if head == "qa":
        return _pair("head.out", QA_OUTPUTS)
    if head == "classification" and source == "distilbert":
        return _pair("head.dense", "pre_classifier") + _pair("head.out", "classifier")
    if head == "classification":
        if source == "bert":
            return _pair("head.out", "classifier")
        if source in ("roberta", "mpnet", "convbert", "electra"):
            return _pair("head.dense", "classifier.dense") + _pair("head.out", "classifier.out_proj")
    if head == "mlm":
        if source == "bert":
            transform, norm, bias = (
                "cls.predictions.transform.dense",
                "cls.predictions.transform.LayerNorm",
                "cls.predictions",
            )
        elif source in ("roberta", "mpnet"):
            transform, norm, bias = "lm_head.dense", "lm_head.layer_norm", "lm_head"
        else:
            transform, norm, bias = (
                "generator_predictions.dense",
                "generator_predictions.LayerNorm",
                "generator_lm_head",
            )
        preferred = (f"{bias}.decoder.bias",) if source not in ("convbert", "electra") else ()
        return (
            _pair("transform", transform)
            + _pair("norm", norm)
            + [Entry("decoder.bias", (f"{bias}.bias",), preferred=preferred)]
        )
    return []


def model_entries(spec: ArchSpec, source: str, head: str, their_prefix: str) -> list[Entry]:
    """Every tensor of a bertsmith model with ``head`` (except the tied decoder weight). The
    encoder's transformers names carry ``their_prefix`` (``bert.``, or empty for a base checkpoint)."""
    ours_prefix = "" if head == "base" else "encoder."
    entries = [e.prefixed(ours_prefix, their_prefix) for e in encoder_entries(spec, source)]
    return entries + head_entries(source, head)


_LAYER = re.compile(r"(?:encoder\.)?layers\.(\d+)\.(attention|ffn)\.")


def field_of(spec: ArchSpec, ours: str) -> str:
    """The spec field that sets a bertsmith tensor's shape, with its values, for error messages."""
    m = _LAYER.match(ours)
    if m:
        i = int(m[1])
        part = getattr(spec.layers[i], m[2])
        return f"layers[{i}].{m[2]} ({part.described()})"
    key = ours.removeprefix("encoder.")
    if key.startswith("embeddings."):
        e = spec.embeddings
        return (
            f"embeddings (vocab_size={e.vocab_size}, max_positions={e.max_positions}, "
            f"type_vocab_size={e.type_vocab_size}, size={e.size}, hidden={spec.hidden})"
        )
    if key.startswith("pooler"):
        return f"pooler (hidden={spec.hidden})"
    return f"the head (hidden={spec.hidden}, embeddings.size={spec.embeddings.size})"
