"""``bertsmith search`` as a job: read the space, budget, teacher and task, build the cost model
(measured or predicted latency) and the evaluator, and run the search in a run directory.

The run directory holds ``study.db`` (the Optuna study, unless ``--storage`` names another),
``supernet/`` (the trained supernet, for the slice evaluator and ``--init supernet``; ``--supernet``
puts it elsewhere, e.g. on storage that many workers share),
``latency_predictor.json`` (when latency is predicted and no predictor file is given),
``trials/`` (one directory per evaluated trial for the distillation evaluators), ``search.json``
(the resolved settings), and the results ``pareto.json``, ``pareto.csv`` and ``trials.csv``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import distributed
from ..arch import ArchSpec
from ..data import Task
from ..distill.context import TaskContext, context_for
from ..distill.objectives import LossConfig
from ..distill.trainer import TrainConfig
from ..errors import ConfigError
from ..files import atomic_write_text, writable_dir
from ..predictor import LatencyPredictor
from .budget import Budget
from .costs import CostModel, calibrate
from .evaluators import DistillEvaluator, Evaluator, SliceEvaluator
from .loop import SearchResult, check_settings, make_strategy, run_search
from .space import SearchSpace
from .strategies import EvaluatorSetup, Strategy
from .study import HEARTBEAT, check_storage
from .supernet import SupernetJob, SupernetResult

EVALUATORS = ("slice", "short", "full")
PREDICTOR_FILE = "latency_predictor.json"
CALIBRATION_ARCHS = 30
# The supernet's largest and smallest sub-networks are evaluated on dev, and its training checkpointed, every
# fifth of its steps but no more often than this: at the default 100 steps, once at the end (each evaluation
# and checkpoint cost about 6 s on 2 CPU cores; they only report progress).
SUPERNET_EVAL_EVERY = 250
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m`` or ``2h`` → seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"--time-budget {text!r}: expected a duration such as 600, 90s, 15m or 2h")
    return float(match[1]) * {"s": 1, "m": 60, "h": 3600}[(match[2] or "s").lower()]


@dataclass
class SearchSettings:
    """Every option of ``bertsmith search`` (the CLI fills it; ``search.json`` echoes it). ``options``:
    the strategy's own, by the names of its ``Options`` model, validated by it."""

    space: Path | None
    teacher: Path
    task: str
    run_dir: Path
    strategy: str = "nsga2"
    budget: str | None = None
    objectives: tuple[str, ...] | None = None  # default: the strategy's (``Strategy.objectives``)
    latency: str = "measured"
    predictor: Path | None = None
    evaluator: str | None = None  # default: the strategy's (``Strategy.default_evaluator``)
    init: str = "teacher"
    eval_steps: int = 300
    eval_epochs: float = 3.0
    eval_lr: float = 1e-4
    supernet_steps: int = 1000
    supernet_lr: float = 1e-4
    random_subnets: int = 2
    supernet_seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # the strategy's own (``Strategy.Options``)
    trials: int = 50
    time_budget: float | None = None
    storage: str | None = None
    study_name: str = "search"
    supernet: Path | None = None  # default RUN_DIR/supernet
    worker: int = 0
    heartbeat: int = HEARTBEAT  # seconds
    data_dir: Path | None = None
    max_length: int = 128
    batch_size: int = 32
    bf16: bool = False  # bf16 autocast for the supernet and the distilling evaluators
    cache_dir: Path | None = None
    seed: int = 0
    progress: bool = True


def effective_budget(space: SearchSpace | None, option: str | None) -> Budget:
    """The space's budget (none without a space) with the fields given by ``--budget`` replaced."""
    base = space.budget if space is not None else Budget()
    if not option:
        return base
    given = Budget.parse(option)
    return base.model_copy(update=given.model_dump(exclude_unset=True))


def train_supernet_job(s: SearchSettings) -> SupernetResult:
    """``bertsmith search --supernet-only``: train (or reuse) the supernet that this search's slice
    evaluator would use, and stop. The one part of a search that runs under ``torchrun`` or
    ``accelerate launch``; search workers started afterwards with the same ``--supernet`` read it."""
    from ..data import resolve_task

    if s.space is None:
        raise ConfigError("--supernet-only: give the search space (--space) whose supernet to train")
    return _supernet_job(s, SearchSpace.load(s.space), resolve_task(s.task)).train()


