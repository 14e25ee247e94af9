"""bertsmith from Python: load a fine-tuned teacher and its task once, then distil, search or run.

Each function is what the command of the same name does (``bertsmith distill``, ``bertsmith search``,
``bertsmith run``), with the teacher, its tokenizer and the task's data taken from one ``TaskContext``
instead of being read again by every call. Results are the typed objects the jobs return.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from .arch import ArchSpec
from .distill.context import TaskContext
from .distill.objectives import LossConfig
from .distill.student import DistillResult, distill_on_task
from .distill.teacher import model_directory
from .distill.trainer import TrainConfig
from .files import atomic_write_text, writable_dir
from .pipeline import RunResult, default_space, run_pipeline
from .presets import resolve as resolve_arch
from .rundir import SPACE
from .runconfig import RunConfig, load_config
from .search.job import SearchSettings, run_search_job
from .search.loop import SearchResult
from .search.strategies import STRATEGIES

__all__ = ["TaskContext", "load", "distill", "search", "run"]


def load(
    teacher: str | os.PathLike,
    task: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    max_length: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> TaskContext:
    """A fine-tuned task teacher (a checkpoint directory, e.g. ``bertsmith teacher``'s output) and a task
    (a built-in name or a task file), with the task's data read from ``data_dir`` and tokenized to
    ``max_length`` tokens (by default the task type's: 128, extractive QA 384)."""
    return TaskContext.load(
        model_directory(teacher), task, max_length=max_length, data_dir=data_dir, cache_dir=cache_dir
    )


def distill(
    context: TaskContext,
    arch: ArchSpec | str,
    out: str | os.PathLike,
    *,
    losses: str = "logits,hidden,attention",
    attention_layers: Literal["all", "last"] = "last",
    init_from_teacher: bool = True,
    train: TrainConfig | None = None,
    progress: bool = False,
) -> DistillResult:
    """Distil a student of shape ``arch`` (an ArchSpec, a preset name or a spec file) from the context's
    teacher into ``out`` (``out/model``: a Hugging Face directory), as ``bertsmith distill`` does
    (``attention_layers``: the attention term on every mapped layer pair or on the last only)."""
    spec = arch if isinstance(arch, ArchSpec) else resolve_arch(str(arch))
    return distill_on_task(
        spec,
        context.directory,
        context.task,
        losses=LossConfig.from_terms(losses, attention_layers=attention_layers),
        config=train or TrainConfig(),
        run_dir=out,
        data_dir=context.data_dir,
        init_from_teacher=init_from_teacher,
        max_length=context.max_length,
        cache_dir=context.cache_dir,
        progress=progress,
        context=context,
    )


def search(
    context: TaskContext,
    out: str | os.PathLike,
    *,
    space: str | os.PathLike | None = None,
    strategy: str = "nsga2",
    budget: str | None = None,
    trials: int = 50,
    progress: bool = False,
    **settings: Any,
) -> SearchResult:
    """Search architectures for the context's task into ``out``, as ``bertsmith search`` does; ``settings``
    are the other fields of ``bertsmith.search.job.SearchSettings`` (e.g. ``evaluator``, ``objectives``,
    ``options`` for the strategy's own). Without a ``space``, a strategy that needs one searches the space
    that ``bertsmith run`` cuts around the teacher (written to ``out/space.yaml``)."""
    known = STRATEGIES.get(strategy)
    if space is None and known is not None and known.spaceless is None:
        space = Path(out) / SPACE
        if not space.is_file():
            writable_dir(space.parent)
            atomic_write_text(space, default_space(context.spec))
    s = SearchSettings(
        space=Path(space) if space is not None else None,
        teacher=context.directory,
        task=context.source,
        run_dir=Path(out),
        strategy=strategy,
        budget=budget,
        trials=trials,
        data_dir=context.data_dir,
        max_length=context.max_length,
        cache_dir=context.cache_dir,
        progress=progress,
        **settings,
    )
    return run_search_job(s, context)


def run(
    config: RunConfig | str | os.PathLike,
    out: str | os.PathLike,
    *,
    force: bool = False,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> RunResult:
    """``bertsmith run``: every stage of the main job for a run config (a ``RunConfig`` or a YAML file),
    in the run directory ``out``; the run loads its teacher once and passes it down itself."""
    config = config if isinstance(config, RunConfig) else load_config(Path(config))
    return run_pipeline(
        config,
        Path(out),
        force=force,
        cache_dir=Path(cache_dir) if cache_dir else None,
        progress=progress,
        log=print if progress else lambda _: None,
    )
