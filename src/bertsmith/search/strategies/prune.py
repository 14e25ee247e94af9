"""``prune``: schuBERT's budgeted pruning (the schuBERT paper) of the task teacher itself, and the two
baselines it has to beat at the same budget and the same distillation steps.

Each of ``rounds`` (T) rounds:

1. gates α on the pruned dimensions start at 1 and train with the model's weights frozen, under the
   task distillation loss plus γ·Σβ‖α‖₁ (``pruning.GateObjective``; β is the cost one unit carries,
   from the cost model: params, total params, FLOPs, or the latency predictor);
2. the smallest entries (raw |α|, or β·|α| with ``ranking="weighted"``) are zeroed until the cost is
   down by 1/T of the teacher's distance to the budget, so the last round lands on the budget;
3. the gates are folded into the weights and the zeroed rows and columns deleted (a dense, smaller
   model), which is re-trained by the search's distillation evaluator for its ``--eval-steps``.

Every round's model is recorded in the study (``prune_round`` attr; the rounds above the budget are
infeasible trials whose metrics are still kept) and saved under ``RUN_DIR/prune/round-N/``
(``model/`` a Hugging Face directory, ``round.json``). ``RUN_DIR/prune/path.json`` and ``path.csv``
hold the pruning path: every round's per-layer dimensions, costs, metrics and α statistics. A killed
run resumes at its first unfinished round.

The baselines (``baselines=True``) are distilled by the same evaluator from the sliced teacher for
T × ``--eval-steps`` steps, as many as the pruned model's weights got: ``uniform`` shrinks h, heads,
query/key, value and FFN sizes of every layer by one factor, the largest within the budget
(BERT-all uniform); ``layers`` keeps the most evenly spaced teacher layers that fit (BERT-ℓ).
"""

from __future__ import annotations

import copy
import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from pydantic import Field, field_validator
from rich.table import Table

from ...arch import ArchSpec, Float, Int
from ...baselines import layers_within, uniform_within
from ...errors import ConfigError, SpecError, differences
from ...files import atomic_write_text
from ..pruning import (
    VARIANTS,
    DIMS,
    GatedModel,
    GateObjective,
    choose_removals,
    cost_function,
    prune,
    smallest,
    unit_costs,
)
from .base import SearchContext, Strategy, StrategyOptions

if TYPE_CHECKING:
    import optuna

    from ..costs import CostModel
    from ..evaluators import DistillEvaluator, Evaluator

COSTS = ("params", "total_params", "flops", "latency")
ROUND = "round.json"


class PruneOptions(StrategyOptions):
    prune_dims: str = Field(
        "all",
        description="the variant all, h, f or a (schuBERT-all/-h/-f/-a), or "
        "comma-separated dimensions of h, a, k, v, f",
    )
    prune_rounds: Int = Field(
        3,
        description="rounds T; each removes 1/T of the teacher's distance to the budget and re-trains for --eval-steps",
    )
    gate_steps: Int = Field(100, description="steps of gate (α) training per round")
    gate_lr: Float = Field(0.01, description="learning rate of the gates")
    gamma: Float = Field(1.0, description="weight of the sparsity penalty (normalised to 1 at the start)")
    ranking: str = Field("raw", description="which gate entries are zeroed first: raw (|α|) or weighted (β·|α|)")
    prune_cost: str | None = Field(
        None,
        description="the budget bound to prune down to: params, total_params, "
        "flops or latency (needs --latency predicted); default the first one set",
    )
    prune_layers: bool = Field(False, description="let whole layers be pruned as well")
    baselines: bool = Field(True, description="also distil the uniform and layer-dropping baselines at the budget")

    @field_validator("prune_dims")
    @classmethod
    def _dims(cls, dims: str) -> str:
        names = VARIANTS.get(dims) or tuple(d.strip() for d in dims.split(",") if d.strip())
        if not names or any(d not in DIMS for d in names):
            raise ValueError(f"expected all, h, f, a or a comma-separated subset of {', '.join(DIMS)}")
        return dims

    @field_validator("prune_rounds")
    @classmethod
    def _rounds(cls, rounds: int) -> int:
        if rounds < 1:
            raise ValueError("at least 1 (T ≥ 1)")
        return rounds

    @field_validator("gate_steps")
    @classmethod
    def _steps(cls, steps: int) -> int:
        if steps < 1:
            raise ValueError("at least 1")
        return steps

    @field_validator("gate_lr")
    @classmethod
    def _lr(cls, lr: float) -> float:
        if lr <= 0:
            raise ValueError("expected gate_lr > 0")
        return lr

    @field_validator("gamma")
    @classmethod
    def _gamma(cls, gamma: float) -> float:
        if gamma < 0:
            raise ValueError("expected gamma ≥ 0")
        return gamma

    @field_validator("ranking")
    @classmethod
    def _ranking(cls, ranking: str) -> str:
        if ranking not in ("raw", "weighted"):
            raise ValueError("expected raw or weighted")
        return ranking

    @field_validator("prune_cost")
    @classmethod
    def _cost(cls, cost: str | None) -> str | None:
        if cost is not None and cost not in COSTS:
            raise ValueError(f"expected one of {', '.join(COSTS)}")
        return cost