def run_search_job(s: SearchSettings, context: TaskContext | None = None) -> SearchResult:
    """Run the search that ``s`` describes; ``context``: its teacher and data, already loaded."""
    from ..data import resolve_task
    from ..distill.task import check_max_length

    distributed.refuse(
        "bertsmith search",
        "train the supernet alone under the launcher (--supernet-only), then "
        "start the search workers as separate processes sharing --storage (README: Scale out)",
    )
    strategy = make_strategy(s.strategy, s.options)
    s.evaluator = s.evaluator or strategy.default_evaluator
    setup = strategy.evaluator_setup(s.evaluator)
    s.init = setup.init or s.init
    if s.objectives is None:
        s.objectives = strategy.objectives()
    if s.evaluator not in EVALUATORS:
        raise ConfigError(f"--evaluator {s.evaluator!r}: expected one of {', '.join(EVALUATORS)}")
    if strategy.spaceless is not None and s.space is not None:
        raise ConfigError(
            f"--space: the {s.strategy} strategy takes no search space ({strategy.spaceless}); "
            "give the budget with --budget"
        )
    if strategy.spaceless is None and s.space is None:
        raise ConfigError(f"--space: strategy {s.strategy!r} needs a search space file")
    check_settings(s.objectives, s.trials, s.time_budget, s.strategy, s.options)
    if s.storage is not None:
        check_storage(s.storage)  # before the teacher and the data are loaded
    space = SearchSpace.load(s.space) if s.space is not None else None
    budget = effective_budget(space, s.budget)
    task: Task = resolve_task(s.task)
    run_dir = Path(s.run_dir)
    writable_dir(run_dir)
    context = context_for(context, s.teacher, task, max_length=s.max_length, data_dir=s.data_dir, cache_dir=s.cache_dir)
    if space is not None:
        check_max_length(
            s.max_length,
            space.extreme(largest=True),
            "the search space's architectures",
            f"embeddings.max_positions in {s.space}",
        )
    data = context.data(("train", "dev"))
    if setup.validation_fraction is not None:
        data = carved_data(data, setup.validation_fraction, seed=s.seed)
    shapes = space if space is not None else strategy.shapes(context.spec, s.init)
    cost_model = CostModel(budget, latency=s.latency, predictor=_predictor(s, shapes, context.spec, budget, run_dir))
    evaluator = _evaluator(s, setup, shapes, task, data, context)
    return run_search(
        space,
        evaluator,
        cost_model,
        run_dir=run_dir,
        trials=s.trials,
        objectives=s.objectives,
        strategy=s.strategy,
        strategy_options=s.options,
        storage=s.storage,
        study_name=s.study_name,
        time_budget=s.time_budget,
        seed=s.seed,
        progress=s.progress,
        settings=_echo(s, strategy, budget),
        teacher=context.key,
        worker=s.worker,
        heartbeat=s.heartbeat,
    )


def carved_data(data, fraction: float, *, seed: int):
    """The search's data: train split in two (rest to train on, ``validation`` to score on); dev is
    dropped, so the search cannot see it."""
    from ..data.carve import carve
    from ..distill.task import TaskData
    from ..files import digest

    rest, validation, _ = carve(data.splits["train"], fraction, seed=seed)
    carved = digest({"train": data.hashes["train"], "fraction": fraction, "seed": seed})
    return TaskData(
        data.task,
        data.tokenizer,
        data.max_length,
        {"train": rest, "validation": validation},
        {"train": carved, "validation": carved},
        data.cache_dir,
    )


