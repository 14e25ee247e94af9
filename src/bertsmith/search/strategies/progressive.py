"""``progressive``: EfficientBERT's coarse-to-fine FFN structure search (the EfficientBERT paper).

The backbone (depth, hidden size, attention) is fixed; every layer's FFN is searched: an expression
of the FFN language (``search.ffn_space``), a stack depth 1-4 and an inner width ratio 1, 1/2, 1/3 or
1/4 of the base width (the backbone's hidden size). Three stages, as in the paper's code:

1. expressions and stack/ratio per layer jointly;
2. expressions only, stack/ratio frozen at stage 1's best;
3. stack/ratio only, expressions frozen at stage 2's best.

Before each stage the stage's supernet (``search.ffn_supernet``) is warmed up by distilling the
teacher into it with the hidden-state and attention losses (§3.5), one architecture of the stage
drawn per step; stage 1 starts from the teacher, each later stage from the previous stage's
supernet. Every candidate inherits its slice of the warmed-up weights, gets the search's short task
distillation (``--eval-steps``) and is scored on a validation split carved out of the train split
(the job carves it; dev is never seen).

Candidates hold between ``window``·budget and the budget's parameters (the paper's 15-16M window).
Each stage evaluates its seeds first (stage 1: the dense FFN, and any ``seeds`` expressions, with
every uniform stack/ratio that fits the window; stages 2 and 3: the previous stage's best), then
mutations of its best candidates (one layer's expression or stack/ratio changed), never two
candidates that compute the same function (``functional_key`` per layer). Once the stage has
``init_samples`` results, a learned fitness model guides generation: a random-forest classifier of
"at least the stage's median fitness" on the candidates' encodings (expression features, stack and
ratio per layer) scores ``proposals`` mutations and the most likely good one is evaluated; a share
``explore`` of the picks stays random.

bertsmith's own choices (the paper's are not all reproducible here, or not published): the classifier is
one scikit-learn random forest instead of the paper's tree of LightGBM classifiers tuned by hyperopt
(LaNAS); the warm-up corpus is the task's own train text (no Wikipedia); stages 1-2 warm up the
supernet on mutations of the stage's start (the paper warms up a GELU-only supernet); every stage
trains its candidates briefly (the paper's stage 3 evaluates slices of a multi-task supernet without
training); the backbone by default keeps the teacher's depth and head size and gives attention
``attention_share`` of the budget.

Files under ``RUN_DIR/progressive/``: ``stageK/`` (the warmed-up supernet), ``result.json`` (each
stage: frozen choices, warm-up, candidates, best; the search's cost), ``best.yaml`` (the final
architecture) and, at the best's parameter count, ``dense.yaml`` (the backbone with a dense FFN) and
``efficientbert.yaml`` (the published EfficientBERT FFNs transplanted).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from pydantic import Field, field_validator
from rich.table import Table

from ...arch import ArchSpec, FFNSpec, Float, Int
from ...cost import encoder_params
from ...distill.objectives import LossConfig
from ...distill.trainer import TrainConfig
from ...errors import ConfigError, SpecError
from ...files import atomic_write_text
from ...modeling.expr import ExprError, format_expr, parse
from ...modeling.elastic import check_sliceable, even_layers
from ...modeling.searched_ffn import SearchedFFN
from .. import ffn_space
from ..ffn_supernet import (
    RATIOS,
    MAX_STACK,
    FFNSupernet,
    LayerFFN,
    Layout,
    layout_json,
    layout_of,
    layout_spec,
    supernet_spec,
    warm_up,
)
from .base import EvaluatorSetup, SearchContext, Strategy, StrategyOptions

if TYPE_CHECKING:
    import optuna

    from ..costs import CostModel
    from ..evaluators import Evaluator

STAGES = (1, 2, 3)
SHAPES = tuple((s, r) for s in range(1, MAX_STACK + 1) for r in RATIOS)  # (stack, ratio divisor) per layer
PARENTS = 4  # mutations start from the stage's best few


@dataclass
class Scored:
    layout: Layout
    metric: float
    params: int


@dataclass
class StageState:
    number: int
    start: list[Layout]
    results: list[Scored] = field(default_factory=list)
    keys: set = field(default_factory=set)

    def best(self) -> Scored | None:
        return max(self.results, key=lambda s: s.metric, default=None)


def layout_key(layout: Layout) -> tuple:
    """Functional identity: per layer the expression's function, stack and ratio."""
    return tuple((ffn_space.functional_key(parse(f.expression)), f.stack, f.ratio) for f in layout)


