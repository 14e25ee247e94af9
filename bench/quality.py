"""Does the main job pay off? `bertsmith run` against the obvious alternatives at the same budget and
the same distillation, on real data, several seeds.

    .venv/bin/python bench/quality.py run --work /tmp/quality --data-dir ../shared/data/glue \
        [--tasks rotten-tomatoes,sst2,mrpc,vader] [--budgets 25%,12.5%] [--seeds 0,1,2] [--device cpu]
    .venv/bin/python bench/quality.py summary --work /tmp/quality --data-dir ../shared/data/glue
        # -> bench/results/quality/summary.json and a markdown table

For each task the teacher (the PyPI MiniLM) is fine-tuned once, with `bertsmith run`'s own teacher
schedule and seed 0, and shared by every run of that task. Then for each budget (a share of the
teacher's non-embedding parameters) and seed, one `bertsmith run` (default settings otherwise; its
seed drives the search and every distillation) distils, with the same finalist settings:
- the search's finalist (the best architecture of its front by search score),
- **uniform**: every dimension of the teacher scaled by one factor, the largest within the budget,
- **layers**: the deepest evenly spaced teacher layers within the budget, at full width (left out, and
  reported as not fitting, where not even one of the teacher's layers fits the budget),
and the run's chosen model is the best of them on dev. Test only reports. The run directories stay in
WORK (teachers and tokenized data in the usual cache, `$BERTSMITH_CACHE`; rerun the same command to continue: finished runs are skipped, an interrupted one resumes).

Tasks (data prepared in WORK/tasks as JSONL files with a task YAML):
- `rotten-tomatoes`: built in (10,248 / 1,280 / 1,280).
- `sst2`: a fixed subset of SST-2's train split, the first 10,000 rows of
  `numpy.random.default_rng(0).permutation(67349)` in file order (the whole split is 2,105 steps an
  epoch, too long for three arms × seeds on 2 cores); dev 872; test `test-labeled.tsv` (1,821).
- `mrpc`: the GLUE test split has no labels, so the official dev split (408 pairs) is the test split
  and a dev split of 408 pairs is carved from train (the first 408 of `default_rng(0).permutation(3668)`;
  train keeps the other 3,260).
- `vader`: a regression task, the 5,190 New York Times editorial snippets rated -4..+4 by human judges
  (`nytEditorialSnippets_GroundTruth.txt` in `additional_resources/hutto_ICWSM_2014.tar.gz` of the
  `vaderSentiment==3.3.2` source distribution, fetched from PyPI); by `default_rng(0).permutation(n)`:
  test the first 10 %, dev the next 10 %, train the rest; Pearson and Spearman correlation.
- Any other GLUE-style task YAML file or built-in name passed in `--tasks` runs as it is.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "quality"
ARMS = ("teacher", "chosen", "search", "uniform", "layers")
SST2_TRAIN = 10_000


# ---- tasks ---------------------------------------------------------------------------------------
def _glue_rows(path: Path) -> list[dict]:
    """A GLUE TSV file as dicts (quoting disabled, a BOM dropped)."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def _write_task(
    folder: Path, name: str, splits: dict[str, list[dict]], text_columns: list[str], label: str, **extra
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        with (folder / f"{split}.jsonl").open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    task = {
        "name": name,
        "files": {s: f"{s}.jsonl" for s in splits},
        "text_columns": text_columns,
        "label_column": label,
        **extra,
    }
    (folder / "task.yaml").write_text(yaml.safe_dump(task, sort_keys=False), encoding="utf-8")
    return folder / "task.yaml"


def prepare_sst2(glue: Path, out: Path, rows: int = SST2_TRAIN, name: str = "sst2-10k") -> Path:
    """SST-2 with the first ``rows`` of train in ``default_rng(0).permutation`` order (file order kept)."""
    train = _glue_rows(glue / "SST-2" / "train.tsv")
    keep = sorted(np.random.default_rng(0).permutation(len(train))[:rows])
    splits = {
        "train": [train[i] for i in keep],
        "dev": _glue_rows(glue / "SST-2" / "dev.tsv"),
        "test": _glue_rows(glue / "SST-2" / "test-labeled.tsv"),
    }
    splits = {s: [{"sentence": r["sentence"], "label": int(r["label"])} for r in rs] for s, rs in splits.items()}
    return _write_task(out, name, splits, ["sentence"], "label", labels=[0, 1], metrics=["accuracy"])


