"""Shared pieces of the fuzz tests: edge values, near-valid mutations of a valid mapping, raw text,
and the property every parser must keep."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

SECONDS = 5.0  # the most one parse may take (generous: the test machine has 2 shared cores)

# values that break naive parsers: booleans, huge and negative ints, odd floats, strings, None, nesting
EDGE = st.one_of(
    st.booleans(),
    st.none(),
    st.integers(-3, 300),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["5M", "1e400", "9" * 400, "", "true", "0x10", "L(x)", "-1", "1.5"]),
    st.lists(st.integers(-3, 300), max_size=4),
    st.lists(st.lists(st.none(), max_size=2), max_size=2),
    st.dictionaries(st.sampled_from(["min", "max", "step", "kind", "x"]), st.integers(-3, 300), max_size=3),
)


def outcome(
    parse_: Callable[[], Any],
    errors: type[Exception] | tuple[type[Exception], ...],
    *,
    source: str | os.PathLike | None = None,
) -> Any:
    """Run ``parse_``: its result, or None after checking that it raised one of ``errors`` with a
    non-empty one-line message (starting with ``source``, the file read, when given). Either way
    within SECONDS."""
    start = time.perf_counter()
    try:
        result = parse_()
    except errors as exc:
        message = str(exc)
        assert message and "\n" not in message and "\r" not in message and len(message) < 1000, message
        assert source is None or message.startswith(str(source)), message
        _event(f"refused: {type(exc).__name__}")
        return None
    finally:
        assert time.perf_counter() - start < SECONDS
    _event("valid")
    return result


def _event(name: str) -> None:
    """Count an outcome in Hypothesis's statistics (``--hypothesis-show-statistics``)."""
    if currently_in_test_context():
        event(name)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a nested dict/list, leaves and containers."""
    out = [prefix] if prefix else []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        out += _paths(child, (*prefix, key))
    return out


@st.composite
def near_valid(draw: st.DrawFn, template: dict, extra_keys: list[str]) -> dict:
    """``template`` with up to three edits: a value replaced by an edge value, a key dropped or
    misspelled, or an unknown key added."""
    data = json.loads(json.dumps(template))
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(_paths(data) or [("x",)]))
        *parents, last = path
        node = data
        for p in parents:
            node = (
                node[p]
                if isinstance(node, (dict, list)) and (p in node if isinstance(node, dict) else p < len(node))
                else None
            )
        if (
            not isinstance(node, (dict, list))
            or (isinstance(node, list) and last >= len(node))
            or (isinstance(node, dict) and last not in node)
        ):
            continue
        edit = draw(st.sampled_from(["value", "value", "value", "drop", "misspell", "add"]))
        if edit == "value":
            node[last] = draw(EDGE)
        elif edit == "drop" and isinstance(node, dict):
            del node[last]
        elif edit == "misspell" and isinstance(node, dict):
            node[f"{last}s" if not str(last).endswith("s") else str(last)[:-1]] = node.pop(last)
        elif edit == "add" and isinstance(node, dict):
            node[draw(st.sampled_from(extra_keys))] = draw(EDGE)
    return data


RAW = st.one_of(
    st.text(max_size=200),
    st.text(alphabet="{}[]:,-\"' \n\t&*!|>#%@`0123456789.eE+-xtruefalsnhidelay", max_size=200),
    st.builds(
        lambda open_, n: open_ * n, st.sampled_from(["[", "{a: ", "- ", '{"a": ', "!!map {"]), st.integers(0, 20_000)
    ),
    st.builds(lambda digits: f"hidden: {digits}\nlayers: []\n", st.text(alphabet="0123456789_.", max_size=6000)),
    st.sampled_from(
        [
            "a: 2001-13-45",
            "a: !!binary xyz",
            "a: !!python/name:os.system",
            "a: !!float abc",
            "a: &a [*a]",
            "a: !!set {x}",
            "? [a]\n: b",
            "a: " + "9" * 5000,
            "[" + "9" * 5000 + "]",
        ]
    ),
)
