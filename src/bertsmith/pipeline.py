"""``bertsmith run``: teacher → search → finalists → export → report, each stage cached in the run
directory by its inputs (``rundir``: the directory's layout, its stages and their outputs).
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

import optuna

from . import presets
from .arch import ArchSpec
from .baselines import BASELINES, build
from .cost import encoder_params, flops, params
from .data import resolve_task
from .deployment import assess
from .device import latency_device
from .distill.context import TaskContext
from .distill.objectives import LossConfig
from .distill.student import distill_on_task
from .distill.task import check_max_length, evaluate, load_tokenizer
from .distill.teacher import finetune_teacher, fitted_schedule, model_directory
from .distill.trainer import TrainConfig
from .errors import ConfigError, SpecError, WeakModelError
from .export_card import write_export
from .files import atomic_write_text, path_digest, writable_dir
from .hf import import_checkpoint
from .latency import measure_inference
from .memory import PeakMemory, release_memory
from .precision import use_bf16
from .quality import Verdict, at_constant_level, constant_levels, judge
from .report import write_report
from .rundir import (
    CONFIG,
    DISTILLED,
    EXPORTED,
    PAGE,
    SPACE,
    TEACHER_LATENCY,
    ExportOutputs,
    FinalistEntry,
    FinalistsOutputs,
    FrontPoint,
    Out,
    SearchOutputs,
    Stage,
    TeacherOutputs,
)
from .runconfig import FinalistsConfig, RunConfig, load_config
from .search.budget import Budget, parse_count, parse_ms
from .search.costs import measure_latency
from .search.job import SearchSettings, parse_duration, run_search_job
from .search.space import SearchSpace
from .search.strategies import STRATEGIES, parse_options
from .search.supernet import INFO as SUPERNET_INFO

CONTROLLED = {
    "space",
    "teacher",
    "task",
    "run_dir",
    "strategy",
    "budget",
    "objectives",
    "evaluator",
    "trials",
    "time_budget",
    "supernet_steps",
    "supernet_lr",
    "eval_steps",
    "data_dir",
    "max_length",
    "cache_dir",
    "seed",
    "bf16",
    "progress",
    "options",
}  # SearchSettings fields the run config sets itself


@dataclass
class RunResult:
    run_dir: Path
    results: dict
    reused: list[str]


Log = Callable[[str], None]


def check_run_dir(run_dir: Path, config: RunConfig, *, force: bool) -> None:
    """Refuse a run directory that holds another run (another task, data or teacher) unless ``force``."""
    path = run_dir / CONFIG
    if not path.is_file() or force:
        return
    try:
        old = load_config(path)
    except ConfigError:
        raise ConfigError(
            f"{run_dir}: holds a {CONFIG} that is not a valid run config; use another --out "
            "or --force to replace that run"
        ) from None
    if old.identity() != config.identity():
        changed = [k for k in config.identity() if old.identity()[k] != config.identity()[k]]
        raise ConfigError(
            f"{run_dir}: holds a different run ({', '.join(f'{k} {old.identity()[k]!r}' for k in changed)}"
            f"; this config has {', '.join(repr(config.identity()[k]) for k in changed)}); use another "
            "--out or --force to replace it"
        )


def run_pipeline(
    config: RunConfig,
    run_dir: Path,
    *,
    force: bool = False,
    cache_dir: Path | None = None,
    progress: bool = True,
    log: Log = print,
) -> RunResult:
    """Every stage of the run, reusing what is complete."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_dir = Path(run_dir)
    writable_dir(run_dir)
    config = config.for_task_length(resolve_task(config.task).task_type.default_max_length)
    check_run_dir(run_dir, config, force=force)
    run = _Run(config, run_dir, cache_dir, progress, log)
    run.check()
    atomic_write_text(run_dir / CONFIG, config.echo())
    teacher = run.stage("teacher", TeacherOutputs, run.teacher_inputs(), None, run.teacher)
    run.gate_teacher(teacher)
    search = run.stage(
        "search",
        SearchOutputs,
        run.search_inputs(teacher),
        run.search_extent(),
        lambda st: run.search(st, teacher),
        keep={"supernet": SUPERNET_INFO},
    )  # a trained supernet is reused by its own key
    finalists = run.stage(
        "finalists",
        FinalistsOutputs,
        [search.key, config.finalists.model_dump(mode="json", exclude={"count", "baselines"}), config.latency_repeats],
        [config.finalists.count, config.finalists.baselines, config.quality.constant_margin],
        lambda st: run.finalists(st, teacher, search),
    )
    verdict = run.judge(teacher, finalists)
    export = run.stage(
        "export",
        ExportOutputs,
        [finalists.key, config.export.model_dump(mode="json"), verdict.to_dict()],
        None,
        lambda st: run.export(st, teacher, finalists, verdict),
    )
    results = write_report(
        run_dir,
        config=config,
        teacher=teacher,
        search=search,
        finalists=finalists,
        export=export,
        timings=run.timings,
        quality=verdict.to_dict(),
    )
    log(f"report: {run_dir / PAGE}")
    return RunResult(run_dir, results, run.reused)


