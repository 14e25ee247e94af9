"""``extract``: Bort's optimal sub-architecture extraction over the ⟨D, A, H, I⟩ grid (the Bort paper).

Three objectives per candidate: the parameter count p (exact, non-embedding), the inference cost i
(FLOPs from the cost model, or latency, measured or predicted) and the surrogate error e (one minus
the task metric after the search's short distillation, from scratch, the sliced teacher or the
supernet slice: ``--init``).

Bort's FPTAS steps and its W-coefficient are not public. This approximation scheme is
bertsmith's own, in the same spirit (partition the candidates by cost, train few per partition):

1. every grid candidate within the budget is costed, p and i, without training;
2. sorted by p, the candidates fall into boxes of ratio 1 + ε: box ⌊log_{1+ε}(p/p_min)⌋, so the
   parameter counts within a box differ by less than a factor 1 + ε;
3. coarse stage: in each box, the candidates that no other candidate of the box contains (at least as
   large in every one of D, A, H, I) are the ones that can be its most accurate, if the error does not
   grow when a dimension grows (the ordering that Bort's AB^nC property is about). The cheapest of
   them in i is surrogate-trained, and so is the maximum point T, the largest candidate in the budget;
4. fine stage: in every box whose trained candidate is on the Pareto set of the coarse results over
   (e, p, i) and scores at most ``refine`` (κ, default 0.05) below T, the box's other uncontained
   candidates are trained as well (boxes far below T cannot hold the selection; κ = 1 refines every
   box on the front);
5. one architecture is selected from the Pareto set of everything trained by a rule relative to T
   (``select``):

   - ``within:δ`` (default δ = 0.01): the lowest i (then p) whose metric is at most δ below T's;
   - ``product``: the lowest (p/p_T)·(i/i_T)·(e/e_T).

There is no approximation guarantee: the error of a candidate that is not trained is never bounded.
How often the scheme's selection is on the Pareto set of the exhaustive run is measured (BENCHMARKS.md).
``exhaustive`` trains every candidate instead (the reference the scheme is measured against).
``RUN_DIR/extract/plan.json`` lists every candidate with its costs, box and whether it is trained;
``RUN_DIR/extract/selection.json`` the counts, the Pareto set and the selected architecture, which is
also written as ``RUN_DIR/extract/selected.yaml`` for ``bertsmith pretrain`` and ``distill --arch``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from pydantic import Field, field_validator
from rich.table import Table

from ...arch import ArchSpec, Float
from ...errors import ConfigError
from ...files import atomic_write_text
from ..grid import GRIDS, resolve_grid
from .base import SearchContext, Strategy, StrategyOptions

if TYPE_CHECKING:
    import optuna

    from ..costs import CostModel
    from ..evaluators import Evaluator
    from ..space import SearchSpace

INFERENCE = ("flops", "latency")
RULES = "within, within:δ (δ ≥ 0, e.g. within:0.01) or product"


@dataclass
class Candidate:
    """One grid architecture: its ⟨D, A, H, I⟩, costs, box, and the stage that trains it (1 coarse,
    2 fine, 0 not trained)."""

    dahi: tuple[int, int, int, int]
    p: float
    i: float
    box: int = 0
    maximal: bool = True
    stage: int = 0
    reason: str = ""


def boxes(candidates: Sequence[Candidate], epsilon: float) -> dict[int, list[Candidate]]:
    """Steps 2 and 3: box every candidate and mark those no other of its box contains."""
    p0, step = min(c.p for c in candidates), math.log1p(epsilon)
    out: dict[int, list[Candidate]] = {}
    for c in sorted(candidates, key=lambda c: (c.p, c.i, c.dahi)):
        c.box = int(math.log(c.p / p0) / step + 1e-9)  # the tolerance keeps exact powers of 1 + ε in their box
        out.setdefault(c.box, []).append(c)
    for members in out.values():
        for c in members:
            container = next((o for o in members if _contains(o.dahi, c.dahi)), None)
            c.maximal = container is None
            c.reason = "uncontained in its box" if container is None else f"contained in {_name(container.dahi)}"
    return out


def coarse(candidates: Sequence[Candidate], epsilon: float, *, exhaustive: bool = False) -> list[Candidate]:
    """The coarse stage's candidates (stage 1 marked): per box the uncontained one cheapest in i, and
    the maximum point; every candidate when ``exhaustive``."""
    if exhaustive:
        for c in candidates:
            c.stage, c.reason = 1, "exhaustive"
        return sorted(candidates, key=lambda c: (c.p, c.i, c.dahi))
    for members in boxes(candidates, epsilon).values():
        representative = min((c for c in members if c.maximal), key=lambda c: (c.i, c.p, c.dahi))
        representative.stage = 1
    top = maximum_point(candidates)
    if not top.stage:
        top.stage, top.reason = 1, "maximum point"
    return sorted((c for c in candidates if c.stage == 1), key=lambda c: (c.p, c.i, c.dahi))


def fine(candidates: Sequence[Candidate], front_boxes: set[int]) -> list[Candidate]:
    """The fine stage's candidates (stage 2 marked): the untrained uncontained ones of ``front_boxes``."""
    chosen = [c for c in candidates if c.box in front_boxes and c.maximal and not c.stage]
    for c in chosen:
        c.stage = 2
    return sorted(chosen, key=lambda c: (c.p, c.i, c.dahi))


