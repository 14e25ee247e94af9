"""Training objectives: modules whose ``forward(batch)`` returns ``(loss, parts)``.

The trainer optimises an objective's parameters (the student plus any learned projection) and
evaluates ``objective.student``; the teacher is held outside the module tree, so it is never
trained, saved or handed to the optimiser. Which terms an objective adds and with what weights is a
``LossConfig``:

- ``labels``: the task type's loss on the gold labels (cross-entropy; MSE for regression);
- ``logits``: the task type's loss against the teacher's predictions (classification: KL with
  temperature or soft cross-entropy, as ``logit_loss`` says; regression always uses MSE);
- ``hidden``: MSE of the embedding output and of every student layer against the mapped teacher
  layer, through one learned projection when the widths differ;
- ``attention``: per mapped layer pair, MSE of the pre-softmax scores when the head counts match,
  otherwise the MiniLMv2 Q-Q, K-K and V-V relation KL (``attention_mode`` forces either); on every
  pair, or on the last pair only (``attention_layers``);
- ``mlm`` (task-agnostic only): Bort's 0.1·MLM + 0.5·T²·KL on masked tokens, when both models have
  a masked-LM head.

With a ``TeacherCache`` attached (``use_cache``; ``train_on_task`` does it) and batches that carry their
``example_ids``, the teacher's outputs come from the cache instead of a forward pass (``teacher_cache``).
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Iterator, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from ..errors import ConfigError
from ..modeling import BertsmithForMaskedLM, BertsmithModel
from ..modeling.attention import attention_scores, split_heads
from ..modeling.encoder import EncoderOutput, additive_mask
from . import losses as L
from .teacher_cache import TeacherCache

if TYPE_CHECKING:
    from ..data.tasktypes import TaskType

TERMS = ("labels", "logits", "hidden", "attention", "mlm")


class LossConfig(BaseModel):
    """Which loss terms, their weights and their settings. A term is on when its weight is > 0."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    labels: float = Field(0.0, ge=0)
    logits: float = Field(1.0, ge=0)
    hidden: float = Field(0.0, ge=0)
    attention: float = Field(0.0, ge=0)
    mlm: float = Field(0.0, ge=0)
    logit_loss: Literal["kl", "soft_ce"] = "kl"
    temperature: float = Field(1.0, gt=0)
    attention_mode: Literal["auto", "scores", "relation"] = "auto"
    relation_heads: int = Field(12, ge=1, description="preferred MiniLMv2 relation heads (reduced to divide widths)")
    attention_layers: Literal["all", "last"] = Field(
        "all", description="the attention term on every mapped layer pair, or on the last pair only (as MiniLMv2)"
    )
    layer_map: tuple[int, ...] | None = Field(None, description="teacher layer (1-based) per student layer")
    mlm_weight: float = Field(0.1, ge=0, description="Bort: weight of the student's own MLM loss")
    mlm_kd_weight: float = Field(0.5, ge=0, description="Bort: weight of T²·KL to the teacher")
    mlm_temperature: float = Field(2.0, gt=0)
    mask_probability: float = Field(0.15, gt=0, lt=1)

    @model_validator(mode="after")
    def _some_term(self) -> "LossConfig":
        if not any(getattr(self, t) > 0 for t in TERMS):
            raise ValueError("every loss weight is 0: switch on at least one of " + ", ".join(TERMS))
        return self

    @classmethod
    def from_terms(cls, terms: str, **settings) -> "LossConfig":
        """``"logits,hidden,attention"`` → those terms at weight 1, the others off."""
        names = [t.strip() for t in terms.split(",") if t.strip()]
        unknown = [t for t in names if t not in TERMS]
        if unknown or not names:
            raise ConfigError(f"losses = {terms!r}: expected a comma-separated subset of {', '.join(TERMS)}")
        return cls(**{t: float(t in names) for t in TERMS}, **settings)

    @property
    def needs_teacher(self) -> bool:
        return any(getattr(self, t) > 0 for t in ("logits", "hidden", "attention", "mlm"))


@contextmanager
def capture_qkv(encoder: BertsmithModel, layers: list[int]) -> Iterator[dict[int, torch.Tensor]]:
    """Record the fused QKV projection output of the given layers (0-based) during a forward."""
    store: dict[int, torch.Tensor] = {}
    with ExitStack() as stack:
        for i in layers:
            hook = encoder.layers[i].attention.qkv.register_forward_hook(
                lambda _m, _in, out, i=i: store.__setitem__(i, out)
            )
            stack.callback(hook.remove)
        yield store


