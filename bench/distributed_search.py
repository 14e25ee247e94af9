"""Search throughput with 1 and 2 workers on one PostgreSQL study, and the database's overhead per trial.

    .venv/bin/bertsmith teacher --task rotten-tomatoes --epochs 1        # the teacher (cached), prints its directory
    .venv/bin/python bench/distributed_search.py --teacher TEACHER_DIR --work /tmp/bench-workers

A throwaway PostgreSQL server on loopback (``tests/postgres.py``) holds the studies. The search space is
the one `bertsmith run` searches around the teacher, scored by the slice evaluator on the task's dev
split; the supernet is trained once beforehand (``--supernet-only``) into a directory that every worker
reads. Then:

1. **Throughput**: `bertsmith search` workers (real processes) evaluate ``--trials`` architectures of one
   study, first with 1 worker (``OMP_NUM_THREADS=2``: both cores), then with 2 concurrent workers on a new
   study (``OMP_NUM_THREADS=1`` each). Trials per minute count evaluated architectures over the wall time
   from the first trial's start to the last trial's end (read from the database, so process start-up and
   the model loading before the first trial are left out; they are recorded apart).
2. **Database overhead per trial**: the search loop (NSGA-II proposals, costing, recording, result files)
   with an evaluator that returns at once, ``--overhead-trials`` evaluated architectures in one process,
   once on PostgreSQL and once on a sqlite file. The time spent inside the storage (every call into
   Optuna's ``RDBStorage``, timed by wrapping its methods; nested calls counted once) per trial is the
   database's overhead; the loop's whole wall time per trial is recorded next to it, and both are set
   against a trial's evaluation time from part 1.

Figures go to ``bench/results/distributed_search.json``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.postgres import postgres_server  # noqa: E402


def search_args(args: argparse.Namespace, space: Path, url: str, study: str, worker: int) -> list[str]:
    return [
        str(Path(sys.executable).with_name("bertsmith")),
        "search",
        "--space",
        str(space),
        "--teacher",
        str(args.teacher),
        "--task",
        args.task,
        "--supernet",
        str(args.work / "supernet"),
        "--supernet-steps",
        str(args.supernet_steps),
        "--trials",
        str(args.trials),
        "--storage",
        url,
        "--study-name",
        study,
        "--worker",
        str(worker),
        "--out",
        str(args.work / study),
        "--quiet",
    ]


def run_workers(args: argparse.Namespace, space: Path, url: str, study: str, workers: int) -> dict:
    """``workers`` concurrent search processes on one study; figures read back from the database."""
    import optuna
    from optuna.trial import TrialState

    threads = str(max(1, (os.cpu_count() or 2) // workers))
    env = os.environ | {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": threads}
    start = time.time()
    procs = [subprocess.Popen(search_args(args, space, url, study, k), env=env) for k in range(workers)]
    codes = [p.wait() for p in procs]
    wall = time.time() - start
    if any(codes):
        raise SystemExit(f"a worker failed: exit codes {codes}")
    trials = optuna.load_study(study_name=study, storage=url).get_trials()
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    evaluated = [t for t in done if t.user_attrs["feasible"] and t.user_attrs.get("duplicate_of") is None]
    first = min(t.datetime_start for t in done).timestamp()
    last = max(t.datetime_complete for t in done).timestamp()
    seconds = sum(t.user_attrs["seconds"] for t in evaluated)
    return {
        "workers": workers,
        "threads_per_worker": int(threads),
        "evaluated": len(evaluated),
        "trials_in_study": len(trials),
        "search_seconds": last - first,
        "wall_seconds": wall,
        "startup_seconds": first - start,
        "trials_per_minute": 60 * len(evaluated) / (last - first),
        "evaluation_seconds_per_trial": seconds / len(evaluated),
        "per_worker": {str(k): sum(t.user_attrs["worker"] == k for t in evaluated) for k in range(workers)},
    }


@contextmanager
def timed_storage() -> Iterator[dict]:
    """Seconds spent inside ``RDBStorage`` (outermost calls per thread) and the number of such calls."""
    from optuna.storages import RDBStorage

    totals, depth = {"seconds": 0.0, "calls": 0}, threading.local()
    originals = {
        name: fn for name, fn in vars(RDBStorage).items() if inspect.isfunction(fn) and not name.startswith("__")
    }

    def timed(fn):
        def wrapper(*args, **kwargs):
            outer = getattr(depth, "n", 0) == 0
            depth.n = getattr(depth, "n", 0) + 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                depth.n -= 1
                if outer:
                    totals["seconds"] += time.perf_counter() - start
                    totals["calls"] += 1

        return wrapper

    for name, fn in originals.items():
        setattr(RDBStorage, name, timed(fn))
    try:
        yield totals
    finally:
        for name, fn in originals.items():
            setattr(RDBStorage, name, fn)


def loop_overhead(url: str, space_yaml: str, trials: int, work: Path) -> dict:
    """Seconds per trial of the search loop, and of its storage calls, with an evaluator that returns
    at once."""
    from bertsmith.search.costs import CostModel
    from bertsmith.search.evaluators import Evaluation, Evaluator
    from bertsmith.search.loop import run_search
    from bertsmith.search.space import SearchSpace

    class Instant(Evaluator):
        name, metric = "instant", "score"

        def evaluate(self, spec, workdir):
            return Evaluation({"score": 1.0 / spec.num_layers}, 0.0)

        def fingerprint(self):
            return {"kind": self.name}

    space = SearchSpace.from_dict(json.loads(space_yaml))
    with timed_storage() as storage:
        start = time.perf_counter()
        result = run_search(
            space, Instant(), CostModel(space.budget), run_dir=work, trials=trials, storage=url, study_name="overhead"
        )
        wall = time.perf_counter() - start
    asked = len(result.study.get_trials())
    return {
        "trials": asked,
        "evaluated": result.evaluated,
        "seconds": wall,
        "ms_per_trial": 1000 * wall / asked,
        "storage_seconds": storage["seconds"],
        "storage_calls_per_trial": storage["calls"] / asked,
        "storage_ms_per_trial": 1000 * storage["seconds"] / asked,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", type=Path, required=True, help="a fine-tuned task teacher directory")
    parser.add_argument("--task", default="rotten-tomatoes")
    parser.add_argument("--work", type=Path, required=True, help="scratch directory")
    parser.add_argument("--trials", type=int, default=24, help="evaluated architectures per study")
    parser.add_argument("--supernet-steps", type=int, default=100)
    parser.add_argument("--overhead-trials", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "distributed_search.json")
    args = parser.parse_args()

    from bertsmith.files import atomic_write_text
    from bertsmith.hf.checkpoint import import_checkpoint
    from bertsmith.pipeline import default_space

    args.work.mkdir(parents=True, exist_ok=True)
    space_yaml = default_space(import_checkpoint(args.teacher).spec)
    space = args.work / "space.yaml"
    space.write_text(space_yaml)
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    with postgres_server(args.work / "postgres") as server:
        url = server.url()
        t0 = time.perf_counter()
        subprocess.run(search_args(args, space, url, "supernet", 0) + ["--supernet-only"], env=env, check=True)
        supernet_seconds = time.perf_counter() - t0
        one = run_workers(args, space, url, "one-worker", 1)
        two = run_workers(args, space, url, "two-workers", 2)
        overhead_pg = loop_overhead(url, space_yaml, args.overhead_trials, args.work / "overhead-pg")
    overhead_sqlite = loop_overhead(
        f"sqlite:///{args.work / 'overhead.db'}", space_yaml, args.overhead_trials, args.work / "overhead-sqlite"
    )
    record = {
        "command": f"bench/distributed_search.py --teacher {args.teacher} --task {args.task} --trials {args.trials}",
        "cpus": os.cpu_count(),
        "supernet_seconds": supernet_seconds,
        "one_worker": one,
        "two_workers": two,
        "speedup_two_vs_one": two["trials_per_minute"] / one["trials_per_minute"],
        "loop_overhead": {"postgresql": overhead_pg, "sqlite": overhead_sqlite},
        "postgresql_storage_share_of_a_trial": overhead_pg["storage_ms_per_trial"]
        / 1000
        / one["evaluation_seconds_per_trial"],
        "loop_share_of_a_trial": overhead_pg["ms_per_trial"] / 1000 / one["evaluation_seconds_per_trial"],
    }
    atomic_write_text(args.out, json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