def maximum_point(candidates: Sequence[Candidate]) -> Candidate:
    """T: the candidate with the most parameters (then the highest inference cost, the largest tuple)."""
    return max(candidates, key=lambda c: (c.p, c.i, c.dahi))


def _contains(big: tuple[int, ...], small: tuple[int, ...]) -> bool:
    return big != small and all(b >= s for b, s in zip(big, small))


def _name(dahi: Sequence[int]) -> str:
    return "⟨" + ", ".join(map(str, dahi)) + "⟩"


@dataclass(frozen=True)
class Scored:
    """A trained candidate: metric (maximised), p and i (minimised)."""

    dahi: tuple[int, int, int, int]
    metric: float
    p: float
    i: float
    trial: int


def pareto_set(points: Sequence[Scored]) -> list[Scored]:
    """The points that no other point beats in metric, p and i at once (cheapest first)."""

    def beats(a: Scored, b: Scored) -> bool:
        return a.metric >= b.metric and a.p <= b.p and a.i <= b.i and (a.metric, a.p, a.i) != (b.metric, b.p, b.i)

    return sorted((b for b in points if not any(beats(a, b) for a in points)), key=lambda s: (s.p, s.i))


def parse_select(rule: str) -> tuple[str, float]:
    """``within`` / ``within:δ`` (δ ≥ 0) or ``product``."""
    name, _, value = rule.partition(":")
    if name == "product" and not value:
        return name, 0.0
    if name == "within":
        try:
            delta = float(value) if value else 0.01
        except ValueError:
            delta = -1.0
        if delta >= 0 and math.isfinite(delta):
            return name, delta
    raise ConfigError(f"extract: select = {rule!r}: expected {RULES}")


def select(front: Sequence[Scored], top: Scored, rule: str) -> Scored:
    """The architecture the rule picks from the Pareto set ``front``, relative to the maximum point."""
    name, delta = parse_select(rule)
    if name == "within":
        # never empty: T is on the front, or a front point that beats it is at least as accurate
        close = [s for s in front if s.metric >= top.metric - delta]
        return min(close, key=lambda s: (s.i, s.p, -s.metric))
    error_t = max(1.0 - top.metric, 1e-9)
    return min(front, key=lambda s: (s.p / top.p) * (s.i / top.i) * (max(1.0 - s.metric, 0.0) / error_t))


