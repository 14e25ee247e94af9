"""Presets: every one builds, and the published shapes are what the papers give."""

from __future__ import annotations

import pytest

from bertsmith import presets
from bertsmith.errors import SpecError


@pytest.mark.parametrize("name", list(presets.PRESETS))
def test_every_preset_validates_and_resolves(name):
    assert presets.resolve(name) == presets.get(name)


def test_convbert_layouts():
    """the ConvBERT paper: attention heads n_h/γ of head dim d/n_h, as many conv heads, kernel 9."""
    for name, (h, a, d, g, e) in {
        "convbert-small": (256, 2, 64, 1, 128),
        "convbert-medium-small": (384, 4, 48, 2, 128),
        "convbert-base": (768, 6, 64, 1, None),
    }.items():
        spec = presets.get(name)
        att, ffn = spec.layers[0].attention, spec.layers[0].ffn
        assert (spec.hidden, att.heads, att.conv_heads, att.qk_dim, att.v_dim) == (h, a, a, d, d)
        assert (att.conv_kernel, ffn.size, spec.embeddings.size) == (9, 4 * h, e)
        assert (ffn.kind, getattr(ffn, "groups", 1)) == ("grouped" if g > 1 else "dense", g)
        assert (att.heads + att.conv_heads) * att.v_dim == h and spec.num_layers == 12


def test_bort_is_the_released_shape():
    spec = presets.get("bort")
    att = spec.layers[0].attention
    assert (spec.num_layers, att.heads, spec.hidden, spec.layers[0].ffn.size) == (4, 8, 1024, 768)
    assert spec.embeddings.vocab_size == 50265 and not spec.pooler


def test_efficientbert_layers():
    spec = presets.get("efficientbert")
    got = [(layer.ffn.expression, layer.ffn.stack, layer.ffn.size) for layer in spec.layers]
    assert got == list(presets.EFFICIENTBERT_FFNS)
    assert spec.hidden == 540 and spec.embeddings.trigram and spec.embeddings.size == 128


def test_schubert_per_layer_tables():
    spec = presets.get("schubert-99m")
    assert [layer.ffn.size for layer in spec.layers][:3] == [2022, 2222, 2344]
    assert [layer.attention.heads for layer in spec.layers][4] == 11
    assert not spec.is_uniform


def test_unknown_preset_and_spec_path(tmp_path):
    with pytest.raises(SpecError, match="unknown preset 'bert-huge'"):
        presets.get("bert-huge")
    spec_file = tmp_path / "mine.json"
    presets.get("bert-tiny").save(spec_file)
    assert presets.resolve(str(spec_file)) == presets.get("bert-tiny")