def split_qkv(fused: torch.Tensor, attention) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The self-attention Q, K, V [B, T, a·d] inside a fused projection output (mixed attention
    appends its convolution values after them)."""
    a, k, v = attention.heads, attention.qk_dim, attention.v_dim
    return fused[..., : a * k], fused[..., a * k : 2 * a * k], fused[..., 2 * a * k : 2 * a * k + a * v]


def full_precision(like: torch.Tensor):
    """Autocast off on ``like``'s device: losses are computed in fp32 from the (possibly bf16) outputs of
    a bf16-autocast forward, whose matrix products would otherwise round them to bf16."""
    return torch.autocast(like.device.type, enabled=False)


class IntermediateLoss(nn.Module):
    """Hidden-state and attention terms between a student and a teacher encoder."""

    def __init__(self, student: BertsmithModel, teacher: BertsmithModel, config: LossConfig):
        super().__init__()
        s_spec, t_spec = student.spec, teacher.spec
        ls, lt = s_spec.num_layers, t_spec.num_layers
        layer_map = list(config.layer_map) if config.layer_map is not None else L.default_layer_map(ls, lt)
        if len(layer_map) != ls or not all(1 <= m <= lt for m in layer_map):
            raise ConfigError(
                f"layer_map = {layer_map}: needs one teacher layer in 1..{lt} for each of the {ls} student layers"
            )
        self.layer_map = layer_map
        self.config = config
        self.project = nn.Linear(s_spec.hidden, t_spec.hidden) if s_spec.hidden != t_spec.hidden else None
        self.modes: list[str] = []
        for i, m in enumerate(layer_map):
            same_heads = s_spec.layers[i].attention.heads == t_spec.layers[m - 1].attention.heads
            mode = config.attention_mode
            if mode == "auto":
                mode = "scores" if same_heads else "relation"
            if mode == "scores" and not same_heads:
                raise ConfigError(
                    f"attention_mode = 'scores': student layer {i + 1} has {s_spec.layers[i].attention.heads} heads, "
                    f"teacher layer {m} has {t_spec.layers[m - 1].attention.heads}; use 'relation' or 'auto'"
                )
            self.modes.append(mode)
        # (student layer, teacher layer, mode), 0-based: the pairs the attention term compares
        pairs = [(i, m - 1, mode) for i, (m, mode) in enumerate(zip(layer_map, self.modes))]
        self.attention_pairs = (pairs if config.attention_layers == "all" else pairs[-1:]) if config.attention else []
        widths = []
        for spec, idx in ((s_spec, [p[0] for p in pairs]), (t_spec, [p[1] for p in pairs])):
            for i in idx:
                att = spec.layers[i].attention
                widths += [att.heads * att.qk_dim, att.heads * att.v_dim]
        self.relation_heads = L.relation_heads(widths, config.relation_heads)

    def score_layers(self) -> set[int]:
        """The teacher layers, 0-based, whose pre-softmax scores the attention term compares."""
        return {t for _, t, mode in self.attention_pairs if mode == "scores"}

    @property
    def wants_scores(self) -> bool:
        return bool(self.score_layers())

    def relation_layers(self) -> tuple[list[int], list[int]]:
        """(student layers, teacher layers), 0-based, that use the relation loss."""
        pairs = [(i, t) for i, t, mode in self.attention_pairs if mode == "relation"]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def forward(self, s_out, t_out, s_qkv, t_qkv, s_spec, t_spec, mask) -> dict[str, torch.Tensor]:
        with full_precision(mask):
            return self._terms(s_out, t_out, s_qkv, t_qkv, s_spec, t_spec, mask)

    def _terms(self, s_out, t_out, s_qkv, t_qkv, s_spec, t_spec, mask) -> dict[str, torch.Tensor]:
        parts: dict[str, torch.Tensor] = {}
        if self.config.hidden > 0:
            pairs = [(0, 0), *((i + 1, m) for i, m in enumerate(self.layer_map))]
            parts["hidden"] = sum(
                L.hidden_mse(s_out.hidden_states[i], t_out.hidden_states[m], mask, self.project) for i, m in pairs
            )
        if self.config.attention > 0:
            total = 0.0
            for i, t, mode in self.attention_pairs:
                if mode == "scores":
                    total = total + L.attention_score_mse(s_out.attentions[i], t_out.attentions[t], mask)
                else:
                    s_parts = split_qkv(s_qkv[i], s_spec.layers[i].attention)
                    t_parts = split_qkv(t_qkv[t], t_spec.layers[t].attention)
                    total = total + sum(
                        L.relation_kl(s, t, self.relation_heads, mask) for s, t in zip(s_parts, t_parts)
                    )
            parts["attention"] = total
        return parts


def _encoder(model: nn.Module) -> BertsmithModel:
    return model if isinstance(model, BertsmithModel) else model.encoder


class Draws(nn.Module):
    """The random draws of an objective that picks a sub-network per step (a supernet's sandwich, a
    warm-up's architecture): the ``count``-th draw is seeded by (``seed``, ``count``). The count is a
    buffer, so it is saved and restored with the trainer's checkpoint (a resumed run draws the same
    sub-networks) and is the same in every process of a multi-process run (which must all train the
    same sub-networks), unlike torch's global RNG, whose use by dropout differs between them."""

    def __init__(self, seed: int):
        super().__init__()
        self.seed = seed
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))

    def next(self) -> np.random.Generator:
        rng = np.random.default_rng([self.seed, int(self.count)])
        self.count += 1
        return rng


