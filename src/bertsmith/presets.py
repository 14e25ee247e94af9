"""Named ArchSpecs: the BERT family, MiniLM, schuBERT's budgets, Bort, ConvBERT and EfficientBERT.

``get(name)`` returns the spec; ``resolve(text)`` takes a preset name or a spec file path.
Each preset names the paper (and table) it comes from; README "Presets" lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .arch import ArchSpec
from .errors import SpecError

PRESETS: dict[str, Callable[[], ArchSpec]] = {}
DESCRIPTIONS: dict[str, str] = {}


def preset(name: str, description: str):
    def register(fn: Callable[[], ArchSpec]) -> Callable[[], ArchSpec]:
        PRESETS[name] = fn
        DESCRIPTIONS[name] = description
        return fn

    return register


def get(name: str) -> ArchSpec:
    if name not in PRESETS:
        raise SpecError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    return PRESETS[name]()


def resolve(text: str) -> ArchSpec:
    """A preset name, or a path to a JSON/YAML spec file."""
    if text in PRESETS:
        return get(text)
    path = Path(text)
    if path.is_file():
        return ArchSpec.load(path)
    raise SpecError(f"{text!r} is neither a preset (see `bertsmith arch list`) nor a spec file")


def _bert(layers: int, hidden: int, heads: int) -> Callable[[], ArchSpec]:
    return lambda: ArchSpec.uniform(layers=layers, hidden=hidden, heads=heads, ffn=4 * hidden)


for _name, (_l, _h, _a) in {
    "bert-tiny": (2, 128, 2),
    "bert-mini": (4, 256, 4),
    "bert-small": (4, 512, 8),
    "bert-medium": (8, 512, 8),
    "bert-base": (12, 768, 12),
    "bert-large": (24, 1024, 16),
}.items():
    preset(_name, f"BERT {_l} layers, hidden {_h}, {_a} heads, FFN {4 * _h}")(_bert(_l, _h, _a))


@preset("minilm-l6", "all-MiniLM-L6-v2 (the default teacher): 6 layers, hidden 384, 12 heads, FFN 1536")
def _minilm() -> ArchSpec:
    return ArchSpec.uniform(layers=6, hidden=384, heads=12, ffn=1536)


def _schubert_h(hidden: int) -> Callable[[], ArchSpec]:
    return lambda: ArchSpec.uniform(layers=12, hidden=hidden, heads=12, ffn=3072, qk_dim=64, v_dim=64)


for _params, _h in {"77m": 544, "66m": 466, "55m": 390, "43m": 304}.items():
    preset(
        f"schubert-{_params}",
        f"schuBERT-h {_params.upper()} (the schuBERT paper): 12 layers, h={_h}, a=12, k=v=64, f=3072",
    )(_schubert_h(_h))


def _per_layer(hidden: int, heads: list[int], v: list[int], f: list[int]) -> ArchSpec:
    layers = [
        {"attention": {"heads": a, "qk_dim": 64, "v_dim": vi}, "ffn": {"size": fi}} for a, vi, fi in zip(heads, v, f)
    ]
    return ArchSpec.build(hidden=hidden, layers=layers)


@preset("schubert-99m", "schuBERT-all 99M (the schuBERT paper, Table 7): h=768, per-layer f, a, v")
def _schubert_99m() -> ArchSpec:
    return _per_layer(
        768,
        [12, 12, 12, 12, 11, 12, 12, 12, 12, 12, 12, 12],
        [54, 54, 46, 58, 52, 60, 64, 64, 64, 64, 64, 62],
        [2022, 2222, 2344, 2478, 2576, 2530, 2638, 2660, 2748, 2792, 2852, 2974],
    )


@preset("schubert-88m", "schuBERT-all 88M (the schuBERT paper, Table 9): h=756, per-layer f, a, v")
def _schubert_88m() -> ArchSpec:
    return _per_layer(
        756,
        [12, 12, 11, 12, 11, 12, 12, 12, 12, 12, 12, 12],
        [46, 48, 42, 52, 46, 54, 64, 62, 64, 64, 64, 40],
        [1382, 1550, 1672, 1956, 2052, 2030, 2210, 2314, 2474, 2556, 2668, 2938],
    )


@preset("bort", "Bort as released (the Bort paper): 4 layers, 8 heads, hidden 1024, FFN 768, RoBERTa vocab")
def _bort() -> ArchSpec:
    return ArchSpec.uniform(
        layers=4,
        hidden=1024,
        heads=8,
        ffn=768,
        layer_norm_eps=1e-5,
        pooler=False,
        embeddings={"vocab_size": 50265, "max_positions": 514, "type_vocab_size": 1, "pad_token_id": 1},
    )


def _convbert(hidden: int, attention_heads: int, head_dim: int, groups: int, emb: int) -> Callable[[], ArchSpec]:
    return lambda: ArchSpec.uniform(
        layers=12,
        hidden=hidden,
        heads=attention_heads,
        qk_dim=head_dim,
        v_dim=head_dim,
        ffn=4 * hidden,
        attention="mixed",
        conv_kernel=9,
        head_ratio=2,
        ffn_kind="grouped" if groups > 1 else "dense",
        groups=groups,
        pooler=False,
        embeddings={"size": emb} if emb != hidden else {},
    )


for _name, _args in {
    "convbert-small": (256, 2, 64, 1, 128),
    "convbert-medium-small": (384, 4, 48, 2, 128),
    "convbert-base": (768, 6, 64, 1, 768),
}.items():
    preset(
        _name,
        f"ConvBERT {_name.removeprefix('convbert-')} (the ConvBERT paper): hidden {_args[0]}, "
        f"{_args[1]} attention + {_args[1]} conv heads of {_args[2]}, kernel 9, groups {_args[3]}, "
        f"embedding {_args[4]}",
    )(_convbert(*_args))

EFFICIENTBERT_FFNS = (  # (expression, stack, inner width) per layer, the EfficientBERT paper
    ("tanh(L(gelu(L(x))))", 4, 270),
    ("elu(L(gelu(L(x))))", 2, 540),
    ("sigmoid(L(relu(L(x))))", 1, 270),
    ("L(gelu(L(max(x, tanh(x)))))", 2, 270),
    ("L(relu(mul(L(x), x)))", 1, 270),
    ("leaky_relu(L(gelu(L(x))))", 2, 180),
)


@preset(
    "efficientbert", "EfficientBERT (as published): 6 layers, h=540, 12 heads, trigram embedding 128, searched FFNs"
)
def _efficientbert() -> ArchSpec:
    layers = [
        {
            "attention": {"heads": 12, "qk_dim": 45, "v_dim": 45},
            "ffn": {"kind": "searched", "expression": expr, "stack": stack, "size": inner},
        }
        for expr, stack, inner in EFFICIENTBERT_FFNS
    ]
    return ArchSpec.build(hidden=540, layers=layers, pooler=False, embeddings={"size": 128, "trigram": True})


def transplant_efficientbert(backbone: ArchSpec, params: int | None = None) -> ArchSpec:
    """The published EfficientBERT FFNs (expressions, stacks, inner widths as ratios of its hidden
    540) on another backbone; layer i of a backbone of depth d takes published layer ⌊6i/d⌋. With
    ``params``, every inner width is scaled by one factor so that the non-embedding parameters are as
    close to ``params`` as the widths allow (bertsmith's way to compare at a budget)."""
    from .cost import encoder_params  # imports torch: the presets alone are read without it

    depth, hidden = backbone.num_layers, backbone.hidden
    published = [EFFICIENTBERT_FFNS[len(EFFICIENTBERT_FFNS) * i // depth] for i in range(depth)]

    def build(scale: float) -> ArchSpec:
        layers = [
            {
                "attention": la.attention.model_dump(mode="json"),
                "ffn": {
                    "kind": "searched",
                    "expression": expr,
                    "stack": stack,
                    "size": max(1, round(hidden * inner / 540 * scale)),
                },
            }
            for la, (expr, stack, inner) in zip(backbone.layers, published)
        ]
        return ArchSpec.from_dict({**backbone.to_dict(), "layers": layers})

    if params is None:
        return build(1.0)
    low, high = 1e-3, 1.0
    while encoder_params(build(high)) < params and high < 64:
        high *= 2
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if encoder_params(build(mid)) < params else (low, mid)
    return min((build(low), build(high)), key=lambda spec: abs(encoder_params(spec) - params))