class Prune(Strategy):
    """``prune_dims``: a variant of the paper (``all``, ``h``, ``f``, ``a``) or comma-separated dimensions
    of h, a, k, v, f. ``prune_rounds``: T. ``gate_steps``, ``gate_lr``: the gates' training per round.
    ``gamma``: weight of the normalised sparsity penalty. ``ranking``: ``raw`` |α| (default) or
    ``weighted`` β·|α| decides which entries are zeroed; the paper does not say; raw is
    bertsmith's default because the penalty already weighs each entry by β while it trains.
    ``prune_cost``: which budget bound the pruning lowers (default the first set of params, total_params,
    flops, latency; latency needs a latency predictor). ``prune_layers``: let whole layers be pruned too.
    ``baselines``: also distil the uniform and layer-dropping baselines."""

    name = "prune"
    Options = PruneOptions
    options: PruneOptions
    spaceless = "it prunes the teacher's own architecture"
    default_evaluator = "short"

    def __init__(self, **options: Any):
        super().__init__(**options)
        o = self.options
        self.dims = VARIANTS.get(o.prune_dims) or tuple(d.strip() for d in o.prune_dims.split(",") if d.strip())
        self.rounds, self.layers = o.prune_rounds, o.prune_layers

    def settings(self, evaluator: "DistillEvaluator", cost_name: str, target: float) -> dict:
        """What ``RUN_DIR/prune/settings.json`` holds: a rerun with other settings is refused."""
        o = self.options
        return {
            "dims": list(self.dims),
            "rounds": o.prune_rounds,
            "gate_steps": o.gate_steps,
            "gate_lr": o.gate_lr,
            "gamma": o.gamma,
            "ranking": o.ranking,
            "cost": cost_name,
            "layers": o.prune_layers,
            "baselines": o.baselines,
            "target": target,
            "teacher": evaluator.teacher_key,
            "evaluator": evaluator.fingerprint(),
        }

    # ---- before the study opens --------------------------------------------------------------
    def check(self, evaluator: "Evaluator", cost_model: "CostModel", run_dir: Path) -> None:
        from ..evaluators import DistillEvaluator

        if not isinstance(evaluator, DistillEvaluator) or evaluator.steps is None:
            raise ConfigError(
                "strategy 'prune' re-trains every pruned model by a short distillation: use "
                "--evaluator short (its --eval-steps are the steps of each round)"
            )
        start = evaluator.teacher.encoder.spec
        try:
            from ...modeling.elastic import check_plain_kinds

            check_plain_kinds(start)
        except SpecError as exc:
            raise ConfigError(f"the teacher cannot be pruned: {exc}") from None
        cost_name, cost, target = self._cost(cost_model)
        start_cost = cost(start)
        if target >= start_cost:
            raise ConfigError(
                f"the budget {cost_name} ≤ {target:,.6g} is not below the teacher's "
                f"{start_cost:,.6g}: there is nothing to prune"
            )
        least = smallest(start, self.dims, layers=self.layers)
        if cost(least) > target:
            raise ConfigError(
                f"the budget {cost_name} ≤ {target:,.6g} is below the smallest model that "
                f"pruning {','.join(self.dims)} can reach ({least.summary()}: {cost(least):,.6g})"
            )
        saved = run_dir / "prune" / "settings.json"
        if saved.exists():
            before = json.loads(saved.read_text(encoding="utf-8"))
            now = json.loads(json.dumps(self.settings(evaluator, cost_name, target)))
            if before != now:
                raise ConfigError(
                    f"{saved}: this run directory holds a pruning run with other settings "
                    f"({differences(before, now)}); choose another --out"
                )

    def plan(self, evaluator: "Evaluator", cost_model: "CostModel", run_dir: Path, trials: int) -> None:
        """The teacher's spec, the cost pruned and its target, and the baselines at the target."""
        self.start = evaluator.teacher.encoder.spec
        self.cost_name, self.cost, self.target = self._cost(cost_model)
        self.baseline_specs = (
            {
                "uniform": uniform_within(self.start, self.cost, self.target),
                "layers": layers_within(self.start, self.cost, self.target),
            }
            if self.options.baselines
            else {}
        )
        self.pruning = self.settings(evaluator, self.cost_name, self.target)

    def _cost(self, cost_model: "CostModel") -> tuple[str, Callable[[ArchSpec], float], float]:
        budget = cost_model.budget
        bounds = {
            "params": budget.params,
            "total_params": budget.total_params,
            "flops": budget.flops,
            "latency": budget.latency,
        }
        name = self.options.prune_cost or next((n for n in COSTS if bounds[n] is not None), None)
        if name is None or bounds[name] is None:
            raise ConfigError(
                f"strategy 'prune' lowers a cost to its budget: set a {name or 'params'} bound, "
                f"e.g. --budget {name or 'params'}=5M"
                if name != "latency"
                else "strategy 'prune' by latency needs a latency bound, e.g. --budget latency=20ms"
            )
        if name == "latency":
            if cost_model.predictor is None:
                raise ConfigError(
                    "strategy 'prune' by latency needs --latency predicted: β and the round targets "
                    "come from the latency predictor"
                )
            return name, cost_model.predictor.predict, float(bounds[name])
        return name, cost_function(name, budget.seq_len), float(bounds[name])

    def trials(self, requested: int) -> int:
        return 1 + sum(spec is not None for spec in self.baseline_specs.values())

    def start_digest(self, evaluator: "Evaluator") -> str:
        from ...files import digest

        return digest({"prune": evaluator.teacher_key, "start": evaluator.teacher.encoder.spec.to_dict()})

    # ---- the pruning rounds ------------------------------------------------------------------
    def run(self, search: SearchContext) -> None:
        evaluator: DistillEvaluator = search.evaluator
        state = search.run_dir / "prune"
        state.mkdir(parents=True, exist_ok=True)
        atomic_write_text(state / "settings.json", json.dumps(self.pruning, indent=1, default=str))
        finished = [t.user_attrs for t in search.study.get_trials(deepcopy=False) if t.state.is_finished()]
        recorded = {attrs.get("prune_round") for attrs in finished} | {attrs.get("baseline") for attrs in finished}
        model = copy.deepcopy(evaluator.teacher)
        start_cost = self.cost(self.start)
        path = [{"round": 0, "spec": self.start.to_dict(), "cost": start_cost}]
        for r in range(1, self.rounds + 1):
            directory = state / f"round-{r}"
            if (directory / ROUND).exists():
                from ...distill.teacher import load_teacher

                info = json.loads((directory / ROUND).read_text(encoding="utf-8"))
                model = load_teacher(directory / "model", evaluator.data.task)
            else:
                target = start_cost - r / self.rounds * (start_cost - self.target)
                model, info = self._round(evaluator, model, r, target, directory)
            if r not in recorded:
                from ..evaluators import Evaluation

                search.record(
                    ArchSpec.from_dict(info["spec"]),
                    Evaluation(info["metrics"], info["seconds"], {"steps": info["steps"], "init": "pruned"}),
                    prune_round=r,
                    alpha=info["alpha"],
                    gated_metrics=info["gated_metrics"],
                )
            path.append(info)
        _write_path(state, path, search.evaluator.metric)
        for name, spec in self.baseline_specs.items():
            if spec is None or name in recorded:
                continue
            evaluation = evaluator.distill(
                evaluator.student(spec), state / f"baseline-{name}", steps=self.rounds * evaluator.steps
            )
            search.record(spec, evaluation, baseline=name)

    def summary(self, study: "optuna.Study", run_dir: Path, metric: str, objectives: Sequence[str]) -> list[Table]:
        """The pruning rounds and the baselines, from the study."""
        table = Table("trial", "model", metric, *objectives, "within budget", "architecture", title="Pruning path")
        for t in study.get_trials(deepcopy=False):
            attrs = t.user_attrs
            name = f"round {attrs['prune_round']}" if "prune_round" in attrs else attrs.get("baseline")
            if name is None or "metrics" not in attrs:
                continue
            table.add_row(
                str(t.number),
                name,
                f"{attrs['metrics'][metric]:.4f}",
                *(f"{attrs['costs'][o]:,.4g}" for o in objectives),
                "yes" if attrs["feasible"] else "no",
                attrs["summary"],
            )
        return [table]

    def _round(self, evaluator: "DistillEvaluator", model, r: int, target: float, directory: Path):
        """One round: train the gates, zero and delete down to ``target``, re-train; saved to ``directory``."""
        from ...distill.task import evaluate, train_on_task
        from ...hf.export import export_pretrained

        spec = model.encoder.spec
        gated = GatedModel(model, self.dims, layers=self.layers)
        objective = GateObjective(
            gated,
            evaluator.teacher,
            unit_costs(spec, self.cost),
            gamma=self.options.gamma,
            task_type=evaluator.data.task.task_type,
            losses=evaluator.losses,
        )
        config = evaluator.config.model_copy(
            update={
                "steps": self.options.gate_steps,
                "lr": self.options.gate_lr,
                "weight_decay": 0.0,
                "warmup": 0.0,
                "schedule": "constant",
                "eval_every": self.options.gate_steps,
                "patience": None,
            }
        )
        train_on_task(
            objective,
            evaluator.data,
            config=config,
            run_dir=directory / "gates",
            resume=True,
            fingerprint={"round": r, "spec": spec.to_dict(), "prune": self.pruning},
            progress=False,
            description=f"gates {r}",
            keep_best=False,
            evaluate_fn=lambda m: evaluate(m, evaluator.data, evaluator.split),
        )
        gated_metrics = evaluate(gated.eval(), evaluator.data, evaluator.split)  # a resumed run has no history
        keep = choose_removals(gated.gates, target, self.cost, ranking=self.options.ranking)
        pruned = prune(model, gated.gates, keep)
        evaluation = evaluator.distill(pruned, directory / "retrain")
        pruned_spec = pruned.encoder.spec
        info = {
            "round": r,
            "target": target,
            "cost": self.cost(pruned_spec),
            "spec": pruned_spec.to_dict(),
            "summary": pruned_spec.summary(),
            "metrics": evaluation.metrics,
            "seconds": evaluation.seconds,
            "steps": evaluation.details["steps"],
            "gated_metrics": gated_metrics,
            "alpha": gated.gates.statistics(),
        }
        export_pretrained(pruned, directory / "model", tokenizer_dir=None)
        atomic_write_text(directory / ROUND, json.dumps(info, indent=1))
        return pruned, info


def _write_path(state: Path, path: list[dict], metric: str) -> None:
    """``path.json`` (every round's record) and ``path.csv`` (one row per round and layer: the
    per-layer dimensions after each round, as the paper's Tables 7 and 9)."""
    atomic_write_text(state / "path.json", json.dumps(path, indent=1))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["round", "cost", metric, "hidden", "layer", "heads", "qk_dim", "v_dim", "ffn"])
    for row in path:
        spec = ArchSpec.from_dict(row["spec"])
        for i, la in enumerate(spec.layers):
            writer.writerow(
                [
                    row["round"],
                    row["cost"],
                    row.get("metrics", {}).get(metric, ""),
                    spec.hidden,
                    i,
                    la.attention.heads,
                    la.attention.qk_dim,
                    la.attention.v_dim,
                    la.ffn.size,
                ]
            )
    atomic_write_text(state / "path.csv", out.getvalue())
