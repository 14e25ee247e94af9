"""ArchSpec: the one immutable description of an encoder that search, cost, modeling and export share.

An ArchSpec holds the embeddings, one global hidden size (the residual stream) and a list of layers,
each with its own attention (kind, heads a_i, query/key head dim k_i, value head dim v_i) and its own
FFN (kind, size, activation), plus the fields of their kinds (e.g. the kernel size and head ratio of
ConvBERT's ``mixed`` attention). It is validated on construction and round-trips through JSON and
YAML. Each kind's fields, rules and summary live with the kind (``bertsmith.kinds``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    Field,
    SerializeAsAny,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from .errors import SpecError
from .fields import _SHOWN, Float, Int, PositiveInt, _Frozen, short_repr
from .files import atomic_write_text
from .kinds import ATTENTION, FFN, AttentionSpec, FFNSpec


LATER_DEFAULTS = {"head_activation": "gelu", "relative_attention_buckets": 0}  # ArchSpec fields added later
UNION_TAGS = frozenset({"<range>", "<list>"})  # union members' tags: not keys, left out of error locations
_M = TypeVar("_M", bound=BaseModel)


class EmbeddingSpec(_Frozen):
    """Token, position and segment embeddings.

    ``size`` (e) smaller than the hidden size makes the embeddings factorized: ELECTRA/ConvBERT style
    (embeddings and their LayerNorm at width e, then a projection e→h), or with ``trigram`` MobileBERT
    style as EfficientBERT uses it (token embeddings of width e, each concatenated with its left and
    right neighbours, projected 3e→h; positions, segments and LayerNorm at width h).
    """

    vocab_size: Int = Field(default=30522, gt=0)
    max_positions: Int = Field(default=512, gt=0)
    type_vocab_size: Int = Field(default=2, ge=0)
    size: Int | None = Field(default=None, gt=0)
    trigram: bool = False
    pad_token_id: Int = Field(default=0, ge=0)
    positions: Literal["absolute", "roberta"] = "absolute"

    @property
    def max_tokens(self) -> int:
        """The longest input the position embeddings cover (RoBERTa's positions start after pad_token_id)."""
        return self.max_positions - (self.pad_token_id + 1 if self.positions == "roberta" else 0)

    @model_validator(mode="after")
    def _check(self) -> "EmbeddingSpec":
        if self.pad_token_id >= self.vocab_size:
            raise ValueError(f"pad_token_id ({self.pad_token_id}) must be below vocab_size ({self.vocab_size})")
        if self.trigram and self.size is None:
            raise ValueError("trigram embeddings need an embedding size (embeddings.size)")
        if self.positions == "roberta" and self.max_positions <= self.pad_token_id + 1:
            raise ValueError(f"max_positions ({self.max_positions}) leaves no room after pad_token_id + 1")
        return self


class LayerSpec(_Frozen):
    """One post-LN transformer block."""

    attention: SerializeAsAny[AttentionSpec]
    ffn: SerializeAsAny[FFNSpec]


class ArchSpec(_Frozen):
    """A BERT-style encoder. ``pooler`` adds BERT's tanh pooler on the first token. Without a pooler,
    the classification head is dense → ``head_activation`` → linear on the first token (gelu as in
    ELECTRA and ConvBERT, relu as in DistilBERT, tanh as in RoBERTa and MPNet). ``relative_attention_buckets`` (MPNet: 32) adds a
    learned relative position bias to every layer's attention scores: one table of buckets × heads
    shared by all layers (a layer with a heads uses the first a columns); 0 means none."""

    hidden: PositiveInt
    embeddings: EmbeddingSpec = EmbeddingSpec()
    layers: tuple[LayerSpec, ...]
    layer_norm_eps: Float = Field(default=1e-12, gt=0)
    hidden_dropout: Float = Field(default=0.1, ge=0, lt=1)
    attention_dropout: Float = Field(default=0.1, ge=0, lt=1)
    initializer_range: Float = Field(default=0.02, gt=0)
    pooler: bool = True
    head_activation: str = "gelu"
    relative_attention_buckets: Int = Field(default=0, ge=0)

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Every field, those added later only where they are not their default: the specs (and the keys
        of studies and run stages) written before they existed stay the same."""
        data = handler(self)
        for name, default in LATER_DEFAULTS.items():
            if data.get(name, default) == default:
                data.pop(name, None)
        return data

    @model_validator(mode="after")
    def _check(self) -> "ArchSpec":
        from .modeling.expr import ACTIVATIONS

        if not self.layers:
            raise ValueError("layers: an encoder needs at least one layer")
        if self.head_activation not in ACTIVATIONS:
            raise ValueError(
                f"head_activation: unknown activation {self.head_activation!r} (known: {', '.join(ACTIVATIONS)})"
            )
        buckets = self.relative_attention_buckets
        if buckets and (buckets < 4 or buckets % 2):
            raise ValueError(
                f"relative_attention_buckets: {buckets}: an even number ≥ 4 (half for each direction, "
                "half of those exact), or 0 for none"
            )
        if buckets:
            other = next((i for i, la in enumerate(self.layers) if la.attention.kind != "mhsa"), None)
            if other is not None:
                raise ValueError(
                    f"relative_attention_buckets: a relative position bias needs mhsa attention "
                    f"(layers[{other}] is {self.layers[other].attention.kind!r})"
                )
        if self.embeddings.size is not None and self.embeddings.size > self.hidden and self.embeddings.trigram:
            raise ValueError(f"embeddings.size ({self.embeddings.size}) > hidden ({self.hidden}) with trigram")
        for i, layer in enumerate(self.layers):
            att, ffn = layer.attention, layer.ffn
            for where, problem in (
                ("attention", att.module.problem(att, self.hidden)),
                ("ffn", ffn.module.problem(ffn, self.hidden)),
            ):
                if problem:
                    raise ValueError(f"layers[{i}].{where}.{problem}")
        return self

    # ---- construction helpers -------------------------------------------------------------
    @classmethod
    def uniform(
        cls,
        *,
        layers: int,
        hidden: int,
        heads: int,
        ffn: int,
        qk_dim: int | None = None,
        v_dim: int | None = None,
        attention: str = "mhsa",
        conv_kernel: int = 9,
        head_ratio: int = 2,
        ffn_kind: str = "dense",
        groups: int = 1,
        activation: str = "gelu",
        expression: str | None = None,
        stack: int = 1,
        **kwargs: Any,
    ) -> "ArchSpec":
        """Every layer the same. Head dims default to hidden/(every head of the layer: heads·γ for ``mixed``).
        A kind's options (``conv_kernel`` and ``head_ratio``; ``groups``, ``expression`` and ``stack``) go to
        the kinds that have them; another kind refuses one set away from its default."""
        att = {"kind": attention, "heads": heads} | _options(
            ATTENTION.get(attention), {"conv_kernel": (conv_kernel, 9), "head_ratio": (head_ratio, 2)}
        )
        total = ATTENTION[attention].model_construct(**att).all_heads if attention in ATTENTION else heads
        default_dim = hidden // total if hidden % total == 0 else None
        if (qk_dim or v_dim or default_dim) is None:
            raise SpecError(f"heads: {heads} heads do not divide hidden ({hidden}); pass qk_dim and v_dim")
        att |= {"qk_dim": qk_dim or default_dim, "v_dim": v_dim or default_dim}
        f = {"kind": ffn_kind, "size": ffn, "activation": activation} | _options(
            FFN.get(ffn_kind), {"groups": (groups, 1), "expression": (expression, None), "stack": (stack, 1)}
        )
        return cls.build(hidden=hidden, layers=[{"attention": att, "ffn": f}] * layers, **kwargs)

    @classmethod
    def build(cls, **fields: Any) -> "ArchSpec":
        """Construct from fields, raising SpecError (one line: field and value) when invalid."""
        return cls.from_dict(_plain(fields))

    def replace(self, **changes: Any) -> "ArchSpec":
        """A validated copy with some top-level fields changed."""
        return ArchSpec.from_dict({**self.to_dict(), **_plain(changes)})

    def inherited(self) -> dict[str, Any]:
        """What every architecture searched or built from this (teacher's) spec keeps of it besides the
        embeddings: the pooler, the classifier's activation and the relative position bias (fields of
        the same names in ArchSpec and SearchSpace)."""
        return {
            "pooler": self.pooler,
            "head_activation": self.head_activation,
            "relative_attention_buckets": self.relative_attention_buckets,
        }

    # ---- properties -----------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def is_uniform(self) -> bool:
        """True when every layer has the same shape (a stock transformers export is possible)."""
        return all(layer == self.layers[0] for layer in self.layers)

    def summary(self) -> str:
        """One line, e.g. ``L6 h384 e384 | mhsa a12 k32 v32 | dense f1536``."""
        emb = self.embeddings.size or self.hidden
        parts = [
            f"L{self.num_layers} h{self.hidden} e{emb}{'(trigram)' if self.embeddings.trigram else ''}"
            + (f" rel{self.relative_attention_buckets}" if self.relative_attention_buckets else "")
        ]
        if self.is_uniform:
            parts.append(_layer_summary(self.layers[0]))
        else:
            parts.append("per-layer: " + "; ".join(_layer_summary(layer) for layer in self.layers))
        return " | ".join(parts)

    # ---- serialization --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "spec") -> "ArchSpec":
        return validate_mapping(cls, data, source=source, what="ArchSpec")

    @classmethod
    def from_json(cls, text: str, *, source: str = "spec") -> "ArchSpec":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        except RecursionError:
            raise SpecError(f"{source}: not valid JSON (nested too deeply)") from None
        except ValueError as exc:  # e.g. a number of more than 4,300 digits
            raise SpecError(f"{source}: not valid JSON ({one_line(str(exc))})") from None
        return cls.from_dict(data, source=source)

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "spec") -> "ArchSpec":
        return cls.from_dict(parse_yaml(text, source, SpecError), source=source)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ArchSpec":
        """Read a .json, .yaml or .yml file (JSON is valid YAML, so any other suffix is read as YAML)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SpecError(f"{path}: cannot read spec file ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise SpecError(f"{path}: spec file is not UTF-8 text") from None
        if path.suffix == ".json":
            return cls.from_json(text, source=str(path))
        return cls.from_yaml(text, source=str(path))

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically as JSON (``.json``) or YAML (anything else)."""
        path = Path(path)
        atomic_write_text(path, self.to_json() + "\n" if path.suffix == ".json" else self.to_yaml())


def validate_mapping(model: type[_M], data: Any, *, source: str, what: str) -> _M:
    """``model`` validated from a parsed mapping; anything else, or invalid fields, is one
    ``SpecError`` line starting with ``source``."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a mapping of {what} fields, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"{source}: {_one_line(exc)}") from None


def read_yaml_file(path: Path, what: str, error: type[Exception]) -> Any:
    """Parse a YAML file; an unreadable, non-UTF-8 or malformed file raises ``error`` with one line
    naming the file (and the line and column of a YAML error)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read {what} ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise error(f"{path}: {what} is not UTF-8 text") from None
    return parse_yaml(text, str(path), error)


MAX_YAML_VALUES = 1_000_000  # what a spec, space or config file may expand to (aliases included)


def _expanded_size(node: yaml.Node | None, sizes: dict[int, int]) -> int:
    """How many values ``node`` stands for once its aliases are expanded, counted without expanding
    them (each node once: an alias repeated a billion times costs nothing to count)."""
    if node is None:
        return 0
    if id(node) not in sizes:
        sizes[id(node)] = 1  # a recursive alias counts once
        if isinstance(node, yaml.SequenceNode):
            sizes[id(node)] = 1 + sum(_expanded_size(child, sizes) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            sizes[id(node)] = 1 + sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    return sizes[id(node)]


def parse_yaml(text: str, source: str, error: type[Exception]) -> Any:
    """``yaml.safe_load``, every failure one ``error`` line naming ``source``: malformed YAML (with its
    line and column), nesting too deep to read, aliases that expand past ``MAX_YAML_VALUES`` (a
    "billion laughs" file), and values the loader refuses (a number of more than
    4,300 digits, a 13th month, an explicit tag that does not fit its value such as ``!!float _``)."""
    try:
        size = _expanded_size(yaml.compose(text, Loader=yaml.SafeLoader), {})
        data = yaml.safe_load(text) if size <= MAX_YAML_VALUES else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = one_line(str(getattr(exc, "problem", None) or exc))
        raise error(f"{source}: unreadable YAML{where} ({problem})") from None
    except RecursionError:
        raise error(f"{source}: unreadable YAML (nested too deeply)") from None
    except (ValueError, TypeError, OverflowError, IndexError, KeyError, AttributeError) as exc:
        raise error(f"{source}: unreadable YAML ({one_line(str(exc)) or type(exc).__name__})") from None
    if size > MAX_YAML_VALUES:
        raise error(
            f"{source}: unreadable YAML (its aliases expand to {size:,} values, over the limit of {MAX_YAML_VALUES:,})"
        )
    return data


def _plain(value: Any) -> Any:
    """Turn nested spec objects into plain data so that they validate as fields."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def one_line(text: str) -> str:
    """``text`` with its whitespace runs (newlines included) made single spaces, cut when long."""
    text = " ".join(text.split())
    return text if len(text) <= 2 * _SHOWN else text[: 2 * _SHOWN] + "..."


def error_location(err: dict[str, Any]) -> str:
    """A pydantic error's location as ``layers[0].ffn.size`` (union tags left out)."""
    parts = [p for p in err["loc"] if p not in UNION_TAGS]
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in parts).replace(".[", "[")


def _one_line(exc: ValidationError) -> str:
    """The first validation error as ``field.path = value: message`` (unknown and missing keys are
    named without the mapping that holds them)."""
    errors = exc.errors()
    err = errors[0]
    loc = error_location(err)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if err["type"] == "missing":
        unknown = [
            error_location(e) for e in errors if e["type"] == "extra_forbidden" and e["loc"][:-1] == err["loc"][:-1]
        ]
        return f"{loc}: missing" + (f" (unknown key {unknown[0]!r} given: misspelled?)" if unknown else more)
    if err["type"] == "extra_forbidden":
        return f"{loc}: unknown key{more}"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "value_error" or not loc:
        return f"{loc + ': ' if loc else ''}{msg}"
    return f"{loc} = {short_repr(err.get('input'))}: {msg}{more}"


def _options(kind: type | None, options: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    """Of ``options`` (name → (value, default)), those that are fields of ``kind`` and those set away from
    their default (for the kind to refuse). ``kind`` None: an unknown kind, refused by name when built."""
    return {
        name: value
        for name, (value, default) in options.items()
        if (kind is not None and name in kind.own_fields()) or value != default
    }


def _layer_summary(layer: LayerSpec) -> str:
    return f"{layer.attention.summary()} | {layer.ffn.summary()}"
