"""schuBERT's prunable gates (papers.md §1.3): scale vectors α on the hidden size h and, per layer,
on heads a_i, query/key dims k_i (shared by the layer's heads), value dims v_i and FFN neurons f_i,
folded into the weights; their cost-weighted L1 penalty; the choice of the entries to zero for a
cost target; and the physical deletion of the zeroed units.

The gates multiply whole rows and columns of the frozen weights (K̃ = K·𝒟(α_k)𝒟(α_a)𝒟(α_h) and so
on). bertsmith also scales the biases of those rows, so that a zeroed unit contributes exactly
nothing and deleting it keeps the function (bertsmith's choice; the paper names the matrices only).

β, the cost that one unit of a dimension carries, comes from the cost model: the drop in parameters
(non-embedding, or total) or in FLOPs when that one unit is removed from the architecture, divided by
the drop for one head of the first layer (the paper's normalisation, β_a = 1). With total parameters,
BERT-base gives the published β_h ≈ 0.73, β_k = β_v ≈ 0.094 and β_f ≈ 0.0078; with non-embedding
parameters β_h is 0.57, since a hidden unit then no longer carries its embedding column.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch
from torch import nn
from torch.func import functional_call

from ..arch import ArchSpec
from ..cost import encoder_params, flops, params
from ..errors import ConfigError
from ..modeling.elastic import Units, check_plain_kinds, select_units

DIMS = ("h", "a", "k", "v", "f")
Ranking = Literal["raw", "weighted"]


def cost_function(kind: str, seq_len: int = 128) -> Callable[[ArchSpec], float]:
    """The cost that pruning lowers: ``params`` (non-embedding), ``total_params`` or ``flops``."""
    if kind == "params":
        return encoder_params
    if kind == "total_params":
        return params
    if kind == "flops":
        return lambda spec: flops(spec, seq_len)
    raise ConfigError(f"cost {kind!r}: expected params, total_params or flops")


_FIELDS = {"a": "heads", "k": "qk", "v": "v", "f": "neurons"}  # gate → Units field


def _without_one(spec: ArchSpec, dim: str, layer: int) -> ArchSpec:
    units = Units.all(spec)
    if dim == "h":
        units.hidden = units.hidden[1:]
    else:
        getattr(units, _FIELDS[dim])[layer] = getattr(units, _FIELDS[dim])[layer][1:]
    return units.spec_of(spec)


def unit_costs(spec: ArchSpec, cost: Callable[[ArchSpec], float]) -> dict[str, list[float]]:
    """β per dimension: ``h`` one value, the others one per layer; normalised to one head of layer 0."""
    base = cost(spec)
    raw = {"h": [base - cost(_without_one(spec, "h", 0))]}
    for dim in DIMS[1:]:
        raw[dim] = [base - cost(_without_one(spec, dim, i)) for i in range(spec.num_layers)]
    unit = raw["a"][0]
    return {dim: [value / unit for value in values] for dim, values in raw.items()}


class Gates(nn.Module):
    """α vectors for the pruned dimensions (``dims`` ⊆ DIMS), all ones at the start; dimensions not
    pruned have no gate."""

    def __init__(self, spec: ArchSpec, dims: tuple[str, ...] = DIMS):
        super().__init__()
        unknown = [d for d in dims if d not in DIMS]
        if unknown or not dims:
            raise ConfigError(f"pruned dimensions {list(dims)}: expected some of {', '.join(DIMS)}")
        check_plain_kinds(spec)
        self.spec, self.dims = spec, tuple(dims)
        sizes = {"a": [la.attention.heads for la in spec.layers], "k": [la.attention.qk_dim for la in spec.layers],
                 "v": [la.attention.v_dim for la in spec.layers], "f": [la.ffn.size for la in spec.layers]}
        self.alpha = nn.ParameterDict()
        if "h" in dims:
            self.alpha["h"] = nn.Parameter(torch.ones(spec.hidden))
        for dim in dims:
            if dim != "h":
                for i, n in enumerate(sizes[dim]):
                    self.alpha[f"{dim}{i}"] = nn.Parameter(torch.ones(n))

    def vector(self, dim: str, layer: int, size: int) -> torch.Tensor:
        key = "h" if dim == "h" else f"{dim}{layer}"
        return self.alpha[key] if key in self.alpha else torch.ones(size)

    def penalty(self, betas: dict[str, list[float]]) -> torch.Tensor:
        """Σ β·‖α‖₁ over the gates."""
        return sum(betas[key[0]][0 if key == "h" else int(key[1:])] * alpha.abs().sum()
                   for key, alpha in self.alpha.items())


def gated_weights(model: nn.Module, gates: Gates) -> dict[str, torch.Tensor]:
    """``model``'s parameters with the gates folded in (differentiable in α)."""
    encoder = model.encoder if hasattr(model, "encoder") else model
    prefix = "encoder." if hasattr(model, "encoder") else ""
    spec = encoder.spec
    params = dict(model.named_parameters())
    out = dict(params)
    h = gates.vector("h", 0, spec.hidden)
    for i, layer in enumerate(spec.layers):
        att = layer.attention
        a, k, v, f = (gates.vector(d, i, n) for d, n in (("a", att.heads), ("k", att.qk_dim), ("v", att.v_dim),
                                                        ("f", layer.ffn.size)))
        qk_rows = (a[:, None] * k[None, :]).reshape(-1)
        v_rows = (a[:, None] * v[None, :]).reshape(-1)
        rows = torch.cat([qk_rows, qk_rows, v_rows])
        p = f"{prefix}layers.{i}."
        scales = {"attention.qkv.weight": rows[:, None] * h[None, :], "attention.qkv.bias": rows,
                  "attention.out.weight": h[:, None] * v_rows[None, :], "attention.out.bias": h,
                  "ffn.up.weight": f[:, None] * h[None, :], "ffn.up.bias": f,
                  "ffn.down.weight": h[:, None] * f[None, :], "ffn.down.bias": h}
        for name, scale in scales.items():
            out[p + name] = params[p + name] * scale
    return out


