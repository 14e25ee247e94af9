"""The kinds registry: a family's base class makes the model of the kind it is given, and only a kind's
own class is registered."""

from __future__ import annotations

from typing import Literal

import pytest

from bertsmith.kinds import ATTENTION, FFN, AttentionSpec, FFNSpec, register


def test_a_family_base_class_makes_the_model_of_the_kind():
    searched = FFNSpec(kind="searched", size=8, expression="L(gelu(L(x)))")
    assert type(searched) is FFN["searched"] and searched.stack == 1
    assert FFNSpec.model_validate({"kind": "searched", "size": 8, "expression": "L(gelu(L(x)))"}) == searched
    assert (
        type(FFNSpec(size=8)) is FFN["dense"] and type(AttentionSpec(heads=1, qk_dim=2, v_dim=3)) is ATTENTION["mhsa"]
    )
    assert searched.model_copy(update={"size": 16}).size == 16


class Unnamed(FFNSpec):
    """A subclass that does not name its kind (it would take the family's default, dense)."""


class Dense(FFNSpec):
    kind: Literal["dense"] = "dense"


@pytest.mark.parametrize("kind", [AttentionSpec, FFNSpec, Unnamed])
def test_a_kind_is_a_subclass_with_a_literal_kind(kind):
    with pytest.raises(TypeError, match="a kind subclasses AttentionSpec or FFNSpec with a literal kind"):
        register(kind)


def test_a_name_is_registered_once():
    with pytest.raises(TypeError, match="the ffn kind 'dense' is DenseSpec already"):
        register(Dense)
    assert FFN["dense"].__name__ == "DenseSpec"
