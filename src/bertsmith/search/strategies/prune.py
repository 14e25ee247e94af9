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
from typing import TYPE_CHECKING, Callable

from ...arch import ArchSpec, atomic_write_text
from ...baselines import layers_within, uniform_within
from ...errors import ConfigError, SpecError, differences
from ..pruning import VARIANTS, DIMS, GatedModel, GateObjective, choose_removals, cost_function, prune, smallest, \
    unit_costs
from . import Strategy

if TYPE_CHECKING:
    from ..costs import CostModel
    from ..evaluators import DistillEvaluator, Evaluator
    from ..loop import Search

COSTS = ("params", "total_params", "flops", "latency")
ROUND = "round.json"


class Prune(Strategy):
    """``dims``: a variant of the paper (``all``, ``h``, ``f``, ``a``) or comma-separated dimensions
    of h, a, k, v, f. ``rounds``: T. ``gate_steps``, ``gate_lr``: the gates' training per round.
    ``gamma``: weight of the normalised sparsity penalty. ``ranking``: ``raw`` |α| (default) or
    ``weighted`` β·|α| decides which entries are zeroed; the paper does not say (NOT FOUND), raw is
    bertsmith's default because the penalty already weighs each entry by β while it trains.
    ``cost``: which budget bound the pruning lowers (default the first set of params, total_params,
    flops, latency; latency needs a latency predictor). ``layers``: let whole layers be pruned too.
    ``baselines``: also distil the uniform and layer-dropping baselines."""

    def __init__(self, *, dims: str = "all", rounds: int = 3, gate_steps: int = 100, gate_lr: float = 0.01,
                 gamma: float = 1.0, ranking: str = "raw", cost: str | None = None, layers: bool = False,
                 baselines: bool = True):
        names = VARIANTS.get(dims) or tuple(d.strip() for d in dims.split(",") if d.strip())
        if not names or any(d not in DIMS for d in names):
            raise ConfigError(f"prune: dims = {dims!r}: expected all, h, f, a or a comma-separated subset of "
                              f"{', '.join(DIMS)}")
        if rounds < 1:
            raise ConfigError(f"prune: rounds = {rounds}: at least 1 (T ≥ 1)")
        if gate_steps < 1:
            raise ConfigError(f"prune: gate_steps = {gate_steps}: at least 1")
        if gate_lr <= 0 or gamma < 0:
            raise ConfigError(f"prune: gate_lr = {gate_lr}, gamma = {gamma}: expected gate_lr > 0 and gamma ≥ 0")
        if ranking not in ("raw", "weighted"):
            raise ConfigError(f"prune: ranking = {ranking!r}: expected raw or weighted")
        if cost is not None and cost not in COSTS:
            raise ConfigError(f"prune: cost = {cost!r}: expected one of {', '.join(COSTS)}")
        self.dims, self.rounds, self.gate_steps, self.gate_lr = tuple(names), rounds, gate_steps, gate_lr
        self.gamma, self.ranking, self.cost_name, self.layers, self.baselines = gamma, ranking, cost, layers, baselines

    def options(self) -> dict:
        return {"dims": list(self.dims), "rounds": self.rounds, "gate_steps": self.gate_steps,
                "gate_lr": self.gate_lr, "gamma": self.gamma, "ranking": self.ranking, "cost": self.cost_name,
                "layers": self.layers, "baselines": self.baselines}

    # ---- before the study opens --------------------------------------------------------------
    def check(self, evaluator: "Evaluator", cost_model: "CostModel", run_dir: Path) -> None:
        from ..evaluators import DistillEvaluator

        if not isinstance(evaluator, DistillEvaluator) or evaluator.steps is None:
            raise ConfigError("strategy 'prune' re-trains every pruned model by a short distillation: use "
                              "--evaluator short (its --eval-steps are the steps of each round)")
        self.start = evaluator.teacher.encoder.spec
        try:
            from ...modeling.elastic import check_plain_kinds
            check_plain_kinds(self.start)
        except SpecError as exc:
            raise ConfigError(f"the teacher cannot be pruned: {exc}") from None
        self.cost_name, self.cost, self.target = self._cost(cost_model)
        start_cost = self.cost(self.start)
        if self.target >= start_cost:
            raise ConfigError(f"the budget {self.cost_name} ≤ {self.target:,.6g} is not below the teacher's "
                              f"{start_cost:,.6g}: there is nothing to prune")
        least = smallest(self.start, self.dims, layers=self.layers)
        if self.cost(least) > self.target:
            raise ConfigError(f"the budget {self.cost_name} ≤ {self.target:,.6g} is below the smallest model that "
                              f"pruning {','.join(self.dims)} can reach ({least.summary()}: {self.cost(least):,.6g})")
        self.plan = {"uniform": uniform_within(self.start, self.cost, self.target),
                     "layers": layers_within(self.start, self.cost, self.target)} if self.baselines else {}
        self.settings = self.options() | {"cost": self.cost_name, "target": self.target,
                                          "teacher": evaluator.teacher_key, "evaluator": evaluator.fingerprint()}
        saved = run_dir / "prune" / "settings.json"
        if saved.exists():
            before, now = json.loads(saved.read_text(encoding="utf-8")), json.loads(json.dumps(self.settings))
            if before != now:
                raise ConfigError(f"{saved}: this run directory holds a pruning run with other settings "
                                  f"({differences(before, now)}); choose another --out")

    def _cost(self, cost_model: "CostModel") -> tuple[str, Callable[[ArchSpec], float], float]:
        budget = cost_model.budget
        bounds = {"params": budget.params, "total_params": budget.total_params, "flops": budget.flops,
                  "latency": budget.latency}
        name = self.cost_name or next((n for n in COSTS if bounds[n] is not None), None)
        if name is None or bounds[name] is None:
            raise ConfigError(f"strategy 'prune' lowers a cost to its budget: set a {name or 'params'} bound, "
                              f"e.g. --budget {name or 'params'}=5M" if name != "latency" else
                              "strategy 'prune' by latency needs a latency bound, e.g. --budget latency=20ms")
        if name == "latency":
            if cost_model.predictor is None:
                raise ConfigError("strategy 'prune' by latency needs --latency predicted: β and the round targets "
                                  "come from the latency predictor")
            return name, cost_model.predictor.predict, float(bounds[name])
        return name, cost_function(name, budget.seq_len), float(bounds[name])

    def trials(self, requested: int) -> int:
        return 1 + sum(spec is not None for spec in self.plan.values())

    def start_digest(self, evaluator: "Evaluator") -> str:
        from ...distill.task import digest

        return digest({"prune": evaluator.teacher_key, "start": evaluator.teacher.encoder.spec.to_dict()})

    # ---- the pruning rounds ------------------------------------------------------------------
    def run(self, search: "Search") -> None:
        evaluator: DistillEvaluator = search.evaluator
        state = search.run_dir / "prune"
        state.mkdir(parents=True, exist_ok=True)
        atomic_write_text(state / "settings.json", json.dumps(self.settings, indent=1, default=str))
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

                search.record(ArchSpec.from_dict(info["spec"]),
                              Evaluation(info["metrics"], info["seconds"], {"steps": info["steps"], "init": "pruned"}),
                              prune_round=r, alpha=info["alpha"], gated_metrics=info["gated_metrics"])
            path.append(info)
        _write_path(state, path, search.evaluator.metric)
        for name, spec in self.plan.items():
            if spec is None or name in recorded:
                continue
            evaluation = evaluator.distill(evaluator.student(spec), state / f"baseline-{name}",
                                           steps=self.rounds * evaluator.steps)
            search.record(spec, evaluation, baseline=name)

    def _round(self, evaluator: "DistillEvaluator", model, r: int, target: float, directory: Path):
        """One round: train the gates, zero and delete down to ``target``, re-train; saved to ``directory``."""
        from ...distill.task import evaluate, train_on_task
        from ...hf.export import export_pretrained

        spec = model.encoder.spec
        gated = GatedModel(model, self.dims, layers=self.layers)
        objective = GateObjective(gated, evaluator.teacher, unit_costs(spec, self.cost), gamma=self.gamma,
                                  regression=evaluator.data.task.is_regression, losses=evaluator.losses)
        config = evaluator.config.model_copy(update={
            "steps": self.gate_steps, "lr": self.gate_lr, "weight_decay": 0.0, "warmup": 0.0, "schedule": "constant",
            "eval_every": self.gate_steps, "patience": None})
        train_on_task(objective, evaluator.data, config=config, run_dir=directory / "gates", resume=True,
                              fingerprint={"round": r, "spec": spec.to_dict(), "prune": self.settings},
                              progress=False, description=f"gates {r}", keep_best=False,
                              evaluate_fn=lambda m: evaluate(m, evaluator.data, evaluator.split))
        gated_metrics = evaluate(gated.eval(), evaluator.data, evaluator.split)  # a resumed run has no history
        keep = choose_removals(gated.gates, target, self.cost, ranking=self.ranking)
        pruned = prune(model, gated.gates, keep)
        evaluation = evaluator.distill(pruned, directory / "retrain")
        pruned_spec = pruned.encoder.spec
        info = {"round": r, "target": target, "cost": self.cost(pruned_spec), "spec": pruned_spec.to_dict(),
                "summary": pruned_spec.summary(), "metrics": evaluation.metrics, "seconds": evaluation.seconds,
                "steps": evaluation.details["steps"], "gated_metrics": gated_metrics,
                "alpha": gated.gates.statistics()}
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
            writer.writerow([row["round"], row["cost"], row.get("metrics", {}).get(metric, ""), spec.hidden, i,
                             la.attention.heads, la.attention.qk_dim, la.attention.v_dim, la.ffn.size])
    atomic_write_text(state / "path.csv", out.getvalue())