def encode(layout: Layout) -> list[float]:
    """The learned model's input: per layer the expression's features, stack and inner ratio."""
    out: list[float] = []
    for f in layout:
        out += ffn_space.features(parse(f.expression)) + [float(f.stack), 1.0 / f.ratio]
    return out


def auto_backbone(teacher: ArchSpec, params: float, share: float) -> ArchSpec:
    """The teacher's depth and head size, with the widest hidden size (a multiple of the head size,
    at most the teacher's) whose non-FFN parameters take at most ``share`` of ``params``."""
    head, depth = teacher.layers[0].attention.qk_dim, teacher.num_layers
    best = None
    for heads in range(1, teacher.hidden // head + 1):
        hidden = heads * head
        spec = ArchSpec.uniform(
            layers=depth,
            hidden=hidden,
            heads=heads,
            ffn=hidden,
            embeddings=teacher.embeddings.model_dump(mode="json"),
            **teacher.inherited(),
        )
        if encoder_params(spec) - depth * _dense_params(hidden, hidden) <= share * params:
            best = spec
    if best is None:
        raise ConfigError(
            f"progressive: even one attention head of the teacher's size ({head}) per layer takes more "
            f"than {share:g} of the budget's {params:,.0f} parameters; raise the budget"
        )
    return best


def _ffn(size: int) -> FFNSpec:
    return FFNSpec(kind="searched", size=size, expression=ffn_space.SEED)


def _dense_params(hidden: int, size: int) -> int:
    return 2 * hidden * size + size + hidden + 2 * hidden


class ProgressiveOptions(StrategyOptions):
    backbone: str = Field(
        "auto",
        description="the fixed backbone whose FFNs are searched: auto (the teacher's depth "
        "and head size, attention --attention-share of the budget), a preset or an ArchSpec file",
    )
    window: Float = Field(0.9, description="candidates hold between WINDOW × the params budget and the budget")
    stage_trials: str | None = Field(
        None, description="candidates per stage, e.g. 8,8,8 (default: --trials split in three)"
    )
    warmup_steps: Int = Field(
        300, ge=0, description="warm-up distillation steps of each stage's supernet (hidden-state and attention losses)"
    )
    warmup_lr: Float = Field(1e-4, gt=0, description="learning rate of the warm-ups")
    init_samples: Int = Field(
        4, ge=1, description="candidates per stage before the learned fitness model guides generation"
    )
    proposals: Int = Field(64, ge=1, description="mutations the fitness model ranks per pick")
    explore: Float = Field(0.25, ge=0, le=1, description="share of picks that stay random mutations")
    seeds: str = Field("", description="extra stage-1 seed expressions, ';'-separated, e.g. 'tanh(L(gelu(L(x))))'")
    attention_share: Float = Field(
        0.65, description="share of the params budget the automatic backbone gives to everything but the FFNs"
    )
    validation_fraction: Float = Field(
        0.1, description="share of the train split carved out to score candidates on (dev is never seen)"
    )

    @field_validator("window")
    @classmethod
    def _window(cls, window: float) -> float:
        if not 0 < window < 1:
            raise ValueError("expected a share of the parameter budget in (0, 1)")
        return window

    @field_validator("attention_share", "validation_fraction")
    @classmethod
    def _share(cls, share: float) -> float:
        if not 0 < share < 1:
            raise ValueError("expected a number in (0, 1)")
        return share

    @field_validator("stage_trials")
    @classmethod
    def _stage_trials(cls, text: str | None) -> str | None:
        if text:
            _parse_stage_trials(text)
        return text

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: str) -> str:
        _seed_expressions(seeds)
        return seeds