class ExtractOptions(StrategyOptions):
    grid: str = Field(
        "teacher",
        description="the ⟨D, A, H, I⟩ grid: teacher (Bort's grid scaled to the teacher, its "
        "head size), bort (the Bort paper's, head size H/A) or a grid YAML file",
    )
    epsilon: Float = Field(
        0.1, description="candidates are boxed by cost ratio 1+ε, ε in (0, 1); a smaller ε trains more of them"
    )
    select: str = Field(
        "within:0.01",
        description="pick from the Pareto set: within:δ (the lowest inference cost "
        "within δ of the largest candidate's metric) or product",
    )
    inference_cost: str = Field("flops", description="the inference cost objective i: flops or latency (see --latency)")
    exhaustive: bool = Field(False, description="surrogate-train every grid candidate")
    refine_margin: Float = Field(
        0.05,
        description="the fine stage refines the boxes on the coarse Pareto set "
        "scoring at most this far below the largest candidate (1: every box on the front)",
    )

    @field_validator("grid")
    @classmethod
    def _grid(cls, grid: str) -> str:
        if grid not in GRIDS and Path(grid).suffix not in (".yaml", ".yml", ".json"):
            raise ValueError(f"expected {', '.join(GRIDS)} or a grid YAML file")
        return grid

    @field_validator("epsilon")
    @classmethod
    def _epsilon(cls, epsilon: float) -> float:
        if not 0 < epsilon < 1:
            raise ValueError("expected a number in (0, 1)")
        return epsilon

    @field_validator("select")
    @classmethod
    def _select(cls, rule: str) -> str:
        try:
            parse_select(rule)
        except ConfigError:
            raise ValueError(f"expected {RULES}") from None
        return rule

    @field_validator("inference_cost")
    @classmethod
    def _inference(cls, inference: str) -> str:
        if inference not in INFERENCE:
            raise ValueError(f"expected {' or '.join(INFERENCE)}")
        return inference

    @field_validator("refine_margin")
    @classmethod
    def _refine(cls, refine: float) -> float:
        if refine < 0:
            raise ValueError("expected a margin ≥ 0 (1 refines every box on the front)")
        return refine


