"""ArchSpec: validation, immutability, JSON/YAML round trips, helpers."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from bertsmith import presets
from bertsmith.arch import ArchSpec
from bertsmith.errors import SpecError

from .conftest import KIND_GRID, tiny_spec


@pytest.mark.parametrize("attention,ffn,per_layer", KIND_GRID)
def test_json_and_yaml_round_trip(attention, ffn, per_layer, tmp_path):
    spec = tiny_spec(attention, ffn, per_layer)
    assert ArchSpec.from_json(spec.to_json()) == spec
    assert ArchSpec.from_yaml(spec.to_yaml()) == spec
    for name in ("spec.json", "spec.yaml"):
        spec.save(tmp_path / name)
        assert ArchSpec.load(tmp_path / name) == spec
    assert spec.is_uniform is (not per_layer)


@pytest.mark.parametrize("name", list(presets.PRESETS))
def test_presets_round_trip(name):
    spec = presets.get(name)
    assert ArchSpec.from_yaml(spec.to_yaml()) == spec


def test_spec_is_immutable():
    spec = presets.get("bert-mini")
    with pytest.raises(ValidationError):
        spec.hidden = 128
    with pytest.raises(ValidationError):
        spec.layers[0].attention.heads = 1
    assert spec.replace(hidden=128).hidden == 128 and spec.hidden == 256


def test_expansive_attention_dims_are_independent_of_hidden():
    spec = presets.get("schubert-43m")  # h=304 with 12 heads of 64: k·a = 768 > h
    att = spec.layers[0].attention
    assert (spec.hidden, att.heads, att.qk_dim, att.v_dim) == (304, 12, 64, 64)


def _layers(att=None, ffn=None):
    return [{"attention": {"heads": 2, "qk_dim": 8, "v_dim": 8} | (att or {}), "ffn": {"size": 32} | (ffn or {})}]


@pytest.mark.parametrize(
    "fields,needle",
    [
        ({"hidden": 0, "layers": _layers()}, "hidden = 0"),
        ({"hidden": -16, "layers": _layers()}, "hidden = -16"),
        ({"hidden": 16, "layers": []}, "at least one layer"),
        ({"hidden": 16, "layers": _layers(att={"heads": 0})}, "layers[0].attention.heads = 0"),
        ({"hidden": 16, "layers": _layers(att={"v_dim": -1})}, "layers[0].attention.v_dim = -1"),
        ({"hidden": 16, "layers": _layers(ffn={"size": 0})}, "layers[0].ffn.size = 0"),
        ({"hidden": 16, "layers": _layers(att={"kind": "linformer"})}, "unknown kind 'linformer'"),
        ({"hidden": 16, "layers": _layers(ffn={"kind": "moe"})}, "layers[0].ffn.kind: unknown kind 'moe'"),
        ({"hidden": 16, "layers": _layers(ffn={"activation": "swiglu"})}, "unknown activation 'swiglu'"),
        ({"hidden": 16, "layers": _layers(ffn={"kind": "grouped", "groups": 3})}, "groups: 3 groups must divide"),
        ({"hidden": 16, "layers": _layers(ffn={"kind": "searched"})}, "kind 'searched' needs an expression"),
        (
            {"hidden": 16, "layers": _layers(ffn={"kind": "searched", "expression": "L(gelu(x))"})},
            "exactly two linear maps",
        ),
        (
            {"hidden": 16, "layers": _layers(ffn={"kind": "searched", "expression": "L(gelu(L(x)"})},
            "cannot parse FFN expression",
        ),
        ({"hidden": 16, "layers": _layers(att={"kind": "mixed"})}, "needs conv_kernel and head_ratio"),
        (
            {"hidden": 16, "layers": _layers(att={"kind": "mixed", "conv_kernel": 4, "head_ratio": 2})},
            "conv_kernel: must be odd",
        ),
        ({"hidden": 16, "layers": _layers(att={"conv_kernel": 9})}, "apply only to kind 'mixed'"),
        ({"hidden": 16, "layers": _layers(), "embeddings": {"pad_token_id": 40000}}, "pad_token_id (40000)"),
        ({"hidden": 16, "layers": _layers(), "colour": "red"}, "colour"),
        # booleans are not numbers (pydantic alone reads true as 1)
        ({"hidden": True, "layers": _layers()}, "hidden: expected a number, got the boolean true"),
        ({"hidden": 16, "layers": _layers(att={"heads": True})}, "layers[0].attention.heads: expected a number"),
        ({"hidden": 16, "layers": _layers(), "hidden_dropout": False}, "hidden_dropout: expected a number"),
        ({"hidden": 16, "layers": _layers(), "embeddings": {"vocab_size": True}}, "embeddings.vocab_size: expected"),
        (
            {"hidden": 16, "layers": _layers(ffn={"kind": "searched", "expression": "L(" * 700 + "x" + ")" * 700})},
            "is 33 levels deep, over the limit of 32",
        ),
    ],
)
def test_invalid_specs_name_the_field_and_value(fields, needle):
    with pytest.raises(SpecError) as info:
        ArchSpec.build(**fields)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_a_misspelled_key_is_named_without_the_file_contents(tmp_path):
    data = presets.get("bert-mini").to_dict()
    data["layer"] = data.pop("layers")
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError) as info:
        ArchSpec.load(path)
    assert str(info.value) == f"{path}: layers: missing (unknown key 'layer' given: misspelled?)"
    data["layers"] = data.pop("layer")
    data["colour"] = {"red": list(range(1000))}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError) as info:
        ArchSpec.load(path)
    assert str(info.value) == f"{path}: colour: unknown key"


def test_uniform_rejects_heads_that_do_not_divide_hidden():
    with pytest.raises(SpecError, match=r"5 heads do not divide hidden \(64\)"):
        ArchSpec.uniform(layers=2, hidden=64, heads=5, ffn=128)
    spec = ArchSpec.uniform(layers=2, hidden=64, heads=5, ffn=128, qk_dim=16, v_dim=16)
    assert spec.layers[0].attention.heads == 5


def test_unreadable_yaml_and_missing_file_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("hidden: [64\n")
    with pytest.raises(SpecError, match=r"bad.yaml: unreadable YAML at line 2"):
        ArchSpec.load(bad)
    with pytest.raises(SpecError, match=r"missing.yaml: cannot read spec file"):
        ArchSpec.load(tmp_path / "missing.yaml")
    scalar = tmp_path / "scalar.json"
    scalar.write_text("42")
    with pytest.raises(SpecError, match=r"scalar.json: expected a mapping"):
        ArchSpec.load(scalar)


@pytest.mark.parametrize(
    "form,text,message",
    [
        ("json", "[" * 100_000, "not valid JSON (nested too deeply)"),
        ("json", "9" * 5000, "not valid JSON (Exceeds the limit (4300 digits)"),
        ("yaml", "[" * 100_000, "unreadable YAML (nested too deeply)"),
        ("yaml", "hidden: " + "9" * 5000, "unreadable YAML (Exceeds the limit (4300 digits)"),
        ("yaml", "hidden: 2001-13-45", "unreadable YAML (month must be in 1..12)"),
        ("yaml", "a: !!binary xyz", "unreadable YAML at line 1, column 4 (failed to decode base64 data"),
    ],
)
def test_text_the_loaders_refuse_is_one_line(form, text, message):
    with pytest.raises(SpecError) as info:
        ArchSpec.from_json(text, source="s") if form == "json" else ArchSpec.from_yaml(text, source="s")
    assert str(info.value).startswith(f"s: {message}") and "\n" not in str(info.value)


def test_save_is_atomic_and_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "spec.yaml"
    presets.get("bert-mini").save(path)
    before = path.read_text()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        presets.get("bert-base").save(path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["spec.yaml"]


def test_a_billion_laughs_file_is_refused_without_expanding_it_and_ordinary_aliases_load():
    from bertsmith.arch import parse_yaml

    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    with pytest.raises(
        SpecError,
        match=r"^spec: unreadable YAML \(its aliases expand to 4,412,961,516 values, over "
        r"the limit of 1,000,000\)$",
    ):
        ArchSpec.from_yaml("\n".join(lines))
    data = parse_yaml("base: &b {hidden: 32}\nspec: {<<: *b, pooler: false}\n", "f.yaml", SpecError)
    assert data["spec"] == {"hidden": 32, "pooler": False}