class _Run:
    """The stages of one run (methods named after them)."""

    def __init__(self, config: RunConfig, run_dir: Path, cache_dir: Path | None, progress: bool, log: Log):
        self.config, self.run_dir, self.cache_dir, self.progress, self.log = config, run_dir, cache_dir, progress, log
        self.task = resolve_task(config.task)
        self.bf16 = use_bf16(config.precision)  # resolved once: every stage trains at the same precision
        self.reused: list[str] = []
        self.timings: dict[str, float] = {}
        self._context: TaskContext | None = None

    def context(self, directory: str | Path) -> TaskContext:
        """The fine-tuned teacher in ``directory`` with its tokenizer and the task's data: loaded once for
        the whole run and passed to every stage."""
        c = self.config
        settings = {"max_length": c.max_length, "data_dir": c.data_dir, "cache_dir": self.cache_dir}
        if self._context is None or not self._context.serves(directory, self.task, **settings):
            self._context = TaskContext.load(directory, self.task, option="max_length", **settings)
        return self._context

    def check(self) -> None:
        """Every option that can be checked before the long stages start."""
        s = self.config.search
        if s.strategy not in STRATEGIES:
            raise ConfigError(f"search.strategy = {s.strategy!r}: unknown (known: {', '.join(STRATEGIES)})")
        strategy = STRATEGIES[s.strategy]
        known = _search_fields() | set(strategy.Options.model_fields)
        unknown = sorted(set(s.options) - known)
        if unknown:
            raise ConfigError(
                f"search.options.{unknown[0]}: not an option of the search or of the {s.strategy} "
                f"strategy (known: {', '.join(sorted(known))})"
            )
        parse_options(strategy, _split_options(s.options)[1], where="search.options.")
        if strategy.spaceless is not None and s.space is not None:
            raise ConfigError(f"search.space: the {s.strategy} strategy takes no search space ({strategy.spaceless})")
        if s.time_budget is not None:
            parse_duration(s.time_budget)
        for name in ("params", "total_params", "flops", "latency"):
            value = getattr(self.config.budget, name)
            if _share(value, f"budget.{name}") is None and value is not None:
                _absolute(value, name)
        latency_device(self.config.budget.device, "budget.device")
        directory = model_directory(self.config.teacher.finetuned or self.config.teacher.model)
        if self.config.teacher.finetuned is not None:  # the run's teacher itself: loaded once, here
            spec = self.context(directory).spec
        else:
            spec = import_checkpoint(directory).spec
            load_tokenizer(directory, spec)  # its files and vocabulary, before a teacher trains or scores on them
        self.check_max_length(directory, spec)
        self.check_baselines(spec)
        try:
            LossConfig.from_terms(self.config.finalists.losses)
        except (ValueError, ConfigError) as e:
            raise ConfigError(f"finalists.losses = {self.config.finalists.losses!r}: {e}") from None

    def check_max_length(self, directory: Path, spec: ArchSpec) -> None:
        """``max_length`` fits the positions of the teacher checkpoint (``spec``, read from ``directory``)
        and of the search space file's architectures: a longer input would stop training midway."""
        length = self.config.max_length
        check_max_length(length, spec, str(directory), f"max_positions in {directory / 'config.json'}", "max_length")
        if self.config.search.space is not None:
            space = SearchSpace.load(self.config.search.space)
            check_max_length(
                length,
                space.extreme(largest=True),
                "the search space's architectures",
                f"embeddings.max_positions in {self.config.search.space}",
                "max_length",
            )

    def check_baselines(self, spec: ArchSpec) -> None:
        """Every baseline names a preset or spec file whose positions fit ``max_length``, or is built-in
        and exists at the run's budget (its parameter and FLOPs bounds, resolved against the teacher
        checkpoint's own shape ``spec``)."""
        baselines = self.config.finalists.baselines
        for i, text in enumerate(baselines):
            if text not in BASELINES:
                check_max_length(
                    self.config.max_length,
                    _baseline(text, f"finalists.baselines[{i}]"),
                    f"finalists.baselines[{i}] {text!r}",
                    "its embeddings.max_positions",
                    "max_length",
                )
        if not any(text in BASELINES for text in baselines):
            return
        budget = self.absolute_budget(spec, teacher_latency=None)
        for i, text in enumerate(baselines):
            if text in BASELINES:
                self.built_in_baseline(text, spec, budget, f"finalists.baselines[{i}]")

    def built_in_baseline(self, name: str, teacher: ArchSpec, budget: dict, where: str) -> ArchSpec:
        try:
            return build(name, teacher, Budget.model_validate({k: v for k, v in budget.items() if k != "latency"}))
        except ValueError as e:
            shown = ", ".join(f"{k} {v}" for k, v in budget.items() if k not in ("batch", "seq_len", "device"))
            raise ConfigError(f"{where} = {name!r}: {e} (budget: {shown})") from None

    def stage(
        self,
        name: str,
        model: type[Out],
        identity: Any,
        extent: Any,
        body: Callable[[Stage], Out],
        keep: dict[str, str] | None = None,
    ) -> Out:
        """Stage ``name``'s outputs (a ``model``): those of its complete run with the same key, else
        those of ``body``, which runs it."""
        stage = Stage(self.run_dir, name, identity, extent, keep)
        outputs = stage.done(model)
        if outputs is not None:
            self.reused.append(name)
            self.log(f"[{name}] reused (inputs unchanged)")
            return outputs.model_copy(update={"key": stage.key})
        resumed = stage.begin()
        self.log(f"[{name}] {'resuming' if resumed else 'running'}")
        start = time.perf_counter()
        with PeakMemory() as peak:
            outputs = body(stage).model_copy(update={"key": stage.key})
        self.timings[name] = time.perf_counter() - start
        release_memory()
        return stage.finish(outputs, self.timings[name], peak)

    # ---- teacher ----------------------------------------------------------------------------------
    def teacher_inputs(self) -> dict:
        """The teacher stage's identity: its settings, the task and data, and the checkpoint's files."""
        c = self.config
        if c.teacher.finetuned is not None:
            files = _files(Path(c.teacher.finetuned), "teacher.finetuned")
        else:
            files = _files(model_directory(c.teacher.model), "teacher.model")
        return {
            "teacher": c.teacher.model_dump(mode="json"),
            "task": self.task.name,
            "labels": self.task.labels,
            "data_dir": str(c.data_dir),
            "max_length": c.max_length,
            "seed": c.seed,
            "files": files,
            "bf16": self.bf16,
        }  # every later stage's key holds the teacher's, hence the precision too

    def teacher(self, stage: Stage) -> TeacherOutputs:
        c = self.config
        if c.teacher.finetuned is not None:
            directory, metrics = Path(c.teacher.finetuned), None
        else:
            t = c.teacher
            result = finetune_teacher(
                t.model,
                self.task,
                data_dir=c.data_dir,
                max_length=c.max_length,
                config=TrainConfig(
                    epochs=t.epochs,
                    steps=t.steps,
                    lr=t.lr,
                    warmup=t.warmup,
                    batch_size=t.batch_size,
                    seed=c.seed,
                    bf16=self.bf16,
                ),
                cache_dir=self.cache_dir,
                progress=self.progress,
                min_steps=t.min_steps,
                patience=t.patience,
            )
            directory, metrics = result.directory, result.metrics
        context = self.context(directory)
        spec, data = context.spec, context.data()
        if metrics is None:  # a fine-tuned teacher given as it is
            metrics = {"dev": evaluate(context.model, data, "dev")}
            if data.labeled("test"):
                metrics["test"] = evaluate(context.model, data, "test", dev=metrics["dev"])
        self.log(f"[teacher] {directory}: {_metrics(metrics)}")
        constant = {
            split: constant_levels(self.task, data.splits[split].gold)
            for split in ("dev", "test")
            if data.labeled(split)
        }
        return TeacherOutputs(
            directory=str(Path(directory).resolve()),
            metrics=metrics,
            constant=constant,
            spec=spec.to_dict(),
            summary=spec.summary(),
            params=encoder_params(spec),
            total_params=params(spec),
            flops=flops(spec, c.budget.seq_len),
            precision="bf16" if self.bf16 else "fp32",
        )

    def gate_teacher(self, teacher: TeacherOutputs) -> None:
        """Stop when the teacher is no better on dev than a constant predictor: nothing can be
        distilled from it (``quality.accept_weak`` goes on anyway)."""
        q, metric = self.config.quality, self.task.main_metric
        dev, level = teacher.metrics["dev"][metric], teacher.constant.get("dev", {}).get(metric)
        if level is None:
            return
        if not at_constant_level(dev, level, q.constant_margin):
            return
        message = (
            f"the teacher scores dev {metric} {100 * dev:.2f}, the level of a constant predictor "
            f"({100 * level:.2f}, the same answer for every input): a student distilled from it would learn "
            f"nothing. Try a longer fine-tuning (teacher.epochs, teacher.min_steps), another learning rate "
            f"(teacher.lr) or another checkpoint (teacher.model); --accept-weak goes on anyway"
        )
        if q.accept_weak:
            self.log(f"[teacher] warning: {message}")
            return
        raise WeakModelError(message)

    # ---- search -----------------------------------------------------------------------------------
    def search_inputs(self, teacher: TeacherOutputs) -> dict:
        c = self.config
        s = c.search.model_dump(mode="json", exclude={"trials", "time_budget"})
        if c.search.space is not None:
            s["space"] = _files(Path(c.search.space), "search.space")
        return {
            "teacher": teacher.key,
            "search": s,
            "budget": c.budget.model_dump(mode="json"),
            "seed": c.seed,
            "max_length": c.max_length,
        }

    def search_extent(self) -> list:
        return [self.config.search.trials, self.config.search.time_budget]

    def search(self, stage: Stage, teacher: TeacherOutputs) -> SearchOutputs:
        c, s = self.config, self.config.search
        spec = ArchSpec.from_dict(teacher.spec)
        budget, teacher_latency = self.resolve_budget(spec, stage)
        space = s.space
        if space is None and STRATEGIES[s.strategy].spaceless is None:
            space = stage.dir / SPACE
            if not space.is_file():
                atomic_write_text(space, default_space(spec))
        general, options = _split_options(s.options)
        settings = SearchSettings(
            space=space,
            teacher=Path(teacher.directory),
            task=c.task,
            run_dir=stage.dir,
            strategy=s.strategy,
            budget=",".join(f"{k}={v}" for k, v in budget.items()),
            objectives=tuple(s.objectives),
            evaluator=s.evaluator,
            trials=s.trials,
            supernet_steps=s.supernet_steps,
            supernet_lr=s.supernet_lr,
            eval_steps=s.eval_steps,
            time_budget=parse_duration(s.time_budget) if s.time_budget else None,
            data_dir=c.data_dir,
            max_length=c.max_length,
            cache_dir=self.cache_dir,
            seed=c.seed,
            bf16=self.bf16,
            progress=self.progress,
            **general,
            options=options,
        )
        result = run_search_job(settings, self.context(teacher.directory))
        self.log(
            f"[search] {result.evaluated} evaluated, {result.infeasible} over budget, {result.duplicates} repeats, "
            f"{result.failed} failed; front of {len(result.front)}"
            + (f"; stopped: {result.stopped}" if result.stopped else "")
        )
        if not result.front:
            raise ConfigError(
                "search: no architecture within the budget was evaluated; loosen budget.* or give the "
                "search more trials"
            )
        return SearchOutputs(
            budget=budget,
            teacher_latency_ms=teacher_latency,
            evaluated=result.evaluated,
            infeasible=result.infeasible,
            duplicates=result.duplicates,
            failed=result.failed,
            stopped=result.stopped,
            metric=self.task.main_metric,
            objectives=list(settings.objectives),
            evaluator=settings.evaluator,
            front=[
                FrontPoint(
                    trial=p.number,
                    values=list(p.values),
                    spec=p.spec,
                    summary=p.summary,
                    costs=p.costs,
                    metrics=p.metrics,
                )
                for p in result.front
            ],
        )

    def resolve_budget(self, teacher: ArchSpec, stage: Stage) -> tuple[dict[str, Any], float | None]:
        """The budget in absolute figures (shares of the teacher's costs resolved) and the teacher's
        latency when a share of it was asked for (measured once, kept in the stage)."""
        b = self.config.budget
        latency = None
        if _share(b.latency, "budget.latency") is not None:
            latency = _cached(
                stage.dir / TEACHER_LATENCY,
                lambda: measure_latency(
                    teacher, batch=b.batch, seq_len=b.seq_len, repeats=self.config.latency_repeats, device=b.device
                ),
            )
        return self.absolute_budget(teacher, latency), latency

    def absolute_budget(self, teacher: ArchSpec, teacher_latency: float | None) -> dict[str, Any]:
        """The budget with its shares of the teacher's costs resolved; a latency share only with the
        teacher's measured ``teacher_latency`` (left out without it)."""
        b = self.config.budget
        out: dict[str, Any] = {"batch": b.batch, "seq_len": b.seq_len, "device": b.device}
        for name, whole in (
            ("params", lambda: encoder_params(teacher)),
            ("total_params", lambda: params(teacher)),
            ("flops", lambda: flops(teacher, b.seq_len)),
            ("latency", None),
        ):
            value = getattr(b, name)
            share = _share(value, f"budget.{name}")
            if value is None:
                continue
            if share is None:
                out[name] = value
            elif name == "latency":
                if teacher_latency is not None:
                    out[name] = f"{share * teacher_latency:.3f}ms"
            else:
                out[name] = int(share * whole())
        return out

    # ---- finalists --------------------------------------------------------------------------------
    def finalists(self, stage: Stage, teacher: TeacherOutputs, search: SearchOutputs) -> FinalistsOutputs:
        c, f = self.config, self.config.finalists
        metric = self.task.main_metric
        level = teacher.constant.get("dev", {}).get(metric)
        front, degenerate = pick_finalists(search.front, f.count, level, c.quality.constant_margin)
        if degenerate:
            self.log(
                f"[finalists] warning: every front architecture scored at the level of a constant predictor "
                f"({100 * level:.2f}) in the search; the largest within the budget go first"
            )
        planned = [
            {
                "name": f"finalist-{i + 1}-t{p.trial}",
                "kind": "finalist",
                "spec": p.spec,
                "search_value": p.values[0],
                "trial": p.trial,
            }
            for i, p in enumerate(front)
        ]
        teacher_spec = ArchSpec.from_dict(teacher.spec)
        for i, text in enumerate(f.baselines):
            where = f"finalists.baselines[{i}]"
            spec = (
                self.built_in_baseline(text, teacher_spec, search.budget, where)
                if text in BASELINES
                else _baseline(text, where)
            )
            planned.append(
                {
                    "name": f"baseline-{i + 1}-{Path(text).stem}",
                    "kind": "baseline",
                    "spec": spec.to_dict(),
                    "source": text,
                }
            )
        config = finalist_schedule(f, c.seed, self._train_size(teacher), bf16=self.bf16)
        losses = LossConfig.from_terms(f.losses, attention_layers=f.attention_layers)
        distilled = []
        for n, entry in enumerate(planned, 1):
            spec = ArchSpec.from_dict(entry["spec"])
            run_dir = stage.dir / entry["name"]
            self.log(f"[finalists] {n}/{len(planned)} {entry['name']}: {spec.summary()}")
            if not (run_dir / DISTILLED).is_file():
                distill_on_task(
                    spec,
                    teacher.directory,
                    self.task,
                    losses=losses,
                    config=config,
                    run_dir=run_dir,
                    data_dir=c.data_dir,
                    init_from_teacher=f.init == "teacher",
                    max_length=c.max_length,
                    resume=True,
                    cache_dir=self.cache_dir,
                    progress=self.progress,
                    context=self.context(teacher.directory),
                )
            release_memory()
            result = json.loads((run_dir / DISTILLED).read_text(encoding="utf-8"))
            distilled.append(
                entry
                | {
                    "model_dir": str(run_dir / "model"),
                    "metrics": result["metrics"],
                    "steps": result["steps"],
                    "best_step": result["best_step"],
                    "data": result["data"],
                }
            )
        entries = self._costs(distilled, teacher, search.budget)
        within = [e for e in entries if not e.violations]
        if not within:
            raise ConfigError("finalists: none is within the budget")
        chosen = choose(within, metric, level, c.quality.constant_margin)
        self.log(
            f"[finalists] chosen: {chosen.name} ({chosen.summary}), dev {metric} {chosen.metrics['dev'][metric]:.4f}"
        )
        return FinalistsOutputs(entries=entries, chosen=chosen.name, teacher_latency_ms=self._teacher_latency)

    def _train_size(self, teacher: TeacherOutputs) -> int:
        """Examples in the task's train split (from the tokenized cache)."""
        return len(self.context(teacher.directory).data().splits["train"])

    def _costs(self, distilled: list[dict], teacher: TeacherOutputs, budget: dict) -> list[FinalistEntry]:
        """The ``distilled`` models as entries with their parameters, FLOPs and latency, the teacher's
        latency measured in the same process, interleaved (rounds of teacher, then each model), medians
        over the rounds."""
        b = self.config.budget
        models = {"teacher": self.context(teacher.directory).model}
        models |= {e["name"]: import_checkpoint(e["model_dir"]).model for e in distilled}
        rounds: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(3):
            for name, model in models.items():
                timing = measure_inference(
                    model,
                    model.encoder.spec.embeddings.vocab_size,
                    batch=b.batch,
                    seq_len=b.seq_len,
                    repeats=max(1, self.config.latency_repeats // 3),
                    device=b.device,
                )
                rounds[name].append(timing.median * 1e3)
        latency = {name: statistics.median(ms) for name, ms in rounds.items()}
        self._teacher_latency = latency["teacher"]
        limits = Budget.model_validate(budget)
        entries = []
        for e in distilled:
            spec = ArchSpec.from_dict(e["spec"])
            entries.append(
                FinalistEntry(
                    **e,
                    params=encoder_params(spec),
                    total_params=params(spec),
                    flops=flops(spec, b.seq_len),
                    latency_ms=latency[e["name"]],
                    summary=spec.summary(),
                    violations=limits.violations(spec, latency_ms=latency[e["name"]]),
                )
            )
        return entries

    # ---- export -----------------------------------------------------------------------------------
    def judge(self, teacher: TeacherOutputs, finalists: FinalistsOutputs) -> Verdict:
        """The quality gate on the chosen model (``quality`` settings)."""
        q = self.config.quality
        return judge(
            finalists.chosen_entry().dump(),
            [e.dump() for e in finalists.entries],
            teacher.dump(),
            teacher.constant,
            self.task.main_metric,
            max_drop=q.max_drop,
            margin=q.constant_margin,
        )

    def export(
        self, stage: Stage, teacher: TeacherOutputs, finalists: FinalistsOutputs, verdict: Verdict
    ) -> ExportOutputs:
        chosen = finalists.chosen_entry()
        info = write_export(
            Path(chosen.model_dir),
            stage.dir / EXPORTED,
            chosen=chosen,
            teacher=teacher,
            finalists=finalists,
            config=self.config,
            verdict=verdict,
            log=self.log,
            labels=self.task.labels,
            deploy=lambda directory: self._deployment(directory, teacher, chosen),
        )
        return ExportOutputs.model_validate(info)

    def _deployment(self, directory: Path, teacher: TeacherOutputs, chosen: FinalistEntry) -> dict:
        """``deployment.assess`` of the export in ``directory`` on the run's own data and evaluation."""
        context = self.context(teacher.directory)
        return assess(
            directory,
            context.model,
            context.data(),
            chosen.metrics,
            self.task.main_metric,
            max_drop=self.config.export.int8_max_drop,
            seq_len=self.config.budget.seq_len,
        )


def finalist_schedule(finalists: FinalistsConfig, seed: int, train_size: int, *, bf16: bool = False) -> TrainConfig:
    """The training settings of every finalist and baseline of a run: ``finalists.*``, with a small
    task's extra epochs and early stopping (``fitted_schedule``) for a train split of ``train_size``,
    under bf16 autocast when ``bf16``. ``bench/`` distils with it too, so that its students train
    exactly as the run's."""
    f = finalists
    return fitted_schedule(
        TrainConfig(
            epochs=f.epochs, steps=f.steps, lr=f.lr, batch_size=f.batch_size, warmup=f.warmup, seed=seed, bf16=bf16
        ),
        train_size,
        f.min_steps,
        f.patience,
    )


def pick_finalists(
    front: list[FrontPoint], count: int, level: float | None, margin: float
) -> tuple[list[FrontPoint], bool]:
    """The ``count`` best front points by search score (the cheaper first among equals), and whether the
    search was degenerate: every score at a constant predictor's ``level``, where a smaller architecture
    is no win and the largest go first."""
    degenerate = level is not None and all(at_constant_level(p.values[0], level, margin) for p in front)
    order = (lambda p: -p.costs["params"]) if degenerate else (lambda p: (-p.values[0], p.costs["params"]))
    return sorted(front, key=order)[:count], degenerate


def choose(within: list[FinalistEntry], metric: str, level: float | None, margin: float) -> FinalistEntry:
    """The distilled model with the best dev metric; among equals the cheaper one, unless the best is at
    a constant predictor's ``level`` (the quality gate then fails the run), where the larger one is kept."""
    best = max(e.metrics["dev"][metric] for e in within)
    degenerate = level is not None and at_constant_level(best, level, margin)
    return max(within, key=lambda e: (e.metrics["dev"][metric], e.params if degenerate else -e.params))


def default_space(teacher: ArchSpec) -> str:
    """The search space around the teacher (YAML): every depth from 1, hidden sizes and FFN sizes in
    eighths of the teacher's, any number of its heads at its head size; one shape for all layers."""
    first = teacher.layers[0]

    def eighths(n: int) -> dict:
        step = max(1, n // 8)
        return {"min": step, "max": n, "step": step}

    heads = max(la.attention.heads for la in teacher.layers)
    return (
        json.dumps(
            {
                "depth": {"min": 1, "max": teacher.num_layers},
                "hidden": eighths(teacher.hidden),
                "per_layer": False,
                "layer": {
                    "heads": list(range(1, heads + 1)),
                    "qk_dim": [first.attention.qk_dim],
                    "v_dim": [first.attention.v_dim],
                    "ffn": eighths(max(la.ffn.size for la in teacher.layers)),
                    "activation": [first.ffn.activation],
                },
                "embeddings": teacher.embeddings.model_dump(mode="json"),
                "embedding_size": [teacher.embeddings.size],
                **teacher.inherited(),
            },
            indent=1,
        )
        + "\n"
    )


def _search_fields() -> set[str]:
    """The ``bertsmith search`` settings that ``search.options`` may set (the rest are the strategy's)."""
    return {f.name for f in fields(SearchSettings)} - CONTROLLED


def _split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``search.options`` as (search settings, the strategy's own options)."""
    general = _search_fields()
    return ({k: v for k, v in options.items() if k in general}, {k: v for k, v in options.items() if k not in general})


def _share(value: str | None, where: str) -> float | None:
    """``25%`` → 0.25; an absolute figure → None; a bad share is a ConfigError naming ``where``."""
    if value is None or not value.strip().endswith("%"):
        return None
    try:
        share = float(value.strip()[:-1]) / 100
    except ValueError:
        raise ConfigError(f"{where} = {value!r}: a share is a number followed by %, e.g. 25%") from None
    if not 0 < share:
        raise ConfigError(f"{where} = {value!r}: a share must be above 0 %")
    return share


def _absolute(value: str, name: str) -> None:
    """An absolute budget figure (``2.5M``, ``10ms``), else a ConfigError naming ``budget.<name>``."""
    try:
        (parse_ms if name == "latency" else parse_count)(value)
    except ValueError as e:
        raise ConfigError(f"budget.{name} = {value!r}: {e}, or a share such as 25%") from None


def _baseline(text: str, where: str) -> ArchSpec:
    try:
        return presets.resolve(text)
    except SpecError as e:
        raise ConfigError(f"{where} = {text!r}: {e}") from None


def _files(path: Path, where: str) -> str:
    """A digest of a file's or a directory's contents (``where``: the config key, for the error)."""
    if not path.exists():
        raise ConfigError(f"{where} = {str(path)!r}: no such file or directory")
    return path_digest(path)


def _cached(path: Path, compute: Callable[[], float]) -> float:
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))["value"]
    value = compute()
    atomic_write_text(path, json.dumps({"value": value}))
    return value


def _metrics(metrics: dict) -> str:
    return "; ".join(f"{split} " + ", ".join(f"{k} {v:.4f}" for k, v in m.items()) for split, m in metrics.items())
