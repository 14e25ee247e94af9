"""Slice a larger model's weights into a smaller ArchSpec: ``slice_weights``.

The sub-network keeps the leading part of every dimension: the first ``hidden`` channels, the
first heads of each layer with the first query/key and value dims of each head, the first FFN
neurons, and the source layers named by ``layers`` (evenly spaced by default). Dropping heads,
FFN neurons or whole layers this way gives exactly the source network with those units removed;
a narrower hidden size or head dim is an approximation (LayerNorm statistics and the attention
scale change) and serves as an initialization for distillation.

``importance`` scores every head, FFN neuron and hidden channel of a task model by the Taylor estimate
|Σ activation · ∂loss/∂activation| on a few labelled batches (Michel et al. 2019 for heads, as in
DynaBERT); ``reorder`` permutes them, most important first, without changing the model's function.
Reordering before slicing keeps the units that matter most.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..arch import ArchSpec
from ..errors import SpecError
from ..kinds import KINDS
from .encoder import BertsmithForSequenceClassification

FAMILIES = ("attention", "ffn")


def unit_kinds(family: str) -> tuple[str, ...]:
    """The kinds of ``family`` whose units importance, reordering and unit selection handle."""
    return tuple(name for name, kind in KINDS[family].items() if kind.slicer is not None and kind.slicer.units)


def _slices(family: str) -> str:
    """What slicing supports in ``family``, e.g. ``dense from dense, searched from searched or dense``."""
    return ", ".join(
        f"{name} from {' or '.join(kind.slicer.sources)}"
        for name, kind in KINDS[family].items()
        if kind.slicer is not None
    )


def even_layers(target_layers: int, source_layers: int) -> list[int]:
    """Source layer (0-based) for each target layer: evenly spaced, ending at the source's last
    layer (the TinyBERT map used by the hidden-state loss)."""
    return [max(1, round((i + 1) * source_layers / target_layers)) - 1 for i in range(target_layers)]


def check_sliceable(source: ArchSpec, target: ArchSpec, layers: Sequence[int]) -> None:
    """Raise ``SpecError`` naming the first dimension of ``target`` that ``source`` cannot supply."""
    se, te = source.embeddings, target.embeddings
    if target.hidden > source.hidden:
        raise SpecError(f"hidden: {target.hidden} is larger than the source's {source.hidden}")
    if (te.vocab_size, te.size, te.trigram, te.positions) != (se.vocab_size, se.size, se.trigram, se.positions):
        raise SpecError("embeddings: vocab_size, size, trigram and positions must equal the source's")
    if te.max_positions > se.max_positions or te.type_vocab_size > se.type_vocab_size:
        raise SpecError("embeddings: max_positions and type_vocab_size cannot exceed the source's")
    if target.relative_attention_buckets != source.relative_attention_buckets:
        raise SpecError(
            f"relative_attention_buckets: {target.relative_attention_buckets} differs from the source's "
            f"{source.relative_attention_buckets}"
        )
    if target.pooler and not source.pooler:
        raise SpecError("pooler: the source has no pooler to slice")
    if len(layers) != target.num_layers:
        raise SpecError(f"layers: {len(layers)} source layers given for {target.num_layers} target layers")
    for i, j in enumerate(layers):
        if not 0 <= j < source.num_layers:
            raise SpecError(f"layers[{i}]: source layer {j} does not exist (the source has {source.num_layers})")
        s, t = source.layers[j], target.layers[i]
        for family in FAMILIES:
            small, big = getattr(t, family), getattr(s, family)
            if small.slicer is None or big.kind not in small.slicer.sources:
                raise SpecError(
                    f"layers[{i}].{family}.kind: slicing supports {_slices(family)} (target "
                    f"{small.kind!r}, source layer {j} {big.kind!r})"
                )
            problem = small.slicer.problem(big, small)
            if problem:
                raise SpecError(f"layers[{i}].{family}.{problem} (source layer {j})")
        for name, small, big in (
            ("attention.heads", t.attention.heads, s.attention.heads),
            ("attention.qk_dim", t.attention.qk_dim, s.attention.qk_dim),
            ("attention.v_dim", t.attention.v_dim, s.attention.v_dim),
            ("ffn.size", t.ffn.size, s.ffn.size),
        ):
            if small > big:
                raise SpecError(f"layers[{i}].{name}: {small} is larger than source layer {j}'s {big}")


def _leading(tensor: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    return tensor[tuple(slice(0, n) for n in shape)]


def sliced_state(
    source_state: dict[str, torch.Tensor],
    source_spec: ArchSpec,
    target_shapes: dict[str, torch.Size],
    target_spec: ArchSpec,
    layers: Sequence[int] | None = None,
    *,
    prefix: str = "",
) -> dict[str, torch.Tensor]:
    """The sub-network's tensors, name → tensor of the shape in ``target_shapes``, cut from
    ``source_state`` (a state dict of the same model class). The results are views or
    differentiable functions of the source tensors (not copies), so a weight-sharing supernet
    trains through them. ``prefix``: where the encoder sits in the names (``encoder.`` in a model
    with a task head). A layer's attention and FFN tensors are cut as their kind's slicer says."""
    layers = list(layers) if layers is not None else even_layers(target_spec.num_layers, source_spec.num_layers)
    check_sliceable(source_spec, target_spec, layers)
    state = {}
    for name, wanted in target_shapes.items():
        parts = name[len(prefix) :].split(".") if name.startswith(prefix) else []
        src_name, tensor = name, None
        if parts[:1] == ["layers"]:  # layers.I.(attention|ffn).NAME
            i, family, inner = int(parts[1]), parts[2], ".".join(parts[3:])
            small, big = getattr(target_spec.layers[i], family), getattr(source_spec.layers[layers[i]], family)
            source_inner, zero = small.slicer.source_name(inner, big)
            src_name = f"{prefix}layers.{layers[i]}.{family}.{source_inner}"
            if zero and src_name in source_state:
                state[name] = torch.zeros(wanted, dtype=source_state[src_name].dtype)
                continue
        if src_name not in source_state:
            raise SpecError(f"{name}: the source model has no {src_name} to slice")
        if parts[:1] == ["layers"]:
            tensor = small.slicer.cut(inner, source_state[src_name], big, small, target_spec.hidden)
        if tensor is None:
            tensor = source_state[src_name]
            if name == "head.out.weight" and tensor.shape[0] != wanted[0]:
                raise SpecError(f"{name}: the source head has {tensor.shape[0]} outputs, the target {wanted[0]}")
            if tensor.dim() != len(wanted) or any(s < w for s, w in zip(tensor.shape, wanted)):
                raise SpecError(f"{name}: source shape {tuple(tensor.shape)} cannot give {tuple(wanted)}")
            tensor = _leading(tensor, wanted)
        state[name] = tensor
    return state


def slice_weights(
    source: nn.Module,
    source_spec: ArchSpec,
    target: nn.Module,
    target_spec: ArchSpec,
    layers: Sequence[int] | None = None,
) -> None:
    """Load ``target`` (a bertsmith model of ``target_spec``) with the sub-network of ``source``.

    Both are the same class (``BertsmithModel`` or a model with a task head, e.g.
    ``BertsmithForSequenceClassification``, whose heads must have the same number of outputs).
    ``layers``: the source layer (0-based) behind each target layer; default ``even_layers``.
    """
    prefix = "encoder." if hasattr(target, "encoder") else ""
    shapes = {name: t.shape for name, t in target.state_dict().items()}
    state = sliced_state(source.state_dict(), source_spec, shapes, target_spec, layers, prefix=prefix)
    target.load_state_dict({name: t.clone() for name, t in state.items()})


# ---- importance and reordering ----------------------------------------------------------------
@dataclass
class Importance:
    """Taylor importance of each unit: ``heads[i]`` [a_i], ``neurons[i]`` [f_i], ``hidden`` [h]."""

    heads: list[torch.Tensor]
    neurons: list[torch.Tensor]
    hidden: torch.Tensor


def check_plain_kinds(spec: ArchSpec) -> None:
    """Refuse a spec with a layer whose kinds importance and reordering do not handle (``unit_kinds``)."""
    attention, ffn = unit_kinds("attention"), unit_kinds("ffn")
    for i, layer in enumerate(spec.layers):
        if layer.attention.kind not in attention or layer.ffn.kind not in ffn:
            raise SpecError(
                f"layers[{i}]: importance and reordering support {' or '.join(attention)} attention and "
                f"{' or '.join(ffn)} FFNs, not {layer.attention.kind!r} / {layer.ffn.kind!r}"
            )


def importance(
    model: nn.Module,
    batches: Iterable[dict],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> Importance:
    """Score the units of ``model`` (a model with a task head) on ``batches`` (``input_ids``,
    ``attention_mask``, ``token_type_ids``, ``labels``) under ``loss_fn(logits, labels)`` (the task's loss
    on gold labels; by default cross-entropy, or MSE for a head of one output):
    per batch |Σ_{tokens} x · ∂L/∂x| of the head's context, the neuron's activation and the hidden
    channel at every LayerNorm output, summed over batches. Dropout is off; weights (and which of
    them require gradients) are unchanged."""
    encoder = model.encoder
    spec = encoder.spec
    check_plain_kinds(spec)
    device = next(model.parameters()).device  # the batches' device too
    heads = [torch.zeros(layer.attention.heads, device=device) for layer in spec.layers]
    neurons = [torch.zeros(layer.ffn.size, device=device) for layer in spec.layers]
    hidden = torch.zeros(spec.hidden, device=device)

    def watch(x: torch.Tensor, add) -> None:
        # The hook holds a detached view, not ``x``: a hook that refers to the tensor it is registered
        # on is a reference cycle through autograd that Python never collects, and it kept every
        # batch's activations and graph alive (about 2 GB per call on a 6-layer teacher).
        value = x.detach()
        x.register_hook(lambda grad: add((value * grad).sum(dim=(0, 1))))

    def add_to(totals: list[torch.Tensor], i: int, group: int):
        def add(score: torch.Tensor) -> None:  # a head's score sums its v_dim channels before |·|
            totals[i] += score.view(-1, group).sum(-1).abs()

        return add

    def add_hidden(score: torch.Tensor) -> None:
        hidden.add_(score.abs())

    handles = []
    norms = [_residual_input(encoder.embeddings)]
    for i, (layer, layer_spec) in enumerate(zip(encoder.layers, spec.layers)):
        v = layer_spec.attention.v_dim
        handles.append(
            layer.attention.out.register_forward_pre_hook(lambda _m, args, add=add_to(heads, i, v): watch(args[0], add))
        )
        handles.append(
            layer.ffn.down.register_forward_pre_hook(lambda _m, args, add=add_to(neurons, i, 1): watch(args[0], add))
        )
        norms += [layer.attention.norm, layer.ffn.norm]
    handles += [norm.register_forward_hook(lambda _m, _a, out: watch(out, add_hidden)) for norm in norms]
    was_training = model.training
    frozen = [p for p in model.parameters() if not p.requires_grad]  # e.g. a teacher held by an objective
    model.eval().requires_grad_(True)
    try:
        for batch in batches:
            logits, _ = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
            loss = (loss_fn or _default_loss)(logits, batch["labels"])
            loss.backward()
    finally:
        for handle in handles:
            handle.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
        for p in frozen:
            p.requires_grad_(False)
    return Importance([h.cpu() for h in heads], [n.cpu() for n in neurons], hidden.cpu())


def _default_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """MSE for a head of one output (regression), cross-entropy otherwise."""
    return F.mse_loss(logits.squeeze(-1), labels.float()) if logits.shape[-1] == 1 else F.cross_entropy(logits, labels)


def _projected_last(embeddings: nn.Module) -> bool:
    """Whether the embeddings end with their projection to the hidden size (factorized embeddings: the
    tables and the LayerNorm at their own size e) rather than with the LayerNorm (plain embeddings, and
    trigram ones, whose projection comes first)."""
    return embeddings.project is not None and not embeddings.trigram


def _residual_input(embeddings: nn.Module) -> nn.Module:
    """The embeddings' module whose output enters the residual stream."""
    return embeddings.project if _projected_last(embeddings) else embeddings.norm


