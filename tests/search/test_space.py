"""Search spaces: exact sizes, sampling inside the space, budgets, and one-line errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bertsmith.arch import ArchSpec
from bertsmith.cost import encoder_params
from bertsmith.errors import ConfigError, SpecError
from bertsmith.search.budget import Budget, parse_count, parse_ms
from bertsmith.search.space import MAX_CANDIDATES, MAX_CHOICES, MAX_LAYERS, MAX_WIDTH, SearchSpace

BASE = {
    "depth": [1, 2],
    "hidden": [32, 48],
    "layer": {"heads": [2, 4], "qk_dim": [8], "v_dim": [8, 12], "ffn": {"min": 32, "max": 96, "step": 32}},
    "embeddings": {"vocab_size": 97, "max_positions": 40},
}


def space(**changes) -> SearchSpace:
    data = {**BASE, **changes}
    data["layer"] = {**BASE["layer"], **changes.get("layer", {})}
    return SearchSpace.from_dict(data)


def brute_force_size(s: SearchSpace) -> int:
    """Every combination of every choice, built as an ArchSpec; distinct valid ones counted."""
    c = s.layer
    seen = set()
    for hidden, depth in itertools.product(s.hidden, s.depth):
        layers = []
        for kind, a, k, v, kernel, ratio, fkind, f, g in itertools.product(
            c.attention,
            c.heads,
            c.qk_dim,
            c.v_dim,
            c.conv_kernel,
            c.head_ratio,
            c.ffn_kind,
            c.ffn.values() if hasattr(c.ffn, "values") else c.ffn,
            c.groups,
        ):
            mixed = kind == "mixed"
            layers.append(
                {
                    "attention": {
                        "kind": kind,
                        "heads": a,
                        "qk_dim": k,
                        "v_dim": v,
                        "conv_kernel": kernel if mixed else None,
                        "head_ratio": ratio if mixed else None,
                    },
                    "ffn": {"kind": fkind, "size": f, "groups": g if fkind == "grouped" else 1},
                }
            )
        for combo in itertools.product(layers, repeat=depth) if s.per_layer else ([layer] * depth for layer in layers):
            try:
                spec = ArchSpec.build(hidden=hidden, layers=list(combo), embeddings=s.embeddings)
            except SpecError:
                continue
            seen.add(spec.to_json())
    return len(seen)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"per_layer": True},
        {"layer": {"attention": ["mhsa", "mixed"], "conv_kernel": [3, 4, 5], "head_ratio": [2, 3]}},
        {"layer": {"ffn_kind": ["dense", "grouped"], "groups": [2, 3, 16]}, "per_layer": True},
    ],
)
def test_size_counts_exactly_the_buildable_architectures(changes):
    s = space(**changes)
    assert s.size() == brute_force_size(s)


def test_samples_are_buildable_members_of_the_space():
    s = space(per_layer=True, layer={"ffn_kind": ["dense", "grouped"], "groups": [3]})
    rng = np.random.default_rng(0)
    samples = [s.sample(rng) for _ in range(200)]
    assert {spec.hidden for spec in samples} == {32, 48} and {spec.num_layers for spec in samples} == {1, 2}
    for spec in samples:
        for layer in spec.layers:
            assert layer.attention.heads in (2, 4) and layer.ffn.size in (32, 64, 96)
            assert layer.ffn.kind == "dense" or spec.hidden % 3 == 0 and layer.ffn.size % 3 == 0
    assert any(len({layer.ffn.size for layer in spec.layers}) > 1 for spec in samples)  # layers differ
    assert s.sample(np.random.default_rng(0)) == samples[0]  # seeded


def test_shared_layers_are_identical():
    rng = np.random.default_rng(1)
    for _ in range(20):
        spec = space().sample(rng)
        assert len(set(spec.layers)) == 1


def test_quantities_and_budgets():
    assert parse_count("5M") == 5_000_000 and parse_count("1.5g") == 1_500_000_000 and parse_count(300) == 300
    assert parse_ms("20ms") == 20.0 and parse_ms("0.5s") == 500.0 and parse_ms(7) == 7.0
    spec = space().sample(np.random.default_rng(0))
    n = encoder_params(spec)
    assert Budget(params=n).violations(spec) == []
    assert Budget(params=n - 1).violations(spec) == [f"params {n:,} > {n - 1:,}"]
    assert Budget.parse("params=5M, latency=20ms") == Budget(params=5_000_000, latency=20.0)
    assert Budget(latency=10).violations(spec, latency_ms=12.5) == ["latency 12.50 ms > 10 ms"]
    assert space(budget={"params": "2K", "flops": "1G"}).budget.params == 2000


@pytest.mark.parametrize(
    "text,message",
    [
        ("params=5X", "not a count"),
        ("watts=3", "watts"),
        ("params", "expected NAME=VALUE"),
        ("latency=fast", "not a time"),
        ("batch=true", "batch = 'true'"),
        ("params=" + "9" * 400, "is not a finite count"),
        ("latency=" + "9" * 400, "is not a finite time"),
    ],
)
def test_bad_budgets_name_the_value(text, message):
    with pytest.raises(ConfigError, match=message):
        Budget.parse(text)


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"width": [3]}, "width"),
        ({"layer": {"heads": []}}, "heads: no choices"),
        ({"layer": {"attention": ["mhsa", "sparse"]}}, r"layer.attention\[1\]: unknown kind 'sparse'"),
        ({"layer": {"ffn_kind": ["moe"]}}, r"layer.ffn_kind\[0\]: unknown kind 'moe'"),
        ({"hidden": {"min": 64, "max": 32}}, "max \\(32\\) is below min \\(64\\)"),
        ({"layer": {"ffn_kind": ["grouped"], "groups": [5]}}, "no combination"),
        ({"budget": {"params": "lots"}}, "not a count"),
        # every choice is checked where it is written, and the space is bounded before anything is listed
        ({"depth": [0, 2]}, r"depth\[0\] = 0: Input should be greater than 0"),
        ({"depth": {"min": 1, "max": 100_000}}, f"depth.max = 100000: .* less than or equal to {MAX_LAYERS}"),
        (
            {"hidden": {"min": 1, "max": 2_000_000_000}},
            f"hidden.max = 2000000000: .* less than or equal to {MAX_WIDTH}",
        ),
        ({"hidden": {"min": 1, "max": 60_000}}, f"hidden: 60000 choices, over the limit of {MAX_CHOICES}"),
        ({"layer": {"ffn": [64, -1]}}, r"layer.ffn\[1\] = -1"),
        (
            {
                "layer": {
                    "heads": {"min": 1, "max": 64},
                    "qk_dim": {"min": 1, "max": 64},
                    "v_dim": {"min": 1, "max": 64},
                }
            },
            f"layer: 524,294 layer shapes .* over the limit of {MAX_CANDIDATES:,}",
        ),
        (
            {"layer": {"ffn_kind": ["searched"], "expression": ["L(gelu(L(x)))", "L(gelu(L(x)"]}},
            r"layer.expression\[1\]: cannot parse FFN expression 'L\(gelu\(L\(x\)'",
        ),
        (
            {"layer": {"expression": ["L(" * 2000 + "x" + ")" * 2000]}},
            r"layer.expression\[0\]: .* over the limit of 32",
        ),
        ({"layer": {"activation": ["gelu", "gleu"]}}, r"layer.activation\[1\]: unknown activation 'gleu'"),
        ({"hidden": True}, "hidden = True"),
        ({"hidden": [32, True]}, r"hidden\[1\]: expected a number, got the boolean true"),
        ({"embedding_size": [16, False]}, r"embedding_size\[1\]: expected a number, got the boolean false"),
        ({"dropout": True}, "dropout: expected a number, got the boolean true"),
        ({"budget": {"batch": True}}, "budget.batch: expected a number, got the boolean true"),
        ({"budget": {"params": True}}, "budget.params: True is not a count"),
        ({"budget": {"flops": float("inf")}}, "budget.flops: inf is not a finite count"),
    ],
)
def test_bad_spaces_are_one_line_errors(changes, message):
    with pytest.raises(SpecError, match=message) as info:
        space(**changes)
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


def test_a_repeated_choice_is_not_another_architecture():
    assert (
        space(depth=[2, 2], layer={"heads": [2, 4, 2], "attention": ["mhsa", "mhsa"]}).size()
        == space(depth=[2], layer={"heads": [2, 4]}).size()
    )


def test_the_deepest_per_layer_space_is_counted_and_printed():
    s = space(depth=[MAX_LAYERS], per_layer=True)
    assert s.size() == s.size() and f"{s.size():,}".count(",") > 20  # 3^128-odd: exact, and printable


def test_a_space_file_does_not_choose_the_latency_device(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(
        "depth: [2]\nhidden: [64]\nlayer: {heads: [2], qk_dim: [8], v_dim: [8], ffn: [64]}\n"
        "budget: {latency: 20ms, device: cuda}\n",
        encoding="utf-8",
    )
    with pytest.raises(SpecError, match=f"{path}: budget.device: a search space does not choose"):
        SearchSpace.load(path)


def test_load_names_the_file(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("depth: [2\n", encoding="utf-8")
    with pytest.raises(SpecError, match=f"{path}: unreadable YAML at line"):
        SearchSpace.load(path)
    path.write_text(
        "depth: [2]\nhidden: [64]\nlayer: {heads: [2], qk_dim: [8], v_dim: [8], ffn: [64]}\n", encoding="utf-8"
    )
    assert SearchSpace.load(path).size() == 1


def test_space_command_reports_size_budget_and_samples(monkeypatch, capsys, tmp_path):
    from tests.test_cli import run

    path = tmp_path / "space.yaml"
    path.write_text(
        "depth: [2]\nhidden: [64]\nlayer: {heads: [2, 4], qk_dim: [8], v_dim: [8], ffn: [64, 128]}\n"
        "per_layer: true\nbudget: {params: 40K}\nembeddings: {vocab_size: 97}\n",
        encoding="utf-8",
    )
    code, out, _ = run(monkeypatch, capsys, "space", str(path), "--sample", "20")
    assert code == 0 and f"{path}: 16 architectures" in out and "budget: params=40,000" in out
    lines = [line for line in out.splitlines() if "L2 h64" in line]
    assert len(lines) == 20 and any("fits" in line for line in lines) and any("over: params" in line for line in lines)
    code, _, err = run(monkeypatch, capsys, "space", str(tmp_path / "missing.yaml"))
    assert code == 2 and "missing.yaml: cannot read the search space" in err
    path.write_text("depth: [0, 2]\nhidden: [64]\nlayer: {heads: [2], qk_dim: [8], v_dim: [8], ffn: [64]}\n")
    code, out, err = run(monkeypatch, capsys, "space", str(path), "--sample", "3")
    assert code == 2 and out == "" and f"{path}: depth[0] = 0" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("per_layer", [False, True])
def test_genes_describe_exactly_the_architectures(per_layer):
    """Every gene assignment builds an architecture of the space, and every architecture of the
    (small) space is reachable from some assignment."""
    s = space(
        per_layer=per_layer, depth=[1, 2], hidden=[32], layer={"heads": [2, 4], "v_dim": [8, 12], "ffn": [32, 64]}
    )
    genes = s.genes()
    assert ("layer1.heads" in genes) == per_layer and ("layer.heads" in genes) != per_layer
    assert "hidden" not in genes and "qk_dim" not in " ".join(genes)  # single-valued genes are left out
    names = list(genes)
    built = {s.from_genes(dict(zip(names, values))) for values in itertools.product(*genes.values())}
    assert len(built) == s.size()


def test_suggest_uses_optuna_categoricals():
    import optuna

    s = space(per_layer=True)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    spec = s.suggest(trial)
    assert set(trial.params) == set(s.genes())
    assert spec == s.from_genes(trial.params)


def test_bad_genes_are_named():
    s = space(per_layer=True)
    with pytest.raises(SpecError, match="layer7.heads: not a gene"):
        s.from_genes({"layer7.heads": 2})
    with pytest.raises(SpecError, match=r"layer0.heads: 3 is not one of the space's choices \[2, 4\]"):
        s.from_genes({"layer0.heads": 3})


def test_extremes_bound_every_sample():
    s = space(per_layer=True)
    small, large = encoder_params(s.extreme(False)), encoder_params(s.extreme(True))
    rng = np.random.default_rng(0)
    assert all(small <= encoder_params(s.sample(rng)) <= large for _ in range(100))
    assert s.extreme(True).num_layers == 2 and s.extreme(True).hidden == 48


def test_digest_changes_with_the_space():
    assert space().digest() == space().digest() != space(depth=[1, 2, 3]).digest()


def test_a_head_activation_reaches_every_architecture_and_the_default_keeps_old_digests():
    relu = space(head_activation="relu", pooler=False)
    rng = np.random.default_rng(0)
    assert {relu.sample(rng).head_activation for _ in range(5)} == {"relu"}
    assert space(head_activation="gelu").digest() == space().digest() != relu.digest()
    assert "head_activation" not in space().sample(rng).to_dict()  # specs written before the field: same keys