class Extract(Strategy):
    """``grid``: ``teacher`` (scaled to the teacher), ``bort`` (the paper's) or a grid YAML file.
    ``epsilon``: box ratio 1 + ε, in (0, 1). ``select``: the rule that picks the architecture.
    ``inference_cost``: the cost i, ``flops`` or ``latency``. ``exhaustive``: train every candidate.
    ``refine_margin``: κ, how far below T a coarse result may score and still have its box refined."""

    name = "extract"
    Options = ExtractOptions
    options: ExtractOptions
    spaceless = "it searches the --grid"
    default_evaluator = "short"

    def __init__(self, **options: Any):
        super().__init__(**options)
        o = self.options
        self.grid_name, self.epsilon, self.rule, self.inference, self.exhaustive = (
            o.grid,
            o.epsilon,
            o.select,
            o.inference_cost,
            o.exhaustive,
        )
        self.refine = o.refine_margin

    def objectives(self) -> tuple[str, ...]:
        return ("params", self.inference)

    def shapes(self, teacher: ArchSpec, init: str) -> "SearchSpace | None":
        """The grid as a space (None for a grid with BERT's head size H/A, which no space of one head size
        holds, unless the candidates start from the supernet)."""
        grid = resolve_grid(self.grid_name, teacher)
        if init == "supernet" or grid.head_dim != "ratio":
            return grid.space(teacher)
        return None

    # ---- before the study opens --------------------------------------------------------------
    def check(self, evaluator: "Evaluator", cost_model: "CostModel", run_dir: Path) -> None:
        from ..evaluators import DistillEvaluator

        if not isinstance(evaluator, DistillEvaluator):
            raise ConfigError(
                "strategy 'extract' scores candidates by a distillation (the surrogate error): use "
                "--evaluator short (--eval-steps each) or full"
            )
        teacher = evaluator.teacher.encoder.spec
        grid = resolve_grid(self.grid_name, teacher)
        if evaluator.init != "scratch":
            for spec in grid.candidates(teacher):
                problem = _outside(spec, teacher)
                if problem:
                    raise ConfigError(
                        f"extract: the grid's {spec.summary()} cannot be cut from the teacher "
                        f"({teacher.summary()}): {problem}; use --init scratch or a grid within the "
                        "teacher"
                    )

    def plan(self, evaluator: "Evaluator", cost_model: "CostModel", run_dir: Path, trials: int) -> None:
        """Steps 1-3: every candidate costed and boxed, and the coarse stage chosen."""
        teacher = evaluator.teacher.encoder.spec
        self.grid = resolve_grid(self.grid_name, teacher)
        specs = self.grid.candidates(teacher)
        names = ("latency",) if self.inference == "latency" else ()
        fits, over = [], 0
        for t, spec in zip(self.grid.tuples(), specs):
            costs = cost_model.costs(spec, names)
            if cost_model.violations(spec, costs):
                over += 1
            else:
                fits.append(Candidate(t, costs["params"], costs[self.inference]))
        if not fits:
            least = min(specs, key=lambda s: cost_model.costs(s)["params"])
            raise ConfigError(
                f"extract: no grid architecture fits the budget: the smallest ({least.summary()}) has "
                f"{', '.join(cost_model.violations(least, cost_model.costs(least, names)))}"
            )
        self.candidates = fits
        self.by_dahi = {c.dahi: c for c in fits}
        self.stage1 = coarse(fits, self.epsilon, exhaustive=self.exhaustive)
        self.specs = {t: s for t, s in zip(self.grid.tuples(), specs)}
        self.counts = {
            "grid": self.grid.size,
            "buildable": len(specs),
            "within_budget": len(fits),
            "over_budget": over,
            "boxes": len({c.box for c in fits}) if not self.exhaustive else None,
            "coarse": len(self.stage1),
        }

    def trials(self, requested: int) -> int:
        return len(self.stage1)  # the fine stage adds its own once the coarse stage is scored

    def start_digest(self, evaluator: "Evaluator") -> str:
        """The resolved grid and the plan's settings."""
        from ...files import digest

        return digest(
            {
                "extract": self.grid.model_dump(mode="json"),
                "epsilon": self.epsilon,  # κ may change: reruns reuse
                "exhaustive": self.exhaustive,
                "inference": self.inference,
                "teacher": evaluator.teacher_key,
            }
        )

    # ---- surrogate training and selection ------------------------------------------------------
    def run(self, search: SearchContext) -> None:
        state = search.run_dir / "extract"
        state.mkdir(parents=True, exist_ok=True)
        self._train(search, self.stage1)
        coarse_scores = self._scored(search, stage=1)
        top = next((s for s in coarse_scores if s.dahi == maximum_point(self.candidates).dahi), None)
        if not self.exhaustive and search.cut_short() is None and top is not None:
            refined = {
                self.by_dahi[s.dahi].box for s in pareto_set(coarse_scores) if s.metric >= top.metric - self.refine
            }
            stage2 = fine(self.candidates, refined)
            search.trials = len(self.stage1) + len(stage2)
            self.counts["refined_boxes"] = len(refined)
            self._train(search, stage2)
        self.counts["fine"] = sum(c.stage == 2 for c in self.candidates)
        atomic_write_text(
            state / "plan.json",
            json.dumps(
                {
                    "grid": self.grid.model_dump(mode="json"),
                    "epsilon": self.epsilon,
                    "exhaustive": self.exhaustive,
                    "inference": self.inference,
                    "counts": self.counts,
                    "candidates": [
                        asdict(c) | {"summary": self.specs[c.dahi].summary()}
                        for c in sorted(self.candidates, key=lambda c: (c.p, c.i, c.dahi))
                    ],
                },
                indent=1,
            ),
        )
        self.write_selection(search, state)

    def _train(self, search: SearchContext, candidates: Sequence[Candidate]) -> None:
        top = maximum_point(self.candidates)
        for c in candidates:
            if search.known(self.specs[c.dahi]) is not None:
                continue
            if search.cut_short() is not None:  # the time budget (the study may hold other runs' trials)
                break
            search.evaluate(
                self.specs[c.dahi],
                extract=list(c.dahi),
                box=c.box,
                stage=c.stage,
                inference_cost=c.i,
                maximum_point=c is top,
            )

    def _scored(self, search: SearchContext, stage: int | None = None) -> list[Scored]:
        """The candidates (of ``stage``, or every trained one) with a feasible, finite score."""
        out = []
        for c in self.candidates:
            if not c.stage or (stage is not None and c.stage != stage):
                continue
            trial = search.known(self.specs[c.dahi])
            if trial is not None and trial.user_attrs.get("feasible") and math.isfinite(trial.values[0]):
                out.append(Scored(c.dahi, trial.values[0], c.p, c.i, trial.number))
        return out

    def write_selection(self, search: SearchContext, state: Path) -> dict | None:
        """Select from the trained candidates; writes ``selection.json`` and ``selected.yaml``."""
        scored = self._scored(search)
        top = next((s for s in scored if s.dahi == maximum_point(self.candidates).dahi), None)
        if top is None:  # the maximum point failed or was not reached (time budget)
            return None
        front = pareto_set(scored)
        chosen = select(front, top, self.rule)
        spec = self.specs[chosen.dahi]
        info = {
            "counts": self.counts | {"surrogate_trained": len(scored)},
            "rule": self.rule,
            "epsilon": self.epsilon,
            "exhaustive": self.exhaustive,
            "metric": search.evaluator.metric,
            "inference": self.inference,
            "maximum_point": asdict(top) | {"summary": self.specs[top.dahi].summary()},
            "selected": asdict(chosen)
            | {"summary": spec.summary(), "spec": spec.to_dict(), "box": self.by_dahi[chosen.dahi].box},
            "pareto": [asdict(s) | {"summary": self.specs[s.dahi].summary()} for s in front],
        }
        atomic_write_text(state / "selection.json", json.dumps(info, indent=1))
        atomic_write_text(state / "selected.yaml", spec.to_yaml())
        return info

    def summary(self, study: "optuna.Study", run_dir: Path, metric: str, objectives: Sequence[str]) -> list:
        """How many candidates were trained against the grid, the Pareto set and the selection."""
        path = run_dir / "extract" / "selection.json"
        if not path.exists():
            return ["no selection: the largest candidate (the maximum point) has not been scored"]
        info = json.loads(path.read_text(encoding="utf-8"))
        c = info["counts"]
        counts = (
            f"grid {c['grid']} tuples, {c['buildable']} with A dividing H, {c['within_budget']} within the "
            f"budget" + (f" in {c['boxes']} boxes" if c["boxes"] else "") + f"; surrogate-trained "
            f"{c['surrogate_trained']} (coarse stage {c['coarse']}, fine stage {c.get('fine', 0)})"
        )
        table = Table("trial", "⟨D, A, H, I⟩", metric, "params", info["inference"], "", title="Extraction: Pareto set")
        for s in info["pareto"]:
            mark = (
                "selected"
                if s["dahi"] == info["selected"]["dahi"]
                else ("maximum point" if s["dahi"] == info["maximum_point"]["dahi"] else "")
            )
            table.add_row(
                str(s["trial"]),
                ", ".join(map(str, s["dahi"])),
                f"{s['metric']:.4f}",
                f"{s['p']:,.0f}",
                f"{s['i']:,.4g}",
                mark,
            )
        return [
            counts,
            table,
            f"selected ({info['rule']}): {info['selected']['summary']} → {run_dir / 'extract' / 'selected.yaml'}",
        ]


def _outside(spec: ArchSpec, teacher: ArchSpec) -> str | None:
    """Why ``spec`` cannot be sliced from ``teacher`` (None when it can)."""
    t, s = teacher.layers[0], spec.layers[0]
    for name, mine, theirs in (
        ("depth", spec.num_layers, teacher.num_layers),
        ("hidden", spec.hidden, teacher.hidden),
        ("heads", s.attention.heads, t.attention.heads),
        ("head size", s.attention.qk_dim, t.attention.qk_dim),
        ("ffn", s.ffn.size, t.ffn.size),
    ):
        if mine > theirs:
            return f"{name} {mine} > the teacher's {theirs}"
    return None