class Progressive(Strategy):
    """Options: ``backbone`` (``auto``, a preset or an ArchSpec file: its attention, hidden size and
    embeddings are kept), ``window`` (the lowest share of the parameter budget a candidate may hold),
    ``stage_trials`` (candidates per stage, e.g. ``8,8,8``; default the ``--trials`` split in three),
    ``warmup_steps`` and ``warmup_lr`` (each stage's warm-up), ``init_samples``, ``proposals`` and
    ``explore`` (the learned model), ``seeds`` (extra stage-1 seed expressions, ``;``-separated),
    ``attention_share`` (the automatic backbone), ``validation_fraction`` (the split candidates are
    scored on, carved out of train)."""

    name = "progressive"
    Options = ProgressiveOptions
    options: ProgressiveOptions
    spaceless = "it searches the FFNs of the --backbone"
    default_evaluator = "short"

    def __init__(self, **options: Any):
        super().__init__(**options)
        o = self.options
        self.backbone_option, self.window, self.warmup_steps, self.warmup_lr = (
            o.backbone,
            o.window,
            o.warmup_steps,
            o.warmup_lr,
        )
        self.init_samples, self.proposals, self.explore, self.share = (
            o.init_samples,
            o.proposals,
            o.explore,
            o.attention_share,
        )
        self.stage_trials = _parse_stage_trials(o.stage_trials) if o.stage_trials else None
        self.seeds = [ffn_space.SEED, *_seed_expressions(o.seeds)]

    def evaluator_setup(self, evaluator: str) -> EvaluatorSetup:
        if evaluator != "short":
            raise ConfigError(
                f"--evaluator {evaluator}: the progressive strategy scores every candidate by a short "
                "distillation from its warmed-up supernet (--evaluator short)"
            )
        return EvaluatorSetup(
            init="warm",
            split="validation",
            validation_fraction=self.options.validation_fraction,
            losses=LossConfig(logits=1.0, hidden=1.0, attention=1.0),
        )  # EfficientBERT's task KD

    # ---- before the study: the backbone, the window, and whether anything fits ---------------------
    def check(self, evaluator: "Evaluator", cost_model: "CostModel", run_dir: Path) -> None:
        if getattr(evaluator, "init", None) != "warm":
            raise ConfigError(
                "progressive: candidates start from the warmed-up supernet; use the job's "
                "evaluator (bertsmith search --strategy progressive)"
            )
        if cost_model.budget.params is None:
            raise ConfigError("progressive: the search needs a parameter budget for its window (--budget params=N)")
        self._backbone(evaluator.teacher.encoder.spec, cost_model.budget.params)

    def _backbone(self, teacher: ArchSpec, budget: float) -> ArchSpec:
        from ... import presets

        if self.backbone_option == "auto":
            return auto_backbone(teacher, budget, self.share)
        try:
            return presets.resolve(self.backbone_option)
        except SpecError as exc:
            raise ConfigError(f"--backbone: {exc}") from None

    def plan(self, evaluator: "Evaluator", cost_model: "CostModel", run_dir: Path, trials: int) -> None:
        """The backbone, the window, each FFN shape's parameters, and one layout in the window."""
        budget = cost_model.budget.params
        teacher = evaluator.teacher.encoder.spec
        self.backbone = self._backbone(teacher, budget)
        self.lo, self.hi = self.window * budget, float(budget)
        self.costs = {
            shape: SearchedFFN.count_params(
                _ffn(self.backbone.hidden // shape[1]).model_copy(update={"stack": shape[0]}), self.backbone.hidden
            )
            for shape in SHAPES
        }
        smallest = layout_spec(self.backbone, [LayerFFN(ffn_space.SEED, 1, max(RATIOS))] * self.backbone.num_layers)
        self.fixed = encoder_params(smallest) - self.backbone.num_layers * self.costs[(1, max(RATIOS))]
        try:
            largest = supernet_spec(self.backbone)
            check_sliceable(teacher, largest, even_layers(largest.num_layers, teacher.num_layers))
        except SpecError as exc:
            raise ConfigError(
                f"progressive: the backbone ({self.backbone.summary()}) cannot be cut from the teacher "
                f"({teacher.summary()}): {exc}"
            ) from None
        low, high = self._reachable()
        if high is None:
            raise ConfigError(
                f"progressive: no FFN layout of the backbone ({self.backbone.summary()}) falls in the window "
                f"[{self.lo:,.0f}, {self.hi:,.0f}] parameters (--window {self.window:g} of the budget): its layouts "
                f"hold {low[0]:,.0f} to {low[1]:,.0f}; change --budget, --window or --backbone"
            )
        self.quotas = self.stage_trials or _split(trials)

    def _reachable(self) -> tuple[tuple[float, float], float | None]:
        """The backbone's parameter range, and one total inside the window (None if there is none):
        the set of reachable FFN totals, layer by layer."""
        totals = {0}
        for _ in range(self.backbone.num_layers):
            totals = {t + c for t in totals for c in set(self.costs.values())}
        sums = sorted(self.fixed + t for t in totals)
        inside = next((s for s in sums if self.lo <= s <= self.hi), None)
        return (sums[0], sums[-1]), inside

    def params(self, layout: Layout) -> int:
        return self.fixed + sum(self.costs[(f.stack, f.ratio)] for f in layout)

    def in_window(self, layout: Layout) -> bool:
        return self.lo <= self.params(layout) <= self.hi

    def trials(self, requested: int) -> int:
        return sum(self.quotas)

    def start_digest(self, evaluator: "Evaluator") -> str:
        from ...files import digest

        return digest(
            {
                "progressive": self.backbone.to_dict(),
                "window": self.window,
                "seeds": self.seeds,
                "warmup": [self.warmup_steps, self.warmup_lr],
                "teacher": evaluator.teacher_key,
            }
        )

    # ---- the three stages --------------------------------------------------------------------------
    def run(self, search: SearchContext) -> None:
        state_dir = search.run_dir / "progressive"
        state_dir.mkdir(parents=True, exist_ok=True)
        evaluator = search.evaluator
        self.rng = np.random.default_rng(search.seed)
        supernet = FFNSupernet(self.backbone, evaluator.data.task.num_labels, evaluator.data.task.type)
        done = self._recorded(search)
        report: list[dict] = []
        start: list[Layout] = self._stage1_seeds()
        previous_key = "teacher"
        evaluator.warm_start = lambda spec: supernet.extract(layout_of(spec))
        for number, quota in zip(STAGES, self.quotas):
            stage = StageState(number, start)
            for scored in done.get(number, []):
                stage.results.append(scored)
                stage.keys.add(layout_key(scored.layout))
            begun = time.perf_counter()
            key, warm = self._warm_stage(
                supernet, stage, previous_key, state_dir / f"stage{number}", search, needed=len(stage.results) < quota
            )
            while len(stage.results) < quota and search.cut_short() is None:
                proposal = self._propose(stage)
                if proposal is None:
                    break
                layout, how = proposal
                stage.keys.add(layout_key(layout))
                spec = layout_spec(self.backbone, layout)
                attrs = {"stage": number, "layout": layout_json(layout), "proposed_by": how}
                if search.known(spec) is None:
                    frozen = search.evaluate(spec, **attrs)
                else:  # the previous stage's best, scored again from this stage's supernet
                    evaluation = evaluator.evaluate(spec, search.run_dir / "trials" / f"stage{number}-start")
                    frozen = search.record(spec, evaluation, **attrs)
                if frozen.values is not None and math.isfinite(frozen.values[0]):
                    stage.results.append(Scored(layout, frozen.values[0], self.params(layout)))
            best = stage.best()
            report.append(
                {
                    "stage": number,
                    "start": [layout_json(s) for s in start[:1]],
                    "warmup": warm,
                    "evaluated": len(stage.results),
                    "seconds": time.perf_counter() - begun,
                    "best": None
                    if best is None
                    else {"layout": layout_json(best.layout), "metric": best.metric, "params": best.params},
                }
            )
            if best is None or search.cut_short() is not None:
                break
            start, previous_key = [best.layout], key
        self._write(state_dir, report, search)

    def _stage1_seeds(self) -> list[Layout]:
        """Every seed expression with every uniform stack/ratio in the window (or, when none is
        uniform, one random layout in it), the largest first."""
        depth = self.backbone.num_layers
        seeds = [tuple(LayerFFN(e, s, r) for _ in range(depth)) for (s, r) in SHAPES for e in self.seeds]
        seeds = sorted((x for x in seeds if self.in_window(x)), key=lambda x: -self.params(x))
        if not seeds:
            seeds = [self._shapes_in_window(tuple(LayerFFN(e, 1, 1) for e in [self.seeds[0]] * depth), self.rng)]
        return seeds

    def _shapes_in_window(self, layout: Layout, rng: np.random.Generator, tries: int = 2000) -> Layout:
        """``layout`` with random stack/ratio per layer, drawn until the total is in the window."""
        for _ in range(tries):
            shapes = [SHAPES[i] for i in rng.integers(len(SHAPES), size=len(layout))]
            out = tuple(LayerFFN(f.expression, s, r) for f, (s, r) in zip(layout, shapes))
            if self.in_window(out):
                return out
        return self._repair(layout)

    def _repair(self, layout: Layout) -> Layout:
        """A layout in the window by greedy single-layer changes (rejection sampling failed)."""
        current = list(layout)
        target = (self.lo + self.hi) / 2
        for _ in range(len(layout) * len(SHAPES)):
            if self.in_window(tuple(current)):
                break
            i, shape = min(
                ((i, sh) for i in range(len(current)) for sh in SHAPES),
                key=lambda c: abs(
                    self.params(
                        tuple(current[: c[0]] + [LayerFFN(current[c[0]].expression, *c[1])] + current[c[0] + 1 :])
                    )
                    - target
                ),
            )
            current[i] = LayerFFN(current[i].expression, *shape)
        return tuple(current)

    def _mutate(self, layout: Layout, stage: int, rng: np.random.Generator) -> Layout | None:
        """One layer changed as the stage allows: its expression (stages 1-2) or its stack/ratio
        (stages 1 and 3), kept in the window."""
        for _ in range(50):
            i = int(rng.integers(len(layout)))
            f = layout[i]
            change_expression = stage == 2 or (stage == 1 and rng.random() < 0.5)
            if change_expression:
                try:
                    new = LayerFFN(format_expr(ffn_space.mutate(parse(f.expression), rng)), f.stack, f.ratio)
                except ExprError:
                    continue
            else:
                s, r = SHAPES[int(rng.integers(len(SHAPES)))]
                new = LayerFFN(f.expression, s, r)
            out = layout[:i] + (new,) + layout[i + 1 :]
            if out != layout and self.in_window(out):
                return out
        return None

    def _children(self, stage: StageState, count: int) -> list[Layout]:
        parents = [s.layout for s in sorted(stage.results, key=lambda s: -s.metric)[:PARENTS]] or stage.start
        out, keys = [], set()
        for _ in range(count * 4):
            child = self._mutate(parents[int(self.rng.integers(len(parents)))], stage.number, self.rng)
            if child is None:
                continue
            key = layout_key(child)
            if key in stage.keys or key in keys:
                continue
            keys.add(key)
            out.append(child)
            if len(out) >= count:
                break
        return out

    def _propose(self, stage: StageState) -> tuple[Layout, str] | None:
        """The next candidate and how it was picked: an unevaluated seed, else a mutation, random or
        the one the learned model rates likeliest to be good."""
        for seed in stage.start:
            if layout_key(seed) not in stage.keys:
                return seed, "seed"
        if len(stage.results) < self.init_samples or self.rng.random() < self.explore:
            children = self._children(stage, 1)
            return (children[0], "random mutation") if children else None
        children = self._children(stage, self.proposals)
        if not children:
            return None
        scores = fitness_model(stage.results, children, seed=int(self.rng.integers(2**31)))
        best = int(np.argmax(scores))
        return children[best], f"fitness model (p = {scores[best]:.2f} of {len(children)})"

    # ---- warm-up of the stage's supernet -------------------------------------------------------------
    def _warm_stage(
        self,
        supernet: FFNSupernet,
        stage: StageState,
        previous_key: str,
        directory: Path,
        search: SearchContext,
        *,
        needed: bool,
    ) -> tuple[str, dict]:
        """Load the stage's warmed-up supernet, or warm it up from the previous stage's (stage 1: from
        the teacher). Returns its key and what the warm-up did."""
        from ...distill.task import reorder_by_importance
        from ...files import digest

        evaluator = search.evaluator
        key = digest(
            {
                "previous": previous_key,
                "stage": stage.number,
                "start": layout_json(stage.start[0]),
                "steps": self.warmup_steps,
                "lr": self.warmup_lr,
                "backbone": self.backbone.to_dict(),
                "data": evaluator.data.hashes,
            }
        )
        info = supernet.load(directory)
        if info is not None and info.get("key") == key:
            return key, info["warmup"]
        if not needed:
            return key, {"skipped": "the stage's candidates were already evaluated"}
        if stage.number == 1:
            reorder_by_importance(evaluator.teacher, evaluator.data, seed=0)
            supernet.start_from(evaluator.teacher)
        elif supernet.load(directory.parent / f"stage{stage.number - 1}") is None:
            raise ConfigError(
                f"{directory.parent}: stage {stage.number - 1}'s supernet is missing; rerun the search "
                "from the start in a new run directory"
            )
        begun = time.perf_counter()
        steps = 0
        if self.warmup_steps:
            config = TrainConfig(
                steps=self.warmup_steps,
                lr=self.warmup_lr,
                warmup=0.1,
                batch_size=evaluator.config.batch_size,
                seed=evaluator.config.seed,
            )
            steps = warm_up(
                supernet,
                evaluator.teacher,
                evaluator.data,
                sample=lambda rng: self._draw(stage, rng),
                config=config,
                run_dir=directory / "training",
                fingerprint={"warmup": key},
                progress=False,
                description=f"warm-up {stage.number}",
            )
        warm = {"steps": steps, "seconds": time.perf_counter() - begun, "from": previous_key}
        supernet.save(directory, {"key": key, "warmup": warm, "backbone": self.backbone.to_dict()})
        shutil.rmtree(directory / "training", ignore_errors=True)
        return key, warm

    def _draw(self, stage: StageState, rng: np.random.Generator) -> Layout:
        """One warm-up architecture of the stage: each layer's expression kept or mutated (stages 1-2),
        stack/ratio drawn in the window (stages 1 and 3)."""
        layout = stage.start[int(rng.integers(len(stage.start)))]
        if stage.number in (1, 2):
            layers = []
            for f in layout:
                expression = f.expression
                if rng.random() < 0.5:
                    try:
                        expression = format_expr(ffn_space.mutate(parse(expression), rng))
                    except ExprError:
                        pass
                layers.append(LayerFFN(expression, f.stack, f.ratio))
            layout = tuple(layers)
        if stage.number in (1, 3):
            layout = self._shapes_in_window(layout, rng, tries=200)
        return layout

    # ---- resuming and results ----------------------------------------------------------------------
    def _recorded(self, search: SearchContext) -> dict[int, list[Scored]]:
        """The candidates a resumed search already evaluated, by stage."""
        out: dict[int, list[Scored]] = {}
        for t in search.study.get_trials(deepcopy=False):
            stage = t.user_attrs.get("stage")
            if stage is None or t.values is None or not math.isfinite(t.values[0]):
                continue
            layout = tuple(LayerFFN(**f) for f in t.user_attrs["layout"])
            out.setdefault(stage, []).append(Scored(layout, t.values[0], self.params(layout)))
        return out

    def _write(self, state_dir: Path, report: list[dict], search: SearchContext) -> None:
        from ... import presets

        final = next((r["best"] for r in reversed(report) if r["best"] is not None), None)
        counts = dict(search.counts)
        result = {
            "backbone": self.backbone.to_dict(),
            "window": [self.lo, self.hi],
            "stages": report,
            "evaluated": search.evaluated,
            "evaluation_seconds": search.seconds,
            "warmup_seconds": sum(r["warmup"].get("seconds", 0.0) for r in report),
            "wall_seconds": sum(r["seconds"] for r in report),
            "counts": counts,
            "best": final,
        }
        if final is not None:
            layout = tuple(LayerFFN(**f) for f in final["layout"])
            best = layout_spec(self.backbone, layout)
            atomic_write_text(state_dir / "best.yaml", best.to_yaml())
            params = encoder_params(best)
            dense = dense_at(self.backbone, params)
            efficient = presets.transplant_efficientbert(self.backbone, params)
            atomic_write_text(state_dir / "dense.yaml", dense.to_yaml())
            atomic_write_text(state_dir / "efficientbert.yaml", efficient.to_yaml())
            result["baselines"] = {
                "dense": {"params": encoder_params(dense), "summary": dense.summary()},
                "efficientbert": {"params": encoder_params(efficient), "summary": efficient.summary()},
            }
            result["best"]["summary"] = best.summary()
        atomic_write_text(state_dir / "result.json", json.dumps(result, indent=1))

    def summary(self, study: "optuna.Study", run_dir: Path, metric: str, objectives: Sequence[str]) -> list:
        """Each stage's warm-up, candidates and best; the best FFNs; the files for the final comparison."""
        path = run_dir / "progressive" / "result.json"
        if not path.exists():
            return []
        info = json.loads(path.read_text(encoding="utf-8"))
        table = Table(
            "stage",
            "warm-up steps",
            "candidates",
            f"best {metric} (validation)",
            "params",
            title="Progressive FFN search",
        )
        for st in info["stages"]:
            best = st["best"]
            table.add_row(
                str(st["stage"]),
                str(st["warmup"].get("steps", "-")),
                str(st["evaluated"]),
                f"{best['metric']:.4f}" if best else "-",
                f"{best['params']:,}" if best else "-",
            )
        out: list = [table]
        if info.get("best"):
            out += [
                f"  layer {i + 1}: {f['stack']} x inner 1/{f['ratio']}  {f['expression']}"
                for i, f in enumerate(info["best"]["layout"])
            ]
            d = run_dir / "progressive"
            out.append(
                f"best: {d / 'best.yaml'}; at its size, {d / 'dense.yaml'} (dense FFN) and "
                f"{d / 'efficientbert.yaml'} (the published FFNs) to compare with `bertsmith distill --arch`"
            )
        return out


def fitness_model(results: Sequence[Scored], children: Sequence[Layout], *, seed: int) -> np.ndarray:
    """P(fitness ≥ the stage's median) of each child by a random forest fit on the stage's results
    (uniform when the results are all on one side of the median)."""
    from sklearn.ensemble import RandomForestClassifier

    metrics = np.array([r.metric for r in results])
    labels = metrics >= np.median(metrics)
    if labels.all() or not labels.any():
        return np.full(len(children), 0.5)
    model = RandomForestClassifier(n_estimators=100, min_samples_leaf=1, random_state=seed)
    model.fit(np.array([encode(r.layout) for r in results]), labels)
    return model.predict_proba(np.array([encode(c) for c in children]))[:, list(model.classes_).index(True)]


def dense_at(backbone: ArchSpec, params: int) -> ArchSpec:
    """The backbone with one dense FFN size in every layer, the size whose non-embedding parameters
    are closest to ``params`` (the baseline a searched FFN is compared with)."""
    depth, hidden = backbone.num_layers, backbone.hidden

    def build(size: int) -> ArchSpec:
        layers = [
            {"attention": la.attention.model_dump(mode="json"), "ffn": {"kind": "dense", "size": size}}
            for la in backbone.layers
        ]
        return ArchSpec.from_dict({**backbone.to_dict(), "layers": layers})

    fixed = encoder_params(build(1)) - depth * _dense_params(hidden, 1)
    guess = max(1, round((params - fixed - depth * 3 * hidden) / (depth * (2 * hidden + 1))))
    return min((build(max(1, guess + d)) for d in (-1, 0, 1)), key=lambda s: abs(encoder_params(s) - params))


def _split(trials: int) -> tuple[int, int, int]:
    """``trials`` candidates split over the three stages (the first takes what does not divide)."""
    base = max(1, trials // len(STAGES))
    return (trials - base * (len(STAGES) - 1), base, base)


def _parse_stage_trials(text: str) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise ValueError("expected three positive counts such as 8,8,8")
    return values


def _seed_expressions(text: str) -> list[str]:
    """The ``;``-separated seed expressions of ``text``, checked and in canonical form."""
    out = []
    for part in (t.strip() for t in text.split(";")):
        if part:
            try:
                out.append(format_expr(ffn_space.check_text(part)))
            except ExprError as exc:
                raise ValueError(str(exc)) from None
    return out