@dataclass
class Units:
    """Units of a model to keep, in order: indices of hidden channels, and per layer of heads,
    query/key dims (shared by the layer's heads), value dims and FFN neurons. Full permutations
    reorder a model (``reorder``); subsets cut a smaller one (``select_units``)."""

    hidden: torch.Tensor
    heads: list[torch.Tensor]
    qk: list[torch.Tensor]
    v: list[torch.Tensor]
    neurons: list[torch.Tensor]

    @classmethod
    def all(cls, spec: ArchSpec) -> "Units":
        layers = [layer.attention for layer in spec.layers]
        return cls(
            torch.arange(spec.hidden),
            [torch.arange(a.heads) for a in layers],
            [torch.arange(a.qk_dim) for a in layers],
            [torch.arange(a.v_dim) for a in layers],
            [torch.arange(layer.ffn.size) for layer in spec.layers],
        )

    def spec_of(self, spec: ArchSpec) -> ArchSpec:
        """``spec`` with the kept numbers of units."""
        layers = [
            {
                "attention": layer.attention.model_copy(update={"heads": len(a), "qk_dim": len(k), "v_dim": len(v)}),
                "ffn": layer.ffn.model_copy(update={"size": len(f)}),
            }
            for layer, a, k, v, f in zip(spec.layers, self.heads, self.qk, self.v, self.neurons)
        ]
        return spec.replace(hidden=len(self.hidden), layers=layers)