def prepare_mrpc(glue: Path, out: Path) -> Path:
    def pairs(rows: list[dict]) -> list[dict]:
        return [{"sentence1": r["#1 String"], "sentence2": r["#2 String"], "label": int(r["Quality"])} for r in rows]

    train = pairs(_glue_rows(glue / "MRPC" / "train.tsv"))
    order = np.random.default_rng(0).permutation(len(train))
    dev = set(order[:408].tolist())
    rows = {
        "train": [r for i, r in enumerate(train) if i not in dev],
        "dev": [r for i, r in enumerate(train) if i in dev],
        "test": pairs(_glue_rows(glue / "MRPC" / "dev.tsv")),
    }
    return _write_task(
        out, "mrpc-carved", rows, ["sentence1", "sentence2"], "label", labels=[0, 1], metrics=["f1", "accuracy"]
    )


def prepare_vader(out: Path) -> Path:
    sdist = out / "download"
    if not list(sdist.glob("vaderSentiment-3.3.2.tar.gz")):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--no-binary",
                ":all:",
                "vaderSentiment==3.3.2",
                "-d",
                str(sdist),
            ],
            check=True,
        )
    with tarfile.open(sdist / "vaderSentiment-3.3.2.tar.gz") as outer:
        inner = outer.extractfile("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz")
        with tarfile.open(fileobj=inner) as resources:
            raw = resources.extractfile("hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt").read()
    rows = []
    for line in raw.decode("utf-8", errors="strict").splitlines():
        if line.strip():
            ident, score, text = line.split("\t", 2)
            rows.append({"id": ident, "text": text.strip(), "score": float(score)})
    order = np.random.default_rng(0).permutation(len(rows))
    tenth = len(rows) // 10
    test, dev = set(order[:tenth].tolist()), set(order[tenth : 2 * tenth].tolist())
    splits = {
        "train": [r for i, r in enumerate(rows) if i not in test and i not in dev],
        "dev": [r for i, r in enumerate(rows) if i in dev],
        "test": [r for i, r in enumerate(rows) if i in test],
    }
    return _write_task(out, "vader-nyt", splits, ["text"], "score", type="regression", metrics=["pearson", "spearmanr"])


def task_reference(name: str, work: Path, glue: Path | None) -> str:
    """The task as `bertsmith run` takes it (a built-in name or a task YAML), prepared once."""
    folder = work / "tasks" / name
    if (folder / "task.yaml").is_file():
        return str(folder / "task.yaml")
    if name in ("sst2", "mrpc") and glue is None:
        raise SystemExit(f"{name}: pass --data-dir with the GLUE directory")
    prepare = {
        "sst2": lambda: prepare_sst2(glue, folder),
        "mrpc": lambda: prepare_mrpc(glue, folder),
        "vader": lambda: prepare_vader(folder),
    }.get(name)
    return str(prepare()) if prepare else name


# ---- runs ----------------------------------------------------------------------------------------
def measured(command: list[str], env: dict) -> tuple[str, float, float]:
    """Run ``command`` (check its exit code): its stdout, wall seconds and peak resident memory in GB."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, command)
    return out, time.perf_counter() - start, usage.ru_maxrss / 2**20


def teacher_for(task: str, work: Path, env: dict, model: str | None = None, label: str = "") -> dict:
    """The task's teacher (``model``, by default the run's), fine-tuned once with the run's own teacher
    settings and seed 0: its record (kept in WORK/teachers/[LABEL/]TASK/teacher.json), which holds the
    directory, the dev and test metrics, and the fine-tuning's wall seconds and peak resident memory."""
    name = Path(task).parent.name if task.endswith(".yaml") else task
    record = work / "teachers" / label / name / "teacher.json"
    if record.is_file():
        return json.loads(record.read_text())
    code = f"""
import json, sys
from bertsmith.data import resolve_task
from bertsmith.distill.teacher import finetune_teacher
from bertsmith.distill.trainer import TrainConfig
from bertsmith.runconfig import RunConfig
t = RunConfig().teacher
r = finetune_teacher({model!r} or t.model, resolve_task({task!r}), config=TrainConfig(epochs=t.epochs, lr=t.lr,
                     warmup=t.warmup, batch_size=t.batch_size, seed=0), min_steps=t.min_steps, patience=t.patience,
                     progress=False)
print(json.dumps({{"directory": str(r.directory), "metrics": r.metrics}}))
"""
    out, seconds, peak = measured([sys.executable, "-c", code], env)
    found = json.loads(out.strip().splitlines()[-1]) | {"seconds": seconds, "peak_rss_gb": peak}
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(found) + "\n")
    return found


def budget_name(share: str) -> str:
    return {"25%": "quarter", "12.5%": "eighth"}.get(share, share.replace("%", "pct"))