def shapes_below(spec: ArchSpec) -> SearchSpace:
    """A coarse space of the shapes that pruning ``spec`` passes through (up to eight steps per
    dimension, every depth): where a latency predictor for pruning is calibrated."""

    def steps(n: int) -> dict:
        step = max(1, n // 8)
        return {"min": step, "max": n, "step": step}

    first = spec.layers[0]
    return SearchSpace.from_dict(
        {
            "depth": {"min": 1, "max": spec.num_layers},
            "hidden": steps(spec.hidden),
            "per_layer": False,
            "layer": {
                "heads": steps(max(la.attention.heads for la in spec.layers)),
                "qk_dim": steps(max(la.attention.qk_dim for la in spec.layers)),
                "v_dim": steps(max(la.attention.v_dim for la in spec.layers)),
                "ffn": steps(max(la.ffn.size for la in spec.layers)),
                "activation": [first.ffn.activation],
            },
            "embeddings": spec.embeddings.model_dump(mode="json"),
            "embedding_size": [spec.embeddings.size],
            **spec.inherited(),
        },
        source="pruning shapes",
    )


def _predictor(
    s: SearchSettings, space: SearchSpace | None, start: ArchSpec, budget: Budget, run_dir: Path
) -> LatencyPredictor | None:
    """The latency predictor for ``--latency predicted``: the ``--predictor`` file, the run's own
    calibration, or a new calibration on this machine (saved in the run directory) over the space (the
    search space or the strategy's ``shapes``), or without one over the shapes that pruning ``start``
    passes through."""
    if s.latency != "predicted":
        if s.predictor is not None:
            raise ConfigError("--predictor is used only with --latency predicted")
        return None
    path = s.predictor or run_dir / PREDICTOR_FILE
    if path.exists():
        try:
            return LatencyPredictor.from_json(path.read_text(encoding="utf-8"))
        except (ValueError, KeyError) as e:
            raise ConfigError(f"{path}: not a latency predictor file ({e})") from None
    if s.predictor is not None:
        raise ConfigError(f"--predictor {s.predictor}: no such file")
    calibration = calibrate(
        space if space is not None else shapes_below(start),
        count=CALIBRATION_ARCHS,
        batch=budget.batch,
        seq_len=budget.seq_len,
        seed=s.seed,
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    info = json.loads(calibration.predictor.to_json()) | {
        "held_out_mape": calibration.held_out_mape,
        "measured": calibration.measured,
    }
    atomic_write_text(path, json.dumps(info, indent=1))
    return calibration.predictor


def _supernet_job(
    s: SearchSettings, space: SearchSpace | None, task: Task, context: TaskContext | None = None
) -> SupernetJob:
    return SupernetJob(
        space,
        s.teacher,
        task,
        run_dir=s.supernet or Path(s.run_dir) / "supernet",
        config=TrainConfig(
            steps=s.supernet_steps,
            lr=s.supernet_lr,
            batch_size=s.batch_size,
            eval_every=min(s.supernet_steps, max(SUPERNET_EVAL_EVERY, s.supernet_steps // 5)),
            seed=s.supernet_seed,
            bf16=s.bf16,
        ),
        random_subnets=s.random_subnets,
        data_dir=s.data_dir,
        max_length=s.max_length,
        cache_dir=s.cache_dir,
        progress=s.progress,
        context=context,
    )


def _evaluator(
    s: SearchSettings, setup: EvaluatorSetup, space: SearchSpace | None, task: Task, data, context: TaskContext
) -> Evaluator:
    supernet = None
    if s.evaluator == "slice" or s.init == "supernet":
        supernet = _supernet_job(s, space, task, context)
    if s.evaluator == "slice":
        return SliceEvaluator(supernet, data)
    steps = s.eval_steps if s.evaluator == "short" else None
    config = TrainConfig(lr=s.eval_lr, batch_size=s.batch_size, epochs=s.eval_epochs, seed=s.seed, bf16=s.bf16)
    return DistillEvaluator(
        context.teacher(),  # its own copy: the evaluator reorders it by importance
        data,
        teacher_key=context.key,
        steps=steps,
        init=s.init,
        supernet=supernet,
        losses=setup.losses or LossConfig(),
        config=config,
        split=setup.split,
    )


def _echo(s: SearchSettings, strategy: Strategy, budget: Budget) -> dict[str, Any]:
    """``search.json``: the settings, with the strategy's options (defaults resolved) beside them."""
    out = {k: v for k, v in vars(s).items() if k not in ("progress", "options")}
    return (
        out
        | strategy.options.model_dump(mode="json")
        | {"budget": budget.model_dump(mode="json"), "objectives": list(s.objectives)}
    )