def _head_rows(heads: torch.Tensor, dims: torch.Tensor, width: int, offset: int = 0) -> torch.Tensor:
    """Rows (or columns) of the kept ``dims`` of the kept ``heads``, each head ``width`` wide."""
    return (offset + heads[:, None] * width + dims[None, :]).reshape(-1)


def _moves(model: nn.Module, units: Units) -> list[tuple[str, int, torch.Tensor]]:
    """(parameter name, dim, indices along dim) for every parameter the units touch."""
    encoder = model.encoder if hasattr(model, "encoder") else model
    spec = encoder.spec
    check_plain_kinds(spec)
    h = units.hidden
    moves: list[tuple[torch.Tensor, int, torch.Tensor]] = []
    emb = encoder.embeddings
    if emb.project is not None:  # the projection's outputs are hidden channels; what it reads stays
        moves += [(emb.project.weight, 0, h), (emb.project.bias, 0, h)]
    before = [emb.position, emb.token_type] if emb.trigram else [emb.word, emb.position, emb.token_type]
    if _projected_last(emb):  # the tables and the LayerNorm feed the projection: they stay
        before = []
    moves += [(table.weight, 1, h) for table in before if table is not None]
    norms = [] if _projected_last(emb) else [emb.norm]
    for i, (layer, layer_spec) in enumerate(zip(encoder.layers, spec.layers)):
        a, k, v = layer_spec.attention.heads, layer_spec.attention.qk_dim, layer_spec.attention.v_dim
        heads, kd, vd, f = units.heads[i], units.qk[i], units.v[i], units.neurons[i]
        rows = torch.cat(
            [_head_rows(heads, kd, k), _head_rows(heads, kd, k, a * k), _head_rows(heads, vd, v, 2 * a * k)]
        )
        att, ffn = layer.attention, layer.ffn
        moves += [
            (att.qkv.weight, 0, rows),
            (att.qkv.weight, 1, h),
            (att.qkv.bias, 0, rows),
            (att.out.weight, 1, _head_rows(heads, vd, v)),
            (att.out.weight, 0, h),
            (att.out.bias, 0, h),
            (ffn.up.weight, 0, f),
            (ffn.up.weight, 1, h),
            (ffn.up.bias, 0, f),
            (ffn.down.weight, 1, f),
            (ffn.down.weight, 0, h),
            (ffn.down.bias, 0, h),
        ]
        norms += [att.norm, ffn.norm]
    moves += [(p, 0, h) for norm in norms for p in (norm.weight, norm.bias)]
    head = getattr(model, "head", None)
    for linear in (encoder.pooler, head.dense if head is not None else None):
        if linear is not None:
            moves += [(linear.weight, 0, h), (linear.weight, 1, h), (linear.bias, 0, h)]
    if head is not None:
        moves.append((head.out.weight, 1, h))
    if encoder.relative is not None:  # one table for all layers: a layer's heads are its leading columns
        if any(not torch.equal(kept, torch.arange(len(kept))) for kept in units.heads):
            raise SpecError(
                "relative_attention_buckets: the layers share one relative position bias table, so "
                "heads can only be kept in order from the first"
            )
        moves.append((encoder.relative.bias.weight, 1, torch.arange(max(len(kept) for kept in units.heads))))
    names = {id(p): name for name, p in model.named_parameters()}
    return [(names[id(p)], dim, index) for p, dim, index in moves]