def fitting_baselines(teacher: str, share: str | int) -> list[str]:
    """The baselines that ``bertsmith run`` can build within ``share`` of the teacher's non-embedding
    parameters (or that many of them, given a count; ``layers`` needs one whole teacher layer within
    it), by the run's own rule."""
    from bertsmith.baselines import BASELINES, build
    from bertsmith.cost import encoder_params
    from bertsmith.hf import import_checkpoint
    from bertsmith.search.budget import Budget

    spec = import_checkpoint(teacher).spec
    limit = share if isinstance(share, int) else int(float(share.rstrip("%")) / 100 * encoder_params(spec))
    budget = Budget(params=limit)
    fitting = []
    for name in BASELINES:
        try:
            build(name, spec, budget)
        except ValueError:
            continue
        fitting.append(name)
    return fitting


def run_one(task: str, teacher: str, share: str | int, seed: int, out: Path, env: dict) -> tuple[Path, dict | None]:
    """`bertsmith run` of ``task`` from the fine-tuned ``teacher`` within ``share`` (or a count) of its
    non-embedding parameters, into ``out`` unless it finished there before: its results.json, and the
    process's wall seconds and peak RSS (None when the finished run was reused)."""
    config = {
        "task": task,
        "seed": seed,
        "teacher": {"finetuned": teacher},
        "budget": {"params": share},
        "finalists": {"baselines": fitting_baselines(teacher, share)},
        "quality": {"accept_weak": True},
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    process = None
    if not (out / "results.json").is_file():
        bertsmith = Path(sys.executable).with_name("bertsmith")
        printed, seconds, peak = measured([str(bertsmith), "run", str(path), "--out", str(out), "--quiet"], env)
        print(printed, end="", flush=True)
        process = {"wall_seconds": seconds, "peak_rss_gb": peak}
    return out / "results.json", process


def arms(results: dict) -> dict[str, dict]:
    """Each arm's metrics and costs from a run's results.json (None: the arm did not fit the budget)."""
    entries = results["finalists"]
    metric = results["metric"]
    search = max((e for e in entries if e["kind"] == "finalist"), key=lambda e: e["metrics"]["dev"][metric])
    pick = {
        "search": search,
        "chosen": results["chosen"],
        "uniform": next(e for e in entries if e.get("source") == "uniform"),
        "layers": next((e for e in entries if e.get("source") == "layers"), None),
        "teacher": results["teacher"],
    }
    teacher_ms = results["teacher"]["latency_ms"]
    return {
        name: {
            "name": e.get("name", "teacher"),
            "summary": e["summary"],
            "params": e["params"],
            "latency_ms": e["latency_ms"],
            "speedup": teacher_ms / e["latency_ms"],
            "metrics": e["metrics"],
            "violations": e.get("violations", []),
        }
        if e is not None
        else None
        for name, e in pick.items()
    }


def command_run(args: argparse.Namespace) -> None:
    env = os.environ | {"HF_HUB_OFFLINE": "1"}  # teachers and tokens: the usual cache ($BERTSMITH_CACHE)
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    for name in args.tasks.split(","):
        task = task_reference(name, args.work, args.data_dir)
        teacher = teacher_for(task, args.work, env)["directory"]
        for share in args.budgets.split(","):
            for seed in map(int, args.seeds.split(",")):
                out = args.work / "runs" / name / budget_name(share) / f"s{seed}"
                print(f"[quality] {name} {share} seed {seed}: {out}", flush=True)
                path, _ = run_one(task, teacher, share, seed, out, env)
                results = json.loads(path.read_text())
                record = {
                    "task": name,
                    "budget": share,
                    "seed": seed,
                    "run_dir": str(out),
                    "metric": results["metric"],
                    "device": args.device,
                    "arms": arms(results),
                    "constant": results["teacher"].get("constant"),
                    "quality": results.get("quality"),
                }
                RESULTS.mkdir(parents=True, exist_ok=True)
                (RESULTS / f"{name}-{budget_name(share)}-s{seed}.json").write_text(json.dumps(record, indent=1) + "\n")


# ---- summary -------------------------------------------------------------------------------------
def _mean_sd(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else None,
        "values": values,
    }


def constant_for(task: str, work: Path | None, glue: Path | None) -> dict[str, dict[str, float]]:
    """A constant predictor's level on the task's dev and test labels (see bertsmith.quality)."""
    from bertsmith.data.sources import load_split
    from bertsmith.data.tasks import resolve_task
    from bertsmith.quality import constant_levels

    if work is None:
        raise SystemExit(f"{task}: the records hold no constant levels; pass --work (and --data-dir) to compute them")
    t = resolve_task(task_reference(task, work, glue))
    return {split: constant_levels(t, load_split(t, split).labels) for split in ("dev", "test")}


def command_summary(args: argparse.Namespace) -> None:
    from bertsmith.runconfig import RunConfig

    margin = RunConfig().quality.constant_margin
    groups: dict[tuple[str, str], list[dict]] = {}
    for path in sorted(RESULTS.glob("*-s*.json")):
        record = json.loads(path.read_text())
        groups.setdefault((record["task"], record["budget"]), []).append(record)
    summary = []
    lines = [
        "| task | budget | seeds | arm | architecture (seed 0) | non-emb. params | speed-up | dev | test | "
        "dev vs teacher | dev at constant level |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (task, budget), records in sorted(groups.items()):
        metric = records[0]["metric"]
        constant = records[0].get("constant") or constant_for(task, args.work, args.data_dir)
        level = {split: 100 * constant[split][metric] for split in ("dev", "test")}
        row = {
            "task": task,
            "budget": budget,
            "metric": metric,
            "seeds": [r["seed"] for r in records],
            "constant": level,
            "constant_margin": margin,
            "arms": {},
        }
        lines.append(
            f"| {task} | {budget} | | constant | (one answer for every input) | 0 | | {level['dev']:.2f} | "
            f"{level['test']:.2f} | | |"
        )
        for arm in ARMS:
            got = [r["arms"][arm] for r in records]
            if any(g is None for g in got):
                row["arms"][arm] = None
                lines.append(f"| {task} | {budget} | | {arm} | (not one layer of the teacher fits) | | | | | | |")
                continue
            cell = {
                split: _mean_sd([100 * g["metrics"][split][metric] for g in got])
                for split in ("dev", "test")
                if all(split in g["metrics"] for g in got)
            }
            cell["speedup"] = _mean_sd([g["speedup"] for g in got])
            cell["params"] = got[0]["params"]
            cell["dev_vs_teacher"] = _mean_sd(
                [
                    100 * (g["metrics"]["dev"][metric] - t["arms"]["teacher"]["metrics"]["dev"][metric])
                    for g, t in zip(got, records)
                ]
            )
            cell["summary"] = got[0]["summary"]
            cell["at_constant"] = sum(100 * g["metrics"]["dev"][metric] - level["dev"] <= margin + 1e-9 for g in got)
            row["arms"][arm] = cell
            lines.append(
                f"| {task} | {budget} | {len(records)} | {arm} | {got[0]['summary'].replace(' | ', ' · ')} | "
                f"{got[0]['params']:,} | {cell['speedup']['mean']:.2f}× | {_fmt(cell.get('dev'))} | "
                f"{_fmt(cell.get('test'))} | {cell['dev_vs_teacher']['mean']:+.2f} | "
                f"{cell['at_constant']} of {len(got)} |"
            )
        summary.append(row)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(
        f"Metric × 100, mean ± sd over seeds; 'at constant level': dev within {margin:g} point of a constant "
        f"predictor's level."
    )
    print("\n".join(lines))


def _fmt(cell: dict | None) -> str:
    if cell is None:
        return "—"
    return f"{cell['mean']:.2f}" + (f" ± {cell['sd']:.2f}" if cell["sd"] is not None else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run (or continue) the comparison")
    run.add_argument("--work", type=Path, required=True, help="scratch directory: tasks, teachers, runs")
    run.add_argument(
        "--data-dir", type=Path, default=os.environ.get("BERTSMITH_GLUE_DIR"), help="GLUE directory (SST-2, MRPC)"
    )
    run.add_argument("--tasks", default="rotten-tomatoes,sst2,mrpc,vader")
    run.add_argument("--budgets", default="25%,12.5%", help="shares of the teacher's non-embedding parameters")
    run.add_argument("--seeds", default="0,1,2")
    run.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="cpu hides any GPU from the runs")
    summary = sub.add_parser("summary", help="mean and spread per task, budget and arm")
    summary.add_argument(
        "--work",
        type=Path,
        help="scratch directory of `run` (its tasks give the constant "
        "levels of records made before they were recorded)",
    )
    summary.add_argument(
        "--data-dir", type=Path, default=os.environ.get("BERTSMITH_GLUE_DIR"), help="GLUE directory (SST-2, MRPC)"
    )
    args = parser.parse_args()
    {"run": command_run, "summary": command_summary}[args.command](args)


if __name__ == "__main__":
    main()