class GatedModel(nn.Module):
    """A frozen model run with its gates folded in; only the gates train."""

    def __init__(self, model: nn.Module, dims: tuple[str, ...] = DIMS):
        super().__init__()
        self.model = model.requires_grad_(False)
        spec = (model.encoder if hasattr(model, "encoder") else model).spec
        self.gates = Gates(spec, dims)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, **kwargs):
        return functional_call(self.model, gated_weights(self.model, self.gates),
                               (input_ids, attention_mask, token_type_ids), kwargs)


def choose_removals(gates: Gates, target: float, cost: Callable[[ArchSpec], float], *,
                    ranking: Ranking = "raw") -> Units:
    """The units to keep after zeroing the gate entries with the smallest scores (|α|, or β·|α| for
    ``weighted``) one at a time until the architecture's cost is at most ``target``. Every
    dimension keeps at least one unit. Raises ConfigError when even that is above ``target``."""
    if ranking not in ("raw", "weighted"):
        raise ConfigError(f"ranking {ranking!r}: expected raw or weighted")
    spec = gates.spec
    betas = unit_costs(spec, cost) if ranking == "weighted" else None
    entries = []
    for key, alpha in gates.alpha.items():
        dim, layer = key[0], 0 if key == "h" else int(key[1:])
        weight = betas[dim][layer] if betas else 1.0
        entries += [(weight * abs(float(x)), dim, layer, j) for j, x in enumerate(alpha.detach())]
    entries.sort()
    keep = Units.all(spec)
    kept = {(key[0], 0 if key == "h" else int(key[1:])): list(range(len(alpha))) for key, alpha in gates.alpha.items()}
    current = spec
    for _score, dim, layer, j in entries:
        if cost(current) <= target:
            break
        if len(kept[dim, layer]) == 1:
            continue  # keep one unit of every dimension
        kept[dim, layer].remove(j)
        index = torch.tensor(kept[dim, layer])
        if dim == "h":
            keep.hidden = index
        else:
            getattr(keep, _FIELDS[dim])[layer] = index
        current = keep.spec_of(spec)
    if cost(current) > target:
        raise ConfigError(f"the target {target:,.0f} is below the smallest model these gates can reach "
                          f"({cost(current):,.0f})")
    return keep


@torch.no_grad()
def prune(model: nn.Module, gates: Gates, keep: Units) -> nn.Module:
    """Fold the gates into ``model``'s weights and delete every unit outside ``keep``: a dense,
    smaller model of the same class."""
    folded = type(model)(gates.spec, model.num_labels) if hasattr(model, "num_labels") else type(model)(gates.spec)
    folded.load_state_dict({name: t.detach() for name, t in gated_weights(model, gates).items()})
    folded.train(model.training)
    return select_units(folded, keep)