@torch.no_grad()
def reorder(model: nn.Module, scores: Importance) -> None:
    """Permute heads, FFN neurons and hidden channels of ``model`` in place, most important first
    (the same function: permutations commute with every layer, LayerNorm included)."""
    spec = (model.encoder if hasattr(model, "encoder") else model).spec
    order = Units.all(spec)
    order.hidden = torch.argsort(scores.hidden, descending=True, stable=True)
    if not spec.relative_attention_buckets:  # with one shared relative bias table, heads stay in place
        order.heads = [torch.argsort(s, descending=True, stable=True) for s in scores.heads]
    order.neurons = [torch.argsort(s, descending=True, stable=True) for s in scores.neurons]
    params = dict(model.named_parameters())
    for name, dim, index in _moves(model, order):
        params[name].copy_(params[name].index_select(dim, index.to(params[name].device)))


@torch.no_grad()
def select_units(model: nn.Module, units: Units) -> nn.Module:
    """A new, smaller model of the same class (``BertsmithModel`` or with a classification or QA head)
    holding only ``units`` of ``model``. Dropping heads, query/key or value dims and FFN neurons this
    way is exact where the dropped units' weights are zero (they contributed nothing; the queries are
    rescaled so that the attention scale 1/√k keeps the scores); dropping hidden channels also
    changes LayerNorm statistics."""
    encoder = model.encoder if hasattr(model, "encoder") else model
    spec = units.spec_of(encoder.spec)
    state = {name: p.detach() for name, p in model.named_parameters()}
    for name, dim, index in _moves(model, units):
        state[name] = state[name].index_select(dim, index.to(state[name].device))
    prefix = "encoder." if hasattr(model, "encoder") else ""
    for i, (old, new) in enumerate(zip(encoder.spec.layers, spec.layers)):
        k_old, k_new = old.attention.qk_dim, new.attention.qk_dim
        if k_new != k_old:  # keep q·k/√k: the scores of the kept dims are unchanged
            queries = new.attention.heads * k_new
            for part in ("weight", "bias"):
                name = f"{prefix}layers.{i}.attention.qkv.{part}"
                state[name] = state[name].clone()
                state[name][:queries] *= math.sqrt(k_new / k_old)
    classifier = isinstance(model, BertsmithForSequenceClassification)
    smaller = type(model)(spec, model.num_labels) if classifier else type(model)(spec)
    smaller.load_state_dict({name: t.clone() for name, t in state.items()})
    return smaller.eval() if not model.training else smaller
