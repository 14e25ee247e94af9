"""Fuzzing ``bertsmith run``'s config file (Hypothesis, the profile of tests/conftest.py): the real keys
of every section with wrong and edge values, unknown keys, sections that are not mappings, and raw
YAML text. Each file loads as a ``RunConfig`` whose echo loads back to the same configuration, or is
refused with a ``ConfigError`` whose message is one line naming the file; never another exception,
and within ``fuzz.SECONDS``."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from bertsmith.errors import ConfigError
from bertsmith.runconfig import RunConfig, load_config

from .fuzz import outcome


def key_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key of the config, sections and their keys (``("budget",)``, ``("budget", "params")``)."""
    paths = []
    for name, field in model.model_fields.items():
        paths.append((*prefix, name))
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            paths += key_paths(field.annotation, (*prefix, name))
    return paths


PATHS = key_paths(RunConfig) + [("colour",), ("search", "colour"), ("export", "int4")]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 300),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
    st.sampled_from(
        [
            "25%",
            "0%",
            "101%",
            "-5%",
            "2.5M",
            "1e400",
            "10ms",
            "0.01s",
            "90s",
            "cpu",
            "cuda",
            "int8",
            "auto",
            "bf16",
            "teacher",
            "scratch",
            "nsga2",
            "logits,hidden",
            "rotten-tomatoes",
            "nope.yaml",
            "../x",
            "/",
            "a\nb",
            "uniform",
            "params",
            "latency",
        ]
    ),
    st.lists(st.sampled_from(["params", "latency", "flops", "uniform", "layers", 3, None, "x.yaml"]), max_size=3),
    st.dictionaries(st.sampled_from(["population_size", "x", "params", "steps"]), st.integers(-1, 5), max_size=2),
)


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    """A config of up to five keys of the real ones (or unknown ones) set to edge values."""
    data: dict[str, Any] = {}
    for path in draw(st.lists(st.sampled_from(PATHS), max_size=5)):
        node = data
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[path[-1]] = draw(VALUES)
    return data


def load(folder: str, text: str) -> RunConfig | None:
    """``load_config`` on ``text``: the config, or None after checking that it raised a one-line
    ConfigError naming the file; either way within ``fuzz.SECONDS``."""
    path = Path(folder) / "run.yaml"
    path.write_text(text, encoding="utf-8")
    return outcome(lambda: load_config(path), ConfigError, source=path)


@given(configs())
def test_config_dicts_load_or_are_one_line_errors(data):
    with tempfile.TemporaryDirectory() as folder:
        config = load(folder, yaml.safe_dump(data))
        if config is not None:  # the echo, every default written out, is the same configuration
            again = load(folder, config.echo())
            assert again is not None and again.model_dump() == config.model_dump()


# raw text: any characters, control characters included (the YAML reader's multi-line error about them,
# and the loader's ValueError for a date such as 2001-13-45, are made one line by arch.parse_yaml)
YAML_TEXT = st.text(max_size=120)
YAML_TOKENS = st.lists(
    st.sampled_from(
        [
            "task",
            "budget",
            "params",
            "search",
            "trials",
            ":",
            " ",
            "\n",
            "  ",
            "- ",
            "{",
            "}",
            "[",
            "]",
            ",",
            "'",
            '"',
            "#",
            "&a",
            "*a",
            "!!int ",
            "!!float ",
            "!!bool ",
            "!!timestamp ",
            "25%",
            "1e9",
            "null",
            "true",
            "~",
            "-1",
            "0x10",
            "_",
            "2001-13-45",
        ]
    ),
    max_size=30,
).map("".join)


@given(st.one_of(YAML_TEXT, YAML_TOKENS))
def test_raw_yaml_text_loads_or_is_a_one_line_error(text):
    with tempfile.TemporaryDirectory() as folder:
        load(folder, text)


@pytest.mark.parametrize(
    "text", ["!!int", "task: !!float _", 'seed: !!int ""', "quality: {accept_weak: !!bool x}", "task: !!timestamp x"]
)
def test_explicit_tags_on_values_they_do_not_fit_are_one_line_errors(tmp_path, text):
    assert load(str(tmp_path), text) is None  # YAML's constructors raise IndexError, KeyError, AttributeError


def test_the_echo_of_a_value_with_a_unicode_line_break_reads_back_the_same():
    """Found by the long fuzzing profile: PyYAML wrote U+0085 in single quotes, read back as a space."""
    from bertsmith.runconfig import RunConfig

    config = RunConfig.model_validate({"task": "\x85", "teacher": {"model": "a\u2028b"}})
    assert yaml.safe_load(config.echo()) == config.model_dump(mode="json")