class Objective(nn.Module):
    """Base: ``student`` is trained and evaluated; ``teacher`` (may be None) is frozen and unsaved."""

    def __init__(self, student: nn.Module, teacher: nn.Module | None, config: LossConfig):
        super().__init__()
        if config.needs_teacher and teacher is None:
            raise ConfigError("the configured losses need a teacher (only 'labels' trains without one)")
        self.student = student
        self._teacher = (teacher.eval().requires_grad_(False),) if teacher is not None else ()
        self.config = config
        self.intermediate = (
            IntermediateLoss(_encoder(student), _encoder(teacher), config)
            if teacher is not None and (config.hidden > 0 or config.attention > 0)
            else None
        )
        self.teacher_cache: TeacherCache | None = None

    @property
    def teacher(self) -> nn.Module | None:
        return self._teacher[0] if self._teacher else None

    def _run(self, batch: dict, input_ids: torch.Tensor | None = None):
        """Student and teacher forwards with what the configured terms need."""
        ids = batch["input_ids"] if input_ids is None else input_ids
        mask, types = batch["attention_mask"], batch.get("token_type_ids")
        inter = self.intermediate
        want_h = inter is not None and self.config.hidden > 0
        want_s = inter is not None and inter.wants_scores
        s_rel, t_rel = inter.relation_layers() if inter is not None else ([], [])
        kwargs = {"output_hidden_states": want_h, "output_attentions": want_s}
        with capture_qkv(_encoder(self.student), s_rel) as s_qkv:
            s_pred, s_out = self._forward(self.student, ids, mask, types, kwargs)
        t_pred = t_out = t_qkv = None
        if self.teacher is not None and input_ids is None and self._cached(batch):
            t_pred, t_out, t_qkv = self._from_cache(batch, want_s, t_rel)
        elif self.teacher is not None:
            with torch.no_grad(), capture_qkv(_encoder(self.teacher), t_rel) as t_qkv:
                t_pred, t_out = self._forward(self.teacher, ids, mask, types, kwargs)
        parts = {}
        if inter is not None:
            parts = inter(s_out, t_out, s_qkv, t_qkv, _encoder(self.student).spec, _encoder(self.teacher).spec, mask)
        return s_pred, t_pred, parts

    # ---- the teacher cache -----------------------------------------------------------------------
    def use_cache(self, cache: TeacherCache | None) -> None:
        """Read the teacher's outputs from ``cache`` in steps whose batch carries ``example_ids``; a
        cache without hidden states serves only objectives without hidden or attention terms."""
        self.teacher_cache = cache if cache is not None and (cache.hidden or self.intermediate is None) else None

    def _cached(self, batch: dict) -> bool:
        """Store the batch's missing teacher outputs in the cache; whether all of them are there now."""
        cache = self.teacher_cache
        if cache is None or "example_ids" not in batch:
            return False
        ids = batch["example_ids"].cpu().numpy()
        missing = ~cache.filled(ids)
        if missing.any():
            rows = torch.from_numpy(np.flatnonzero(missing)).to(batch["input_ids"].device)
            mask = batch["attention_mask"][rows]
            length = int(mask.sum(1).max())
            types = batch.get("token_type_ids")
            with torch.no_grad():
                pred, out = self._forward(
                    self.teacher,
                    batch["input_ids"][rows, :length],
                    mask[:, :length],
                    types[rows, :length] if types is not None else None,
                    {"output_hidden_states": cache.hidden},
                )
            cache.write(ids[missing], pred, out.hidden_states)
        return bool(cache.filled(ids).all())

    @torch.no_grad()
    def _from_cache(self, batch: dict, want_scores: bool, t_rel: list[int]):
        """The teacher's predictions, encoder output and Q/K/V as a forward would give them, the
        attention terms' inputs recomputed from the cached input of their layers."""
        mask, ids = batch["attention_mask"], batch["example_ids"].cpu().numpy()
        logits = self.teacher_cache.predictions(ids).to(mask.device)
        if self.intermediate is None:
            return logits, None, {}
        hidden = tuple(h.to(mask.device) for h in self.teacher_cache.hidden_states(ids, mask.shape[1]))
        layers = _encoder(self.teacher).layers
        inter = self.intermediate
        wanted = inter.score_layers() if want_scores else set()
        fused = {i: layers[i].attention.qkv(hidden[i]) for i in wanted | set(t_rel)}  # once per layer
        scores = None
        if want_scores:
            additive = additive_mask(mask, hidden[0].dtype)
            scores = tuple(
                self._scores(fused[i], layers[i].attention, additive) if i in wanted else None
                for i in range(len(layers))
            )
        return logits, EncoderOutput(hidden[-1], None, hidden, scores), {i: fused[i] for i in t_rel}

    @staticmethod
    def _scores(fused: torch.Tensor, attention, additive: torch.Tensor | None) -> torch.Tensor:
        """A layer's pre-softmax scores from its fused Q/K/V projection output."""
        q, key, _ = split_qkv(fused, attention)
        return attention_scores(split_heads(q, attention.heads), split_heads(key, attention.heads), additive)

    @staticmethod
    def _forward(model, ids, mask, types, kwargs):
        out = model(ids, mask, types, **kwargs)
        return out if isinstance(out, tuple) else (None, out)

    def total(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(getattr(self.config, name) * value for name, value in parts.items())


class TaskObjective(Objective):
    """A sequence task of ``task_type``: labels, teacher logits, hidden and attention terms."""

    def __init__(self, student: nn.Module, teacher: nn.Module | None, config: LossConfig, *, task_type: TaskType):
        super().__init__(student, teacher, config)
        self.task_type = task_type

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        s_logits, t_logits, parts = self._run(batch)
        parts |= prediction_losses(self.config, s_logits, t_logits, batch.get("labels"), task_type=self.task_type)
        return self.total(parts), parts


def prediction_losses(
    config: LossConfig,
    s_logits: torch.Tensor,
    t_logits: torch.Tensor | None,
    labels: torch.Tensor | None,
    *,
    task_type: TaskType,
) -> dict[str, torch.Tensor]:
    """The ``labels`` and ``logits`` terms of a task objective (unweighted), those switched on, as
    ``task_type`` computes them; in fp32 under autocast too."""
    with full_precision(s_logits):
        parts = {}
        if config.labels > 0:
            parts["labels"] = task_type.label_loss(s_logits, labels)
        if config.logits > 0:
            parts["logits"] = task_type.teacher_loss(
                s_logits, t_logits, logit_loss=config.logit_loss, temperature=config.temperature
            )
        return parts


class AgnosticObjective(Objective):
    """Raw text, no labels: hidden and attention terms for any teacher, plus Bort's masked-LM
    distillation when student and teacher both have a masked-LM head (``mlm`` weight > 0)."""

    def __init__(self, student: nn.Module, teacher: nn.Module, config: LossConfig, *, mask_id: int | None = None):
        super().__init__(student, teacher, config)
        if config.logits > 0 or config.labels > 0:
            raise ConfigError("task-agnostic distillation has no labels or task logits: use hidden, attention, mlm")
        if config.mlm > 0:
            if not (isinstance(student, BertsmithForMaskedLM) and isinstance(teacher, BertsmithForMaskedLM)):
                raise ConfigError("the mlm loss needs a teacher and a student with a masked-LM head")
            if mask_id is None:
                raise ConfigError("the mlm loss needs the tokenizer's [MASK] id")
        self.mask_id = mask_id

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ids = batch["input_ids"]
        labels = None
        if self.config.mlm > 0:
            vocab = _encoder(self.student).spec.embeddings.vocab_size
            ids, labels = L.mask_tokens(
                ids,
                batch["special_tokens_mask"],
                mask_id=self.mask_id,
                vocab_size=vocab,
                probability=self.config.mask_probability,
            )
        s_logits, t_logits, parts = self._run(batch, ids)
        if labels is not None:
            with full_precision(s_logits):
                ce, kd = L.mlm_distillation(
                    s_logits,
                    t_logits,
                    labels,
                    temperature=self.config.mlm_temperature,
                    mlm_weight=self.config.mlm_weight,
                    kd_weight=self.config.mlm_kd_weight,
                )
            parts["mlm"] = self.config.mlm_weight * ce + self.config.mlm_kd_weight * kd
        return self.total(parts), parts
