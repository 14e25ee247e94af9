"""Spec files written before kinds owned their fields (tests/fixtures/specs, every built-in kind): they
load and are written back byte for byte, so the digests that studies, caches and resumed runs key on
stay the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bertsmith.arch import ArchSpec
from bertsmith.kinds import KINDS

FIXTURES = Path(__file__).parent / "fixtures" / "specs"


@pytest.mark.parametrize("path", sorted(FIXTURES.iterdir()), ids=lambda p: p.name)
def test_an_earlier_spec_file_loads_and_is_written_back_identically(path, tmp_path):
    text = path.read_text(encoding="utf-8")
    spec = ArchSpec.load(path)
    assert spec.to_dict() == (json.loads(text) if path.suffix == ".json" else yaml.safe_load(text))
    spec.save(tmp_path / path.name)
    assert (tmp_path / path.name).read_text(encoding="utf-8") == text


def test_the_earlier_spec_files_cover_every_built_in_kind():
    specs = [ArchSpec.load(path) for path in FIXTURES.glob("*.json")]
    for family in ("attention", "ffn"):
        written = {getattr(layer, family).kind for spec in specs for layer in spec.layers}
        assert written == {name for name, kind in KINDS[family].items() if kind.legacy}
